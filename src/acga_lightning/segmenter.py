"""ACGASegmenter: the LightningModule that wires the registered parts into one model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from acga_lightning.models.attention import AttentionOutput
from acga_lightning.registry import (
    ATTENTION,
    DECODERS,
    LOSSES,
    TEXT_ENCODERS,
    VIDEO_ENCODERS,
    Spec,
    spec_to_dict,
)

SpecArg = str | dict[str, Any]
EVALUATIONS = ("restore", "official_release")
#: The actor-action head's logits are its linear output times this: the pooled features it
#: reads are L2-normalised (norm at most 1), too small for a linear layer's logits to be sure.
ACTION_LOGIT_SCALE = 10.0


def predict_foreground(
    probabilities: torch.Tensor, relative_threshold: float = 0.5
) -> torch.Tensor:
    """ACGA's inference rule: foreground where p > ``relative_threshold`` x the sample's max p.

    ``probabilities`` (B, H, W) -> bool (B, H, W).
    """
    peak = probabilities.flatten(1).amax(dim=1)[:, None, None]  # (B, 1, 1)
    return probabilities > relative_threshold * peak


class ACGASegmenter(pl.LightningModule):
    """Segments the actor a sentence refers to in a video clip (Wang et al., ICCV 2019).

    Each part is a spec: a registered name or ``{name: ..., <constructor kwargs>}``. With no
    arguments this is the paper's model: ``i3d`` (frozen through Mixed_4e, Mixed_4f fine-tuned),
    ``word_cnn``, ``acga`` attention, ``multires`` decoder and ``wbce`` loss, on 16 frames of
    512 x 512, trained with Adam at 5e-4 and the learning rate divided by 10 after epoch 8.
    ``acga plugins`` lists every registered part and its arguments.

    Batches follow the sample contract (:class:`~acga_lightning.data.contract.Batch`): ``frames`` or
    ``features``, ``words``, ``word_mask``, ``mask``; ``orig_mask`` and ``orig_size`` for
    scoring. ``frames`` may be float32 in [-1, 1] or uint8 pixels (the datamodule's fast path):
    :meth:`forward` normalises uint8 on the model's device, exactly as the readers would have.

    What the model computes follows the official code (``model/acga.py``) unless an option says
    otherwise. ``mask_padding=False`` (official): every one of the ``N`` word positions is a
    word, so padded rows (zero word vectors) go through the text encoder's convolution and
    tanh, VGLA attends over all ``N`` and the sentence feature is the max over all ``N``;
    ``True`` zeroes padded rows and leaves them out of the attention and the max.
    ``evaluation="restore"`` maps the probability map back to the frame with the exact inverse
    of the resize policy and scores it against ``orig_mask``; ``"official_release"`` scores as
    the official ``report_result`` (:mod:`acga_lightning.metrics.official`).
    ``frame_stride``: the clips it was trained on were every ``frame_stride``-th frame (the
    datamodule's setting, linked by ``acga fit``); ``acga segment`` reads clips the same way.

    ``action_loss_weight > 0`` adds a loss the paper does not have: the video encoder's
    features, averaged over the target's mask, name the target's actor-action class (the
    samples' ``action``, A2D's ``id``: ``actor * 10 + action``, below ``action_classes``)
    through one linear layer, with cross-entropy weighted ``action_loss_weight`` beside the
    segmentation loss (samples with ``action = -1`` left out). Training on data without the
    class raises; validation and test without it score the segmentation alone. The head only
    trains the encoder: predictions do not use it. It makes the encoder represent motion,
    which the segmentation loss alone lets it learn last, if at all (docs/model.md).

    Run-time switches (how the model runs, not what it computes; applied when fit, test or
    predict starts): ``channels_last`` and ``compile`` on CUDA; ``channels_last_on_cpu`` puts
    the weights channels-last on a CPU too (it pays off for small 2-D models such as the
    demo's; measure before turning it on for others).
    """

    def __init__(
        self,
        video_encoder: SpecArg = "i3d",
        text_encoder: SpecArg = "word_cnn",
        attention: SpecArg = "acga",
        decoder: SpecArg = "multires",
        loss: SpecArg = "wbce",
        num_frames: int = 16,
        frame_size: int = 512,
        word_dim: int = 300,
        lr: float = 5e-4,
        weight_decay: float = 0.0,
        lr_milestones: Sequence[int] = (8,),
        lr_gamma: float = 0.1,
        relative_threshold: float = 0.5,
        resize_policy: str = "cover",
        metrics_protocol: str = "acga",
        mask_padding: bool = False,
        evaluation: str = "restore",
        num_logged_images: int = 4,
        channels_last: bool = True,
        compile: bool = True,
        channels_last_on_cpu: bool = False,
        frame_stride: int = 1,
        action_loss_weight: float = 0.0,
        action_classes: int = 80,
    ) -> None:
        super().__init__()
        specs = {
            "video_encoder": spec_to_dict(video_encoder),
            "text_encoder": spec_to_dict(text_encoder),
            "attention": spec_to_dict(attention),
            "decoder": spec_to_dict(decoder),
            "loss": spec_to_dict(loss),
        }
        if frame_size <= 0 or num_frames <= 0:
            raise ValueError(
                f"frame_size and num_frames must be positive, got {frame_size}, {num_frames}"
            )
        if frame_stride < 1:
            raise ValueError(f"frame_stride: expected >= 1, got {frame_stride}")
        if action_loss_weight < 0 or action_classes < 1:
            raise ValueError(
                f"action_loss_weight, action_classes: expected >= 0 and >= 1, got "
                f"{action_loss_weight}, {action_classes}"
            )
        if evaluation not in EVALUATIONS:
            raise ValueError(f"evaluation: expected one of {EVALUATIONS}, got {evaluation!r}")
        if evaluation == "official_release" and metrics_protocol == "mttr":
            raise ValueError(
                "evaluation 'official_release' scores with the acga protocol, not mttr"
            )
        # The specs are plain data, so the checkpoint alone rebuilds the same model.
        self.save_hyperparameters()
        self.video_encoder = VIDEO_ENCODERS.build(
            specs["video_encoder"], num_frames=num_frames, frame_size=frame_size
        )
        self.text_encoder = TEXT_ENCODERS.build(specs["text_encoder"], in_channels=word_dim)
        channels = {
            "visual_channels": self.video_encoder.out_channels,
            "text_channels": self.text_encoder.out_channels,
        }
        self.attention = ATTENTION.build(specs["attention"], **channels)
        self.decoder = DECODERS.build(specs["decoder"], **channels)
        # a decoder whose sentence gate reads the mean word vector, not the sentence feature
        self.gate_reads_words = getattr(self.decoder, "gate_source", "sentence") == "words"
        if self.gate_reads_words and word_dim != self.text_encoder.out_channels:
            raise ValueError(
                f"decoder: gate_source 'words' reads the {word_dim}-d word vectors, but the "
                f"decoder was built for {self.text_encoder.out_channels}-d text features"
            )
        self.loss = LOSSES.build(specs["loss"])
        self.action_head = (
            nn.Linear(self.video_encoder.out_channels, action_classes)
            if action_loss_weight > 0
            else None
        )
        self.val_metrics = self._build_metrics()
        self.test_metrics = self._build_metrics()
        # J, F and J&F for samples that name their expression (Ref-YouTube-VOS, Ref-DAVIS17).
        from acga_lightning.metrics.video import ReferringVideoMetrics

        self.val_video_metrics = ReferringVideoMetrics()
        self.test_video_metrics = ReferringVideoMetrics()
        self.channels_last_inputs = False
        self.compiled = False

    def _optimise_for_device(self) -> None:
        # channels_last and torch.compile pay off on CUDA; on CPU compile only costs start-up
        # time, and channels_last is opt-in (channels_last_on_cpu): it speeds up the demo's
        # small 2-D model on a CPU, and nothing was measured for I3D.
        from acga_lightning.perf import optimise_for_speed, to_channels_last

        if self.device.type == "cuda" and not self.compiled:
            optimise_for_speed(
                self, compile=self.hparams.compile, channels_last=self.hparams.channels_last
            )
        elif (
            self.device.type == "cpu"
            and self.hparams.get("channels_last_on_cpu")
            and not self.channels_last_inputs
        ):
            to_channels_last(self)

    def on_fit_start(self) -> None:
        self._optimise_for_device()

    def on_test_start(self) -> None:
        self._optimise_for_device()

    def on_predict_start(self) -> None:
        self._optimise_for_device()

    def _build_metrics(self) -> nn.Module | None:
        try:
            from acga_lightning.metrics import ReferringSegmentationMetrics
        except ImportError:  # pragma: no cover - only while the metrics package is absent
            return None
        protocol = self.hparams.metrics_protocol
        if self.hparams.get("evaluation") == "official_release":
            protocol = "acga_release"
        return ReferringSegmentationMetrics(protocol=protocol)

    # ----------------------------------------------------------------------------- model
    def forward(
        self,
        words: torch.Tensor,
        word_mask: torch.Tensor,
        frames: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """Logits for a batch: ``{"logits": [coarse, ..., (B, 1, S, S)], "attention": ...,
        "visual": the video encoder's features (B, C_v, G, G)}``.

        When the decoder's finest map is not at the frame size, its bilinear resize is appended
        to ``logits`` as the prediction; ``num_decoder_logits`` counts the decoder's own maps,
        the ones the loss sees.

        ``frames``: float (B, 3, T, S, S) in [-1, 1], or uint8 pixels, normalised here.
        """
        if frames is None and features is None:
            raise ValueError("forward needs frames (B, 3, T, S, S) or cached features")
        if frames is not None and frames.dtype == torch.uint8:
            # The one place uint8 batches become [-1, 1]: every step, callback and caller of
            # the model passes through here, after the batch reached the device. The cast
            # does what "bf16-true"-style precisions do to float batches on transfer.
            from acga_lightning.data.io.resize import normalise_frames

            frames = normalise_frames(frames).to(self.dtype)  # (B, 3, T, S, S)
        word_mask = real_words = word_mask.bool()
        if not self.hparams.get("mask_padding", False):
            word_mask = torch.ones_like(word_mask)  # the official model: all N positions are words
        if self.channels_last_inputs and frames is not None:
            frames = frames.contiguous(memory_format=torch.channels_last_3d)
        visual = self.video_encoder(frames=frames, features=features)  # (B, C_v, G, G)
        text = self.text_encoder(words, word_mask)  # (B, N, D)
        attended: AttentionOutput = self.attention(visual, text, word_mask)
        sentence = attended.sentence  # (B, D)
        if self.gate_reads_words:
            sentence = mean_word_vector(words, real_words)  # (B, word_dim)
        logits = self.decoder(attended.visual, attended.text, sentence)
        size = (self.hparams.frame_size, self.hparams.frame_size)
        num_decoder_logits = len(logits)
        if tuple(logits[-1].shape[-2:]) != size:
            final = nn.functional.interpolate(
                logits[-1], size=size, mode="bilinear", align_corners=False
            )
            logits = [*logits, final]
        return {
            "logits": logits,
            "attention": attended,
            "visual": visual,
            "num_decoder_logits": num_decoder_logits,
        }

    def _forward_batch(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        return self(
            words=batch["words"],
            word_mask=batch["word_mask"],
            frames=batch.get("frames"),
            features=batch.get("features"),
        )

    @torch.no_grad()
    def predict_masks(
        self,
        logits: torch.Tensor,
        orig_sizes: Sequence[tuple[int, int]] | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Boolean masks from final logits (B, 1, S, S), at each sample's original size.

        The probability map is mapped back to the original frame with the exact inverse of the
        resize policy, then thresholded at ``relative_threshold`` x its per-sample maximum.
        Returns the masks and a confidence score per sample (the maximum probability). With
        ``evaluation="official_release"`` the masks are made as the official evaluation makes
        them (threshold at the model's resolution, then the official resize-and-crop), so what
        ``predict`` writes is what ``test`` scores.
        """
        probabilities = torch.sigmoid(logits.float())[:, 0]  # (B, S, S)
        peaks = probabilities.flatten(1).amax(dim=1)  # (B,)
        if orig_sizes is not None and self.hparams.get("evaluation") == "official_release":
            from acga_lightning.metrics.official import official_release_predictions

            masks = official_release_predictions(logits, orig_sizes)
            return [m.to(logits.device) for m in masks], peaks
        if orig_sizes is None:
            return list(predict_foreground(probabilities, self.hparams.relative_threshold)), peaks
        from acga_lightning.data.io.resize import restore_mask

        masks = []
        for prob, peak, size in zip(probabilities, peaks, orig_sizes, strict=True):
            restored = restore_mask(prob, tuple(int(s) for s in size), self.hparams.resize_policy)
            masks.append(restored > self.hparams.relative_threshold * peak)
        return masks, peaks

    # -------------------------------------------------------------------------- training
    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        """The loss of a batch against its ``mask`` targets, with the forward outputs.

        With the actor-action head and a batch that carries ``action``, the loss adds
        ``action_loss_weight`` x the head's loss (also returned as ``out["action_loss"]``).
        """
        out = self._forward_batch(batch)
        loss = self.loss(out["logits"][: out["num_decoder_logits"]], batch["mask"])
        if self.action_head is not None and "action" in batch:
            out["action_loss"] = self.action_loss(out["visual"], batch["mask"], batch["action"])
            loss = loss + self.hparams.action_loss_weight * out["action_loss"]
        return loss, out

    def action_loss(
        self, visual: torch.Tensor, mask: torch.Tensor, action: torch.Tensor
    ) -> torch.Tensor:
        """Cross-entropy of the actor-action head on ``visual`` (B, C_v, G, G) averaged over
        ``mask`` (B, S, S), against ``action`` (B,); samples with ``action = -1`` left out."""
        if self.action_head is None:
            raise ValueError("action_loss: no actor-action head (action_loss_weight is 0)")
        action = torch.as_tensor(action, device=visual.device).long()
        classes = self.hparams.action_classes
        if bool(((action < -1) | (action >= classes)).any()):
            raise ValueError(
                f"action: classes {sorted(set(action.tolist()))}, expected -1 (none) or "
                f"0..{classes - 1} (action_classes {classes})"
            )
        pooled = mask_average(visual, mask[:, None].to(visual.dtype))  # (B, C_v)
        logits = self.action_head(pooled) * ACTION_LOGIT_SCALE  # (B, action_classes)
        # The mean over the known samples; 0 (still a graph) when there are none, without a
        # second host sync to find out.
        summed = nn.functional.cross_entropy(logits, action, ignore_index=-1, reduction="sum")
        return summed / (action >= 0).sum().clamp_min(1)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        if self.action_head is not None and "action" not in batch:
            raise ValueError(
                f"action_loss_weight {self.hparams.action_loss_weight}: training needs each "
                "sample's actor-action class ('action', which A2D-Sentences samples carry), "
                "and this batch has none; set action_loss_weight to 0 for this dataset"
            )
        loss, out = self.compute_loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["words"].shape[0])
        if "action_loss" in out:
            self.log("train/action_loss", out["action_loss"], batch_size=batch["words"].shape[0])
        if batch_idx == 0 and self._trainer is not None and self.trainer.optimizers:
            # The learning rate, once per epoch (works with any logger, or none).
            lr = self.trainer.optimizers[0].param_groups[0]["lr"]
            self.log("train/lr", lr, on_step=False, on_epoch=True, batch_size=1)
        return loss

    def _evaluation_step(self, batch: Mapping[str, Any], stage: str) -> dict[str, Any]:
        loss, out = self.compute_loss(batch)
        batch_size = batch["words"].shape[0]
        self.log(f"{stage}/loss", loss, batch_size=batch_size, sync_dist=True)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        if metrics is not None and self.hparams.get("evaluation") == "official_release":
            from acga_lightning.metrics.official import official_release_masks

            preds, targets = official_release_masks(
                out["logits"][-1], batch["mask"], batch["orig_size"]
            )
            metrics.update(preds, targets, sample_ids=batch.get("sample_id"))
        elif metrics is not None and "orig_mask" in batch:
            preds, scores = self.predict_masks(out["logits"][-1], batch["orig_size"])
            targets = [torch.as_tensor(m, device=self.device).bool() for m in batch["orig_mask"]]
            sample_ids = batch.get("sample_id")
            metrics.update(preds, targets, scores=scores, sample_ids=sample_ids)
            if "expression_id" in batch:
                video = self.val_video_metrics if stage == "val" else self.test_video_metrics
                video.update(
                    preds, targets, batch["expression_id"], batch["frame_idx"],
                    voids=batch.get("void"),
                )  # fmt: skip
        return out

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._evaluation_step(batch, "val")

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._evaluation_step(batch, "test")

    def _log_metrics(self, metrics: nn.Module | None, stage: str) -> None:
        if metrics is None or not getattr(metrics, "update_called", True):
            return
        results = metrics.compute()
        for key, value in results.items():
            self.log(f"{stage}/{key}", value, sync_dist=False, rank_zero_only=False)
        metrics.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics, "val")
        self._log_metrics(self.val_video_metrics, "val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics(self.test_metrics, "test")
        self._log_metrics(self.test_video_metrics, "test")

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Any]:
        out = self._forward_batch(batch)
        masks, scores = self.predict_masks(out["logits"][-1], batch.get("orig_size"))
        keys = ("query", "video_id", "frame_idx", "instance_id", "sample_id", "expression_id",
                "exp_id", "frame_name")  # fmt: skip
        return {"masks": masks, "scores": scores, **{k: batch[k] for k in keys if k in batch}}

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> Any:
        """Lightning's ``load_from_checkpoint``, rebuilding older checkpoints as they were trained.

        Checkpoints written before the official model became the default (their
        hyper-parameters have no ``mask_padding``) were trained with padded words masked and
        ReLUs in the ``multires`` up-blocks: they are rebuilt with ``mask_padding=True`` and
        ``up_activation: relu`` (with a warning), unless ``kwargs`` set those themselves.
        """
        overrides = legacy_overrides(peek_hyperparameters(checkpoint_path))
        for key, value in overrides.items():
            kwargs.setdefault(key, value)
        warn_legacy(checkpoint_path, overrides)
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    def configure_callbacks(self) -> list[pl.Callback]:
        """Atomic checkpoint writes in every run of this model (never a torn ``last.ckpt``)."""
        from acga_lightning.checkpointing import AtomicCheckpoints

        # A second run on the same trainer (`acga fit`'s final test) already has it; returning
        # another would only make Lightning print that it replaces the first.
        trainer = self._trainer
        if trainer is not None and any(isinstance(c, AtomicCheckpoints) for c in trainer.callbacks):
            return []
        return [AtomicCheckpoints()]

    # ------------------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> dict[str, Any]:
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(
            trainable, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(self.hparams.lr_milestones), gamma=self.hparams.lr_gamma
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }


def mask_average(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``features`` (B, C, G, G) averaged over each sample's ``mask`` (B, 1, S, S), the mask
    area-resized to the grid: (B, C). An empty mask gives zeros."""
    weights = nn.functional.adaptive_avg_pool2d(mask, features.shape[-2:])  # (B, 1, G, G)
    return (features * weights).sum((2, 3)) / weights.sum((2, 3)).clamp_min(1e-6)


def mean_word_vector(words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
    """The mean of each sentence's real word vectors: ``(B, N, D), (B, N) -> (B, D)``."""
    weights = word_mask[..., None].to(words.dtype)  # (B, N, 1)
    return (words * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def build_part(kind: str, spec: Spec, **injected: Any) -> Any:
    """Build one part outside a segmenter (notebooks, benchmarks)."""
    from acga_lightning.registry import REGISTRIES

    return REGISTRIES[kind].build(spec, **injected)


def peek_hyperparameters(checkpoint_path: Any) -> dict[str, Any] | None:
    """A local checkpoint's ``hyper_parameters`` (memory-mapped: the weights are not read), or
    None where the path is not a local file or holds none."""
    import os

    if not isinstance(checkpoint_path, str | os.PathLike) or not os.path.isfile(checkpoint_path):
        return None
    try:
        checkpoint = torch.load(checkpoint_path, map_location="cpu", mmap=True, weights_only=False)
    except Exception:  # Lightning's own load then reports the file properly
        return None
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    return dict(hparams) if isinstance(hparams, Mapping) else None


def legacy_overrides(hparams: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings an older checkpoint (no ``mask_padding`` saved) was trained with.

    Applied by :meth:`ACGASegmenter.load_from_checkpoint` and by ``acga``'s ``--ckpt_path``.
    """
    if not hparams or "mask_padding" in hparams:
        return {}
    overrides: dict[str, Any] = {"mask_padding": True}
    decoder = spec_to_dict(hparams.get("decoder", "multires"))
    if decoder["name"] == "multires" and "up_activation" not in decoder:
        overrides["decoder"] = {**decoder, "up_activation": "relu"}
    return overrides


def warn_legacy(checkpoint_path: Any, overrides: Mapping[str, Any]) -> None:
    """Say that an older checkpoint is rebuilt with :func:`legacy_overrides` (if any)."""
    if overrides:
        import warnings

        warnings.warn(
            f"{checkpoint_path}: written before the official-model defaults; rebuilt as it "
            f"was trained with {sorted(overrides)} set ({dict(overrides)})",
            UserWarning,
            stacklevel=3,
        )
