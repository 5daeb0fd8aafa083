"""Instruction intake: the read-after-write check that lets consecutive instructions overlap.

Why: the core takes an instruction while earlier ones are still computing, so an
instruction that reads memory an in-flight instruction writes (an SMEM row range or a DRAM
byte range) must wait until the core is idle, and every other one must not wait. The
sparse procedures read non-zero lists whose extent is only known from their SPM
descriptors: a check that took them as reaching to the end of SMEM made every per-timestep
``MxV_SP``/``MTxV_SP`` whose lists lie below an earlier result wait for an idle core. This
stage reads the descriptors (its own SPM read port) and compares exact row ranges:

* ``MxV_SP``/``MTxV_SP`` at timestep t: the descriptor at ``spm_addr + t``; ``VXV_SP``: the
  hull of the descriptors ``spm_addr .. spm_addr + cnt1`` (one read per cycle). A list of
  ``count`` elements from ``(head_row, head_lane)`` covers rows ``head_row ..
  head_row + ceil((head_lane + count) / num_pe) - 1``; the index list is at ``smem_nzl``,
  the value list (``MxV_SP``, ``VXV_SP``) at ``smem_op1`` plus those rows.
* operand 0 (SMEM or DRAM) and the dense operand 1: the ranges of `reneta_hw.isa.region_rows`.

Written ranges: each accepted instruction widens one SMEM and one DRAM window (the hull of
the destinations in flight); both are cleared when the core has been idle for two cycles.
A procedure this stage does not know as a kernel (``DELTA``, which writes lists and SPM
descriptors, or any later one) is taken to write everything: the next instruction is not
even scanned (its descriptors could still change) until the core is idle again, and such
an instruction itself waits for an idle core. A list whose rows wrap past the end of SMEM
is taken to cover all of SMEM.

Pipeline (every multiplier, adder and compare between registers, for Fmax; the default
configuration reaches ~155 MHz on ECP5-85F speed 8): load (decoded factors) -> products ->
range ends, and descriptor read -> registered SPM word -> its rows -> hull -> list ranges;
then a registered hazard flag, recomputed every cycle from the current windows; the
instruction leaves when that flag, computed after the last window change, is clear.
Throughput: one dense instruction per 4 cycles, one per-timestep sparse instruction per 7
cycles; with no write in flight an instruction does not wait for its scan (nothing to
compare).

Ports: ``i`` (In stream of `instruction_layout`), ``o`` (Out stream: checked instructions,
in order), ``spm_addr``/``spm_en`` (Out) and ``spm_data`` (In, `descriptor_layout`, the
cycle after ``spm_en``), ``idle`` (In: the core has nothing in flight), ``stall`` (Out: an
instruction waits for an earlier one's writes).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from reneta_hw.config import AcceleratorConfig
from reneta_hw.isa import Proc, descriptor_layout, instruction_layout
from reneta_hw.numeric.ecp5_dsp import MULT18_BITS, ecp5_mult18, uses_ecp5_dsp

__all__ = ["HazardCheck", "KERNEL_PROCS"]

#: procedures whose reads and writes this stage computes; any other (except IDLE) is
#: taken to write all of SMEM, DRAM and the SPM
KERNEL_PROCS = (Proc.MxV, Proc.MTxV, Proc.VXV, Proc.MxV_SP, Proc.MTxV_SP, Proc.VXV_SP)


class HazardCheck(wiring.Component):
    """``HazardCheck(cfg)``; see the module docstring."""

    def __init__(self, cfg: AcceleratorConfig):
        if not isinstance(cfg, AcceleratorConfig):
            raise TypeError(f"HazardCheck: cfg must be an AcceleratorConfig, got {cfg!r}")
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(instruction_layout(cfg))),
            "o": Out(stream.Signature(instruction_layout(cfg))),
            "spm_addr": Out(cfg.spm_addr_bits),
            "spm_en": Out(1),
            "spm_data": In(descriptor_layout(cfg)),
            "idle": In(1),
            "stall": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        Np, lb = cfg.num_pe, cfg.lane_bits
        sa = cfg.smem_addr_bits
        AW = cfg.axi_addr_width
        rs = exact_log2(cfg.row_bytes)
        depth = cfg.smem_depth
        RW = sa + 2                      # SMEM row numbers and ends, with room to overflow
        DW = AW + 2

        cur = Signal(instruction_layout(cfg))
        have = Signal()
        fire = Signal()
        load = Signal()
        m.d.comb += [
            fire.eq(self.o.valid & self.o.ready),
            self.i.ready.eq(~have | fire),
            load.eq(self.i.valid & self.i.ready),
            self.o.payload.eq(cur),
        ]
        p = cur.proc
        known = Signal()
        m.d.comb += known.eq((p == Proc.IDLE) | (p == Proc.MxV) | (p == Proc.MTxV)
                             | (p == Proc.VXV) | (p == Proc.MxV_SP) | (p == Proc.MTxV_SP)
                             | (p == Proc.VXV_SP))
        is_sparse = (p == Proc.MxV_SP) | (p == Proc.MTxV_SP) | (p == Proc.VXV_SP)

        # --- written windows (hull of the destinations in flight) --------------------------
        w_smem = Signal()
        w_smem_lo = Signal(RW)
        w_smem_hi = Signal(RW)
        w_dram = Signal()
        w_dram_lo = Signal(DW)
        w_dram_hi = Signal(DW)
        w_all = Signal()                 # an unknown procedure is in flight
        idle_q = Signal()
        fire_q = Signal()
        m.d.sync += [idle_q.eq(self.idle), fire_q.eq(fire)]

        # --- ranges of the current instruction (registered one cycle after the load) ----------
        op1_dense = (p == Proc.MxV) | (p == Proc.VXV)
        op1_ts = (p == Proc.MTxV) | (p == Proc.MTxV_SP)
        # products registered one cycle after the load, range ends the cycle after
        op0_rows = Signal(cfg.cnt_bits + 1 + max(cfg.n_bits, cfg.nt_bits))
        op1_rows = Signal(RW)
        dst_rows = Signal(RW)
        stage = Signal(2)                # cycles ``cur`` has been held, saturating at 2
        r_op0_lo = Signal(RW)
        r_op0_hi = Signal(RW)
        r_dop0_lo = Signal(DW)
        r_dop0_hi = Signal(DW)
        r_op1_lo = Signal(RW)
        r_op1_hi = Signal(RW)
        d_smem_lo = Signal(RW)
        d_smem_hi = Signal(RW)
        d_dram_lo = Signal(DW)
        d_dram_hi = Signal(DW)
        ranged = Signal()                # the registers above belong to ``cur``
        # the factors are decoded from the incoming instruction and registered with it, so
        # each product is a multiplier between registers; on ECP5 those registers are the
        # multiplier block's own (a multiplier between fabric registers, its output routed
        # across the chip, was bf16's next critical path there: 10.4 ns)
        FB = max(cfg.cnt_bits, cfg.n_bits, cfg.nt_bits) + 1
        ins = self.i.payload
        q = ins.proc
        i_blocks = Mux((q == Proc.MTxV_SP) | (q == Proc.MTxV), ins.cnt1, ins.cnt2) + 1
        i_op1_ts = (q == Proc.MTxV) | (q == Proc.MTxV_SP)
        loaded = {        # factor: its value for the incoming instruction
            "op0a": i_blocks,
            "op0b": Mux((q == Proc.VXV_SP) | (q == Proc.VXV), ins.nt, ins.n1),
            # ceil(n_in / Np) with n_in = count + 1: one adder (count + Np), not two
            "op1a": Mux((q == Proc.MxV) | (q == Proc.VXV),
                        (Mux(q == Proc.MxV, ins.cnt1, ins.cnt0) + Np) >> lb, i_blocks),
            "op1b": ins.nt,
            "dsta": Mux(i_op1_ts, (ins.n1 + Np - 1) >> lb, i_blocks),
            "dstb": Mux((q == Proc.MxV_SP) | (q == Proc.MxV) | i_op1_ts, ins.nt, ins.n1),
        }
        held, nxt = {}, {}          # the factor registers and what they load each cycle
        for name, value in loaded.items():
            held[name] = Signal(FB, name=f"f_{name}")
            nxt[name] = Signal(FB, name=f"f_{name}_next")
            m.d.comb += nxt[name].eq(Mux(load, value, held[name]))
            m.d.sync += held[name].eq(nxt[name])
        products = ((op0_rows, "op0a", "op0b"), (op1_rows, "op1a", "op1b"),
                    (dst_rows, "dsta", "dstb"))
        if uses_ecp5_dsp(platform) and FB + 1 <= MULT18_BITS:
            for rows, a, b in products:
                p_ab = ecp5_mult18(m, Cat(nxt[a], 0), Cat(nxt[b], 0), Const(1, 1),
                                   reg_inputs=True, reg_output=True, name=f"{a[:3]}_dsp")
                m.d.comb += rows.eq(p_ab)
        else:
            m.d.sync += [rows.eq(held[a] * held[b]) for rows, a, b in products]
        with m.If(have & ~fire & (stage != 2)):
            m.d.sync += stage.eq(stage + 1)
        # factors at stage 0, products at 1, range ends at 2 (recomputed every cycle)
        m.d.sync += ranged.eq(have & ~fire & (stage != 0))
        m.d.sync += [
            r_op0_lo.eq(Mux(cur.src0, cur.smem_op0, 0)),
            r_op0_hi.eq(Mux(cur.src0, cur.smem_op0 + op0_rows, 0)),
            r_dop0_lo.eq(Mux(cur.src0, 0, cur.dram_op0)),
            r_dop0_hi.eq(Mux(cur.src0, 0, cur.dram_op0 + (op0_rows << rs))),
            r_op1_lo.eq(Mux(op1_dense | op1_ts, cur.smem_op1, 0)),
            r_op1_hi.eq(Mux(op1_dense | op1_ts, cur.smem_op1 + op1_rows, 0)),
            d_smem_lo.eq(cur.smem_dst),
            d_smem_hi.eq(Mux(cur.dst0 & known & (p != Proc.IDLE), cur.smem_dst + dst_rows,
                             cur.smem_dst)),
            d_dram_lo.eq(cur.dram_dst),
            d_dram_hi.eq(Mux(cur.dst1 & known & (p != Proc.IDLE),
                             cur.dram_dst + (dst_rows << rs), cur.dram_dst)),
        ]

        # --- descriptor scan: hull [l_lo, l_hi) of the list rows, relative to the list bases ----
        l_lo = Signal(RW, init=(1 << RW) - 1)
        l_hi = Signal(RW)
        k = Signal(cfg.cnt_bits)          # next descriptor to read (0 .. n-1)
        left = Signal(cfg.cnt_bits + 1)   # descriptors not yet requested
        rd_q = Signal()                   # a descriptor arrives on spm_data this cycle
        scanned = Signal()                # every descriptor of ``cur`` is in the hull
        d = self.spm_data
        can_scan = ~w_all
        m.d.comb += [
            self.spm_addr.eq(cur.spm_addr + Mux(p == Proc.VXV_SP, k, cur.t)),
            self.spm_en.eq(have & is_sparse & (left != 0) & can_scan),
        ]
        m.d.sync += rd_q.eq(self.spm_en)
        with m.If(self.spm_en):
            m.d.sync += [k.eq(k + 1), left.eq(left - 1)]
        # three stages per descriptor: the SPM output registered (a block RAM's output is
        # slow: nothing but that register looks at it), its row range and "not empty", the
        # hull update
        d_q = Signal.like(d)
        v1 = Signal()                     # d_q holds a descriptor
        e_lo = Signal(RW)
        e_hi = Signal(RW)
        v2 = Signal()
        m.d.sync += [d_q.eq(d), v1.eq(rd_q),
                     e_lo.eq(d_q.head_row),
                     e_hi.eq(d_q.head_row + ((d_q.head_lane + d_q.count + (Np - 1)) >> lb)),
                     v2.eq(v1 & (d_q.count != 0))]
        with m.If(v2):
            with m.If(e_lo < l_lo):
                m.d.sync += l_lo.eq(e_lo)
            with m.If(e_hi > l_hi):
                m.d.sync += l_hi.eq(e_hi)
        # the hull is complete when nothing is requested or in flight; its list ranges
        # (registered below) one cycle later, with ``scanned``
        with m.If(have & ~fire & (left == 0) & ~self.spm_en & ~rd_q & ~v1 & ~v2):
            m.d.sync += scanned.eq(1)

        # list ranges (index list at nzl, values at op1 for MxV_SP / VXV_SP); a list that wraps
        # past the end of SMEM is taken as all of SMEM
        def list_range(base, name):
            lo, hi = base + l_lo, base + l_hi
            wraps = hi > depth
            rlo, rhi = Signal(RW, name=f"{name}_lo"), Signal(RW, name=f"{name}_hi")
            m.d.sync += [rlo.eq(Mux(wraps, 0, lo)), rhi.eq(Mux(wraps, depth, hi))]
            return rlo, rhi

        nzl_lo, nzl_hi = list_range(cur.smem_nzl, "nzl")
        val_lo, val_hi = list_range(cur.smem_op1, "val")
        has_vals = (p == Proc.MxV_SP) | (p == Proc.VXV_SP)

        def ov(lo, hi, wlo, whi):
            return (lo < whi) & (wlo < hi)

        smem_hit = (ov(r_op0_lo, r_op0_hi, w_smem_lo, w_smem_hi)
                    | ov(r_op1_lo, r_op1_hi, w_smem_lo, w_smem_hi)
                    | (is_sparse & ov(nzl_lo, nzl_hi, w_smem_lo, w_smem_hi))
                    | (has_vals & ov(val_lo, val_hi, w_smem_lo, w_smem_hi)))
        dram_hit = ov(r_dop0_lo, r_dop0_hi, w_dram_lo, w_dram_hi)
        hazard_now = ((w_smem & smem_hit) | (w_dram & dram_hit) | w_all
                      | (~known & (w_smem | w_dram)))
        checked = Signal()                # ``haz_q`` was computed for ``cur`` and the windows
        haz_q = Signal()
        # with no write in flight there is nothing to compare: no wait for the scan (the
        # ranges are needed anyway: the destinations widen the windows)
        quiet = ~w_smem & ~w_dram & ~w_all
        ready_now = have & ranged & (quiet | ~is_sparse | scanned)
        m.d.sync += [haz_q.eq(hazard_now), checked.eq(ready_now & ~fire & ~load)]
        m.d.comb += [
            self.o.valid.eq(have & checked & ~haz_q),
            self.stall.eq(have & ((checked & haz_q) | (is_sparse & ~can_scan))),
        ]

        # --- load / leave ---------------------------------------------------------------------
        with m.If(fire):
            m.d.sync += have.eq(0)
        with m.If(load):
            n = Mux(q == Proc.VXV_SP, ins.cnt1 + 1, 1)
            m.d.sync += [cur.eq(ins), have.eq(1), k.eq(0), left.eq(n), scanned.eq(0),
                         l_lo.eq((1 << RW) - 1), l_hi.eq(0), ranged.eq(0), checked.eq(0),
                         stage.eq(0), rd_q.eq(0), v1.eq(0), v2.eq(0)]   # (drop stale reads)

        # --- window updates -------------------------------------------------------------------
        with m.If(self.idle & idle_q & ~fire & ~fire_q):
            m.d.sync += [w_smem.eq(0), w_dram.eq(0), w_all.eq(0)]
        with m.If(fire & ~known):
            m.d.sync += w_all.eq(1)
        with m.If(fire & cur.dst0 & known & (p != Proc.IDLE)):
            m.d.sync += [
                w_smem.eq(1),
                w_smem_lo.eq(Mux(w_smem & (w_smem_lo < d_smem_lo), w_smem_lo, d_smem_lo)),
                w_smem_hi.eq(Mux(w_smem & (w_smem_hi > d_smem_hi), w_smem_hi, d_smem_hi)),
            ]
        with m.If(fire & cur.dst1 & known & (p != Proc.IDLE)):
            m.d.sync += [
                w_dram.eq(1),
                w_dram_lo.eq(Mux(w_dram & (w_dram_lo < d_dram_lo), w_dram_lo, d_dram_lo)),
                w_dram_hi.eq(Mux(w_dram & (w_dram_hi > d_dram_hi), w_dram_hi, d_dram_hi)),
            ]
        return m
