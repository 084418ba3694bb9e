"""samplers: the unpadded evaluation sampler gives every sample to exactly one rank."""

from __future__ import annotations

import pytest

from acga_lightning.data.samplers import UnpaddedDistributedSampler, shard_sizes


@pytest.mark.parametrize(("total", "ranks"), [(7, 2), (10, 3), (2, 4), (0, 3), (9, 1)])
def test_every_sample_once_over_all_ranks(total, ranks) -> None:
    data = list(range(total))
    shards = [list(UnpaddedDistributedSampler(data, ranks, r)) for r in range(ranks)]
    assert sorted(i for shard in shards for i in shard) == data
    assert [len(shard) for shard in shards] == shard_sizes(total, ranks)
    assert [len(UnpaddedDistributedSampler(data, ranks, r)) for r in range(ranks)] == [
        len(shard) for shard in shards
    ]
    assert max(map(len, shards), default=0) - min(map(len, shards), default=0) <= 1


def test_a_rank_outside_the_world_is_rejected() -> None:
    with pytest.raises(ValueError, match="rank"):
        UnpaddedDistributedSampler(list(range(4)), num_replicas=2, rank=2)
