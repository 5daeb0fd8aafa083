"""bfloat16 arithmetic units (multiplier, adder, fp32 -> bf16 converter), pipelinable.

Why: a PE lane in a `BFloat16` configuration multiplies bf16 words into the accumulator
format (bf16, as the reference design, or IEEE binary32) and accumulates there; results
are rounded back to bf16 words on the way out. These units reproduce
`BFloat16.mul/add/to_word` bit for bit (read `reneta_hw.numeric.bfloat16` for the rules:
round to nearest even, subnormal inputs are zeros and results below 2**-126 flush to a
signed zero, NaN inputs are infinities, invalid operations give +inf, IEEE signed
zeros). The interface is the one of `reneta_hw.numeric.units`; ``stages`` trades Fmax
for latency.

Multiplier (``word x word -> acc``), cut points ``in``, ``prod``, ``out``:
unpack -> 8x8-bit significand product (exact; one MULT18X18D on ECP5, whose input and
output registers are the ``in``/``prod`` cuts of the significands) and exponent sum
-> ``prod`` -> normalize by one bit, round (bf16 destination only: for fp32 the
16-bit product fits the 24-bit significand exactly), flush/overflow, pack -> ``out``.
Stages 0..3, default 2.

Adder (``acc + acc -> acc``, bf16 or fp32), cut points ``swap``, ``align``, ``add``,
``norm``, ``out``:

1. unpack, order the operands by magnitude (one compare of the exponent+fraction bits,
   so the difference below is never negative), exponent difference, special cases
   (both zeros, infinities/NaN) reduced to a code; a zero operand gets a zero
   significand so that ``x + 0 = x`` falls out of the ordinary path -> ``swap``
2. align the smaller significand (3 guard bits plus a sticky bit, as the reference)
   -> ``align``
3. add, or subtract with the sticky borrow (one adder) -> ``add``
4. leading-zero count (a tree) and normalizing shift; exponent -> ``norm``
5. round to nearest even by adding the rounding bit to the packed exponent+fraction
   (the carry into the exponent comes for free), flush/overflow, specials -> ``out``.

Stages 0..5; the default depends on the accumulator (see `Adder.default_stages`).

ToWord (``acc -> word``): fp32 -> bf16 by the same packed round-to-nearest-even
(an exponent carry out of 254 gives the infinity pattern by itself), zeros and
infinities kept; the identity for ``accumulate="bf16"``. Cut points ``in``, ``out``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Value

from .bfloat16 import BF16, BIAS, EXP_MAX, FP32, BFloat16
from .ecp5_dsp import ecp5_mult18, uses_ecp5_dsp
from .units import Unit, wire

__all__ = ["Multiplier", "Adder", "ToWord", "leading_zeros", "trailing_zeros",
           "shift_left_msb_first"]


def _check_fmt(fmt, who: str) -> BFloat16:
    if not isinstance(fmt, BFloat16):
        raise TypeError(f"{who}: fmt must be a BFloat16, got {fmt!r}")
    return fmt


def _acc_layout(fmt: BFloat16):
    return BF16 if fmt.accumulate == "bf16" else FP32


def _fields(m, x, frac_bits: int, name: str):
    """-> sign, exponent field, fraction field, is_zero (exp 0), is_inf (exp 255)."""
    x = Value.cast(x)
    exp = x[frac_bits:frac_bits + 8]
    return (x[frac_bits + 8], exp, x[:frac_bits], wire(m, ~exp.any(), f"{name}_zero"),
            wire(m, exp.all(), f"{name}_inf"))


def leading_zeros(m, x, name: str = "lz") -> tuple[Value, Value]:
    """Leading-zero count of ``x`` as a balanced tree -> ``(count, all_zero)``.

    ``x`` is padded with zeros at the LSB end to a power of two; ``count`` is only
    meaningful when ``all_zero`` is low. Its most significant bit is ready first (it
    only needs the OR of the upper half), which `shift_left_msb_first` exploits.
    """
    x = Value.cast(x)
    n = 2
    while n < len(x):
        n *= 2
    x = wire(m, Cat(Const(0, n - len(x)), x) if n > len(x) else x, f"{name}_in")

    def tree(v, path):
        if len(v) == 2:
            return ~v[1], wire(m, ~(v[0] | v[1]), f"{name}{path}_z")
        half = len(v) // 2
        c_lo, z_lo = tree(v[:half], path + "0")
        c_hi, z_hi = tree(v[half:], path + "1")
        count = wire(m, Cat(Mux(z_hi, c_lo, c_hi), z_hi), f"{name}{path}_c")
        return count, wire(m, z_hi & z_lo, f"{name}{path}_z")

    return tree(x, "")


def shift_left_msb_first(m, x, amount, name: str = "shl") -> Value:
    """``(x << amount)[:len(x)]`` as a log shifter that uses the amount's MSB first.

    Yosys's generic shifter takes the LSB first; a leading-zero count delivers its MSB
    first, so this order overlaps the count and the shift.
    """
    x = Value.cast(x)
    amount = Value.cast(amount)
    for k in reversed(range(len(amount))):
        step = 1 << k
        shifted = Cat(Const(0, min(step, len(x))), x[:max(len(x) - step, 0)])[:len(x)]
        x = wire(m, Mux(amount[k], shifted, x), f"{name}{k}")
    return x


def trailing_zeros(m, x, name: str = "tz") -> Value:
    """Trailing-zero count of a non-zero ``x`` (a leading-zero count of its mirror)."""
    x = Value.cast(x)
    count, _ = leading_zeros(m, Cat(*reversed(list(x))), name)
    return count


def _exceeds(m, e_big, e_sml, tz, name: str) -> Value:
    """``e_big - e_sml > tz + 3`` for exponent fields ``e_big >= e_sml`` and a small
    count ``tz``, with one carry chain after the count.

    Why: as a difference compared with a sum it was two carry chains behind the
    trailing-zero tree, the adder's slowest first-stage path on ECP5. Here it is the
    sign of ``e_big + ~(e_sml + 3) + ~tz + 1`` (= ``e_big - e_sml - tz - 4``): ``e_sml + 3``
    is formed beside the tree, the three operands go through one level of full adders
    (carry-save, the ``+ 1`` in the free lowest carry bit), and one chain adds the two.
    """
    w = 10                                              # -290 .. 255 as signed
    x = Cat(e_big, Const(0, w - len(e_big)))
    y = ~Cat((e_sml + 3)[:9], Const(0, 1))              # -(e_sml + 3) - 1
    z = ~Cat(tz, Const(0, w - len(tz)))                 # -tz - 1
    s = wire(m, x ^ y ^ z, f"{name}_s")
    c = wire(m, (x & y) | (x & z) | (y & z), f"{name}_c")
    total = wire(m, (s + Cat(Const(1, 1), c[:w - 1]))[:w], f"{name}_t")
    return ~total[w - 1]


def _round_pack(m, sign, exp, sig, guard, sticky, frac_bits: int):
    """Pack a normalized result, rounding to nearest even, with flush and overflow.

    ``sig`` has ``frac_bits + 1`` bits (hidden one on top), ``exp`` is the signed biased
    exponent before rounding, ``guard`` the first dropped bit and ``sticky`` the OR of
    everything below it. Rounding adds the round-up bit to the packed
    exponent+fraction, so a significand carry moves the exponent up by itself. The
    exponent range is checked with the rounded exponent, as the reference does (an
    exponent-0 value that rounds up to 2**-126 is kept): the carry is predicted from
    the fraction bits (all ones), so these checks run beside the adder.
    """
    bits = frac_bits + 9
    exp = Value.cast(exp)
    inf = Const(EXP_MAX << frac_bits, bits - 1)
    up = wire(m, guard & (sticky | sig[0]), "rnd_up")
    body = wire(m, Cat(sig[:frac_bits], exp[:8]) + up, "rnd_body")
    carry = up & sig[:frac_bits].all()                 # the significand rounds to 2.0
    neg = exp[-1]
    in_byte = ~exp[8:].any()                            # 0 <= exp <= 255
    e8 = exp[:8]
    under = wire(m, neg | (in_byte & ~e8.any() & ~carry), "rnd_under")
    over = wire(m, (~neg & ~in_byte) | (in_byte & e8.all())
                | (in_byte & (e8 == EXP_MAX - 1) & carry), "rnd_over")
    mag = Mux(under, 0, Mux(over, inf, body[:bits - 1]))
    return Cat(mag, sign)


class Multiplier(Unit):
    """``o = fmt.mul(a, b)``: bf16 x bf16, rounded once into the accumulator format."""

    KIND = "mul"
    CUTS = ((), ("out",), ("prod", "out"), ("in", "prod", "out"))
    DEFAULT_STAGES = 2

    def __init__(self, fmt, stages: int | None = None, *, src_loc_at: int = 0):
        fmt = _check_fmt(fmt, "bf16_units.Multiplier")
        super().__init__(fmt, in_bits=16, out_bits=fmt.acc_bits, n_inputs=2, stages=stages)

    def reference(self, a, b=None):
        return self.fmt.mul(a, b)

    def elaborate(self, platform):
        m = Module()
        dst = _acc_layout(self.fmt)
        a, b = self.cut(m, "in", self.a, self.b)
        sa, ea, fa, za, ia = _fields(m, a, 7, "a")
        sb, eb, fb, zb, ib = _fields(m, b, 7, "b")
        exp0 = ea + eb - BIAS                           # biased exponent if prod < 2**15
        s, exp0, zero, inf = self.cut(m, "prod", sa ^ sb, exp0, za | zb, ia | ib)
        if uses_ecp5_dsp(platform) and "prod" in self._cuts:
            # the significands' ``in`` and ``prod`` registers inside the MULT18X18D (same
            # timing): between fabric registers its output route was 8.7 ns on ECP5
            sig_a = Cat(Value.cast(self.a)[:7], 1, 0)   # zero-extended: signed 9 bits
            sig_b = Cat(Value.cast(self.b)[:7], 1, 0)
            prod = ecp5_mult18(m, sig_a, sig_b, self.en, reg_inputs="in" in self._cuts,
                               reg_output=True, name="sig_dsp")[:16]
        else:
            prod = self.cut(m, "prod", Cat(fa, 1) * Cat(fb, 1))   # in [2**14, 2**16)
        hi = prod[15]
        norm = wire(m, Mux(hi, prod, prod << 1)[:16], "norm")   # leading one at bit 15
        exp = wire(m, exp0 + hi, "exp")
        if dst is FP32:
            # exact: 15 fraction bits below the leading one, padded to 23
            packed = _round_pack(m, s, exp, Cat(Const(0, 8), norm), 0, 0, 23)
        else:
            packed = _round_pack(m, s, exp, norm[8:16], norm[7], norm[:7].any(), 7)
        dst_inf = Const(EXP_MAX << dst.frac_bits, dst.bits - 1)
        special = Mux(inf, Cat(dst_inf, s & ~zero), Cat(Const(0, dst.bits - 1), s))
        out = self.cut(m, "out", Mux(inf | zero, special, packed))
        m.d.comb += self.o.eq(out)
        return m


class Adder(Unit):
    """``o = fmt.add(a, b)``: sum of two accumulators (bf16 or fp32), rounded once."""

    KIND = "add"
    CUTS = ((),
            ("out",),
            ("add", "out"),
            ("align", "norm", "out"),
            ("swap", "add", "norm", "out"),
            ("swap", "align", "add", "norm", "out"))
    DEFAULT_STAGES = 3

    @classmethod
    def default_stages(cls, fmt) -> int:
        """2 for a bf16 accumulator, 3 for fp32 (>= 100 MHz on ECP5-85F speed 8)."""
        return 2 if getattr(fmt, "accumulate", "fp32") == "bf16" else 3

    def __init__(self, fmt, stages: int | None = None, *, src_loc_at: int = 0):
        fmt = _check_fmt(fmt, "bf16_units.Adder")
        super().__init__(fmt, in_bits=fmt.acc_bits, out_bits=fmt.acc_bits, n_inputs=2,
                         stages=stages)

    def reference(self, a, b=None):
        return self.fmt.add(a, b)

    def elaborate(self, platform):
        m = Module()
        f = _acc_layout(self.fmt)
        F, p, N = f.frac_bits, f.p, f.bits
        W = p + 3                                       # aligned width: 3 guard bits
        a, b = Value.cast(self.a), Value.cast(self.b)

        # 1. order by magnitude, exponent difference, special cases. Both exponent
        #    differences and both trailing-zero counts are computed beside the compare.
        sa, ea, fa, za, ia = _fields(m, a, F, "a")
        sb, eb, fb, zb, ib = _fields(m, b, F, "b")
        swap = wire(m, b[:N - 1] > a[:N - 1], "swap")
        d_ab = (ea - eb)[:8]
        d_ba = (eb - ea)[:8]
        # the alignment's sticky bit: set when the shift amount exceeds the zeros of
        # (m_sml << 3) below its lowest one; decided for both orders beside the compare
        # (a difference of the wrong order is garbage but then not selected)
        sticky_a = ~za & _exceeds(m, eb, ea, trailing_zeros(m, Cat(fa, 1), "tza"), "sta")
        sticky_b = ~zb & _exceeds(m, ea, eb, trailing_zeros(m, Cat(fb, 1), "tzb"), "stb")
        spec_inf = ia | ib
        spec_zero = za & zb
        spec_sign = Mux(spec_inf, Mux(ia & ib, sa & sb, Mux(ia, sa, sb)), sa & sb)
        s_big, e_big, m_big, m_sml, diff, sticky, sub, *spec = self.cut(
            m, "swap",
            Mux(swap, sb, sa),
            Mux(swap, eb, ea),
            Cat(Mux(swap, fb, fa), 1),
            Mux(Mux(swap, za, zb), 0, Cat(Mux(swap, fa, fb), 1)),   # a zero: 0
            Mux(swap, d_ba, d_ab),                                  # >= 0
            Mux(swap, sticky_a, sticky_b),
            sa ^ sb, spec_inf, spec_zero, spec_sign)

        # 2. align the smaller significand: (m_sml << 3) >> min(diff, W), with sticky
        sh_bits = (W - 1).bit_length()
        far = (diff[sh_bits:].any() | (diff[:sh_bits] >= W)) if sh_bits < 8 else diff >= W
        x = Cat(Const(0, 3), m_sml)                     # W bits
        aligned = Mux(far, 0, x >> diff[:sh_bits])
        s_big, e_big, m_big, aligned, sticky, sub, *spec = self.cut(
            m, "align", s_big, e_big, m_big, aligned, sticky, sub, *spec)

        # 3. add, or subtract with the sticky borrow: big - (sml + frac) rounds from
        #    (big - sml - 1) + (1 - frac); one adder either way
        big_x = Cat(Const(0, 3), m_big)                 # W bits
        operand = aligned ^ sub.replicate(W)
        total = wire(m, big_x + operand + (sub & ~sticky), "total")
        mag = Cat(total[:W], total[W] & ~sub)           # W + 1 bits, never negative
        s_big, e_big, mag, sticky, *spec = self.cut(m, "add", s_big, e_big, mag, sticky,
                                                    *spec)

        # 4. normalize: leading one to bit W
        lz, cancel = leading_zeros(m, mag)
        norm = shift_left_msb_first(m, mag, lz)
        exp = e_big + 1 - lz                            # signed(10): lz up to W
        s_big, exp, norm, sticky, cancel, *spec = self.cut(
            m, "norm", s_big, exp, norm, sticky, cancel, *spec)

        # 5. round to nearest even, flush/overflow, special cases
        sig = norm[W + 1 - p:]
        guard = norm[W - p]
        rest = norm[:W - p].any() | sticky
        packed = _round_pack(m, s_big, exp, sig, guard, rest, F)
        spec_inf, spec_zero, spec_sign = spec
        inf = Const(EXP_MAX << F, N - 1)
        out = Mux(spec_inf, Cat(inf, spec_sign),
                  Mux(spec_zero, Cat(Const(0, N - 1), spec_sign),
                      Mux(cancel, 0, packed)))
        out = self.cut(m, "out", out)
        m.d.comb += self.o.eq(out)
        return m


class ToWord(Unit):
    """``o = fmt.to_word(a)``: fp32 -> bf16 (RNE, flush, inf); bf16 -> bf16 unchanged."""

    KIND = "to_word"
    CUTS = ((), ("out",), ("in", "out"))
    DEFAULT_STAGES = 0

    def __init__(self, fmt, stages: int | None = None, *, src_loc_at: int = 0):
        fmt = _check_fmt(fmt, "bf16_units.ToWord")
        super().__init__(fmt, in_bits=fmt.acc_bits, out_bits=16, n_inputs=1, stages=stages)

    def reference(self, a, b=None):
        return self.fmt.to_word(a)

    def elaborate(self, platform):
        m = Module()
        a = Value.cast(self.cut(m, "in", self.a))
        if self.fmt.accumulate == "bf16":
            out = a
        else:
            s, e, f, z, inf = _fields(m, a, 23, "a")
            up = a[15] & (a[:15].any() | a[16])
            rounded = a[16:31] + up                     # <= 0x7F80: carry gives inf
            out = Mux(inf, Cat(Const(EXP_MAX << 7, 15), s),
                      Mux(z, Cat(Const(0, 15), s), Cat(rounded[:15], s)))
        out = self.cut(m, "out", out)
        m.d.comb += self.o.eq(out)
        return m
