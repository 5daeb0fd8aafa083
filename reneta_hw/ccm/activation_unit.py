"""Activation units: FUNC (none, ReLU, sigmoid, tanh) applied to result words, per lane.

Why: every result the compute core writes out passes through the FUNC the instruction
names (`reneta_hw.numeric.activation.Func`). The gateware must give exactly the words of
`reneta_hw.numeric.activation.apply_func`, the function the golden model and the
trainer's hardware-numerics mode call, so that hardware, golden model and training agree
bit for bit:

* ``NONE``: the word unchanged; ``RELU``: ``+0`` when the word's MSB (sign) is set, else
  the word (the same rule for every format; bfloat16 ``-0`` becomes ``+0``).
* ``SIGMOID``/``TANH``: one ROM lookup. The ROM contents are `activation_table` (built at
  elaboration from the very function the reference uses) and the address is
  `activation_index` computed in gateware exactly as that module documents:

  - `FixedPoint`: clamp the signed word to ``[-2**top, 2**top - 1]``
    (``top = range_log2 + frac_bits``) and take the bits ``[top : d]`` with their MSB
    inverted (pure bit slicing; the clamp tests whether the bits from ``top`` to the sign
    are all equal instead of comparing);
  - `BFloat16`: ``round(|x| / h)`` on the 8-bit significand (a left or right shift by
    ``exponent - const`` with half an index LSB added before truncation: round half away
    from zero), saturated to ``N/2``, zero/subnormal -> 0, inf/NaN -> ``N/2``, then
    ``N/2 +- mag`` clamped to ``[0, N-1]``.

  Sigmoid and tanh share one memory of ``2 * 2**table_bits`` words (address MSB =
  ``func[0]``: SIGMOID=2, TANH=3). With ``lanes_per_rom=2`` (the default) two lanes share
  one memory through its two read ports, which halves the block RAMs (an ECP5 DP16KD is
  true dual port: a 2048 x 16 ROM is 2 DP16KD for two lanes instead of four).

Two components:

`ActivationCore` (``en``, ``func``, ``a`` -> ``o``): the fixed-latency datapath with the
arithmetic units' interface (registers load only when ``en`` is high, ``latency``
attribute), for embedding in a stall-everything pipeline such as the PE array's output.

`ActivationUnit` (stream ``i`` of ``{data: lanes words, func}`` -> stream ``o`` of
``{data: lanes words}``): the core with valid bits and a stall-everything handshake
(``i.ready = ~o.valid | o.ready``), one beat per cycle, latency ``stages`` cycles.

Pipeline cuts (``stages``): 1 = the ROM's synchronous read only (index logic in front of
it, result mux behind it, both combinational); 2 = plus a register on the ROM address
(the index logic gets its own cycle); 3 = plus an output register after the result mux;
4 = plus a register half way through the index logic (bfloat16: after the exponent is
decoded into shift amounts); 5 = plus a register right behind the ROM (an ECP5 block
RAM's clock-to-output is ~4.3 ns: the result mux then gets its own cycle; elaborated for
ECP5 that register is the block's own output register, `reneta_hw.mem.ecp5_bram.ecp5_rom`,
as a fabric register behind the block still takes the 4.3 ns and a route). Defaults: 2
for the core (its user registers the result), 5 for the stream unit (measured on
ECP5-85F speed 8, 16 Q8.8 lanes: stages 3 reach 143 MHz, the ROM's clock-to-output plus
the result mux being the critical path; stages 5 reach 190 MHz for two cycles more).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from reneta_hw.mem.ecp5_bram import ecp5_rom, ecp5_rom_blocks, uses_ecp5_bram
from reneta_hw.numeric.activation import (
    ActivationSpec, Func, _spec, activation_table,
)
from reneta_hw.numeric.bfloat16 import BF16, BIAS, EXP_MAX, BFloat16
from reneta_hw.numeric.fixed_point import FixedPoint
from reneta_hw.numeric.format import NumberFormat

__all__ = ["ActivationCore", "ActivationUnit", "activation_index_hw", "activation_rom_init",
           "FUNC_BITS", "activation_in_layout", "activation_out_layout"]

#: width of the FUNC field travelling with the data
FUNC_BITS = 2


def activation_index_hw(m: Module, fmt: NumberFormat, spec: ActivationSpec, word,
                        cut=None, name: str = "act"):
    """The ROM address of ``word`` (an Amaranth value of ``word_bits``), bit-exact with
    `reneta_hw.numeric.activation.activation_index`; adds its logic to ``m``.

    ``cut(*values)`` is applied to the intermediate values half way (bfloat16: after the
    exponent is decoded into shift amounts and flags), so a caller can register them;
    default: combinational."""
    if cut is None:
        def cut(*values):
            return values
    tb = spec.table_bits
    half = 1 << (tb - 1)
    if isinstance(fmt, FixedPoint):
        f = fmt.frac_bits
        top = spec.range_log2 + f
        d = top + 1 - tb
        if top + 1 < fmt.word_bits:
            # in range iff the bits from `top` up to the sign are all equal; else the
            # clamp limit of the sign: 0111..1 (max) or 1000..0 (min)
            above = word[top:]
            in_range = (above == 0) | (above == (1 << len(above)) - 1)
            sign = word[fmt.word_bits - 1]
            c = Mux(in_range, word[:top + 1], Cat((~sign).replicate(top), sign))
        else:
            c = word[:top + 1]
        bits = c[d:top + 1]                      # tb bits
        idx, = cut(Cat(bits[:tb - 1], ~bits[tb - 1]))
        return idx
    if isinstance(fmt, BFloat16):
        p = BF16.p
        sign = word[15]
        exp = word[BF16.frac_bits:15]
        man = Cat(word[:BF16.frac_bits], Const(1, 1))        # 8-bit significand
        zero = exp == 0
        inf = exp == EXP_MAX
        # |x| / h = man * 2**sh with sh = exp - c0; decoded by comparing exp with constants
        c0 = BIAS + BF16.frac_bits + spec.step_log2
        # man << left >= 2**(p-1+left) >= half once left >= tb - p: saturated anyway
        lmax = max(0, tb - p)
        rmax = p + 1                             # shifting right by p+1 clears man
        over = exp > c0 + lmax
        left = Signal(range(lmax + 1), name=f"{name}_left")
        right = Signal(range(rmax + 1), name=f"{name}_right")
        m.d.comb += [
            left.eq(Mux(exp > c0, (exp - c0)[:len(left)], 0)),
            right.eq(Mux(exp >= c0, 0, Mux(exp < c0 - rmax, rmax, (c0 - exp)[:len(right)]))),
        ]
        sign, zero, sat, man, left, right = cut(sign, zero, inf | over, man, left, right)
        shifted = Signal(p + lmax + 1, name=f"{name}_shifted")
        mag_full = Signal(p + lmax + 1, name=f"{name}_mag")
        m.d.comb += [
            shifted.eq((man << left) + ((Const(1, rmax + 2) << right) >> 1)),  # + half LSB
            mag_full.eq(shifted >> right),
        ]
        # half is 2**(tb-1) and mag <= half, so the compares with it are bit tests and
        # half + pos (pos < half) is pos with bit tb-1 set: one carry chain (half - mag)
        # instead of three in front of the ROM address
        mag = Mux(zero, 0, Mux(sat | mag_full[tb - 1:].any(), half, mag_full))[:tb]
        at_half = mag[tb - 1]
        pos = mag[:tb - 1] | at_half.replicate(tb - 1)       # min(mag, half - 1)
        return Mux(sign, half - mag, Cat(pos, Const(1, 1)))[:tb]
    raise TypeError(f"activation: unsupported number format {fmt!r}")


def activation_rom_init(fmt: NumberFormat, spec: ActivationSpec | None = None) -> list:
    """The shared ROM's contents: the SIGMOID table, then the TANH table (address MSB =
    ``func[0]``), from `activation_table`."""
    return ([int(v) for v in activation_table(fmt, Func.SIGMOID, spec)] +
            [int(v) for v in activation_table(fmt, Func.TANH, spec)])


def activation_in_layout(fmt: NumberFormat, lanes: int) -> data.StructLayout:
    return data.StructLayout({"data": data.ArrayLayout(unsigned(fmt.word_bits), lanes),
                              "func": unsigned(FUNC_BITS)})


def activation_out_layout(fmt: NumberFormat, lanes: int) -> data.StructLayout:
    return data.StructLayout({"data": data.ArrayLayout(unsigned(fmt.word_bits), lanes)})


def _check(obj, fmt, lanes, stages, lanes_per_rom, spec, who):
    try:
        return _validate(fmt, lanes, stages, lanes_per_rom, spec, who)
    except Exception:
        obj._MustUse__silence = True      # never elaborated: no "created but never used"
        raise


def _validate(fmt, lanes, stages, lanes_per_rom, spec, who):
    if not isinstance(fmt, NumberFormat):
        raise TypeError(f"{who}: fmt must be a NumberFormat (FixedPoint or BFloat16), "
                        f"got {fmt!r}")
    if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
        raise ValueError(f"{who}: lanes must be a positive integer, got {lanes!r}")
    if isinstance(stages, bool) or not isinstance(stages, int) or not 1 <= stages <= 5:
        raise ValueError(f"{who}: stages must be 1 .. 5, got {stages!r}")
    if lanes_per_rom not in (1, 2):
        raise ValueError(f"{who}: lanes_per_rom must be 1 or 2, got {lanes_per_rom!r}")
    try:
        return _spec(fmt, spec)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{who}: spec: {e}") from None


class ActivationCore(wiring.Component):
    """Per-lane FUNC as a fixed-latency datapath (registers load only when ``en`` is high).

    Ports: ``en`` (pipeline advance), ``func`` (FUNC of the words on ``a``), ``a`` (lanes
    words), ``o`` (lanes words: the result of the ``a``/``func`` presented ``latency``
    advancing cycles earlier). ``latency == stages``.
    """

    def __init__(self, fmt: NumberFormat, lanes: int, stages: int = 2, *,
                 lanes_per_rom: int = 2, spec: ActivationSpec | None = None):
        self.spec = _check(self, fmt, lanes, stages, lanes_per_rom, spec, "ActivationCore")
        self.fmt = fmt
        self.lanes = lanes
        self.stages = stages
        self.latency = stages
        self.lanes_per_rom = lanes_per_rom
        words = data.ArrayLayout(unsigned(fmt.word_bits), lanes)
        super().__init__({"en": In(1), "func": In(FUNC_BITS), "a": In(words),
                          "o": Out(words)})

    def rom_init(self) -> list:
        """ROM contents: the SIGMOID table, then the TANH table."""
        return activation_rom_init(self.fmt, self.spec)

    def elaborate(self, platform):
        m = Module()
        fmt, wb, en = self.fmt, self.fmt.word_bits, self.en
        init = self.rom_init()

        def reg(v, name):          # data beside the valid flags: no reset
            r = Signal(Value.cast(v).shape(), name=name, reset_less=True)
            with m.If(en):
                m.d.sync += r.eq(v)
            return r

        # stage 0: index (and the words/func that travel beside it); stages=4 registers
        # the index logic half way
        def mid(*values):
            if self.stages < 4:
                return values
            return tuple(reg(v, f"mid_{k}") for k, v in enumerate(values))

        func0 = self.func
        words0 = [self.a[i] for i in range(self.lanes)]
        idx0 = []
        for i in range(self.lanes):
            idx = Signal(self.spec.table_bits, name=f"idx{i}")
            m.d.comb += idx.eq(activation_index_hw(m, fmt, self.spec, words0[i], mid,
                                                   f"act{i}"))
            idx0.append(idx)
        if self.stages >= 4:
            func0 = reg(func0, "func_m")
            words0 = [reg(w, f"word_m{i}") for i, w in enumerate(words0)]
        if self.stages >= 2:
            func1 = reg(func0, "func_a")
            words1 = [reg(w, f"word_a{i}") for i, w in enumerate(words0)]
            idx1 = [reg(x, f"idx_a{i}") for i, x in enumerate(idx0)]
        else:
            func1, words1, idx1 = func0, words0, idx0

        # ROM read (synchronous, advances with en)
        func2 = reg(func1, "func_b")
        words2 = [reg(w, f"word_b{i}") for i, w in enumerate(words1)]
        rom_data = []
        nroms = (self.lanes + self.lanes_per_rom - 1) // self.lanes_per_rom
        # on ECP5 the register right behind the ROM (stages 5) is the block RAM's own
        # output register: the fabric then sees a register, not the 4.3 ns read latch
        outreg = (self.stages >= 5 and uses_ecp5_bram(platform)
                  and ecp5_rom_blocks(len(init), wb) is not None)
        for r in range(nroms):
            lanes = range(r * self.lanes_per_rom,
                          min((r + 1) * self.lanes_per_rom, self.lanes))
            addrs = [Cat(idx1[i], func1[0]) for i in lanes]
            if outreg:
                rom_data += ecp5_rom(m, init=init, width=wb, addrs=addrs, en=en,
                                     name=f"rom{r}")
                continue
            mem = Memory(shape=unsigned(wb), depth=len(init), init=init)
            m.submodules[f"rom{r}"] = mem
            for addr in addrs:
                port = mem.read_port(domain="sync")
                m.d.comb += [port.addr.eq(addr), port.en.eq(en)]
                rom_data.append(port.data)
        if self.stages >= 5:            # the ROM output straight into a register
            if not outreg:
                rom_data = [reg(d, f"rom_q{i}") for i, d in enumerate(rom_data)]
            func2 = reg(func2, "func_c")
            words2 = [reg(w, f"word_c{i}") for i, w in enumerate(words2)]

        # result mux
        res = []
        for i in range(self.lanes):
            w = words2[i]
            r = Signal(wb, name=f"res{i}")
            with m.Switch(func2):
                with m.Case(Func.NONE):
                    m.d.comb += r.eq(w)
                with m.Case(Func.RELU):
                    m.d.comb += r.eq(Mux(w[wb - 1], 0, w))
                with m.Default():
                    m.d.comb += r.eq(rom_data[i])
            res.append(r)
        if self.stages >= 3:
            res = [reg(r, f"out{i}") for i, r in enumerate(res)]
        m.d.comb += self.o.eq(Cat(*res))
        return m


class ActivationUnit(wiring.Component):
    """Stream wrapper of `ActivationCore`: ``i`` = ``{data, func}`` beats, ``o`` = ``{data}``.

    Stall-everything handshake: the whole pipeline advances when the output is empty or
    taken (``i.ready = ~o.valid | o.ready``); one beat per cycle without output stalls;
    latency ``stages`` cycles from an accepted input to its output being valid.
    """

    def __init__(self, fmt: NumberFormat, lanes: int, stages: int = 5, *,
                 lanes_per_rom: int = 2, spec: ActivationSpec | None = None):
        self.spec = _check(self, fmt, lanes, stages, lanes_per_rom, spec, "ActivationUnit")
        self.fmt = fmt
        self.lanes = lanes
        self.stages = stages
        self.latency = stages
        self.lanes_per_rom = lanes_per_rom
        super().__init__({
            "i": In(stream.Signature(activation_in_layout(fmt, lanes))),
            "o": Out(stream.Signature(activation_out_layout(fmt, lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = ActivationCore(self.fmt, self.lanes, self.stages,
                                                  lanes_per_rom=self.lanes_per_rom,
                                                  spec=self.spec)
        en = Signal()
        m.d.comb += [
            en.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(en),
            core.en.eq(en),
            core.a.eq(self.i.payload.data),
            core.func.eq(self.i.payload.func),
            self.o.payload.data.eq(core.o),
        ]
        valid = self.i.valid
        for k in range(self.stages):
            v = Signal(name=f"valid{k + 1}")
            with m.If(en):
                m.d.sync += v.eq(valid)
            valid = v
        m.d.comb += self.o.valid.eq(valid)
        return m
