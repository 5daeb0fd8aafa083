"""Arithmetic units of a PE lane: factories and the interface every unit shares.

Why this module exists: the PE array, the reduction lane, the delta encoder and the
activation units all multiply, add and round numbers of the configured format, and they
must do it *bit-exactly* as the numpy reference functions of that format
(`FixedPoint.mul/add/to_word`, `BFloat16.mul/add/to_word`). The blocks above should not
care which format is configured, so every unit has the same small interface and the
factories below pick the implementation from the format object::

    make_multiplier(fmt, stages=None)  word x word -> accumulator   (fmt.mul)
    make_adder(fmt, stages=None)       acc  + acc  -> accumulator   (fmt.add)
    make_to_word(fmt, stages=0)        acc         -> word          (fmt.to_word)

Every unit is a `wiring.Component` with the ports::

    a:  In(unsigned(in_bits))     first operand (raw bit pattern)
    b:  In(unsigned(in_bits))     second operand (absent on to_word units)
    en: In(1)                     pipeline advance: every register of the unit loads
                                  only in a cycle with en=1 ("stall everything")
    o:  Out(unsigned(out_bits))   result (raw bit pattern, exactly the reference's)

and the attributes ``fmt``, ``stages``, ``latency`` (= ``stages``, the number of register
stages; 0 = combinational), ``in_bits``, ``out_bits`` and ``n_inputs``. ``o`` is the
result of the operands presented ``latency`` *advancing* cycles (cycles with en=1)
earlier: with ``latency == L``, the operands present in an advancing cycle ``t`` come out
on ``o`` right after the L-th advancing clock edge counted from ``t`` (inclusive), and
stay there while ``en`` is low. One result per advancing cycle: the units never stall
by themselves.

``stages=None`` picks the unit's default (the fewest stages that reach the project's
Fmax targets on ECP5-85F speed 8 with 16-bit words: 150 MHz for fixed point, 100 MHz for
bfloat16, see `reneta_hw.numeric.report`). ``stages`` larger than the unit's maximum is
refused: registers beyond the natural cut points would only add latency.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Unit", "make_multiplier", "make_adder", "make_to_word", "unit_kinds",
           "unit_schedule", "expected_outputs", "pysim_unit", "wire"]


class Unit(wiring.Component):
    """Base of every arithmetic unit: the shared ports, parameters and pipeline cuts.

    Subclasses define:

    - ``KIND``: ``"mul"``, ``"add"`` or ``"to_word"``;
    - ``CUTS``: a tuple indexed by ``stages`` whose items are the sets of cut-point
      names that get a register for that number of stages (``CUTS[0] == ()``);
    - ``DEFAULT_STAGES``: the default number of stages (or override `default_stages`
      when it depends on the format);
    - ``reference(a, b=None)``: the numpy reference (the format's function).

    and call ``self.cut(m, name, *values)`` at every cut point in ``elaborate``: it
    returns the values unchanged or registered (loaded only while ``en`` is high).
    """

    KIND: str = ""
    CUTS: tuple = ((),)
    DEFAULT_STAGES: int = 0

    def __init__(self, fmt, *, in_bits: int, out_bits: int, n_inputs: int,
                 stages: int | None):
        name = type(self).__name__
        if stages is None:
            stages = self.default_stages(fmt)
        if isinstance(stages, bool) or not isinstance(stages, int):
            raise TypeError(f"{name}: stages must be an integer or None, got {stages!r}")
        if not 0 <= stages < len(self.CUTS):
            raise ValueError(f"{name}: stages must be 0 .. {len(self.CUTS) - 1} "
                             f"(for {fmt}), got {stages}")
        if n_inputs not in (1, 2):
            raise ValueError(f"{name}: n_inputs must be 1 or 2, got {n_inputs!r}")
        self.fmt = fmt
        self.stages = stages
        self.latency = stages
        self.in_bits = in_bits
        self.out_bits = out_bits
        self.n_inputs = n_inputs
        self._cuts = frozenset(self.CUTS[stages])
        members = {"a": In(in_bits)}
        if n_inputs == 2:
            members["b"] = In(in_bits)
        members["en"] = In(1)
        members["o"] = Out(out_bits)
        super().__init__(members)

    @classmethod
    def default_stages(cls, fmt) -> int:
        """The number of stages ``stages=None`` means for ``fmt``."""
        return cls.DEFAULT_STAGES

    @classmethod
    def cut_points(cls) -> tuple:
        """Names of every cut point, in the order ``CUTS`` first uses them (the order
        in which growing ``stages`` switches them on)."""
        seen = []
        for cuts in cls.CUTS:
            for c in cuts:
                if c not in seen:
                    seen.append(c)
        return tuple(seen)

    def cut(self, m, name: str, *values):
        """Register ``values`` at the cut point ``name`` if this unit's stages say so.

        Returns one value for one argument, else a tuple. The registers load only while
        ``en`` is high. Without a register the values still go through named wires (see
        `wire`), so later steps can use them many times.
        """
        out = []
        for i, v in enumerate(values):
            v = Value.cast(v)
            if name in self._cuts:
                r = Signal(v.shape(), name=f"{name}_r{i}", reset_less=True)   # data only
                with m.If(self.en):
                    m.d.sync += r.eq(v)
            else:
                r = wire(m, v, f"{name}_w{i}")
            out.append(r)
        return out[0] if len(out) == 1 else tuple(out)

    def reference(self, a, b=None):   # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fmt}, stages={self.stages})"


def wire(m, value, name: str) -> Signal:
    """A combinational signal driven by ``value`` (same shape).

    Amaranth walks expressions as trees while it elaborates them and pysim compiles
    them as trees: a sub-expression used twice is processed twice, and a tree that
    reuses its branches at every level (a leading-zero counter) grows exponentially.
    Every value a unit uses more than once goes through a wire. (pysim cost: each
    wire is one more signal to update, so wires are not sprinkled everywhere.)
    """
    value = Value.cast(value)
    s = Signal(value.shape(), name=name)
    m.d.comb += s.eq(value)
    return s


def _impl(fmt):
    from .bfloat16 import BFloat16
    from .fixed_point import FixedPoint

    if isinstance(fmt, FixedPoint):
        from . import fixed_units
        return fixed_units
    if isinstance(fmt, BFloat16):
        from . import bf16_units
        return bf16_units
    raise TypeError(f"arithmetic units: fmt must be a FixedPoint or BFloat16 number format, "
                    f"got {fmt!r}")


def make_multiplier(fmt, stages: int | None = None) -> Unit:
    """Multiplier ``word x word -> accumulator`` (bit-exact with ``fmt.mul``)."""
    return _impl(fmt).Multiplier(fmt, stages=stages, src_loc_at=1)


def make_adder(fmt, stages: int | None = None) -> Unit:
    """Adder ``acc + acc -> accumulator`` (bit-exact with ``fmt.add``)."""
    return _impl(fmt).Adder(fmt, stages=stages, src_loc_at=1)


def make_to_word(fmt, stages: int | None = 0) -> Unit:
    """Converter ``acc -> word`` (bit-exact with ``fmt.to_word``)."""
    return _impl(fmt).ToWord(fmt, stages=stages, src_loc_at=1)


def unit_kinds() -> dict:
    """``{"mul": make_multiplier, "add": make_adder, "to_word": make_to_word}``."""
    return {"mul": make_multiplier, "add": make_adder, "to_word": make_to_word}


# --- driving a unit in simulation (tests, and blocks built on the units) -----------------

def unit_schedule(n: int, latency: int, en=None):
    """Cycle schedule of ``n`` operands through a unit of ``latency`` stages.

    ``en`` is the per-cycle advance pattern (default: all ones, ``n + latency`` cycles;
    it must advance at least ``n + latency`` times). Returns ``(en, idx, take)``: the
    pattern as an int64 array, the operand index to present in each cycle (the k-th
    advancing cycle presents operand k; idle cycles hold the next one) and, for each
    operand, the cycle after whose clock edge its result is on ``o`` (sampling after
    the edge, as ``ctx.tick()`` then ``ctx.get``). With latency 0 that is the cycle that
    presents it (``o`` is combinational).
    """
    import numpy as np

    if en is None:
        en = np.ones(n + latency, dtype=np.int64)
    en = np.asarray(en, dtype=np.int64) & 1
    adv = np.flatnonzero(en)
    if len(adv) < n + latency:
        raise ValueError(f"unit_schedule: the en pattern advances {len(adv)} times; "
                         f"{n} operands with latency {latency} need {n + latency}")
    idx = np.minimum(np.cumsum(en) - en, max(n - 1, 0))
    take = adv[np.arange(n) + max(latency - 1, 0)]
    return en, idx, take


def expected_outputs(ref, latency: int, en):
    """What ``o`` must show after each cycle's clock edge (-1 where undefined).

    ``ref[k]`` is the reference result of operand k, presented in the k-th advancing
    cycle. After a cycle in which the unit has advanced ``c`` times in total, ``o``
    holds ``ref[c - latency]`` (``latency >= 1``: it changes only on advancing edges and
    holds otherwise); a combinational unit shows the operand presented in that cycle.
    """
    import numpy as np

    ref = np.asarray(ref, dtype=np.int64)
    en = np.asarray(en, dtype=np.int64) & 1
    count = np.cumsum(en)
    k = count - en if latency == 0 else count - latency
    ok = (k >= 0) & (k < len(ref))
    return np.where(ok, ref[np.clip(k, 0, max(len(ref) - 1, 0))], -1)


class _PackedDriver(wiring.Component):
    """Drives a unit's a, b and en from one packed input, so a testbench sets all of
    them with one ``ctx.set`` (each set re-settles the whole design in pysim)."""

    def __init__(self, unit: Unit):
        self.unit = unit
        width = unit.in_bits * unit.n_inputs + 1
        super().__init__({"packed": In(width), "o": Out(unit.out_bits)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = u = self.unit
        w = u.in_bits
        m.d.comb += [u.a.eq(self.packed[:w]), u.en.eq(self.packed[-1]), self.o.eq(u.o)]
        if u.n_inputs == 2:
            m.d.comb += u.b.eq(self.packed[w:2 * w])
        return m


def pysim_unit(unit: Unit, a, b=None, en=None, *, raw: bool = False):
    """Run ``unit`` in Amaranth's simulator on operand arrays; returns results as int64.

    Presents operand k in the k-th cycle with en=1 (``en`` default: always 1) and
    returns the result of each operand taken ``unit.latency`` advancing cycles later.
    With ``raw=True`` returns ``o`` after every cycle instead (to check the exact
    timing, see `expected_outputs`). The simulator runs a few hundred (bfloat16 adder)
    to ten thousand (fixed point) cycles per second: use
    `sim.verilator_eval.run_unit` for long runs.
    """
    import numpy as np
    from amaranth.sim import Simulator

    a = np.asarray(a, dtype=np.int64)
    n = len(a)
    if (b is None) != (unit.n_inputs == 1):
        raise ValueError(f"pysim_unit: {unit!r} takes {unit.n_inputs} operand(s)")
    en, idx, take = unit_schedule(n, unit.latency, en)
    w = unit.in_bits
    en_shift = w * unit.n_inputs
    bs = [0] * len(idx) if b is None else np.asarray(b, dtype=np.int64)[idx].tolist()
    packed = [x | (y << w) | (e << en_shift)          # Python ints: may exceed 64 bits
              for x, y, e in zip(a[idx].tolist(), bs, en.tolist())]
    out = [0] * len(packed)
    clocked = unit.latency > 0
    dut = _PackedDriver(unit)

    async def testbench(ctx):
        prev = None
        for c, value in enumerate(packed):
            if value != prev:
                ctx.set(dut.packed, value)
                prev = value
            if clocked:
                await ctx.tick()
            out[c] = ctx.get(dut.o)

    sim = Simulator(dut)
    if clocked:
        sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    out = np.array(out, dtype=np.int64)
    return out if raw else out[take]
