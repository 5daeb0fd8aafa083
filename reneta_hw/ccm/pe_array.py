"""The PE array: ``num_pe`` multiply-accumulate lanes plus a reduction lane.

Why: this is where every multiply-accumulate of the accelerator happens, and the order
in which it sums is part of the bit-exact contract with the golden model (`sim.golden`):
floating-point sums depend on their order. The array therefore sums in exactly the two
orders the golden model documents, selected per beat, and keeps partial sums in local
memories so that both "one long accumulation" (MxV_SP: address 0) and "many interleaved
accumulations" (VXV_SP / dense: address = column or timestep) work at one beat per cycle.
`sim.pe_ref.PEArrayRef` is the beat-level numpy model it is tested against.

Input stream ``i``, one beat per cycle (`pe_in_layout`)::

    w, x   num_pe words each (the sequencer upstream broadcasts or unicasts x)
    mode   PEMode.PARALLEL or PEMode.CHAIN
    addr   local-memory address of the partial sum (0 .. lmem_depth-1)
    first  start from +0 instead of the stored partial sum
    last   emit the result after this beat
    zero   add no product (the result of a first+last+zero beat is func(to_word(+0)))
    func   Func applied to the result words
    drain  also read out the PARALLEL partial sum at ``daddr`` (``dzero``: +0 instead)
    daddr  (without taking an input slot: VXV_SP drains one block while the next one
    dzero  accumulates in the other half of the local memory)

* ``PARALLEL``, lane p: ``acc[addr][p] = (first ? +0 : acc[addr][p]) ⊕ (w_p ⊗ x_p)``;
  on ``last`` the output carries ``apply_func(to_word(acc[addr][p]))`` in every lane p.
* ``CHAIN`` (MTxV): ``s = (((+0 ⊕ w0⊗x0) ⊕ w1⊗x1) ... ⊕ w(Np-1)⊗x(Np-1))`` left to
  right through the lane adders (a skewed pipeline, still one beat per cycle), then the
  reduction lane ``racc[addr] = (first ? +0 : racc[addr]) ⊕ s``; on ``last`` the output
  carries ``apply_func(to_word(racc[addr]))`` in every lane (a single-lane write-back takes
  it from the lane it writes, with no multiplexer of its own).

* drain (a PARALLEL beat without ``last``): besides its own accumulation, the beat reads
  ``acc[daddr]`` as it was before the beat (``+0`` with ``dzero``) and emits
  ``apply_func(to_word(acc[daddr]))`` in every lane, in the result slot the beat does not
  use. The words come from the drain store, one memory for all lanes (a row = num_pe
  words) that every PARALLEL beat writes with ``to_word`` of its new partial sums: a
  word-wide copy in half the block RAMs of a second read port on every lane memory
  (32-bit partial sums: one DP16KD per lane; 16-bit words: two lanes per DP16KD). It is
  read two advances before the beats write it, so a drain of an address one of the two
  beats just before it accumulates onto waits (bubbles) until they are written.
  ``drain`` on a CHAIN or ``last`` beat is ignored.

Output stream ``o`` (`pe_out_layout`): ``data`` (num_pe words), ``mode`` and ``addr``
(``daddr`` for a drain) of each result, in beat order.

``zero`` is implemented as adding ``-0`` (``fmt.neg_acc(+0)``) instead of the product:
``a ⊕ -0 = a`` for every accumulator the arithmetic produces, in both formats (IEEE:
``+0 + -0 = +0``, ``-0 + -0 = -0``, ``inf + -0 = inf``; fixed point: ``-0 = 0``; bfloat16
units never output subnormal or NaN patterns, the only ones the identity does not
hold for), so no product is added and ``first`` gives exactly ``+0``.

Structure (positions = pipeline advances after the beat is accepted; ``Lm``, ``La``,
``Lt``, ``Lact``: latencies of the multiplier, adder, to_word and activation):

* every lane: multiplier (position 0 -> ``P = max(Lm, 3)``), adder at ``P``, and a local
  memory (``lmem_depth`` accumulators) read at ``P - 3`` (address), its output
  registered at ``P - 1`` with no logic in between (a block RAM's clock-to-output delay
  is most of a cycle on ECP5), the operand register at ``P``, written at ``P + La``.
  The memory is the partial-sum store in PARALLEL mode and the CHAIN skew buffer in
  CHAIN mode (lane p's product is written at ``P`` and read back ``p * La`` advances
  later; skews below 4 are registers), so CHAIN beats overwrite PARALLEL partial sums:
  an accumulation must not continue across a mode change.
* reduction lane: adder at ``Pc = P + num_pe * La``, its own memory, same read/write
  timing.
* adder operands: each a two-input multiplexer, so that the one-cycle fixed-point
  accumulate loop (adder output -> operand -> carry chain -> saturation -> adder output)
  has one LUT level in front of the carry chain: ``a`` = the adder's own output
  (forwarding) or the operand register (memory, forwarded sums, ``+0``, the CHAIN skewed
  product), ``b`` = the product, ``-0`` or the previous lane's sum (CHAIN). A CHAIN lane
  thus adds ``product ⊕ previous sum``: ⊕ is commutative in both formats (one exact sum,
  saturated or rounded once; IEEE addition including signed zeros), so the words are
  the ones of the documented left-to-right order.
* result: the lane (or reduction) adder output -> to_word -> a word register (which
  takes the drained words on a drain beat) -> `ActivationCore` -> a two-entry output
  buffer (`PingPongBuffer`). A CHAIN result goes through lane 0's to_word and
  activation, and is copied into every lane in front of the output buffer.

Stall-everything: every register, unit and memory port advances together on ``en``,
which is the output buffer's "write entry empty" flag, itself a register: the consumer's
``o.ready`` reaches neither the (high-fanout) enables nor the output words' enables.

Hazards (read-after-write on a partial sum): a beat that accumulates (``first = 0``) onto
an address written by one of the ``La - 1`` beats accepted just before it waits (bubbles
are inserted) until it is ``La`` advances behind. At ``La + 1`` to ``La + 3`` advances the
partial sum is forwarded into the operand register from the adder output (or its copies
one and two advances later), at exactly ``La`` it is fed from the adder output straight
back to the adder input; further apart the memory read sees it. Cost: back-to-back
accumulations onto one address run at one beat per ``La`` cycles. Defaults: fixed point
``La = 1`` (no cost); bfloat16 ``La = 3`` (bf16 accumulator) or ``La = 5`` (fp32: a
4-stage adder plus the operand register, for 100 MHz). Independent addresses and
``first`` beats cost nothing, so a sequencer that interleaves accumulations (MxV_SP:
address = block; MTxV_SP: address = non-zero mod a few slots) keeps one beat per cycle
whenever it has at least ``La`` of them in flight. A beat of the other mode waits until
the array has drained (``latency_parallel`` or ``latency_chain`` cycles after the last
beat of the previous mode), once per change.
"""

from __future__ import annotations

import numpy as np

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from reneta_hw.config import AcceleratorConfig
from reneta_hw.mem.fifo import PingPongBuffer
from reneta_hw.numeric.bfloat16 import BFloat16
from reneta_hw.numeric.format import NumberFormat
from reneta_hw.numeric.units import make_adder, make_multiplier, make_to_word

from .activation_unit import FUNC_BITS, ActivationCore

__all__ = ["PEMode", "PEArray", "pe_in_layout", "pe_out_layout"]


class PEMode(enum.Enum, shape=1):
    """How a beat sums: lanes independently, or left to right through the lanes."""
    PARALLEL = 0
    CHAIN = 1


#: The local memories never use the value of a read that collides with a write (those
#: reads are the ones the forwarding replaces, or CHAIN skew reads of other addresses), so
#: the collision rule is don't-care (see `platforms.synth.rtlil_no_rw_check`).
NO_RW_CHECK = {"no_rw_check": 1}


def _addr_bits(lmem_depth: int) -> int:
    return max(1, ceil_log2(lmem_depth))


def pe_in_layout(fmt: NumberFormat, num_pe: int, lmem_depth: int) -> data.StructLayout:
    word = unsigned(fmt.word_bits)
    return data.StructLayout({
        "w": data.ArrayLayout(word, num_pe),
        "x": data.ArrayLayout(word, num_pe),
        "mode": PEMode,
        "addr": unsigned(_addr_bits(lmem_depth)),
        "first": 1,
        "last": 1,
        "zero": 1,
        "func": unsigned(FUNC_BITS),
        "drain": 1,
        "daddr": unsigned(_addr_bits(lmem_depth)),
        "dzero": 1,
    })


def pe_out_layout(fmt: NumberFormat, num_pe: int, lmem_depth: int) -> data.StructLayout:
    return data.StructLayout({
        "data": data.ArrayLayout(unsigned(fmt.word_bits), num_pe),
        "mode": PEMode,
        "addr": unsigned(_addr_bits(lmem_depth)),
    })


def _latency(unit) -> int:
    """A probe unit's latency; the probe is never elaborated (silence Amaranth's warning)."""
    unit._MustUse__silence = True
    return unit.latency


class _InputRegistered(wiring.Component):
    """An arithmetic unit with a register on its operands (loaded with ``en``): the
    unit's interface, ``latency`` one more. The PE array's operand multiplexers then end
    in a register instead of adding their delay to the unit's first stage."""

    def __init__(self, unit):
        self.unit = unit
        self.latency = unit.latency + 1
        super().__init__({"a": In(unit.in_bits), "b": In(unit.in_bits), "en": In(1),
                          "o": Out(unit.out_bits)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = u = self.unit
        with m.If(self.en):
            m.d.sync += [u.a.eq(self.a), u.b.eq(self.b)]
        m.d.comb += [u.en.eq(self.en), self.o.eq(u.o)]
        return m


class PEArray(wiring.Component):
    """``PEArray(cfg)`` or ``PEArray(fmt, num_pe, lmem_depth)``; see the module docstring.

    Stage parameters (the defaults reach the Fmax targets on ECP5-85F speed 8, see
    `reneta_hw.ccm.report`): ``mul_stages`` (None: 3 for bfloat16, operand registers
    right at the multiplier block, so the long route from the beat buffer ends at a
    flip-flop and not at the multiplier's input; free, as the lane adder's input sits 3
    advances in anyway; for ECP5 they are the MULT18X18D's own, see
    `reneta_hw.numeric.ecp5_dsp`; 4 for fixed point, a register after the rounding adder
    too, so the route back from the multiplier column has a cycle of its own),
    ``add_stages``
    (None: the unit's default; 4 for a bfloat16/fp32 accumulator), ``add_input_reg`` (a
    register between the operand multiplexers and every adder, one more cycle of adder
    latency ``La``; None: on for bfloat16, whose adder's first stage is long, off for
    fixed point, whose one-cycle adder keeps a single accumulation at full rate),
    ``to_word_stages`` (None: 1 for fixed point, a register behind to_word, so the drain
    store's write data and the word register's drain multiplexer start at a flip-flop; 2
    for bfloat16, a register in front of it too, as the fp32 rounding behind lane 0's
    CHAIN multiplexer and the route to the drain store did not fit one cycle at 100 MHz)
    and ``act_stages`` (1 .. 5: the
    `ActivationCore`'s cuts; None: 5 for fixed point, a register right behind the
    activation ROM, whose clock-to-output delay otherwise limited the 16-PE array to
    ~145 MHz, 4 for bfloat16, whose index logic gets two cycles). Consumers use the
    latency attributes below, never a stage count.

    Attributes: ``latency_parallel`` / ``latency_chain``: cycles from the acceptance of a
    ``last`` beat to its result being valid on ``o`` (no stalls); ``hazard_window``
    (``La - 1``): how many preceding beats a ``first = 0`` beat is checked against.
    """

    def __init__(self, cfg_or_fmt, num_pe: int | None = None, lmem_depth: int | None = None,
                 *, mul_stages: int | None = None, add_stages: int | None = None,
                 add_input_reg: bool | None = None, to_word_stages: int | None = None,
                 act_stages: int | None = None):
        try:
            self._configure(cfg_or_fmt, num_pe, lmem_depth, mul_stages, add_stages,
                            add_input_reg, to_word_stages, act_stages)
        except Exception:
            self._MustUse__silence = True     # never elaborated: no "created but never used"
            raise
        super().__init__({
            "i": In(stream.Signature(pe_in_layout(self.fmt, self.num_pe, self.lmem_depth))),
            "o": Out(stream.Signature(pe_out_layout(self.fmt, self.num_pe, self.lmem_depth))),
        })

    def _configure(self, cfg_or_fmt, num_pe, lmem_depth, mul_stages, add_stages,
                   add_input_reg, to_word_stages, act_stages):
        if isinstance(cfg_or_fmt, AcceleratorConfig):
            if num_pe is not None or lmem_depth is not None:
                raise ValueError("PEArray: give either an AcceleratorConfig or "
                                 "(fmt, num_pe, lmem_depth), not both")
            fmt, num_pe, lmem_depth = cfg_or_fmt.fmt, cfg_or_fmt.num_pe, cfg_or_fmt.lmem_depth
        else:
            fmt = cfg_or_fmt
        if not isinstance(fmt, NumberFormat):
            raise TypeError(f"PEArray: expected an AcceleratorConfig or a NumberFormat, "
                            f"got {fmt!r}")
        for name, v, lo in (("num_pe", num_pe, 1), ("lmem_depth", lmem_depth, 2)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"PEArray: {name} must be an integer >= {lo}, got {v!r}")
        if num_pe > 64:
            raise ValueError(f"PEArray: num_pe must be at most 64, got {num_pe}")
        bf = isinstance(fmt, BFloat16)
        if act_stages is None:
            act_stages = 4 if bf else 5
        if act_stages not in (1, 2, 3, 4, 5):
            raise ValueError(f"PEArray: act_stages must be 1 .. 5, got {act_stages!r}")
        if mul_stages is None:
            mul_stages = 3 if bf else 4
        if add_stages is None and bf and fmt.accumulate == "fp32":
            add_stages = 4
        self.fmt = fmt
        self.num_pe = num_pe
        self.lmem_depth = lmem_depth
        self.addr_bits = _addr_bits(lmem_depth)
        self.mul_stages = mul_stages
        self.add_stages = add_stages
        if add_input_reg is None:
            add_input_reg = bf
        if not isinstance(add_input_reg, bool):
            raise ValueError(f"PEArray: add_input_reg must be a bool or None, "
                             f"got {add_input_reg!r}")
        self.add_input_reg = add_input_reg
        if to_word_stages is None:
            to_word_stages = 2 if bf else 1
        self.to_word_stages = to_word_stages
        self.act_stages = act_stages
        # probe units for their latencies (they validate the stage counts, too)
        Lm, La, Lt = (_latency(make_multiplier(fmt, mul_stages)),
                      _latency(make_adder(fmt, add_stages)) + add_input_reg,
                      _latency(make_to_word(fmt, to_word_stages)))
        self.Lm, self.La, self.Lt, self.Lact = Lm, La, Lt, act_stages
        self.P = max(Lm, 3)                      # lane adder input position
        self.Rp = self.P + La                    # PARALLEL result position
        self.Pc = self.P + num_pe * La           # reduction adder input position
        self.Rc = self.Pc + La                   # CHAIN result position
        self.hazard_window = max(La - 1, 0)
        # result: to_word (Lt), the word register (1), activation, output register (1)
        self.latency_parallel = self.Rp + Lt + 1 + act_stages + 1
        self.latency_chain = self.Rc + Lt + 1 + act_stages + 1
        # CHAIN skew buffer in the lane memories: a power-of-two ring of 2**k entries
        self.skew_bits = max(0, lmem_depth.bit_length() - 1)
        need = (num_pe - 1) * La - 2          # read 3 advances ahead, never colliding
        if need > (1 << self.skew_bits):
            raise ValueError(f"PEArray: lmem_depth must be at least {need} (the CHAIN skew "
                             f"of {num_pe} lanes with a {La}-stage adder, rounded down to a "
                             f"power of two), got {lmem_depth}")

    def _adder(self):
        unit = make_adder(self.fmt, self.add_stages)
        return _InputRegistered(unit) if self.add_input_reg else unit

    def elaborate(self, platform):
        m = Module()
        fmt, Np, ab = self.fmt, self.num_pe, self.addr_bits
        Lm, La, Lt, Lact = self.Lm, self.La, self.Lt, self.Lact
        P, Rp, Pc, Rc = self.P, self.Rp, self.Pc, self.Rc
        accb = fmt.acc_bits
        ZERO = Const(fmt.zero_acc, accb)
        NZERO = Const(int(fmt.neg_acc(fmt.zero_acc)), accb)      # additive identity
        pay = self.i.payload

        en = Signal()
        accept = Signal()

        def delay(v, n, name, data=False):
            """``v`` delayed by ``n`` pipeline advances; ``data``: reset-less registers
            (operands and results, meaningful only beside a valid beat in ``meta``)."""
            for k in range(n):
                r = Signal.like(v, name=f"{name}_d{k + 1}", reset_less=data)
                with m.If(en):
                    m.d.sync += r.eq(v)
                v = r
            return v

        # --- beat metadata along the pipeline (positions 0 .. Rc+1) ----------------------
        meta_layout = data.StructLayout({"valid": 1, "chain": 1, "addr": ab, "first": 1,
                                         "last": 1, "zero": 1, "func": FUNC_BITS,
                                         "drain": 1, "daddr": ab, "dzero": 1})
        meta = [Signal(meta_layout, name="meta0")]
        m.d.comb += [
            meta[0].valid.eq(accept),
            meta[0].chain.eq(pay.mode == PEMode.CHAIN),
            meta[0].addr.eq(pay.addr),
            meta[0].first.eq(pay.first),
            meta[0].last.eq(pay.last),
            meta[0].zero.eq(pay.zero),
            meta[0].func.eq(pay.func),
            meta[0].drain.eq(pay.drain & (pay.mode == PEMode.PARALLEL) & ~pay.last),
            meta[0].daddr.eq(pay.daddr),
            meta[0].dzero.eq(pay.dzero),
        ]
        for j in range(1, max(Rc + 2, self.Rp + Lt + 1)):
            r = Signal(meta_layout, name=f"meta{j}")
            with m.If(en):
                m.d.sync += r.eq(meta[j - 1])
            meta.append(r)

        # --- admission: hazards and mode changes -------------------------------------------
        cmode = Signal(PEMode, name="cmode")          # mode of the beats in flight
        chain = Signal()
        m.d.comb += chain.eq(cmode == PEMode.CHAIN)
        # a beat of the other mode is accepted `latency` advances after the last beat of
        # the current mode: that beat's result is then in the output buffer
        drain_par = self.latency_parallel - 1
        drain_chain = self.latency_chain - 1
        timer = Signal(range(max(drain_par, drain_chain) + 1))
        hazard = Signal()
        hits = [meta[j].valid & (meta[j].addr == pay.addr) for j in range(1, La)]
        # a drain reads the drain store two advances before the beats write it (W - 2):
        # the beats one and two ahead of it have not written theirs yet
        dhits = [meta[j].valid & ~meta[j].chain & (meta[j].addr == pay.daddr) for j in (1, 2)]
        m.d.comb += hazard.eq((~pay.first & Cat(*hits).any() if hits else 0)
                              | (pay.drain & ~pay.dzero & Cat(*dhits).any()))
        mode_ok = (pay.mode == cmode) | (timer == 0)
        m.d.comb += [
            self.i.ready.eq(en & ~hazard & mode_ok),
            accept.eq(self.i.valid & self.i.ready),
        ]
        with m.If(accept):
            m.d.sync += [
                cmode.eq(pay.mode),
                timer.eq(Mux(pay.mode == PEMode.CHAIN, drain_chain, drain_par)),
            ]
        with m.Elif(en & (timer != 0)):
            m.d.sync += timer.eq(timer - 1)

        # --- CHAIN skew ring counter --------------------------------------------------------
        sk = Signal(max(self.skew_bits, 1))
        if self.skew_bits:
            with m.If(en):
                m.d.sync += sk.eq(sk + 1)

        # --- partial-sum stores -----------------------------------------------------------
        # Each store (a lane's memory, the reduction memory) is read three advances before
        # its adder takes the operand: address at Pa-3, memory output at Pa-2, a plain
        # register at Pa-1 (the block RAM's slow clock-to-output ends in a flip-flop, with
        # no logic between), the operand register at Pa. The read is not write-through: a
        # beat g advances ahead writes at Pa+La-g, which the read sees when g >= La+4.
        # Nearer beats are forwarded from the adder output: at g = La+1, La+2, La+3 into
        # the operand register (from the adder output, or its copies one and two advances
        # later), at g = La straight back into the adder (a feedback path). g < La is a
        # hazard the admission logic stalls.
        #
        # The feedback path (adder output -> operand multiplexer -> adder -> its output
        # register) is one cycle for fixed point and the array's critical loop, so each
        # adder operand is a two-input multiplexer (one LUT4 per bit with its selects):
        # ``a`` = feedback or the operand register, which also takes +0 (``first``) and, in
        # CHAIN mode, the lane's skewed product; ``b`` = the product, the additive
        # identity, or (CHAIN) the previous lane's sum. CHAIN therefore adds
        # ``skewed product ⊕ previous sum`` where the contract says ``previous sum ⊕
        # product``: ⊕ is commutative in every format (an exact sum, rounded or
        # saturated once; IEEE addition, signed zeros included), so the words are the same.
        # Every select is computed one advance early, registered and replicated per group
        # of lanes (a select shared by every lane drives 32 bits x num_pe multiplexers: its
        # route would be most of a cycle).
        def rd_addr(pos):
            return pay.addr if pos == 0 else meta[pos].addr

        def hit(ahead, pos, is_chain):
            """The beat at ``ahead`` is valid, of the mode, and has the address of ``pos``."""
            a = meta[ahead]
            return a.valid & (a.chain if is_chain else ~a.chain) & (a.addr == rd_addr(pos))

        R_MEM, R_ADDER, R_WB1, R_WB2 = range(4)

        def replicas(value, count, name):
            """``count`` registered copies of ``value`` (loaded with ``en``) that Yosys cannot
            merge: copy j stores ``value ^ (j >> 1)`` with initial value ``j & 1`` and is
            decoded by its reader. A multiplexer select shared by every lane drives 32
            bits x num_pe lanes; its route is most of a cycle, so each group of lanes gets
            its own copy. (The initial values only matter before the first beat.)"""
            value = Value.cast(value)
            width = len(value)
            out = []
            for j in range(count):
                mask = (j >> 1) & ((1 << width) - 1)
                r = Signal(width, init=j & 1, name=f"{name}_c{j}")
                with m.If(en):
                    m.d.sync += r.eq(value ^ mask)
                out.append(r ^ mask)
            return out

        def feedback_next(Pa, is_chain):
            """"The adder takes its own output" for the beat at Pa, computed at Pa-1 (the
            beat La ahead has the address and the beat is not ``first``; never with a
            combinational adder, La = 0)."""
            if La == 0:
                return Const(0)
            return hit(Pa + La - 1, Pa - 1, is_chain) & ~meta[Pa - 1].first

        def source_next(Pa, is_chain):
            """The R_* source of the operand register loaded at Pa-1, computed at Pa-2:
            beats La+1, La+2, La+3 ahead of the one at Pa-1 (seen from Pa-2: one less)."""
            r = Const(R_MEM, 2)
            for g, src in ((La + 3, R_WB2), (La + 2, R_WB1), (La + 1, R_ADDER)):
                r = Mux(hit(Pa - 2 + g, Pa - 2, is_chain), src, r)      # nearest wins
            return r

        def feedback(select, adder_o, operand):
            return operand if La == 0 else Mux(select, adder_o, operand)

        def operand_register(rsel, zero, rd_data, adder_o, name, chain_src=None):
            """The operand register: +0 (``zero``), a CHAIN source, the memory output
            (registered) or a forwarded sum (``rsel``)."""
            raw = delay(rd_data, 1, f"{name}_raw", data=True)
            wb1 = delay(adder_o, 1, f"{name}_wb1", data=True)
            wb2 = delay(wb1, 1, f"{name}_wb2", data=True)
            src = Mux(rsel[1], Mux(rsel[0], wb2, wb1), Mux(rsel[0], adder_o, raw))
            if chain_src is not None:
                src = Mux(chain, chain_src, src)
            return delay(Mux(zero, ZERO, src), 1, f"{name}_rd", data=True)

        B_PROD, B_IDENTITY, B_CHAIN = range(3)

        def b_operand(code, prod, chain_b):
            return Mux(code[1], chain_b, Mux(code[0], NZERO, prod))

        groups = min(Np, 8)
        # lanes: operand register selects (R_* source, +0 outside CHAIN, +0 for lane 0,
        # whose CHAIN operand is +0 too), feedback select, b select
        first2 = meta[P - 2].first
        par_rsels = replicas(Cat(source_next(P, False), first2 & ~chain, first2 | chain),
                             groups, "par_rsel")
        par_fbs = replicas(feedback_next(P, False), groups, "par_fb")
        par_bcodes = replicas(Mux(chain, B_CHAIN, Mux(meta[P - 1].zero, B_IDENTITY, B_PROD)),
                              groups, "par_bsel")

        # --- lanes ---------------------------------------------------------------------------
        adders = []
        for p in range(Np):
            grp = p * groups // Np
            mul = make_multiplier(fmt, self.mul_stages)
            add = self._adder()
            m.submodules[f"mul{p}"] = mul
            m.submodules[f"add{p}"] = add
            m.d.comb += [mul.en.eq(en), add.en.eq(en), mul.a.eq(pay.w[p]), mul.b.eq(pay.x[p])]
            prod = delay(mul.o, P - Lm, f"prod{p}", data=True)

            lmem = Memory(shape=unsigned(accb), depth=self.lmem_depth, init=[], attrs=NO_RW_CHECK)
            m.submodules[f"lmem{p}"] = lmem
            wp = lmem.write_port()
            rp = lmem.read_port(domain="sync")
            skew = p * La                       # CHAIN: product p waits p*La advances
            m.d.comb += rp.en.eq(en)
            chain_src = None
            if skew >= 4:                       # ... in the lane memory (a ring)
                # its own counter, always ``sk - (skew - 3)``: no subtractor, and no route
                # from the shared ``sk`` to every lane's block RAM, on the address path
                skew_addr = Signal(self.skew_bits, init=(3 - skew) % (1 << self.skew_bits),
                                   name=f"skew_raddr{p}")
                with m.If(en):
                    m.d.sync += skew_addr.eq(skew_addr + 1)
                m.d.comb += rp.addr.eq(Mux(chain, skew_addr, rd_addr(P - 3)))
            else:                               # ... or in registers
                m.d.comb += rp.addr.eq(rd_addr(P - 3))
                if skew >= 1:
                    chain_src = delay(prod, skew - 1, f"skew{p}", data=True)
            m.d.comb += [
                wp.addr.eq(Mux(chain, sk, meta[Rp].addr)),
                wp.data.eq(Mux(chain, prod, add.o)),
                wp.en.eq(en & (chain | (meta[Rp].valid & ~meta[Rp].chain))),
            ]
            rsel = par_rsels[grp]
            rd = operand_register(rsel[:2], rsel[3] if p == 0 else rsel[2], rp.data, add.o,
                                  f"lane{p}", chain_src)
            chain_b = prod if p == 0 else adders[p - 1].o
            a = feedback(par_fbs[grp], add.o, rd)
            if p > 0 and skew == 0:             # combinational adder: no skew at all
                a = Mux(chain, prod, a)
            m.d.comb += [
                add.a.eq(a),
                add.b.eq(b_operand(par_bcodes[grp], prod, chain_b)),
            ]
            adders.append(add)

        # --- reduction lane ------------------------------------------------------------------
        radd = self._adder()
        m.submodules.radd = radd
        rmem = Memory(shape=unsigned(accb), depth=self.lmem_depth, init=[], attrs=NO_RW_CHECK)
        m.submodules.rmem = rmem
        rwp = rmem.write_port()
        rrp = rmem.read_port(domain="sync")
        red_rsel = delay(Cat(source_next(Pc, True), meta[Pc - 2].first), 1, "red_rsel")
        red_fb = delay(feedback_next(Pc, True), 1, "red_fb")
        rrd = operand_register(red_rsel[:2], red_rsel[2], rrp.data, radd.o, "red")
        m.d.comb += [
            radd.en.eq(en),
            rrp.en.eq(en),
            rrp.addr.eq(meta[Pc - 3].addr),
            radd.a.eq(feedback(red_fb, radd.o, rrd)),
            radd.b.eq(Mux(meta[Pc].zero, NZERO, adders[Np - 1].o)),
            rwp.addr.eq(meta[Rc].addr),
            rwp.data.eq(radd.o),
            rwp.en.eq(en & meta[Rc].valid & meta[Rc].chain),
        ]

        # --- result path: to_word -> activation -> two-entry output buffer -----------------
        res_layout = data.StructLayout({"valid": 1, "chain": 1, "addr": ab,
                                        "func": FUNC_BITS})
        res0 = Signal(res_layout, name="res0")
        par_drain = meta[Rp].valid & ~meta[Rp].chain & meta[Rp].drain
        par_res = meta[Rp].valid & ~meta[Rp].chain & (meta[Rp].last | meta[Rp].drain)
        ch_res = meta[Rc].valid & meta[Rc].chain & meta[Rc].last
        m.d.comb += [
            res0.valid.eq(par_res | ch_res),
            res0.chain.eq(chain),
            res0.addr.eq(Mux(chain, meta[Rc].addr, Mux(par_drain, meta[Rp].daddr, meta[Rp].addr))),
            res0.func.eq(Mux(chain, meta[Rc].func, meta[Rp].func)),
        ]
        words = []
        for p in range(Np):
            tw = make_to_word(fmt, self.to_word_stages)
            m.submodules[f"to_word{p}"] = tw
            src = Mux(chain, radd.o, adders[p].o) if p == 0 else adders[p].o
            m.d.comb += [tw.en.eq(en), tw.a.eq(src)]
            words.append(tw.o)

        # --- drain store: the words of every PARALLEL partial sum, all lanes in one row ----
        # Written with the to_word output at W = Rp + Lt (the beat's own new partial sums),
        # read for a drain beat at W - 2, its output registered at W - 1 (no logic after
        # the block RAM), so the drained words meet the beat at W, where the word register
        # picks them instead of the beat's own words. Beats one and two ahead of a drain
        # write after its read: the admission logic holds such drains.
        W = Rp + Lt
        dmem = Memory(shape=unsigned(Np * fmt.word_bits), depth=self.lmem_depth, init=[],
                      attrs=NO_RW_CHECK)
        m.submodules.dmem = dmem
        dwp = dmem.write_port()
        drp = dmem.read_port(domain="sync")
        m.d.comb += [
            dwp.addr.eq(meta[W].addr),
            dwp.data.eq(Cat(*words)),
            dwp.en.eq(en & meta[W].valid & ~meta[W].chain),
            drp.en.eq(en),
            drp.addr.eq(meta[W - 2].daddr),
        ]
        drained = delay(drp.data, 1, "drained", data=True).word_select
        zero_word = int(fmt.to_word(np.int64(fmt.zero_acc)))
        # word register: drained words (or to_word(+0) with dzero) on a drain beat, else the
        # beat's own; selects computed one advance early, replicated per group of lanes
        m_sel = meta[W - 1]
        wsel_next = Cat(m_sel.valid & ~m_sel.chain & m_sel.drain, m_sel.dzero)
        wsels = replicas(wsel_next, groups, "wsel")
        act_in = []
        for p in range(Np):
            sel = wsels[p * groups // Np]
            d = Mux(sel[1], zero_word, drained(p, fmt.word_bits))
            act_in.append(delay(Mux(sel[0], d, words[p]), 1, f"word{p}", data=True))
        res_t = delay(res0, Lt + 1, "res_t")
        act = ActivationCore(fmt, Np, Lact)
        m.submodules.act = act
        m.d.comb += [act.en.eq(en), act.func.eq(res_t.func), act.a.eq(Cat(*act_in))]
        res_e = delay(res_t, Lact, "res_e")

        final = Signal(pe_out_layout(fmt, Np, self.lmem_depth), name="final")
        for p in range(Np):
            v = act.o[p]
            m.d.comb += final.data[p].eq(v if p == 0 else Mux(res_e.chain, act.o[0], v))
        m.d.comb += [final.mode.eq(Mux(res_e.chain, PEMode.CHAIN, PEMode.PARALLEL)),
                     final.addr.eq(res_e.addr)]

        # output: a two-entry buffer; its "write entry empty" flag (a flip-flop) is the
        # pipeline's advance, and the consumer's ready reaches only its pointer and flags
        m.submodules.out_buf = out_buf = PingPongBuffer(final.shape())
        m.d.comb += [
            en.eq(out_buf.i.ready),
            out_buf.i.valid.eq(res_e.valid),
            out_buf.i.payload.eq(final),
        ]
        wiring.connect(m, out_buf.o, wiring.flipped(self.o))
        return m
