"""Beat generator: turns one instruction (plus its non-zero elements) into compute beats.

Why: every procedure is a loop nest over blocks, non-zeros, inputs and timesteps; the
order of the loops decides which summation order the PE array performs (part of the
bit-exact contract with `sim.golden`) and how well the array is used. This block owns the
loop nests: each cycle it emits (at most) one beat command for the operand pairing (DMX),
the operand-0 row request that beat needs (DRAM or SMEM), the operand-1 row request
(SMEM), and, for a beat that ends an accumulation, the write-back descriptor of its result.
Requests run ahead of the beats through FIFOs, so the DRAM latency is hidden.

Loop orders (``B`` blocks, Np lanes, PE ``addr`` = partial-sum address):

* MxV_SP: non-zero k outer, block b inner; PARALLEL, addr = b, first at k = 0, last at the
  last k; op0 row ``b*n1 + nzi_k``, x = nzv_k broadcast. An empty list gives one
  first+last+zero beat per block.
* MTxV_SP: k outer, b inner; CHAIN, addr = k mod ``chain_slots`` (so consecutive
  accumulations never touch the same partial sum), first at b = 0, last at b = B-1;
  op0 row ``b*n1 + nzi_k``, x = G_t row ``op1 + b*nt + t`` (unicast). Result: one lane.
  The G_t rows are read from SMEM for the first non-zero only and kept in the DMX's
  operand-1 cache (``x_wr``/``x_rd``, slot b; when B <= `x_cache_rows`).
* VXV_SP: b outer, t, then the non-zeros of t; PARALLEL, addr = nzi, ``first`` when nzi
  is touched for the first time in this block (a touched bitmap); op0 row ``b*nt + t``
  read once per timestep with non-zeros and held; then a drain of every column
  i < n1 (zero beats, first = untouched, last): row ``dst + b*n1 + i``.
* MxV: b, n, t; PARALLEL addr = t; op0 row ``b*n1 + n`` held over t; x = lane ``n % Np``
  of SMEM row ``op1 + (n//Np)*nt + t``.
* MTxV: n, b, t; CHAIN addr = t (the reduction lane sums over b per t); op0 row
  ``b*n1 + n`` held over t; x = SMEM row ``op1 + b*nt + t`` (unicast).
* VXV: b, t, n; PARALLEL addr = n; op0 row ``b*nt + t`` held over n; x = lane ``n % Np``
  of SMEM row ``op1 + (n//Np)*nt + t``.

Outputs are streams into FIFOs of the core: ``cmd`` (`beat_layout`), ``dreq`` (DRAM byte
address of one row), ``sreq`` (SMEM row of operand 0), ``xreq`` (SMEM row of operand 1),
``wb`` (`wb_layout`). A cycle emits only when every stream it needs is ready. The last
item of an instruction carries ``retire`` on its write-back descriptor (an MTxV_SP with no
non-zero sends a descriptor with ``result = 0``). The next instruction is taken in the
cycle of the previous one's last item (no gap between instructions).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from reneta_hw.ccm.activation_unit import FUNC_BITS
from reneta_hw.ccm.pe_array import PEMode, _addr_bits
from reneta_hw.config import AcceleratorConfig
from reneta_hw.isa import Proc, instruction_layout

from .list_reader import element_layout

__all__ = ["Sequencer", "WSrc", "beat_layout", "wb_layout"]


class WSrc(enum.Enum, shape=2):
    NONE = 0     # no operand 0 (zero beat)
    NEW = 1      # pop the next operand-0 row
    HOLD = 2     # reuse the last operand-0 row


def x_cache_rows(cfg: AcceleratorConfig) -> int:
    """Rows of the DMX's operand-1 cache (MTxV_SP's G_t rows, one per block)."""
    return max(2, min(cfg.max_blocks, 32))


def _slot_bits(cfg: AcceleratorConfig) -> int:
    return max(1, (x_cache_rows(cfg) - 1).bit_length())


def beat_layout(cfg: AcceleratorConfig) -> data.StructLayout:
    return data.StructLayout({
        "w_src": WSrc, "w_smem": 1, "x_row": 1, "x_bcast": 1,
        "x_lane": unsigned(cfg.lane_bits), "x_word": unsigned(cfg.word_bits),
        "x_wr": 1, "x_rd": 1, "x_slot": unsigned(_slot_bits(cfg)),
        "mode": PEMode, "addr": unsigned(_addr_bits(cfg.lmem_depth)),
        "first": 1, "last": 1, "zero": 1, "func": unsigned(FUNC_BITS),
    })


def wb_layout(cfg: AcceleratorConfig) -> data.StructLayout:
    return data.StructLayout({
        "smem_row": unsigned(cfg.smem_addr_bits), "dram_addr": unsigned(cfg.axi_addr_width),
        "dst0": 1, "dst1": 1, "single": 1, "lane": unsigned(cfg.lane_bits),
        "result": 1, "retire": 1,
    })


class Sequencer(wiring.Component):
    """``Sequencer(cfg, chain_slots=8)``; see the module docstring.

    Ports: ``instr`` (In stream of `instruction_layout`), ``el`` (In stream of list
    elements), ``cmd``/``dreq``/``sreq``/``xreq``/``wb`` (Out streams), ``busy`` (Out).
    """

    def __init__(self, cfg: AcceleratorConfig, chain_slots: int = 8):
        if not isinstance(cfg, AcceleratorConfig):
            raise TypeError(f"Sequencer: cfg must be an AcceleratorConfig, got {cfg!r}")
        if (not isinstance(chain_slots, int) or chain_slots < 1
                or chain_slots & (chain_slots - 1) or chain_slots > cfg.lmem_depth):
            raise ValueError(f"Sequencer: chain_slots must be a power of two from 1 to "
                             f"lmem_depth={cfg.lmem_depth}, got {chain_slots!r}")
        if cfg.row_bytes & (cfg.row_bytes - 1):
            raise ValueError(f"Sequencer: row_bytes={cfg.row_bytes} must be a power of two")
        self.cfg = cfg
        self.chain_slots = chain_slots
        a = cfg.smem_addr_bits
        super().__init__({
            "instr": In(stream.Signature(instruction_layout(cfg))),
            "el": In(stream.Signature(element_layout(cfg))),
            "cmd": Out(stream.Signature(beat_layout(cfg))),
            "dreq": Out(stream.Signature(unsigned(cfg.axi_addr_width))),
            "sreq": Out(stream.Signature(unsigned(a))),
            "xreq": Out(stream.Signature(unsigned(a))),
            "wb": Out(stream.Signature(wb_layout(cfg))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        Np, lb = cfg.num_pe, cfg.lane_bits
        rs = exact_log2(cfg.row_bytes)
        AW = cfg.axi_addr_width
        ib = max(1, (cfg.max_n - 1).bit_length())
        big = max(cfg.smem_addr_bits, 2 * max(cfg.n_bits, cfg.nt_bits)) + 2

        ins = Signal(instruction_layout(cfg))
        active = Signal()
        reset = Signal()        # end of instruction: counters back to 0
        load = Signal()         # take the next instruction (also in the last cycle of one)
        m.d.comb += self.busy.eq(active)
        m.d.comb += [self.instr.ready.eq(~active | reset),
                     load.eq(self.instr.valid & self.instr.ready)]

        # loop counters and running products
        b = Signal(cfg.cnt_bits)
        n = Signal(cfg.cnt_bits)
        t = Signal(cfg.cnt_bits)
        i = Signal(cfg.n_bits)
        bn1 = Signal(big)       # b * n1
        bnt = Signal(big)       # b * nt
        nrow = Signal(big)      # (n // Np) * nt
        kslot = Signal(max(1, exact_log2(self.chain_slots)))
        touched = Signal(cfg.max_n)
        drain = Signal()

        el = self.el.payload
        blocks_m1 = Mux(ins.proc == Proc.MTxV_SP, ins.cnt1,
                        Mux(ins.proc == Proc.MTxV, ins.cnt1, ins.cnt2))
        last_b = b == blocks_m1

        # what this cycle wants to emit
        has_beat = Signal()
        has_el = Signal()          # consumes the current element
        w_src = Signal(WSrc)
        op0_row = Signal(big)
        x_row = Signal()
        x_rowaddr = Signal(big)
        has_wb = Signal()
        wbd = Signal(wb_layout(cfg))
        wb_row = Signal(big)
        single = Signal()
        lane = Signal(lb)
        retire = Signal()
        result = Signal(init=1)
        beat = Signal(beat_layout(cfg))
        work = Signal()            # something to do this cycle (inputs available)
        advance = Signal()         # the cycle's items were all accepted

        m.d.comb += [
            beat.w_src.eq(w_src), beat.w_smem.eq(ins.src0), beat.x_row.eq(x_row),
            beat.func.eq(ins.func),
        ]

        proc = ins.proc
        with m.If(active):
            with m.Switch(proc):
                # ---------------------------------------------------------------- MxV_SP
                with m.Case(Proc.MxV_SP):
                    m.d.comb += [
                        work.eq(self.el.valid), has_beat.eq(1), has_el.eq(last_b),
                        w_src.eq(Mux(el.empty, WSrc.NONE, WSrc.NEW)),
                        op0_row.eq(bn1 + el.nzi),
                        beat.x_bcast.eq(1), beat.x_word.eq(el.nzv),
                        beat.mode.eq(PEMode.PARALLEL), beat.addr.eq(b),
                        beat.first.eq(el.first), beat.last.eq(el.last), beat.zero.eq(el.empty),
                        has_wb.eq(el.last), wb_row.eq(bnt + ins.t),
                        retire.eq(el.last & last_b),
                    ]
                    with m.If(advance):
                        with m.If(last_b):
                            m.d.sync += [b.eq(0), bn1.eq(0), bnt.eq(0)]
                            m.d.comb += reset.eq(el.last)
                        with m.Else():
                            m.d.sync += [b.eq(b + 1), bn1.eq(bn1 + ins.n1), bnt.eq(bnt + ins.nt)]
                # --------------------------------------------------------------- MTxV_SP
                with m.Case(Proc.MTxV_SP):
                    # the G_t rows are the same for every non-zero: the first one's beats
                    # fetch them from SMEM and store them in the DMX's cache, the others
                    # read the cache (frees the SMEM read cycles for the list reader)
                    use_cache = ins.cnt1 < x_cache_rows(cfg)
                    m.d.comb += [
                        work.eq(self.el.valid), has_beat.eq(~el.empty),
                        has_el.eq(el.empty | last_b),
                        w_src.eq(WSrc.NEW), op0_row.eq(bn1 + el.nzi),
                        x_row.eq(~el.empty & (~use_cache | el.first)),
                        x_rowaddr.eq(ins.smem_op1 + bnt + ins.t),
                        beat.x_wr.eq(use_cache & el.first), beat.x_rd.eq(use_cache & ~el.first),
                        beat.x_slot.eq(b),
                        beat.mode.eq(PEMode.CHAIN), beat.addr.eq(kslot),
                        beat.first.eq(b == 0), beat.last.eq(last_b),
                        has_wb.eq(el.empty | last_b), result.eq(~el.empty),
                        wb_row.eq((el.nzi >> lb) * ins.nt + ins.t),
                        single.eq(1), lane.eq(el.nzi[:lb]),
                        retire.eq(el.last & (el.empty | last_b)),
                    ]
                    with m.If(advance):
                        with m.If(el.empty | last_b):
                            m.d.sync += [b.eq(0), bn1.eq(0), bnt.eq(0), kslot.eq(kslot + 1)]
                            m.d.comb += reset.eq(el.last)
                        with m.Else():
                            m.d.sync += [b.eq(b + 1), bn1.eq(bn1 + ins.n1), bnt.eq(bnt + ins.nt)]
                # ---------------------------------------------------------------- VXV_SP
                with m.Case(Proc.VXV_SP):
                    last_t = t == ins.cnt1
                    last_i = i == ins.n1 - 1
                    with m.If(~drain):
                        hit = touched.bit_select(el.nzi[:ib], 1)
                        m.d.comb += [
                            work.eq(self.el.valid), has_beat.eq(~el.empty), has_el.eq(1),
                            w_src.eq(Mux(el.first, WSrc.NEW, WSrc.HOLD)),
                            op0_row.eq(bnt + t),
                            beat.x_bcast.eq(1), beat.x_word.eq(el.nzv),
                            beat.mode.eq(PEMode.PARALLEL), beat.addr.eq(el.nzi),
                            beat.first.eq(~hit),
                        ]
                        with m.If(advance):
                            with m.If(~el.empty):
                                m.d.sync += touched.eq(touched | (Const(1, cfg.max_n) << el.nzi[:ib]))
                            with m.If(el.last):
                                m.d.sync += t.eq(t + 1)
                                with m.If(last_t):
                                    m.d.sync += [drain.eq(1), i.eq(0), t.eq(0)]
                    with m.Else():
                        m.d.comb += [
                            work.eq(1), has_beat.eq(1), w_src.eq(WSrc.NONE),
                            beat.mode.eq(PEMode.PARALLEL), beat.addr.eq(i),
                            beat.first.eq(~touched.bit_select(i, 1)), beat.last.eq(1),
                            beat.zero.eq(1),
                            has_wb.eq(1), wb_row.eq(bn1 + i),
                            retire.eq(last_i & last_b),
                        ]
                        with m.If(advance):
                            m.d.sync += i.eq(i + 1)
                            with m.If(last_i):
                                m.d.sync += [drain.eq(0), touched.eq(0), b.eq(b + 1),
                                             bn1.eq(bn1 + ins.n1), bnt.eq(bnt + ins.nt)]
                                m.d.comb += reset.eq(last_b)
                # ------------------------------------------------------------------- MxV
                with m.Case(Proc.MxV):                       # b, n, t
                    last_t = t == ins.cnt0
                    last_n = n == ins.cnt1
                    m.d.comb += [
                        work.eq(1), has_beat.eq(1),
                        w_src.eq(Mux(t == 0, WSrc.NEW, WSrc.HOLD)), op0_row.eq(bn1 + n),
                        x_row.eq(1), x_rowaddr.eq(ins.smem_op1 + nrow + t),
                        beat.x_bcast.eq(1), beat.x_lane.eq(n[:lb]),
                        beat.mode.eq(PEMode.PARALLEL), beat.addr.eq(t),
                        beat.first.eq(n == 0), beat.last.eq(last_n),
                        has_wb.eq(last_n), wb_row.eq(bnt + t),
                        retire.eq(last_t & last_n & last_b),
                    ]
                    with m.If(advance):
                        m.d.sync += t.eq(t + 1)
                        with m.If(last_t):
                            m.d.sync += [t.eq(0), n.eq(n + 1)]
                            with m.If(n[:lb] == Np - 1):
                                m.d.sync += nrow.eq(nrow + ins.nt)
                            with m.If(last_n):
                                m.d.sync += [n.eq(0), nrow.eq(0), b.eq(b + 1),
                                             bn1.eq(bn1 + ins.n1), bnt.eq(bnt + ins.nt)]
                                m.d.comb += reset.eq(last_b)
                # ------------------------------------------------------------------ MTxV
                with m.Case(Proc.MTxV):                      # n, b, t
                    last_t = t == ins.cnt0
                    last_n = n == ins.cnt2
                    m.d.comb += [
                        work.eq(1), has_beat.eq(1),
                        w_src.eq(Mux(t == 0, WSrc.NEW, WSrc.HOLD)), op0_row.eq(bn1 + n),
                        x_row.eq(1), x_rowaddr.eq(ins.smem_op1 + bnt + t),
                        beat.mode.eq(PEMode.CHAIN), beat.addr.eq(t),
                        beat.first.eq(b == 0), beat.last.eq(last_b),
                        has_wb.eq(last_b), wb_row.eq(nrow + t), single.eq(1),
                        lane.eq(n[:lb]),
                        retire.eq(last_t & last_n & last_b),
                    ]
                    with m.If(advance):
                        m.d.sync += t.eq(t + 1)
                        with m.If(last_t):
                            m.d.sync += [t.eq(0), b.eq(b + 1), bn1.eq(bn1 + ins.n1),
                                         bnt.eq(bnt + ins.nt)]
                            with m.If(last_b):
                                m.d.sync += [b.eq(0), bn1.eq(0), bnt.eq(0), n.eq(n + 1)]
                                with m.If(n[:lb] == Np - 1):
                                    m.d.sync += nrow.eq(nrow + ins.nt)
                                m.d.comb += reset.eq(last_n)
                # ------------------------------------------------------------------- VXV
                with m.Case(Proc.VXV):                       # b, t, n
                    last_t = t == ins.cnt1
                    last_n = n == ins.cnt0
                    m.d.comb += [
                        work.eq(1), has_beat.eq(1),
                        w_src.eq(Mux(n == 0, WSrc.NEW, WSrc.HOLD)), op0_row.eq(bnt + t),
                        x_row.eq(1), x_rowaddr.eq(ins.smem_op1 + nrow + t),
                        beat.x_bcast.eq(1), beat.x_lane.eq(n[:lb]),
                        beat.mode.eq(PEMode.PARALLEL), beat.addr.eq(n),
                        beat.first.eq(t == 0), beat.last.eq(last_t),
                        has_wb.eq(last_t), wb_row.eq(bn1 + n),
                        retire.eq(last_t & last_n & last_b),
                    ]
                    with m.If(advance):
                        m.d.sync += n.eq(n + 1)
                        with m.If(n[:lb] == Np - 1):
                            m.d.sync += nrow.eq(nrow + ins.nt)
                        with m.If(last_n):
                            m.d.sync += [n.eq(0), nrow.eq(0), t.eq(t + 1)]
                            with m.If(last_t):
                                m.d.sync += [t.eq(0), b.eq(b + 1), bn1.eq(bn1 + ins.n1),
                                             bnt.eq(bnt + ins.nt)]
                                m.d.comb += reset.eq(last_b)
                with m.Default():                            # IDLE: nothing to do
                    m.d.comb += [work.eq(1), has_wb.eq(1), result.eq(0), retire.eq(1)]
                    with m.If(advance):
                        m.d.comb += reset.eq(1)

        # --- hand-shakes: emit only when every needed stream takes its item -----------------
        need_d = has_beat & (w_src == WSrc.NEW) & ~ins.src0
        need_s = has_beat & (w_src == WSrc.NEW) & ins.src0
        need_x = has_beat & x_row
        ok = (work & (~has_beat | self.cmd.ready) & (~need_d | self.dreq.ready)
              & (~need_s | self.sreq.ready) & (~need_x | self.xreq.ready)
              & (~has_wb | self.wb.ready))
        m.d.comb += [
            advance.eq(active & ok),
            self.cmd.valid.eq(active & ok & has_beat),
            self.cmd.payload.eq(beat),
            self.dreq.valid.eq(active & ok & need_d),
            self.dreq.payload.eq(ins.dram_op0 + (op0_row << rs)[:AW]),
            self.sreq.valid.eq(active & ok & need_s),
            self.sreq.payload.eq(ins.smem_op0 + op0_row),
            self.xreq.valid.eq(active & ok & need_x),
            self.xreq.payload.eq(x_rowaddr),
            self.wb.valid.eq(active & ok & has_wb),
            self.el.ready.eq(active & ok & has_el),
            wbd.smem_row.eq(ins.smem_dst + wb_row),
            wbd.dram_addr.eq(ins.dram_dst + (wb_row << rs)[:AW]),
            wbd.dst0.eq(ins.dst0 & result), wbd.dst1.eq(ins.dst1 & result),
            wbd.single.eq(single), wbd.lane.eq(lane),
            wbd.result.eq(result), wbd.retire.eq(retire),
            self.wb.payload.eq(wbd),
        ]
        with m.If(reset):
            m.d.sync += [active.eq(0)]
        # after the loop nests: a new instruction's counter resets win over their updates
        with m.If(load):
            m.d.sync += [ins.eq(self.instr.payload), active.eq(1),
                         b.eq(0), n.eq(0), t.eq(0), i.eq(0), bn1.eq(0), bnt.eq(0), nrow.eq(0),
                         kslot.eq(0), touched.eq(0), drain.eq(0)]
        return m
