"""bfloat16 with a bf16 or IEEE binary32 accumulator: the reference functions of `BFloat16`.

Formats. A word is bfloat16: sign bit 15, exponent bits 14..7 (bias 127), fraction bits
6..0 (8 significant bits with the hidden one). The accumulator is bfloat16 again
(``accumulate="bf16"``, as the reference design) or IEEE binary32 (``accumulate="fp32"``:
sign 31, exponent 30..23, fraction 22..0, 24 significant bits; the default).

Semantics (those of the reference's DesignWare ``DW_fp_mult``/``DW_fp_add`` with
``ieee_compliance=0`` and ``rnd=0``), the same for ``mul``, ``add``, ``to_word``:

1. Inputs: a subnormal input (exponent field 0, fraction != 0) is a zero of the same
   sign; a NaN input (exponent field 255, fraction != 0) is an infinity of the same sign.
2. Special results: a result that would be NaN (``inf * 0``, ``inf + -inf``) is
   **+infinity** (0x7F80 / 0x7F800000): no NaN is ever output. Otherwise an infinite
   operand gives the IEEE infinity (``inf * x`` has the xor sign, ``inf + x = inf``).
3. Finite results: the exact result ``r`` is rounded to the destination precision
   (8 significant bits for bf16, 24 for fp32) with round to nearest, ties to even,
   and an unbounded exponent. Then, if ``|rounded| < 2**-126``, the result is a zero
   that keeps the sign of the exact result (flush to zero, no subnormal output);
   if ``|rounded| >= 2**128``, it is an infinity of that sign.
4. Signs of zeros follow IEEE 754 round-to-nearest: a product's sign is the xor of the
   operands' signs (also for zero products); ``(+0) + (-0) = +0``, ``(-0) + (-0) = -0``,
   ``x + (-x) = +0``; ``x + 0 = x``.

Conversions: ``to_word`` (fp32 -> bf16) follows rules 1-3. ``encode``/``encode_acc``
round real values (float64) by rule 3 (a float64 NaN raises; infinite inputs are values
of the format and stay infinite). ``decode``/``decode_acc``/``to_float32``/``to_torch``
return the value the arithmetic uses (rule 1: subnormal patterns decode to a signed
zero, NaN patterns to a signed infinity); the format itself never produces such
patterns.

Implementation: integer arithmetic on the unpacked fields, the way the gateware does it
(unpack sign/exponent/significand; exact product of the significands; alignment with
3 extra low bits plus a sticky bit for sums; leading-one detection; round to nearest
even with the carry into the exponent; flush/overflow; repack). No float arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import FormatOverflowError, check_patterns, first_index
from .format import NumberFormat

__all__ = ["BFloat16", "FormatOverflowError"]

EXP_BITS = 8
BIAS = 127
EXP_MAX = (1 << EXP_BITS) - 1          # exponent field of infinities / NaNs
ACCUMULATE = ("bf16", "fp32")
ON_OVERFLOW = ("error", "saturate", "inf")


@dataclass(frozen=True)
class _Binary:
    """A binary floating-point layout with an 8-bit exponent field (bias 127)."""

    frac_bits: int                      # stored fraction bits

    @property
    def bits(self) -> int:
        return 1 + EXP_BITS + self.frac_bits

    @property
    def p(self) -> int:                 # significant bits (hidden one included)
        return self.frac_bits + 1

    @property
    def sign_bit(self) -> int:
        return 1 << (self.bits - 1)

    @property
    def inf(self) -> int:
        return EXP_MAX << self.frac_bits

    @property
    def max_finite(self) -> int:
        return self.inf - 1


BF16 = _Binary(7)
FP32 = _Binary(23)
_ADD_EXTRA = 3                          # guard bits kept below the larger operand in sums


def _bit_length(x: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values (a priority encoder; 0 -> 0)."""
    x = x.copy()
    n = np.zeros(x.shape, dtype=np.int64)
    for s in (32, 16, 8, 4, 2, 1):
        big = x >= (1 << s)
        x = np.where(big, x >> s, x)
        n += big * s
    return n + (x > 0)


def _unpack(x: np.ndarray, f: _Binary):
    """-> sign (0/1), exponent field, significand with hidden one, is_zero, is_inf.

    Rule 1: exponent field 0 is zero (subnormals flushed), 255 is infinity (NaN too).
    The significand is only meaningful for normal numbers.
    """
    sign = (x >> (f.bits - 1)) & 1
    exp = (x >> f.frac_bits) & EXP_MAX
    sig = (x & ((1 << f.frac_bits) - 1)) | (1 << f.frac_bits)
    return sign, exp, sig, exp == 0, exp == EXP_MAX


def _round_pack(sign, m, e, sticky, f: _Binary):
    """Round ``(m + frac) * 2**e`` to ``f`` (rule 3) and pack it with ``sign``.

    ``m >= 1`` (int64); ``sticky`` says that an unknown fraction ``0 < frac < 1`` of an
    LSB of ``m`` was dropped (callers guarantee ``m`` has more than ``f.p`` bits then, so
    the fraction lies below the rounding position). Returns ``(pattern, overflowed)``.
    """
    p = f.p
    shift = _bit_length(m) - p                      # > 0: bits to drop
    rs = np.maximum(shift, 0)
    q = m >> rs
    rem = m & ((1 << rs) - 1)
    half = (1 << rs) >> 1
    odd = (q & 1) == 1
    up = (rs > 0) & ((rem > half) | ((rem == half) & (sticky | odd)))
    q = (q << np.maximum(-shift, 0)) + up
    carry = q >> p                                  # rounding carried into bit p
    q >>= carry
    exp = e + shift + carry + (p - 1) + BIAS        # biased exponent of q * 2**(e+shift+carry)
    under = exp < 1                                 # |rounded| < 2**-126: flush
    over = exp >= EXP_MAX                           # |rounded| >= 2**128
    s = sign << (f.bits - 1)
    body = (np.clip(exp, 0, EXP_MAX) << f.frac_bits) | (q & ((1 << f.frac_bits) - 1))
    out = np.where(under, s, np.where(over, s | f.inf, s | body))
    return out, over


def _mul(a: np.ndarray, b: np.ndarray, dst: _Binary) -> np.ndarray:
    sa, ea, ma, za, ia = _unpack(a, BF16)
    sb, eb, mb, zb, ib = _unpack(b, BF16)
    s = sa ^ sb
    # value of a normal operand: m * 2**(e - BIAS - 7); the significand product is exact
    e = (ea - BIAS - BF16.frac_bits) + (eb - BIAS - BF16.frac_bits)
    out, _ = _round_pack(s, ma * mb, e, False, dst)
    zero = za | zb
    inf = ia | ib
    out = np.where(zero, s << (dst.bits - 1), out)
    out = np.where(inf, np.where(zero, dst.inf, (s << (dst.bits - 1)) | dst.inf), out)
    return out


def _add(a: np.ndarray, b: np.ndarray, f: _Binary) -> np.ndarray:
    sa, ea, ma, za, ia = _unpack(a, f)
    sb, eb, mb, zb, ib = _unpack(b, f)
    # order by exponent: "big" has the larger (or equal) exponent
    swap = eb > ea
    s_big, e_big, m_big = np.where(swap, sb, sa), np.where(swap, eb, ea), np.where(swap, mb, ma)
    s_sml, e_sml, m_sml = np.where(swap, sa, sb), np.where(swap, ea, eb), np.where(swap, ma, mb)
    d = e_big - e_sml
    k = _ADD_EXTRA
    big = m_big << k
    # align the smaller significand: exact while d <= k, else shift right with sticky
    # (the shift saturates at p + 1, which clears every bit of an f.p-bit significand)
    lsh = np.maximum(k - d, 0)
    rsh = np.minimum(np.maximum(d - k, 0), f.p + 1)
    sml = (m_sml << lsh) >> rsh
    sticky = (m_sml & ((1 << rsh) - 1)) != 0
    same = s_big == s_sml
    # subtraction with sticky: big - (sml + frac) = (big - sml - 1) + (1 - frac)
    m = np.where(same, big + sml, big - sml - sticky)
    neg = m < 0                                     # only when d == 0 and |small| > |big|
    sign = np.where(neg, s_sml, s_big)
    m = np.abs(m)
    cancel = m == 0                                 # exact cancellation -> +0
    e = e_big - BIAS - f.frac_bits - k
    out, _ = _round_pack(sign, np.where(cancel, 1, m), e, sticky, f)
    out = np.where(cancel, 0, out)
    # zeros (rule 4)
    sbit = f.sign_bit
    out = np.where(za & zb, (sa & sb) << (f.bits - 1), np.where(za, b, np.where(zb, a, out)))
    # infinities (rule 2)
    inf_out = np.where(ia & ib & (sa != sb), f.inf, np.where(ia, a & sbit, b & sbit) | f.inf)
    return np.where(ia | ib, inf_out, out)


def _from_float64(x: np.ndarray, dst: _Binary):
    """float64 -> dst by rule 3 (bit level). Returns ``(pattern, overflowed, nan)``."""
    bits = np.array(x, dtype=np.float64, order="C").view(np.uint64)
    sign = (bits >> np.uint64(63)).astype(np.int64)
    exp = ((bits >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64)
    frac = (bits & np.uint64((1 << 52) - 1)).astype(np.int64)
    zero = exp == 0                                 # zeros and float64 subnormals (< 2**-1022)
    special = exp == 0x7FF
    nan = special & (frac != 0)
    m = frac | (1 << 52)
    out, over = _round_pack(sign, m, exp - 1023 - 52, False, dst)
    out = np.where(zero, sign << (dst.bits - 1), out)
    out = np.where(special, (sign << (dst.bits - 1)) | dst.inf, out)
    return out, over & ~zero & ~special, nan


@dataclass(frozen=True)
class BFloat16(NumberFormat):
    """bfloat16 words; accumulator bfloat16 (``"bf16"``) or IEEE binary32 (``"fp32"``)."""

    accumulate: str = "fp32"

    def __post_init__(self):
        if self.accumulate not in ACCUMULATE:
            raise ValueError(f"BFloat16.accumulate: must be 'bf16' or 'fp32', "
                             f"got {self.accumulate!r}")

    @property
    def word_bits(self) -> int:
        return 16

    @property
    def acc_bits(self) -> int:
        return 16 if self.accumulate == "bf16" else 32

    @property
    def _acc_fmt(self) -> _Binary:
        return BF16 if self.accumulate == "bf16" else FP32

    # handy constants (word patterns)
    POS_INF = 0x7F80
    NEG_INF = 0xFF80
    MAX_FINITE = 0x7F7F
    ONE = 0x3F80

    def _word(self, x, what):
        return check_patterns(x, 16, f"BFloat16.{what}")

    def _acc(self, x, what):
        return check_patterns(x, self.acc_bits, f"BFloat16.{what}")

    # --- arithmetic -----------------------------------------------------------------
    def mul(self, a, b) -> np.ndarray:
        """Product of two bf16 words, rounded once into the accumulator format."""
        return _mul(self._word(a, "mul: a"), self._word(b, "mul: b"), self._acc_fmt)

    def add(self, a, b) -> np.ndarray:
        """Sum of two accumulators, rounded once into the accumulator format."""
        return _add(self._acc(a, "add: a"), self._acc(b, "add: b"), self._acc_fmt)

    def neg_acc(self, a) -> np.ndarray:
        """``-a``: flips the sign bit (zeros and infinities included); exact."""
        return self._acc(a, "neg_acc: a") ^ self._acc_fmt.sign_bit

    def sub(self, a, b) -> np.ndarray:
        """``add(a, neg_acc(b))`` (so ``x - x = +0``)."""
        return self.add(a, self.neg_acc(b))

    def to_word(self, a) -> np.ndarray:
        """Accumulator -> bf16 word by rules 1-3 (identity for ``accumulate="bf16"``)."""
        a = self._acc(a, "to_word: a")
        if self.accumulate == "bf16":
            return a
        s, e, m, z, inf = _unpack(a, FP32)
        out, _ = _round_pack(s, m, e - BIAS - FP32.frac_bits, False, BF16)
        out = np.where(z, s << 15, out)
        return np.where(inf, (s << 15) | BF16.inf, out)

    def word_to_acc(self, w) -> np.ndarray:
        """bf16 word -> accumulator (exact: appends 16 zero fraction bits for fp32)."""
        w = self._word(w, "word_to_acc: w")
        return w if self.accumulate == "bf16" else w << 16

    # --- conversions ------------------------------------------------------------------
    def _encode(self, x, dst: _Binary, on_overflow: str, what: str) -> np.ndarray:
        if on_overflow not in ON_OVERFLOW:
            raise ValueError(f"BFloat16.{what}: on_overflow must be 'error', 'saturate' "
                             f"or 'inf', got {on_overflow!r}")
        x = np.asarray(x, dtype=np.float64)
        out, over, nan = _from_float64(x, dst)
        if nan.any():
            i = first_index(nan)
            raise FormatOverflowError(f"{self}.{what}: NaN at index {i} cannot be encoded")
        if over.any():
            if on_overflow == "error":
                i = first_index(over)
                lim = 2.0 ** 128 * (1 - 2.0 ** -(dst.p + 1))
                raise FormatOverflowError(
                    f"{self}.{what}: {int(over.sum())} finite value(s) round to infinity "
                    f"(representable range: |x| < {lim!r}); first: {float(x[i])!r} "
                    f"at index {i}")
            if on_overflow == "saturate":
                out = np.where(over, (out & dst.sign_bit) | dst.max_finite, out)
        return out

    def encode(self, x, on_overflow: str = "error") -> np.ndarray:
        """Real values (converted to float64) -> bf16 words, RNE, flush to zero.

        A finite value that rounds to infinity (``|x| >= 2**128 * (1 - 2**-9)``) raises
        `FormatOverflowError` with ``on_overflow="error"``, becomes the largest finite
        value of its sign with ``"saturate"``, or infinity with ``"inf"``. Infinite inputs
        encode to infinities; NaN raises; ``|x| < 2**-126`` after rounding gives a signed
        zero.
        """
        return self._encode(x, BF16, on_overflow, "encode")

    def encode_acc(self, x, on_overflow: str = "error") -> np.ndarray:
        """As `encode`, into the accumulator format (bf16 or fp32)."""
        return self._encode(x, self._acc_fmt, on_overflow, "encode_acc")

    @staticmethod
    def _decode(p: np.ndarray, f: _Binary) -> np.ndarray:
        s, e, _, z, inf = _unpack(p, f)
        bits32 = np.where(z | inf, 0, p << (32 - f.bits)).astype(np.uint32)
        v = bits32.view(np.float32).astype(np.float64)
        sgn = np.where(s == 1, -1.0, 1.0)
        v = np.where(z, sgn * 0.0, v)
        return np.where(inf, sgn * np.inf, v)

    def decode(self, w) -> np.ndarray:
        """bf16 words -> float64 (exact; subnormal -> signed zero, NaN -> signed inf)."""
        return self._decode(self._word(w, "decode: w"), BF16)

    def decode_acc(self, a) -> np.ndarray:
        """Accumulators -> float64 (exact; subnormal -> signed zero, NaN -> signed inf)."""
        return self._decode(self._acc(a, "decode_acc: a"), self._acc_fmt)

    def from_float32(self, x, on_overflow: str = "inf") -> np.ndarray:
        """float32 values -> bf16 words (RNE, flush to zero; NaN raises).

        Overflow defaults to infinity, as the hardware's conversion; the input must be
        float32 (or exactly convertible: float16, integers) so that no second rounding
        happens: use `encode` for float64 values.
        """
        x = np.asarray(x)
        if x.dtype.kind == "f" and x.dtype.itemsize > 4:
            raise TypeError(f"BFloat16.from_float32: expected float32 values, got {x.dtype} "
                            f"(use encode() for float64)")
        return self._encode(x.astype(np.float32), BF16, on_overflow, "from_float32")

    def to_float32(self, w) -> np.ndarray:
        """bf16 words -> float32 values (exact; as `decode`)."""
        return self.decode(w).astype(np.float32)

    def from_torch(self, t, on_overflow: str = "inf") -> np.ndarray:
        """A torch tensor -> bf16 words, as `from_float32` (float64 tensors: as `encode`,
        one rounding; bfloat16/float16 tensors convert exactly to float32 first)."""
        import torch

        if t.dtype == torch.float64:
            return self.encode(t.detach().cpu().numpy(), on_overflow)
        return self.from_float32(t.detach().cpu().to(torch.float32).numpy(), on_overflow)

    def to_torch(self, w):
        """bf16 words -> a float32 torch tensor (exact)."""
        import torch

        return torch.from_numpy(np.array(self.to_float32(w), order="C"))

    def to_json(self) -> dict:
        return {"kind": "bfloat16", "accumulate": self.accumulate}

    def __str__(self) -> str:
        return f"BFloat16(accumulate={self.accumulate!r})"
