"""The interface every number format of the accelerator implements.

A number format is the single source of truth for arithmetic: the golden model
(`sim.golden`), the trainer's hardware-numerics mode (`reneta_train`) and the
gateware unit tests all call these reference functions, so they agree bit for bit.

Values travel as *raw bit patterns*: numpy integer arrays (``np.int64``) holding the
unsigned pattern of a word (``0 <= w < 2**word_bits``) or of an accumulator
(``0 <= a < 2**acc_bits``). Memories (DRAM, SMEM) hold words; products and sums are
accumulators; ``to_word`` converts an accumulator back to a word when a result is
written out.

The multiply-accumulate contract of one lane is::

    acc = ZERO_ACC
    for (w, x) in operands, in the documented order:
        acc = add(acc, mul(w, x))
    result_word = to_word(acc)
"""

from __future__ import annotations

import abc

import numpy as np


class NumberFormat(abc.ABC):
    """A word format plus its accumulator format; all methods are vectorized."""

    #: bits of a word in memory
    word_bits: int
    #: bits of the accumulator
    acc_bits: int

    # --- conversions -------------------------------------------------------
    @abc.abstractmethod
    def encode(self, x) -> np.ndarray:
        """Round real values (array-like of float) to words (raw patterns)."""

    @abc.abstractmethod
    def decode(self, w) -> np.ndarray:
        """Words (raw patterns) to float64 values."""

    @abc.abstractmethod
    def decode_acc(self, a) -> np.ndarray:
        """Accumulators (raw patterns) to float64 values."""

    @abc.abstractmethod
    def encode_acc(self, x) -> np.ndarray:
        """Round real values to accumulators (raw patterns)."""

    # --- arithmetic --------------------------------------------------------
    @abc.abstractmethod
    def mul(self, a, b) -> np.ndarray:
        """Product of two words, as an accumulator."""

    @abc.abstractmethod
    def add(self, a, b) -> np.ndarray:
        """Sum of two accumulators, as an accumulator."""

    @abc.abstractmethod
    def to_word(self, a) -> np.ndarray:
        """Accumulator to word (rounding/overflow as the format says)."""

    @abc.abstractmethod
    def neg_acc(self, a) -> np.ndarray:
        """Negated accumulator (exact: the sign flips, or the range is saturated/wrapped)."""

    @abc.abstractmethod
    def sub(self, a, b) -> np.ndarray:
        """``a - b`` of two accumulators."""

    @abc.abstractmethod
    def word_to_acc(self, w) -> np.ndarray:
        """A word widened to an accumulator (exact)."""

    @abc.abstractmethod
    def to_json(self) -> dict:
        """A JSON-able description; ``format_from_json`` inverts it."""

    # --- helpers shared by every format ---------------------------------------
    @property
    def zero_acc(self) -> int:
        """Pattern of the accumulator's starting value (+0)."""
        return 0

    @property
    def word_mask(self) -> int:
        return (1 << self.word_bits) - 1

    @property
    def acc_mask(self) -> int:
        return (1 << self.acc_bits) - 1

    @property
    def word_bytes(self) -> int:
        """Bytes one word takes in DRAM (words are stored little-endian)."""
        return (self.word_bits + 7) // 8

    def mac(self, acc, a, b) -> np.ndarray:
        """``add(acc, mul(a, b))``: one multiply-accumulate step."""
        return self.add(acc, self.mul(a, b))

    def dot(self, a, b, axis: int = -1) -> np.ndarray:
        """Sequential multiply-accumulate along ``axis`` in index order, from +0.

        This is the summation order of one PE lane; it returns accumulators.
        """
        a = np.moveaxis(np.asarray(a, dtype=np.int64), axis, -1)
        b = np.moveaxis(np.asarray(b, dtype=np.int64), axis, -1)
        a, b = np.broadcast_arrays(a, b)
        acc = np.full(a.shape[:-1], self.zero_acc, dtype=np.int64)
        for k in range(a.shape[-1]):
            acc = self.mac(acc, a[..., k], b[..., k])
        return acc

    def sum(self, a, axis: int = -1) -> np.ndarray:
        """Sequential sum of accumulators along ``axis`` in index order, from +0."""
        a = np.moveaxis(np.asarray(a, dtype=np.int64), axis, -1)
        acc = np.full(a.shape[:-1], self.zero_acc, dtype=np.int64)
        for k in range(a.shape[-1]):
            acc = self.add(acc, a[..., k])
        return acc


def format_from_json(d: dict) -> NumberFormat:
    """Rebuild a number format from ``NumberFormat.to_json()``."""
    if not isinstance(d, dict) or "kind" not in d:
        raise ValueError(f"number format: expected an object with a 'kind' key, got {d!r}")
    kind = d["kind"]
    args = {k: v for k, v in d.items() if k != "kind"}
    if kind == "fixed":
        from .fixed_point import FixedPoint
        return FixedPoint(**args)
    if kind == "bfloat16":
        from .bfloat16 import BFloat16
        return BFloat16(**args)
    raise ValueError(f"number format: unknown kind {kind!r} (expected 'fixed' or 'bfloat16')")
