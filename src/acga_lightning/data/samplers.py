"""Samplers and loaders: unpadded distributed evaluation; a training loader resumable mid-epoch."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sized
from typing import Any

import torch.distributed as dist
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler


class UnpaddedDistributedSampler(DistributedSampler):
    """Rank ``r`` of ``n`` gets samples ``r, r + n, r + 2n, ...``: uneven shards, no duplicates.

    ``DistributedSampler`` pads the dataset with repeated samples so every rank gets the same
    count, and ``drop_last=True`` drops samples instead: either way an evaluation over all ranks
    counts some samples twice or never. This sampler gives the first ``len % n`` ranks one sample
    more. It subclasses ``DistributedSampler`` so Lightning (``use_distributed_sampler``) keeps it
    instead of injecting its own. Ranks may then run a different number of batches, which is safe
    for evaluation loops whose metrics synchronise only at epoch end (no per-step collectives:
    log evaluation values with ``sync_dist=False`` on step, or at epoch end only).
    """

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        if num_replicas is None:
            num_replicas = (
                dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
            )
        if rank is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank: expected 0 <= rank < {num_replicas}, got {rank}")
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.num_samples = len(range(rank, len(dataset), num_replicas))  # type: ignore[arg-type]
        self.total_size = len(dataset)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples


def shard_sizes(total: int, num_replicas: int) -> list[int]:
    """How many samples each rank gets from :class:`UnpaddedDistributedSampler`."""
    return [math.ceil((total - r) / num_replicas) if total > r else 0 for r in range(num_replicas)]


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` that Lightning can checkpoint mid-epoch and resume exactly.

    It has the ``state_dict`` / ``load_state_dict`` pair Lightning looks for (the fit loop stores
    it in the checkpoint's loop state): the sampler's epoch and how many batches this epoch has
    already handed out. After ``load_state_dict`` the next ``iter()`` sets the sampler back to
    that epoch and skips those batches at the index level (no sample is read for them), so the
    resumed epoch sees exactly the batches the interrupted one had left. This is exact when the
    order is a pure function of the epoch, e.g. a ``DistributedSampler`` (``seed + epoch``),
    whose ``set_epoch`` Lightning calls every epoch; with a ``RandomSampler`` it is not. The
    ``generator`` (worker seeds) is reseeded with its initial seed + epoch at every epoch. Random
    augmentation in workers is not replayed exactly in the resumed epoch (batches land on other
    workers); later epochs are identical again.
    """

    def __init__(self, dataset: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(dataset, *args, **kwargs)
        self._served = 0
        self._skip_next = 0
        self._generator_seed = None if self.generator is None else self.generator.initial_seed()

    @property
    def _index_sampler(self) -> Any:
        return _SkipFirst(super()._index_sampler, self)

    def __iter__(self) -> Iterator[Any]:
        if self._generator_seed is not None:
            # Worker seeds are drawn from this generator: make them a function of the epoch too.
            epoch = int(getattr(self.sampler, "epoch", 0))
            self.generator.manual_seed(self._generator_seed + epoch)
        self._served = self._skip_next  # _SkipFirst consumes _skip_next when iteration starts
        for batch in super().__iter__():
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """The sampler's epoch, the batches served in it and the batches per epoch."""
        return {
            "epoch": int(getattr(self.sampler, "epoch", 0)),
            "batches_served": int(self._served),
            "num_batches": len(self),
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at ``state``: the next ``iter()`` continues that epoch after its served ones."""
        epoch, served = int(state["epoch"]), int(state["batches_served"])
        if state.get("num_batches") != len(self):
            raise ValueError(
                f"state: the checkpoint's loader had {state.get('num_batches')} batches per "
                f"epoch, this one has {len(self)}; the data or batch size changed"
            )
        if served >= len(self):  # saved at the end of an epoch: the next one starts afresh
            epoch, served = epoch + 1, 0
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        self._skip_next = served


class _SkipFirst:
    """The loader's index sampler, minus the batches a resumed loader must not serve again."""

    def __init__(self, base: Any, loader: ResumableDataLoader) -> None:
        self.base, self.loader = base, loader

    def __len__(self) -> int:
        return len(self.base)  # the full epoch: Lightning's batch counters include served ones

    def __iter__(self) -> Iterator[Any]:
        skip, self.loader._skip_next = self.loader._skip_next, 0
        return itertools.islice(iter(self.base), skip, None)
