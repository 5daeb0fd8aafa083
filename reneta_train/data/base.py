"""Containers and helpers shared by every data set.

Every loader returns a :class:`DatasetSplits` whose three :class:`Split` objects hold

* ``x``: float32 tensor ``(N, T, F)``, batch-first, zero-padded after ``lengths[n]`` frames;
* ``y``: int64 tensor ``(N, T)``, framewise labels; class 0 is *silence* in every data set,
  padding frames are labelled 0 as well (the loss ignores them through ``lengths``);
* ``lengths``: int64 tensor ``(N,)``, valid frames per sequence (``1 <= lengths <= T``);
* ``labels``: int64 tensor ``(N,)``, the clip label (0 for a silence clip).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import torch

SILENCE_CLASS = 0
SILENCE_NAME = "_silence_"


class DatasetError(ValueError):
    """A data set is missing, malformed or inconsistent; the message names the file and the problem."""


@dataclasses.dataclass
class Split:
    """One split (train, val or test) of a data set, as padded batch-first tensors."""

    x: torch.Tensor
    y: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.dim() != 3:
            raise ValueError(f"x must be (N, T, F), got shape {tuple(self.x.shape)}")
        n, t, _ = self.x.shape
        if tuple(self.y.shape) != (n, t):
            raise ValueError(f"y must be (N, T) = {(n, t)}, got {tuple(self.y.shape)}")
        if tuple(self.lengths.shape) != (n,) or tuple(self.labels.shape) != (n,):
            raise ValueError("lengths and labels must be (N,)")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.x.shape[1])

    def subset(self, index) -> "Split":
        index = torch.as_tensor(index, dtype=torch.long)
        return Split(self.x[index], self.y[index], self.lengths[index], self.labels[index])

    def to(self, device) -> "Split":
        return Split(self.x.to(device), self.y.to(device), self.lengths.to(device), self.labels.to(device))

    def valid_mask(self) -> torch.Tensor:
        """Bool ``(N, T)``: True on frames before ``lengths``."""
        t = torch.arange(self.num_frames, device=self.lengths.device)
        return t[None, :] < self.lengths[:, None]


@dataclasses.dataclass
class DatasetSplits:
    """The train/val/test splits of one data set plus what a model needs to know about it."""

    name: str
    train: Split
    val: Split
    test: Split
    num_features: int
    num_classes: int
    class_names: list[str]
    #: JSON-able description: source, normalisation statistics, seed, sizes ...
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary (sizes, shapes, classes and ``info``)."""
        return {
            "name": self.name,
            "num_features": self.num_features,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "sizes": {k: len(v) for k, v in self.splits().items()},
            "num_frames": {k: v.num_frames for k, v in self.splits().items()},
            "info": self.info,
        }


def make_split(x: np.ndarray, y: np.ndarray, lengths: np.ndarray, labels: np.ndarray) -> Split:
    return Split(
        torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)),
        torch.from_numpy(np.ascontiguousarray(lengths, dtype=np.int64)),
        torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
    )


def valid_mask_np(lengths: np.ndarray, num_frames: int) -> np.ndarray:
    return np.arange(num_frames)[None, :] < np.asarray(lengths)[:, None]


def scalar_stats(x: np.ndarray, lengths: np.ndarray) -> tuple[float, float]:
    """Global scalar mean/std over all valid frames and features (the §4.2 normalisation)."""
    vals = x[valid_mask_np(lengths, x.shape[1])]
    mean = float(vals.mean(dtype=np.float64))
    std = float(vals.std(dtype=np.float64))
    return mean, (std if std > 0 else 1.0)


def channel_stats(x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean/std over all valid frames; NaN (missing) values are ignored."""
    vals = x[valid_mask_np(lengths, x.shape[1])].astype(np.float64)
    mean = np.nanmean(vals, axis=0)
    std = np.nanstd(vals, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return mean, std


def normalise(x: np.ndarray, lengths: np.ndarray, mean, std) -> np.ndarray:
    """(x - mean) / std on valid frames; padding stays exactly 0; NaN becomes 0 (= the mean)."""
    dt = np.result_type(x.dtype, np.float32)
    out = (x.astype(dt, copy=False) - np.asarray(mean, dtype=dt)) / np.asarray(std, dtype=dt)
    out = np.nan_to_num(out, nan=0.0, copy=False)
    out[~valid_mask_np(lengths, x.shape[1])] = 0.0
    return out.astype(np.float32)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (rest, held_out) with about ``fraction`` of every class held out."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(fraction * len(idx)))
        if fraction > 0 and len(idx) > 1:
            k = max(1, min(k, len(idx) - 1))
        held.extend(idx[:k].tolist())
    held_arr = np.array(sorted(held), dtype=np.int64)
    rest = np.setdiff1d(np.arange(len(labels)), held_arr)
    return rest, held_arr


def class_names_with_silence(names: Sequence[str]) -> list[str]:
    return [SILENCE_NAME] + [str(n) for n in names]
