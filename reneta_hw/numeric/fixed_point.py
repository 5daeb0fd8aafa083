"""Signed two's complement fixed point: the reference functions of `FixedPoint`.

A word has ``word_bits = int_bits + frac_bits`` bits (``int_bits`` includes the sign
bit); its value is ``to_signed(w, word_bits) * 2**-frac_bits``. The accumulator has
``acc_bits`` bits and the same ``frac_bits``.

Arithmetic (all vectorized over ``np.int64`` patterns)::

    mul(a, b)  = fit_acc(rescale(sa * sb))      sa, sb: signed words; the product is exact
                                                 (2*frac_bits fractional bits, < 2**62)
    rescale(p) = p / 2**frac_bits rounded by `rounding`:
                   "truncate"     floor (arithmetic shift right; -0.5 LSB -> -1 LSB)
                   "nearest_even" round half to even (ties to the even result)
    add(a, b)  = fit_acc(sa + sb)                exact signed sum of two accumulators
    to_word(a) = fit_word(sa)                    same frac_bits: no rounding
    fit_N(v)   by `overflow`:
                   "wrap"         v modulo 2**N, two's complement (keep the N low bits)
                   "saturate"     clamp to [-2**(N-1), 2**(N-1) - 1]

``FixedPoint.int16_reference()`` (Q16.0, truncate, wrap, 16-bit accumulator) is the
reference testbench's integer data path: the product is the low 16 bits of the signed
product and sums wrap modulo 2**16.

Operands of ``mul``/``to_word`` must be word patterns (``0 <= w < 2**word_bits``) and
operands of ``add`` accumulator patterns; anything else raises ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import FormatOverflowError, check_patterns, first_index
from .format import NumberFormat

__all__ = ["FixedPoint", "to_signed", "from_signed", "FormatOverflowError"]

ROUNDINGS = ("truncate", "nearest_even")
OVERFLOWS = ("wrap", "saturate")
ON_OVERFLOW = ("error", "saturate", "wrap")


def to_signed(patterns, bits: int) -> np.ndarray:
    """Unsigned ``bits``-bit patterns -> signed two's complement values (``np.int64``).

    Bits above ``bits`` are ignored.
    """
    p = np.asarray(patterns).astype(np.int64, copy=False) & ((1 << bits) - 1)
    return p - (((p >> (bits - 1)) & 1) << bits)


def from_signed(values, bits: int) -> np.ndarray:
    """Signed integers -> unsigned ``bits``-bit patterns (``np.int64``), modulo ``2**bits``.

    Values outside the ``bits``-bit range wrap (the low ``bits`` bits are kept), as a
    hardware register of that width does.
    """
    return np.asarray(values).astype(np.int64, copy=False) & ((1 << bits) - 1)


@dataclass(frozen=True)
class FixedPoint(NumberFormat):
    """Signed fixed point ``Q{int_bits}.{frac_bits}`` with an ``acc_bits`` accumulator."""

    #: integer bits of a word, sign bit included (>= 1)
    int_bits: int = 8
    #: fractional bits of words and accumulators (>= 0)
    frac_bits: int = 8
    #: "truncate" (floor) or "nearest_even" (round half to even): products and encode
    rounding: str = "nearest_even"
    #: "wrap" or "saturate": every result that does not fit its width
    overflow: str = "saturate"
    #: accumulator width (word_bits .. 62)
    acc_bits: int = 32

    def __post_init__(self):
        def need(ok, param, rule, value):
            if not ok:
                raise ValueError(f"FixedPoint.{param}: {rule}, got {value!r}")

        for name in ("int_bits", "frac_bits", "acc_bits"):
            v = getattr(self, name)
            need(isinstance(v, (int, np.integer)) and not isinstance(v, bool), name,
                 "must be an integer", v)
            object.__setattr__(self, name, int(v))
        need(self.int_bits >= 1, "int_bits", "must be >= 1 (it includes the sign bit)",
             self.int_bits)
        need(self.frac_bits >= 0, "frac_bits", "must be >= 0", self.frac_bits)
        need(2 <= self.int_bits + self.frac_bits <= 32, "int_bits",
             f"int_bits + frac_bits (word_bits) must be 2..32 (frac_bits={self.frac_bits})",
             self.int_bits)
        need(self.word_bits <= self.acc_bits <= 62, "acc_bits",
             f"must be word_bits ({self.word_bits}) .. 62", self.acc_bits)
        need(self.rounding in ROUNDINGS, "rounding", "must be 'truncate' or 'nearest_even'",
             self.rounding)
        need(self.overflow in OVERFLOWS, "overflow", "must be 'wrap' or 'saturate'",
             self.overflow)

    @classmethod
    def int16_reference(cls) -> "FixedPoint":
        """The reference testbench's integer path: Q16.0, truncate, wrap, 16-bit acc."""
        return cls(16, 0, "truncate", "wrap", acc_bits=16)

    # --- widths and ranges ---------------------------------------------------------
    @property
    def word_bits(self) -> int:
        return self.int_bits + self.frac_bits

    @property
    def lsb(self) -> float:
        """Value of one LSB: ``2**-frac_bits``."""
        return 2.0 ** -self.frac_bits

    @property
    def min_value(self) -> float:
        """Most negative word value: ``-2**(int_bits-1)``."""
        return -(2.0 ** (self.int_bits - 1))

    @property
    def max_value(self) -> float:
        """Largest word value: ``2**(int_bits-1) - 2**-frac_bits``."""
        return ((1 << (self.word_bits - 1)) - 1) * self.lsb

    @property
    def acc_min_value(self) -> float:
        return -(2.0 ** (self.acc_bits - 1)) * self.lsb

    @property
    def acc_max_value(self) -> float:
        return float((1 << (self.acc_bits - 1)) - 1) * self.lsb

    def __str__(self) -> str:
        return (f"FixedPoint(Q{self.int_bits}.{self.frac_bits}, {self.rounding}, "
                f"{self.overflow}, acc_bits={self.acc_bits})")

    # --- internal helpers -------------------------------------------------------------
    def _fit(self, v: np.ndarray, bits: int) -> np.ndarray:
        """Signed values -> ``bits``-bit patterns by the overflow mode."""
        if self.overflow == "saturate":
            v = np.clip(v, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        return from_signed(v, bits)

    def _rescale(self, p: np.ndarray) -> np.ndarray:
        """Signed product (2*frac_bits fractional bits) -> frac_bits, by the rounding mode."""
        f = self.frac_bits
        if f == 0:
            return p
        q = p >> f                                   # floor
        if self.rounding == "nearest_even":
            r = p & ((1 << f) - 1)                   # p - q*2**f, in [0, 2**f)
            half = 1 << (f - 1)
            q = q + ((r > half) | ((r == half) & ((q & 1) == 1)))
        return q

    def _word(self, x, what):
        return to_signed(check_patterns(x, self.word_bits, f"FixedPoint.{what}"), self.word_bits)

    def _acc(self, x, what):
        return to_signed(check_patterns(x, self.acc_bits, f"FixedPoint.{what}"), self.acc_bits)

    # --- arithmetic -----------------------------------------------------------------
    def mul(self, a, b) -> np.ndarray:
        """Product of two words, rescaled by frac_bits (rounding mode), fitted to acc_bits."""
        p = self._word(a, "mul: a") * self._word(b, "mul: b")
        return self._fit(self._rescale(p), self.acc_bits)

    def add(self, a, b) -> np.ndarray:
        """Sum of two accumulators, fitted to acc_bits by the overflow mode."""
        return self._fit(self._acc(a, "add: a") + self._acc(b, "add: b"), self.acc_bits)

    def neg_acc(self, a) -> np.ndarray:
        """``-a`` for an accumulator, fitted by the overflow mode (saturate: -min -> max)."""
        return self._fit(-self._acc(a, "neg_acc: a"), self.acc_bits)

    def sub(self, a, b) -> np.ndarray:
        """``add(a, neg_acc(b))``."""
        return self.add(a, self.neg_acc(b))

    def to_word(self, a) -> np.ndarray:
        """Accumulator -> word by the overflow mode (same frac_bits, no rounding)."""
        return self._fit(self._acc(a, "to_word: a"), self.word_bits)

    def word_to_acc(self, w) -> np.ndarray:
        """Word -> accumulator (sign extension; exact)."""
        return from_signed(self._word(w, "word_to_acc: w"), self.acc_bits)

    # --- conversions ------------------------------------------------------------------
    def _encode(self, x, bits: int, on_overflow: str, what: str) -> np.ndarray:
        if on_overflow not in ON_OVERFLOW:
            raise ValueError(f"FixedPoint.{what}: on_overflow must be 'error', 'saturate' "
                             f"or 'wrap', got {on_overflow!r}")
        x = np.asarray(x, dtype=np.float64)
        nan = np.isnan(x)
        if nan.any():
            i = first_index(nan)
            raise FormatOverflowError(f"{self}.{what}: NaN at index {i} has no fixed-point value")
        v = x * 2.0 ** self.frac_bits                 # exact (power of two), or +-inf
        v = np.floor(v) if self.rounding == "truncate" else np.rint(v)   # rint: half to even
        lim = 2.0 ** (bits - 1)                       # exact; -lim <= v < lim is in range
        over = v >= lim
        under = v < -lim
        bad = over | under
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if bad.any():
            if on_overflow == "error":
                i = first_index(bad)
                raise FormatOverflowError(
                    f"{self}.{what}: {int(bad.sum())} value(s) outside the representable "
                    f"range [{lo * self.lsb!r}, {hi * self.lsb!r}] after rounding; first: "
                    f"{float(x[i])!r} at index {i}")
            if on_overflow == "wrap":
                inf = np.isinf(v)
                if inf.any():
                    i = first_index(inf)
                    raise FormatOverflowError(
                        f"{self}.{what}: cannot wrap the infinite value {float(x[i])!r} "
                        f"at index {i}")
                v = np.fmod(v, 2.0 ** bits)           # exact; |v| < 2**bits <= 2**62
                return from_signed(v.astype(np.int64), bits)
        s = np.where(bad, 0.0, v).astype(np.int64)
        s = np.where(over, hi, np.where(under, lo, s))
        return from_signed(s, bits)

    def encode(self, x, on_overflow: str = "error") -> np.ndarray:
        """Real values -> words: ``x * 2**frac_bits`` rounded by the rounding mode.

        Out-of-range results: ``on_overflow="error"`` raises `FormatOverflowError`
        (naming the value, its index and the range), ``"saturate"`` clamps, ``"wrap"``
        wraps modulo ``2**word_bits`` (infinities cannot wrap and raise). NaN always
        raises. Inputs are converted to float64 first.
        """
        return self._encode(x, self.word_bits, on_overflow, "encode")

    def encode_acc(self, x, on_overflow: str = "error") -> np.ndarray:
        """As `encode`, into the accumulator width."""
        return self._encode(x, self.acc_bits, on_overflow, "encode_acc")

    def decode(self, w) -> np.ndarray:
        """Words -> float64 (exact)."""
        return self._word(w, "decode: w").astype(np.float64) * self.lsb

    def decode_acc(self, a) -> np.ndarray:
        """Accumulators -> float64 (exact up to 53 significant bits, else rounded)."""
        return self._acc(a, "decode_acc: a").astype(np.float64) * self.lsb

    def to_json(self) -> dict:
        return {"kind": "fixed", "int_bits": self.int_bits, "frac_bits": self.frac_bits,
                "rounding": self.rounding, "overflow": self.overflow,
                "acc_bits": self.acc_bits}
