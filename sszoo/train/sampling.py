"""Deterministic, resumable sampling of training batches.

The sample at global position ``p = iteration * batch_size + k`` (k over the global batch) is the
``p mod N``-th element of a permutation of the N training images drawn from ``(seed, p // N)``, and
its augmentation is seeded by ``(seed, p)``. Everything a batch contains is therefore a pure
function of (seed, iteration): a resumed run, any number of loader workers and any number of
processes (each takes its slice of the global batch) see exactly the same data.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .augment import TrainAugment


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (numpy's SeedSequence mixes them well)."""
    return int(np.random.SeedSequence([v & 0xFFFFFFFF for v in values] + [len(values)]).generate_state(2, np.uint64)[0]
               >> np.uint64(1))


class StepBatchSampler(Sampler):
    """Yields, for iterations ``start .. iters-1``, this rank's list of ``(index, sample_seed)`` pairs."""

    def __init__(self, num_items: int, batch_size: int, iters: int, *, seed: int = 0, start: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if num_items < 1:
            raise ValueError("the training set is empty")
        if batch_size % world_size:
            raise ValueError(f"the global batch size {batch_size} must be divisible by the number of processes "
                             f"{world_size}; pass --batch-size as a multiple of {world_size}")
        self.n, self.batch, self.iters, self.seed = num_items, batch_size, iters, seed
        self.start, self.rank, self.world = start, rank, world_size
        self.per_rank = batch_size // world_size
        self._perm_epoch, self._perm = -1, None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(_mix(self.seed, epoch, 1))
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def batch_at(self, iteration: int) -> list[tuple[int, int]]:
        """The (index, seed) pairs of this rank at ``iteration``."""
        out = []
        first = iteration * self.batch + self.rank * self.per_rank
        for p in range(first, first + self.per_rank):
            perm = self._permutation(p // self.n)
            out.append((int(perm[p % self.n]), _mix(self.seed, p, 2)))
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for it in range(self.start, self.iters):
            yield self.batch_at(it)

    def __len__(self) -> int:
        return max(self.iters - self.start, 0)


class AugmentedDataset(Dataset):
    """Wraps a dataset of ``{"image", "label", "path"}`` items; ``ds[(index, seed)]`` is one augmented sample."""

    def __init__(self, dataset: Dataset, augment: TrainAugment, num_classes: int | None = None) -> None:
        self.dataset = dataset
        self.augment = augment
        self.num_classes = num_classes  # when given, label values are checked (here, not on the GPU)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, seed = key
        item = self.dataset[index]
        image, label = item["image"], item["label"]
        path = item.get("path", f"item {index}")
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"{path}: expected a 3 x H x W RGB image, got shape {tuple(image.shape)}")
        if tuple(label.shape) != tuple(image.shape[1:]):
            raise ValueError(f"{path}: the label is {tuple(label.shape)[::-1]} (w x h) but the image is "
                             f"{tuple(image.shape[1:])[::-1]}; every label map must have its image's size. "
                             "Fix or remove this pair.")
        if self.num_classes is not None:
            ignore = self.augment.cfg.ignore_index
            bad = (label >= self.num_classes) & (label != ignore) | (label < 0)
            if bool(bad.any()):
                values = sorted(set(label[bad].unique().tolist()))[:8]
                raise ValueError(f"{path}: label values {values} are outside the {self.num_classes} classes "
                                 f"(0..{self.num_classes - 1}, {ignore} = ignore); pass --num-classes or fix the labels")
        rng = np.random.default_rng(seed)
        image, label = self.augment(image, label, rng)
        return {"image": image, "label": label}
