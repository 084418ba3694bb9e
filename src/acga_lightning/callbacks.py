"""Lightning callbacks: pictures of the first validation batch, to wandb or to disk.

The learning rate needs no callback: :class:`~acga_lightning.ACGASegmenter` logs ``train/lr``
once per epoch to whatever logger the trainer has. In a config::

    trainer:
      callbacks:
        - class_path: acga_lightning.callbacks.ValidationImageLogger
          init_args: {num_samples: 4, every_n_epochs: 1}
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from acga_lightning import viz

log = logging.getLogger(__name__)

GRAY = 128  # background of a sample that comes as cached features (no frames to show)


def _wandb_loggers(trainer: pl.Trainer) -> list[Any]:
    try:
        from pytorch_lightning.loggers import WandbLogger
    except ImportError:  # pragma: no cover - wandb is a dependency
        return []
    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]


class ValidationImageLogger(pl.Callback):
    """Renders a few samples of the first validation batch every ``every_n_epochs`` epochs.

    For each of the first ``num_samples`` samples of validation batch 0: the annotated frame with
    the prediction (cyan fill) and the ground truth (magenta outline), enlarged (nearest) to at
    least 256 pixels, captioned with the query and the IoU, with a legend
    (:func:`~acga_lightning.viz.render_overlay`); VGLA's attention per word (paper Fig. 5) when
    the attention has a VGLA branch; and LGVA's context of the pixel at the centre of the true
    mask when it has an LGVA branch (one extra encoder pass over those samples). Images go to
    every ``WandbLogger`` of the trainer (``logger.log_image``): overlays and pixel contexts, one
    size per batch, as strips under ``val/overlay`` and ``val/pixel_context``; word maps, whose
    width follows the query's length, one sample per key, ``val/word_attention/<i>``, so that
    none is padded to another's size. When there is no wandb logger, or when ``out_dir`` is
    given, they are written as PNGs to
    ``<out_dir or trainer.log_dir or default_root_dir>/pictures/epoch_XXX/``. Sanity-check
    validation is skipped; only the global-zero process draws.
    """

    def __init__(
        self,
        num_samples: int = 4,
        every_n_epochs: int = 1,
        out_dir: str | None = None,
        word_attention: bool = True,
        pixel_context: bool = True,
    ) -> None:
        super().__init__()
        if num_samples < 1:
            raise ValueError(f"num_samples: expected >= 1, got {num_samples}")
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs: expected >= 1, got {every_n_epochs}")
        self.num_samples = num_samples
        self.every_n_epochs = every_n_epochs
        self.out_dir = out_dir
        self.word_attention = word_attention
        self.pixel_context = pixel_context
        self.written: list[Path] = []  # the PNGs of the last rendering (for tests and notebooks)
        self._samples: list[dict[str, Any]] | None = None

    def _due(self, trainer: pl.Trainer) -> bool:
        return (
            not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0
        )

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._samples = None

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx != 0 or dataloader_idx != 0 or not self._due(trainer):
            return
        if trainer.is_global_zero:
            self._samples = self.collect(pl_module, batch, outputs)

    @torch.no_grad()
    def collect(
        self, pl_module: pl.LightningModule, batch: Mapping[str, Any], outputs: Any = None
    ) -> list[dict[str, Any]]:
        """What to draw for the first samples of ``batch``, as CPU numpy arrays.

        ``outputs`` are the validation step's forward outputs (``logits``, ``attention``); when
        absent they are recomputed for those samples.
        """
        n = min(self.num_samples, int(batch["words"].shape[0]))
        part = {k: v[:n] for k, v in batch.items() if isinstance(v, torch.Tensor | list)}
        if not isinstance(outputs, Mapping) or "logits" not in outputs:
            outputs = pl_module(
                words=part["words"],
                word_mask=part["word_mask"],
                frames=part.get("frames"),
                features=part.get("features"),
            )
        masks, _ = pl_module.predict_masks(outputs["logits"][-1][:n].detach())
        attention = outputs.get("attention")
        words = getattr(attention, "word_attention", None) if self.word_attention else None
        context = None
        if self.pixel_context and getattr(pl_module.attention, "lgva", None) is not None:
            context = viz.pixel_context(pl_module, part).float().cpu().numpy()  # (n, HW, HW)
        size = int(pl_module.hparams.frame_size)
        samples = []
        for i in range(n):
            frame = (
                viz.clip_frame(part["frames"][i])
                if "frames" in part
                else np.full((size, size, 3), GRAY, np.uint8)
            )
            target = part["mask"][i].cpu().numpy() > 0.5 if "mask" in part else None
            query = part["query"][i] if "query" in part else ""
            samples.append(
                {
                    "frame": frame,
                    "pred": masks[i].cpu().numpy(),
                    "target": target,
                    "query": query,
                    "word_attention": None if words is None else words[i].float().cpu().numpy(),
                    "word_mask": part["word_mask"][i].bool().cpu().numpy(),
                    "context": None if context is None else context[i],
                }
            )
        return samples

    @staticmethod
    def render(sample: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, str]]:
        """The pictures of one collected sample: name -> (uint8 image, caption)."""
        frame, pred, target, query = (sample[k] for k in ("frame", "pred", "target", "query"))
        iou = None if target is None else viz.mask_iou(pred, target)
        caption = query if iou is None else f"{query} (IoU {iou:.2f})"
        overlay = viz.render_overlay(frame, pred, target, query=query, iou=iou)
        images = {"overlay": (overlay, caption)}
        if sample["word_attention"] is not None:
            labels = viz.word_labels(query, int(sample["word_mask"].sum()))
            grid = viz.render_word_attention(
                frame, sample["word_attention"], labels, word_mask=sample["word_mask"]
            )
            images["word_attention"] = (grid, query)
        if sample["context"] is not None:
            centre = None if target is None else viz.mask_centre(target)
            pixel = centre or (frame.shape[0] // 2, frame.shape[1] // 2)
            picture = viz.render_pixel_context(frame, sample["context"], pixel)
            images["pixel_context"] = (picture, f"{query} @ pixel {pixel}")
        return images

    def picture_dir(self, trainer: pl.Trainer) -> Path:
        """``<out_dir or trainer.log_dir or default_root_dir>/pictures/epoch_XXX``."""
        base = self.out_dir or trainer.log_dir or trainer.default_root_dir
        return Path(base) / "pictures" / f"epoch_{trainer.current_epoch:03d}"

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._due(trainer):
            return
        wandb_loggers = _wandb_loggers(trainer)
        to_disk = self.out_dir is not None or not wandb_loggers
        # trainer.log_dir broadcasts: every process must ask, not only the one that draws.
        directory = self.picture_dir(trainer) if to_disk else None
        samples, self._samples = self._samples, None
        if not trainer.is_global_zero or not samples:
            return
        rendered = [self.render(s) for s in samples]
        self.written = []
        if directory is not None:
            for i, images in enumerate(rendered):
                for name, (image, _) in images.items():
                    self.written.append(viz.save_png(image, directory / f"sample{i}_{name}.png"))
            log.info("wrote %d validation pictures to %s", len(self.written), directory)
        for logger in wandb_loggers:
            for name in rendered[0]:
                pictures = [r[name] for r in rendered if name in r]
                if name == "word_attention":
                    for i, (image, caption) in enumerate(pictures):
                        logger.log_image(
                            key=f"val/{name}/{i}", images=[image], caption=[caption],
                            step=trainer.global_step,
                        )  # fmt: skip
                    continue
                logger.log_image(
                    key=f"val/{name}",
                    images=[image for image, _ in pictures],
                    caption=[caption for _, caption in pictures],
                    step=trainer.global_step,
                )
