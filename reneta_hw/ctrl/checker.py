"""Instruction legality checker in gateware: the static rules of `reneta_hw.isa.check`.

Why: the datapath core trusts its instructions (a loop bound beyond ``max_n`` or a region
past the end of SMEM would silently corrupt memory or hang a request generator). The host
may write anything into the instruction queue, so every instruction passes this checker
before it is issued; an illegal one is flagged with the number of the first rule it breaks,
in the order `reneta_hw.isa.check` tests them, and the controller stops there.

Rules (``RULES``; 0 = legal; an ``IDLE`` instruction is always legal, as in ``isa.check``):

==  ===============  ===========================================================================
 1  proc             the procedure is IDLE or one of ``cfg.procedures`` (codes 7..15 illegal)
 2  src1             ``src1 == 1`` (operand 1 comes from SMEM)
 3  nt               ``1 <= nt <= max_m``
 4  n1               ``1 <= n1 <= max_n``
 5  blocks           ``blocks * num_pe <= max_n``
 6  t                ``t < nt`` (MxV_SP, MTxV_SP)
 7  steps            ``steps <= nt`` (procedures with a time loop)
 8  n_in             ``n_in <= n1`` (dense procedures)
 9  spm              ``spm_addr + last t < spm_depth`` (sparse procedures)
10  dram_op0 align   ``dram_op0 % row_bytes == 0`` when ``src0 == 0``
11  dram_dst align   ``dram_dst % row_bytes == 0`` when ``dst1``
12  smem_op0         operand-0 region inside SMEM when ``src0 == 1`` (`isa.region_rows`)
13  smem_op1         dense operand-1 region inside SMEM (MxV, MTxV, VXV, MTxV_SP)
14  smem_dst         result region inside SMEM when ``dst0``
15  delta            DELTA only: x̂ region ``cnt2 < DELTA_XHAT_REGIONS``, ``dst0 = dst1 = 0``,
                     θ (``dram_dst``) one word
==  ===============  ===========================================================================

DELTA is always included (it is not one of ``cfg.procedures``); its other rules reuse the
numbers above: 2 src1, 3 nt, 4 n1, 6 ``t < nt``, 7 ``t + steps <= nt``, 9 ``spm_addr + t +
steps <= spm_depth``, 10 dram_op0 align (``src0 = 0``), 12 the source region inside SMEM
(``src0 = 1``: ``ceil(n1/Np) * nt`` rows).

`python_rule` is the same function in Python (tested against ``isa.check`` and against the
gateware). `InstructionChecker` is a 3-stage pipeline (decode, products, compare) with one
global stall enable: one instruction per cycle when nothing stalls, latency 3 cycles.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import AcceleratorConfig
from ..isa import (DELTA_XHAT_REGIONS, IllegalInstruction, Instruction, Proc, SPARSE_PROCS,
                   decode, instruction_layout, loop_sizes, region_rows)
from ..numeric.ecp5_dsp import MULT18_BITS, ecp5_mult18, uses_ecp5_dsp

__all__ = ["RULES", "rule_name", "python_rule", "raw_rule", "checked_layout",
           "InstructionChecker"]

RULES = {
    1: "proc", 2: "src1", 3: "nt", 4: "n1", 5: "blocks", 6: "t", 7: "steps", 8: "n_in",
    9: "spm", 10: "dram_op0 align", 11: "dram_dst align", 12: "smem_op0", 13: "smem_op1",
    14: "smem_dst", 15: "delta",
}


def rule_name(rule: int) -> str:
    return "legal" if rule == 0 else RULES.get(rule, f"rule {rule}")


def python_rule(cfg: AcceleratorConfig, ins: Instruction) -> int:
    """Number of the first rule ``ins`` breaks (0 = legal), in `isa.check`'s order."""
    p = ins.proc
    if p == Proc.IDLE:
        return 0
    if p == Proc.DELTA:
        return _delta_rule(cfg, ins)
    if p.name not in cfg.procedures:
        return 1
    s = loop_sizes(ins)
    if ins.src1 != 1:
        return 2
    if not 1 <= ins.nt <= cfg.max_m:
        return 3
    if not 1 <= ins.n1 <= cfg.max_n:
        return 4
    if s["blocks"] * cfg.num_pe > cfg.max_n:
        return 5
    if p in (Proc.MxV_SP, Proc.MTxV_SP) and not ins.t < ins.nt:
        return 6
    if "steps" in s and s["steps"] > ins.nt:
        return 7
    if "n_in" in s and s["n_in"] > ins.n1:
        return 8
    if p in SPARSE_PROCS:
        last_t = s["steps"] - 1 if p == Proc.VXV_SP else ins.t
        if ins.spm_addr + last_t >= cfg.spm_depth:
            return 9
    if ins.src0 == 0 and ins.dram_op0 % cfg.row_bytes:
        return 10
    if ins.dst1 and ins.dram_dst % cfg.row_bytes:
        return 11
    regions = region_rows(cfg, ins)
    for rule, name in ((12, "smem_op0"), (13, "smem_op1"), (14, "smem_dst")):
        if name in regions and regions[name][1] > cfg.smem_depth:
            return rule
    return 0


def _delta_rule(cfg: AcceleratorConfig, ins: Instruction) -> int:
    steps = ins.cnt0 + 1
    rows = region_rows(cfg, ins)
    for rule, broken in (
            (2, ins.src1 != 1), (3, not 1 <= ins.nt <= cfg.max_m),
            (4, not 1 <= ins.n1 <= cfg.max_n), (6, ins.t >= ins.nt),
            (7, ins.t + steps > ins.nt), (9, ins.spm_addr + ins.t + steps > cfg.spm_depth),
            (10, ins.src0 == 0 and ins.dram_op0 % cfg.row_bytes != 0),
            (12, "smem_op0" in rows and rows["smem_op0"][1] > cfg.smem_depth),
            (15, ins.cnt2 >= DELTA_XHAT_REGIONS or ins.dst0 or ins.dst1
             or ins.dram_dst > cfg.fmt.word_mask)):
        if broken:
            return rule
    return 0


def raw_rule(cfg: AcceleratorConfig, word: int) -> int:
    """`python_rule` of a raw instruction word (proc codes that name no procedure: rule 1)."""
    try:
        ins = decode(cfg, word)
    except IllegalInstruction:
        return 1
    return python_rule(cfg, ins)


def checked_layout(cfg: AcceleratorConfig) -> data.StructLayout:
    """What the checker emits: the instruction, its verdict (``rule``: 0 = legal, else the
    first rule broken), ``illegal`` (= rule != 0) and ``idle`` (an IDLE instruction), the
    last two precomputed for the issue stage."""
    return data.StructLayout({"ins": instruction_layout(cfg), "rule": unsigned(4),
                              "illegal": unsigned(1), "idle": unsigned(1)})


def _is_pow2(n):
    return n > 0 and n & (n - 1) == 0


class InstructionChecker(wiring.Component):
    """Flags every instruction with the first legality rule it breaks (see module doc).

    Ports: ``i``: In(stream of `instruction_layout`), ``o``: Out(stream of
    `checked_layout`), ``busy``: Out(1) (an instruction is inside the pipeline).
    Latency 4 cycles; one instruction per cycle; ``i.ready`` = ``o.ready | ~o.valid``.
    """

    def __init__(self, cfg: AcceleratorConfig):
        if not isinstance(cfg, AcceleratorConfig):
            self._MustUse__used = True      # no "never used" warning on top of the error
            raise ValueError(f"InstructionChecker.cfg: must be an AcceleratorConfig, got {cfg!r}")
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(instruction_layout(cfg))),
            "o": Out(stream.Signature(checked_layout(cfg))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        lay = instruction_layout(cfg)
        Np = cfg.num_pe
        lb = (Np - 1).bit_length()
        go = Signal()       # the whole pipeline moves
        v1, v2, v3, v4 = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [go.eq(~v4 | self.o.ready), self.i.ready.eq(go),
                     self.o.valid.eq(v4), self.busy.eq(v1 | v2 | v3 | v4)]

        # ---- stage 1: register the instruction, decode sizes and simple rules
        ins1 = Signal(lay)
        cb = cfg.cnt_bits + 1
        wide = max(cb, cfg.n_bits, cfg.nt_bits) + 1
        simple1 = Signal(12)          # bits 0..10: rules 1..11 broken; bit 11: rule 15
        use = Signal(3)               # region k checked
        lim = [Signal(cfg.smem_addr_bits + 1, name=f"lim{k}") for k in range(3)]
        with m.If(go):
            m.d.sync += v1.eq(self.i.valid)
            with m.If(self.i.valid):
                m.d.sync += ins1.eq(self.i.payload)
        i = self.i.payload
        p = i.proc
        is_ = {q: Signal(name=f"is_{q.name}") for q in Proc}
        c_blocks = Signal(cb)
        for q, s in is_.items():
            m.d.comb += s.eq(p == q)
        sparse_tq = is_[Proc.MxV_SP] | is_[Proc.MTxV_SP]
        mtx = is_[Proc.MTxV_SP] | is_[Proc.MTxV]
        m.d.comb += [
            c_blocks.eq(Mux(mtx, i.cnt1, i.cnt2) + 1),
        ]
        has_steps = is_[Proc.VXV_SP] | is_[Proc.MxV] | is_[Proc.MTxV] | is_[Proc.VXV]
        dense = is_[Proc.MxV] | is_[Proc.MTxV] | is_[Proc.VXV]
        sparse = is_[Proc.MxV_SP] | is_[Proc.MTxV_SP] | is_[Proc.VXV_SP]
        delta = is_[Proc.DELTA]
        included = delta
        for name in cfg.procedures:
            included = included | is_[Proc[name]]

        def misaligned(addr):
            rb = cfg.row_bytes
            if _is_pow2(rb):
                k = rb.bit_length() - 1
                return addr[:k].any() if k else Const(0, 1)
            return (addr % rb) != 0

        # compare the raw loop bounds (iterations - 1) where possible: no adders
        cnt_blocks = Mux(mtx, i.cnt1, i.cnt2)
        cnt_nin = Mux(is_[Proc.MxV], i.cnt1, Mux(is_[Proc.MTxV], i.cnt2, i.cnt0))
        cnt_steps = Mux(is_[Proc.VXV_SP] | is_[Proc.VXV], i.cnt1, i.cnt0)
        rules = [
            ~included,                                                   # 1
            i.src1 != 1,                                                 # 2
            (i.nt == 0) | (i.nt > cfg.max_m),                            # 3
            (i.n1 == 0) | (i.n1 > cfg.max_n),                            # 4
            ~delta & (cnt_blocks >= cfg.max_blocks),                     # 5
            (sparse_tq | delta) & (i.t >= i.nt),                         # 6
            (has_steps & (cnt_steps >= i.nt)) | (delta & (i.t + i.cnt0 >= i.nt)),  # 7
            dense & (cnt_nin >= i.n1),                                   # 8
            (sparse & (i.spm_addr + Mux(is_[Proc.VXV_SP], i.cnt1, i.t) >= cfg.spm_depth))
            | (delta & (i.spm_addr + i.t + i.cnt0 >= cfg.spm_depth)),   # 9
            (i.src0 == 0) & misaligned(i.dram_op0),                      # 10
            ~delta & i.dst1 & misaligned(i.dram_dst),                    # 11
            delta & ((i.cnt2 >= DELTA_XHAT_REGIONS) | i.dst0 | i.dst1     # 15
                     | (i.dram_dst > cfg.fmt.word_mask)),
        ]
        ceil_nin = (cnt_nin + Np) >> lb
        ceil_n1 = (i.n1 + (Np - 1)) >> lb
        weights_op0 = is_[Proc.MxV_SP] | is_[Proc.MTxV_SP] | is_[Proc.MxV] | is_[Proc.MTxV]
        out_bnt = is_[Proc.MxV_SP] | is_[Proc.MxV]
        # region k: base[k] + ma[k] * mb[k] must be <= smem_depth when use[k]. The factors
        # load under ``go`` alone (garbage in a bubble, which v1 marks), as the multiplier
        # block's input registers do on ECP5 (see stage 2)
        ma_next = [
            Mux(delta, ceil_n1, c_blocks),          # op0: blocks * (n1 | nt)
            Mux(mtx, c_blocks, ceil_nin),           # op1: (blocks | ceil(n_in/Np)) * nt
            Mux(mtx, ceil_n1, c_blocks),            # dst: blocks * nt | ceil(n1/Np) * nt
        ]                                           #      | blocks * n1
        mb_next = [Mux(weights_op0, i.n1, i.nt), i.nt, Mux(out_bnt | mtx, i.nt, i.n1)]
        with m.If(go & self.i.valid):
            m.d.sync += [
                simple1.eq(Cat(*rules)),
                use.eq(Cat(i.src0 == 1, mtx | is_[Proc.MxV] | is_[Proc.VXV], i.dst0 & ~delta)),
                # base + rows <= depth  <=>  rows <= depth - base
                lim[0].eq(cfg.smem_depth - i.smem_op0), lim[1].eq(cfg.smem_depth - i.smem_op1),
                lim[2].eq(cfg.smem_depth - i.smem_dst),
            ]
        idle1 = Signal()
        with m.If(go & self.i.valid):
            m.d.sync += idle1.eq(is_[Proc.IDLE])

        # ---- stage 2: products
        ins2 = Signal(lay)
        simple2 = Signal(12)
        idle2 = Signal()
        prod = [Signal(2 * wide, name=f"prod{k}") for k in range(3)]
        use2 = Signal(3)
        lim2 = [Signal(cfg.smem_addr_bits + 1, name=f"lim2_{k}") for k in range(3)]
        with m.If(go):
            m.d.sync += [v2.eq(v1), ins2.eq(ins1), simple2.eq(simple1), idle2.eq(idle1),
                         use2.eq(use)]
            m.d.sync += [lim2[k].eq(lim[k]) for k in range(3)]
        if uses_ecp5_dsp(platform) and wide + 1 <= MULT18_BITS:
            # ma/mb and prod are the block's input and output registers: a multiplier
            # between fabric registers was bf16's next critical path on ECP5 (10.8 ns)
            for k in range(3):
                p = ecp5_mult18(m, Cat(ma_next[k][:wide], 0), Cat(mb_next[k][:wide], 0), go,
                                reg_inputs=True, reg_output=True, name=f"prod{k}_dsp")
                m.d.comb += prod[k].eq(p[:2 * wide])
        else:
            ma = [Signal(wide, name=f"ma{k}") for k in range(3)]
            mb = [Signal(wide, name=f"mb{k}") for k in range(3)]
            with m.If(go):
                m.d.sync += [ma[k].eq(ma_next[k]) for k in range(3)]
                m.d.sync += [mb[k].eq(mb_next[k]) for k in range(3)]
                m.d.sync += [prod[k].eq(ma[k] * mb[k]) for k in range(3)]

        # ---- stage 3: bounds
        ins3 = Signal(lay)
        flags3 = Signal(15)
        idle3 = Signal()
        over = [use2[k] & (prod[k] > lim2[k]) for k in range(3)]
        with m.If(go):
            m.d.sync += [v3.eq(v2), ins3.eq(ins2), idle3.eq(idle2),
                         flags3.eq(Cat(simple2[:11], *over, simple2[11]))]

        # ---- stage 4: the first broken rule
        first = Const(0, 4)
        for r in reversed(range(15)):
            first = Mux(flags3[r], r + 1, first)
        out = Signal(checked_layout(cfg))
        with m.If(go):
            m.d.sync += [v4.eq(v3), out.ins.eq(ins3),
                         out.rule.eq(Mux(idle3, 0, first)),
                         out.illegal.eq(~idle3 & flags3.any()),
                         out.idle.eq(idle3)]
        m.d.comb += self.o.payload.eq(out)
        return m

