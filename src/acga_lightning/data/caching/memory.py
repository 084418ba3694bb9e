"""MemoryCachedDataset: samples kept in memory after their first read (``memory_cache``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.utils.data import Dataset, Subset


def window_groups(dataset: Dataset) -> list[list[int]] | None:
    """Indices of ``dataset`` grouped by the decoded window they share, or None.

    Looks through ``Subset`` wrappers for a reader with ``window_key(index)`` (A2D: one key per
    annotated frame, shared by every query on it); None when there is none.
    """
    mapping: Sequence[int] = range(len(dataset))  # type: ignore[arg-type]
    data = dataset
    while isinstance(data, Subset):
        mapping = [data.indices[m] for m in mapping]
        data = data.dataset
    key = getattr(data, "window_key", None)
    if key is None:
        return None
    groups: dict[Any, list[int]] = {}
    for local, index in enumerate(mapping):
        groups.setdefault(key(index), []).append(local)
    return list(groups.values())


class MemoryCachedDataset(Dataset):
    """Keeps every sample after its first read, so later epochs skip decoding (``memory_cache``).

    The cache lives in the process that reads: with loader workers it lasts only as long as the
    workers do (the datamodule makes them persistent). Samples must not change between reads,
    so it refuses to sit on top of augmentation.

    ``groups`` (see :func:`window_groups`): on the first read of an index, every index of its
    group is read too, one after the other, so a reader that keeps its last decoded window
    decodes a frame once for all its queries, even in a shuffled epoch. With several loader
    workers a group is read by whichever worker first asks for one of its members, and another
    worker asked for a sibling reads it again.
    """

    def __init__(self, dataset: Dataset, groups: Sequence[Sequence[int]] | None = None) -> None:
        self.dataset = dataset
        self._samples: dict[int, dict[str, Any]] = {}
        self._group_of: dict[int, tuple[int, ...]] = {}
        for group in groups or ():
            members = tuple(sorted(int(i) for i in group))
            self._group_of.update((i, members) for i in members)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    @property
    def fully_cached(self) -> bool:
        """Whether every sample is in memory here, so reading any sample decodes nothing.

        With loader workers the samples are cached in the workers, and this copy stays False.
        :class:`~acga_lightning.time_budget.TimeBudget` reads it.
        """
        return len(self._samples) == len(self)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self._samples.get(index)
        if sample is None:
            for member in self._group_of.get(index, (index,)):
                if member not in self._samples:
                    self._samples[member] = self.dataset[member]
            sample = self._samples[index]
        return sample
