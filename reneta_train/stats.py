"""Operation and sparsity counters of the delta layers.

Why these exist: the whole point of a delta network is the work it *skips*. A
dense GPU/CPU implementation never skips anything, so the savings have to be
counted. The counters follow the accelerator's cost model (reference doc §2.2):
each of the three matrix kernels of one time step costs
``gate_rows × (number of fired columns)`` multiply-accumulates per sample
(MxV_SP forward, MTxV_SP backward, VXV_SP weight gradient); the dense kernels
cost ``gate_rows × (all columns)``.

Counting rules (the same for every implementation, batching strategy and for
``sparse_bptt=False``, so numbers are comparable):

* counted per sample and per *valid* step; padded steps (past a sequence's
  length) count nowhere, not even in the sparsity denominators;
* ``gate_rows`` is 4H for an LSTM and 3H for a GRU (its two products
  ``W_ih·Δx`` and ``W_hh·Δh`` each have 3H rows);
* forward (``*_fwd``): ``W_ih·Δx_t`` and ``W_hh·Δh_t``;
* backward (``*_bwd``): the transposed products ``W_ihᵀ·G`` and ``W_hhᵀ·G``,
  but the input part only when the layer input needs a gradient (for the first
  layer of a model it usually does not, and the accelerator would not compute it);
  dense and performed counts follow the same rule;
* weight gradient (``*_wgrad``): ``G·Δᵀ`` when the weights need a gradient;
* backward counters are added when the backward pass runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable


@dataclass
class LayerStats:
    """Counters of one layer, accumulated over calls until ``reset_stats()``."""

    dense_macs_fwd: int = 0
    macs_fwd: int = 0
    dense_macs_bwd: int = 0
    macs_bwd: int = 0
    dense_macs_wgrad: int = 0
    macs_wgrad: int = 0
    dx_zeros: int = 0
    dx_total: int = 0
    dh_zeros: int = 0
    dh_total: int = 0

    @staticmethod
    def _ratio(num: int, den: int) -> float:
        return num / den if den else 0.0

    @property
    def sparsity_dx(self) -> float:
        """Fraction of zero Δx entries (0 when nothing was counted)."""
        return self._ratio(self.dx_zeros, self.dx_total)

    @property
    def sparsity_dh(self) -> float:
        """Fraction of zero Δh entries (0 when nothing was counted)."""
        return self._ratio(self.dh_zeros, self.dh_total)

    @property
    def sparsity(self) -> float:
        """Fraction of zero entries of the concatenated Δ = [Δx; Δh]."""
        return self._ratio(self.dx_zeros + self.dh_zeros, self.dx_total + self.dh_total)

    @property
    def dense_macs(self) -> int:
        return self.dense_macs_fwd + self.dense_macs_bwd + self.dense_macs_wgrad

    @property
    def macs(self) -> int:
        return self.macs_fwd + self.macs_bwd + self.macs_wgrad

    @property
    def op_reduction(self) -> float:
        """``1 − performed/dense`` over forward + backward + weight gradient."""
        dense = self.dense_macs
        return 1.0 - self.macs / dense if dense else 0.0

    def __add__(self, other: "LayerStats") -> "LayerStats":
        if not isinstance(other, LayerStats):
            return NotImplemented
        return LayerStats(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                             for f in dataclasses.fields(self)})

    def copy(self) -> "LayerStats":
        return dataclasses.replace(self)


def merge(stats: Iterable[LayerStats]) -> LayerStats:
    """Total of several ``LayerStats`` (e.g. all layers of a model, or several models)."""
    total = LayerStats()
    for s in stats:
        if not isinstance(s, LayerStats):
            raise TypeError(f"stats.merge: expected LayerStats items, got {type(s).__name__}")
        total = total + s
    return total


class StatsSink:
    """The mutable counter object a layer owns for each of its layers.

    The autograd Functions hold a reference to it and add the backward counts
    when (and if) backward runs. Only Python ints are stored: the forward pass
    computes all counts of one call with a single device→host transfer.
    """

    __slots__ = ("stats", "enabled")

    def __init__(self) -> None:
        self.stats = LayerStats()
        self.enabled = True

    def reset(self) -> None:
        self.stats = LayerStats()

    def add(self, **counts: int) -> None:
        if not self.enabled:
            return
        s = self.stats
        for k, v in counts.items():
            setattr(s, k, getattr(s, k) + int(v))


@dataclass(frozen=True)
class CallCounts:
    """Counts of one forward call of one layer, fixed at forward time.

    ``fired_x``/``fired_h`` are the numbers of fired (non-zero) Δx/Δh entries over
    all valid (step, sample) pairs; ``valid`` is the number of valid pairs.
    """

    rows: int
    nx: int
    nh: int
    valid: int
    fired_x: int
    fired_h: int

    def forward_counts(self) -> dict:
        return dict(
            dense_macs_fwd=self.rows * (self.nx + self.nh) * self.valid,
            macs_fwd=self.rows * (self.fired_x + self.fired_h),
            dx_zeros=self.nx * self.valid - self.fired_x,
            dx_total=self.nx * self.valid,
            dh_zeros=self.nh * self.valid - self.fired_h,
            dh_total=self.nh * self.valid,
        )

    def backward_counts(self, input_grad: bool, weight_grad: bool) -> dict:
        cols_dense = (self.nx if input_grad else 0) + self.nh
        cols_fired = (self.fired_x if input_grad else 0) + self.fired_h
        out = dict(dense_macs_bwd=self.rows * cols_dense * self.valid,
                   macs_bwd=self.rows * cols_fired)
        if weight_grad:
            out.update(dense_macs_wgrad=self.rows * (self.nx + self.nh) * self.valid,
                       macs_wgrad=self.rows * (self.fired_x + self.fired_h))
        return out
