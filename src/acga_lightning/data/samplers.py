"""A distributed sampler for evaluation that never pads: every sample is seen exactly once."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized

import torch.distributed as dist
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
