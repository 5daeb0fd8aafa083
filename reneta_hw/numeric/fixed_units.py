"""Fixed-point arithmetic units (multiplier, adder, accumulator-to-word converter).

Why: a PE lane in a `FixedPoint` configuration multiplies two words, rescales the
product by ``frac_bits`` and accumulates it; results are narrowed to words on the way
out. These units do exactly what `FixedPoint.mul`, `FixedPoint.add` and
`FixedPoint.to_word` do (see `reneta_hw.numeric.fixed_point` for the rounding and
overflow rules), on raw two's complement patterns, so that the gateware agrees with
the golden model bit for bit. The interface is the one of `reneta_hw.numeric.units`.

Structure and cut points (registers that ``stages`` switches on, in data-flow order):

- `Multiplier`: ``in`` (operand registers) -> signed product (one ECP5 MULT18X18D for
  words up to 18 bits) -> ``prod`` -> rescale (floor, or round half to even) and fit to
  ``acc_bits`` (wrap, or saturate) -> ``out``. Stages 0..3, default 2
  (``prod`` + ``out``).
- `Adder`: ``in`` -> exact signed sum -> fit -> ``out``. Stages 0..2, default 1.
- `ToWord`: ``in`` -> fit to ``word_bits`` -> ``out``. Stages 0..2, default 0
  (`make_to_word`'s default).

Saturation tests the bits above the destination's sign bit (all equal = in range)
instead of comparing against both limits: one reduction instead of two comparators.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Value

from .ecp5_dsp import MULT18_BITS, ecp5_mult18, uses_ecp5_dsp
from .fixed_point import FixedPoint
from .units import Unit, wire

__all__ = ["Multiplier", "Adder", "ToWord", "fit_signed", "rescale"]


def fit_signed(m, v, bits: int, overflow: str) -> Value:
    """A signed value fitted to ``bits`` by ``overflow``.

    ``"wrap"`` keeps the low ``bits`` bits; ``"saturate"`` clamps to
    ``[-2**(bits-1), 2**(bits-1) - 1]``. A value that is not wider than ``bits`` always
    fits: it is returned as it is (signed), and assigning it to a ``bits``-bit signal
    sign-extends it (so a register at a cut point stays as narrow as the value).
    ``m`` is the module that gets the intermediate wire.
    """
    v = Value.cast(v)
    if not v.shape().signed:
        raise TypeError(f"fit_signed: expected a signed value, got shape {v.shape()}")
    width = len(v)
    if width <= bits:
        return v
    v = wire(m, v, "fit_in")
    low = v[:bits]
    if overflow == "wrap":
        return low
    if overflow != "saturate":
        raise ValueError(f"fit_signed: overflow must be 'wrap' or 'saturate', got {overflow!r}")
    top = v[bits - 1:]                         # the destination's sign bit and above
    in_range = ~top.any() | top.all()
    sign = v[-1]
    limit = Cat((~sign).replicate(bits - 1), sign)   # max if positive, min if negative
    return Mux(in_range, low, limit)


def rescale(p, frac_bits: int, rounding: str) -> Value:
    """Signed product ``p`` (2*frac_bits fractional bits) -> frac_bits, signed.

    ``"truncate"`` is floor (arithmetic shift right); ``"nearest_even"`` rounds half to
    even: up when the first dropped bit is set and either a lower dropped bit or the
    kept LSB is set.
    """
    p = Value.cast(p)
    if frac_bits == 0:
        return p
    q = p[frac_bits:].as_signed()
    if rounding == "truncate":
        return q
    if rounding != "nearest_even":
        raise ValueError(f"rescale: rounding must be 'truncate' or 'nearest_even', "
                         f"got {rounding!r}")
    guard = p[frac_bits - 1]
    sticky = p[:frac_bits - 1].any() if frac_bits > 1 else 0
    up = guard & (sticky | p[frac_bits])
    return q + up


def _check_fmt(fmt, who: str) -> FixedPoint:
    if not isinstance(fmt, FixedPoint):
        raise TypeError(f"{who}: fmt must be a FixedPoint, got {fmt!r}")
    return fmt


class Multiplier(Unit):
    """``o = fmt.mul(a, b)``: signed product, rescaled by frac_bits, fitted to acc_bits.

    The product is a plain signed ``*`` of the two words so Yosys maps it onto the
    FPGA's multiplier blocks (one MULT18X18D on ECP5 for words up to 18 bits); the
    ``prod`` register sits right after it so the rounding adder and the saturation
    logic get their own cycle at the default ``stages=2``. Elaborated for ECP5 (see
    `reneta_hw.numeric.ecp5_dsp`), the ``in`` and ``prod`` registers are the block's own.
    ``stages=4`` adds ``round`` after the rounding adder: the multiplier blocks sit in
    their own columns, and the route from there to the consumer gets a cycle of its own
    instead of following the adder's carry chain (the 16-PE array's ``mul#.o`` on ECP5:
    a 4.3 ns route after the chain, 7.9 ns in all).
    """

    KIND = "mul"
    CUTS = ((), ("out",), ("prod", "out"), ("in", "prod", "out"),
            ("in", "prod", "round", "out"))
    DEFAULT_STAGES = 2

    def __init__(self, fmt, stages: int | None = None, *, src_loc_at: int = 0):
        fmt = _check_fmt(fmt, "fixed_units.Multiplier")
        super().__init__(fmt, in_bits=fmt.word_bits, out_bits=fmt.acc_bits, n_inputs=2,
                         stages=stages)

    def reference(self, a, b=None):
        return self.fmt.mul(a, b)

    def elaborate(self, platform):
        m = Module()
        f = self.fmt
        if uses_ecp5_dsp(platform) and f.word_bits <= MULT18_BITS and "prod" in self._cuts:
            # the ``in`` and ``prod`` registers inside the MULT18X18D (same timing)
            p = ecp5_mult18(m, self.a, self.b, self.en, reg_inputs="in" in self._cuts,
                            reg_output=True)
        else:
            a, b = self.cut(m, "in", self.a, self.b)
            p = self.cut(m, "prod", a.as_signed() * b.as_signed())
        q = self.cut(m, "round", rescale(p, f.frac_bits, f.rounding))
        o = self.cut(m, "out", fit_signed(m, q, f.acc_bits, f.overflow))
        m.d.comb += self.o.eq(o)
        return m


class Adder(Unit):
    """``o = fmt.add(a, b)``: exact signed sum of two accumulators, fitted to acc_bits."""

    KIND = "add"
    CUTS = ((), ("out",), ("in", "out"))
    DEFAULT_STAGES = 1

    def __init__(self, fmt, stages: int | None = None, *, src_loc_at: int = 0):
        fmt = _check_fmt(fmt, "fixed_units.Adder")
        super().__init__(fmt, in_bits=fmt.acc_bits, out_bits=fmt.acc_bits, n_inputs=2,
                         stages=stages)

    def reference(self, a, b=None):
        return self.fmt.add(a, b)

    def elaborate(self, platform):
        m = Module()
        f = self.fmt
        a, b = self.cut(m, "in", self.a, self.b)
        s = a.as_signed() + b.as_signed()
        o = self.cut(m, "out", fit_signed(m, s, f.acc_bits, f.overflow))
        m.d.comb += self.o.eq(o)
        return m


class ToWord(Unit):
    """``o = fmt.to_word(a)``: accumulator narrowed to a word (wrap or saturate)."""

    KIND = "to_word"
    CUTS = ((), ("out",), ("in", "out"))
    DEFAULT_STAGES = 0

    def __init__(self, fmt, stages: int | None = None, *, src_loc_at: int = 0):
        fmt = _check_fmt(fmt, "fixed_units.ToWord")
        super().__init__(fmt, in_bits=fmt.acc_bits, out_bits=fmt.word_bits, n_inputs=1,
                         stages=stages)

    def reference(self, a, b=None):
        return self.fmt.to_word(a)

    def elaborate(self, platform):
        m = Module()
        f = self.fmt
        a = self.cut(m, "in", self.a)
        o = self.cut(m, "out", fit_signed(m, a.as_signed(), f.word_bits, f.overflow))
        m.d.comb += self.o.eq(o)
        return m
