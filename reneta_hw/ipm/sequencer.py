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
* VXV_SP: b outer, t, then the non-zeros of t; PARALLEL, addr = nzi (+ H = lmem_depth/2
  on odd blocks), ``first`` when nzi is touched for the first time in this block (a
  touched bitmap); op0 row ``b*nt + t`` read once per timestep with non-zeros and held.
  Every column i < n1 of block b is drained (result row ``dst + b*n1 + i``; +0 when
  untouched): when ``n1 <= H`` by the compute beats of block b+1 (the PE array's drain
  read-out, one column per beat, no slot of its own), and whatever is left when b+1 ends,
  by zero beats (first = untouched, last); else by zero beats after each block. The last
  block (of two or more) drains its own columns early, as they become final (see the
  ``last_t`` comment in the code); a descriptor without result retires it.
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
cycle after the previous one's last item (one idle cycle per instruction, see ``load``). Write-back descriptors
leave through three register stages, three cycles after their beat (timing: MTxV_SP's row
multiply, see ``_wb_pipeline``); ``busy`` covers them.

Timing edges (see ``_io_stages``): ``instr`` and ``el`` enter through skid buffers, every
output stream leaves through registers and a small queue of its own, and the cycle's
"everything accepted" decision reads one registered ``room`` flag instead of the streams'
readies; the loop counters carry registered "at the last value" flags. This adds about
three cycles of latency per program, not per beat. Wide registers (the instruction, the
128-bit column bitmaps) are never enabled by that decision: an instruction is taken in an
idle cycle after the last item of the one before, and a VXV_SP block's rotation into the
drain slot takes an idle cycle of its own (``rot_q``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from reneta_hw.ccm.activation_unit import FUNC_BITS
from reneta_hw.ccm.pe_array import PEMode, _addr_bits
from reneta_hw.config import AcceleratorConfig
from reneta_hw.isa import Proc, instruction_layout
from reneta_hw.mem.fifo import SkidBuffer, StreamFIFO

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
        "drain": 1, "daddr": unsigned(_addr_bits(cfg.lmem_depth)), "dzero": 1,
    })


def wb_layout(cfg: AcceleratorConfig) -> data.StructLayout:
    return data.StructLayout({
        "smem_row": unsigned(cfg.smem_addr_bits), "dram_addr": unsigned(cfg.axi_addr_width),
        "dst0": 1, "dst1": 1, "single": 1, "lane": unsigned(cfg.lane_bits),
        "result": 1, "retire": 1,
    })


def _row_number_bits(cfg: AcceleratorConfig) -> int:
    """Bits of the loop nests' row numbers and running products (``b * n1``, ``b * nt``,
    ``(n // Np) * nt`` and a row offset: two guard bits over the widest)."""
    return max(cfg.smem_addr_bits, 2 * max(cfg.n_bits, cfg.nt_bits)) + 2


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
        ib = max(1, (cfg.max_n - 1).bit_length())
        big = _row_number_bits(cfg)

        ins = Signal(instruction_layout(cfg))
        active = Signal()
        reset = Signal()        # end of instruction: counters back to 0
        load = Signal()         # take the next instruction (in the cycle after the last one)
        room = self._io_stages(m)   # every output queue can take this cycle's items
        # the next instruction waits in a skid buffer (flip-flops) and is taken in the cycle
        # after the last item of the one before: taking it is the clock enable of every
        # counter and of ``ins`` (some 370 flip-flops), so it is a gate of two flip-flops,
        # not the end of the issue decision (``reset``). One idle cycle per instruction.
        m.submodules.instr_skid = instr_skid = SkidBuffer(instruction_layout(cfg))
        wiring.connect(m, wiring.flipped(self.instr), instr_skid.i)
        instr_in = instr_skid.o
        m.d.comb += [instr_in.ready.eq(~active),
                     load.eq(instr_in.valid & instr_in.ready)]

        # loop counters and running products
        b = Signal(cfg.cnt_bits)
        n = Signal(cfg.cnt_bits)
        t = Signal(cfg.cnt_bits)
        i = Signal(cfg.n_bits)
        bn1 = Signal(big)       # b * n1
        bnt = Signal(big)       # b * nt
        nrow = Signal(big)      # (n // Np) * nt
        kslot = Signal(max(1, exact_log2(self.chain_slots)))
        # "the counter is at its last value" flags, kept beside the counters (a compare of
        # the counter with its limit - 1, taken in the cycle it steps) instead of wide
        # compares of the counters in the cycle that decides on them
        new = instr_in.payload
        new_proc = new.proc
        steps = {}

        def limit(ctr, name, lim):
            """Flag ``last`` (ctr == lim), step statements ``inc``/``clr``; ``lim`` is an
            expression of the next instruction, registered when it is taken."""
            w = max(len(ctr), len(lim))
            lim_m1 = Signal(w, name=f"{name}_lim_m1")
            lim_zero = Signal(name=f"{name}_lim_zero")
            last = Signal(name=f"{name}_last")
            with m.If(load):
                m.d.sync += [lim_m1.eq(lim - 1), lim_zero.eq(lim == 0)]
            steps[name] = dict(last=last, lim_m1=lim_m1,
                               inc=[ctr.eq(ctr + 1), last.eq(ctr == lim_m1)],
                               clr=[ctr.eq(0), last.eq(lim_zero)],
                               load=[ctr.eq(0), last.eq(lim == 0)])
            return last

        is_new = lambda *procs: Cat(*(new_proc == p for p in procs)).any()
        b_last = limit(b, "b", Mux(is_new(Proc.MTxV_SP, Proc.MTxV), new.cnt1, new.cnt2))
        t_last = limit(t, "t", Mux(is_new(Proc.VXV, Proc.VXV_SP), new.cnt1, new.cnt0))
        n_last = limit(n, "n", Mux(new_proc == Proc.MxV, new.cnt1,
                                   Mux(new_proc == Proc.MTxV, new.cnt2, new.cnt0)))
        i_last = limit(i, "i", new.n1 - 1)
        touched = Signal(cfg.max_n)
        touched_next = Signal(cfg.max_n)
        drain = Signal()           # VXV_SP: the flush phase (drains without compute beats)
        # VXV_SP double buffering: block b accumulates in half ``hoff`` of the PE array's
        # local memory while the previous block (half ``hoff_p``, columns ``touched_p``,
        # result row of column i: ``rowp_i``) is drained by its compute beats (``dpend``: column
        # ``i`` and above are still to drain)
        H = cfg.lmem_depth // 2
        # (``touched_p`` only changes when a block rotates into the drain slot: its bit of
        # column ``i`` is kept in a flip-flop, ``tp_bit``, looked up a cycle ahead as ``i``
        # steps, so neither a max_n-way multiplexer sits on the beat's path nor does the
        # issue decision enable max_n flip-flops)
        touched_p = Signal(cfg.max_n)
        tp_bit = Signal()          # touched_p[i]
        tp_after = Cat(touched_p[1:], Const(0, 1))   # tp_after[k] = touched_p[k + 1]
        dpend = Signal()
        hoff = Signal()
        hoff_p = Signal()
        need_rot = Signal()        # the block ended while drains of the one before remained
        fin = Signal()             # the last block has been rotated into the drain slot
        rotate = Signal()          # the block ends: rotate it into the drain slot ...
        rot_q = Signal()           # ... in the next cycle, which issues nothing (the wide
                                   # registers' clock enables come from this flip-flop)
        # VXV_SP early drains of the last block (which has no next block to hide its drains
        # behind): every block walks the same lists, so block 0 records the last timestep
        # of each column (``last_t``); in the last block a column is final after the beat
        # at that timestep and is queued (``ef``) for a drain by a later compute beat; a
        # scan queues the untouched columns (+0). What is left when the block ends is
        # drained by zero beats; a result-less descriptor then retires the instruction.
        m.submodules.last_t = last_t = Memory(shape=unsigned(cfg.cnt_bits), depth=cfg.max_n,
                                              init=[])
        lt_w = last_t.write_port()
        # a synchronous read (a block RAM): the beat's column is looked up the cycle after the
        # beat (``lt_pend``), its read data lands in a register (``lt_q``; the block RAM's
        # clock-to-output is slow), is compared the cycle after that (``lt_hit``: its final
        # touch) and pushed then: neither the read multiplexer nor the block RAM lies on
        # the element-to-FIFO path
        lt_r = last_t.read_port()
        lt_pend = Signal()         # the last cycle's beat may end its column (last block)
        lt_pend_t = Signal(cfg.cnt_bits)
        lt_pend_col = Signal(cfg.n_bits)
        lt_q_pend = Signal()       # ``lt_pend`` one cycle later, with the read data in ``lt_q``
        lt_q = Signal(cfg.cnt_bits)
        lt_q_t = Signal(cfg.cnt_bits)
        lt_q_col = Signal(cfg.n_bits)
        lt_hit = Signal()          # push ``lt_hit_col`` into ``ef``
        lt_hit_col = Signal(cfg.n_bits)
        m.d.sync += [lt_q_pend.eq(lt_pend), lt_q.eq(lt_r.data), lt_q_t.eq(lt_pend_t),
                     lt_q_col.eq(lt_pend_col),
                     lt_hit.eq(lt_q_pend & (lt_q == lt_q_t)), lt_hit_col.eq(lt_q_col)]
        EF = 16
        m.submodules.ef = ef = SyncFIFO(width=cfg.n_bits + 1, depth=EF)
        # the queue's fill decisions use the level of the cycle before (registered compares,
        # off the path into ``advance``): the level differs by at most one from it, and a
        # beat's push lands three cycles late (``lt_hit``), so the thresholds keep a margin:
        # a pop needs three entries now (``ef_poppable``), pops are forced and the scan
        # stops well before the queue is full (the level stays below EF - 2)
        ef_poppable = Signal()     # level >= 3 now
        ef_high = Signal()         # force pops
        ef_room = Signal()         # the scan may push
        m.d.sync += [ef_poppable.eq(ef.level >= 4), ef_high.eq(ef.level >= EF - 7),
                     ef_room.eq(ef.level < EF - 8)]
        # "the queue holds a column" as a flip-flop (its level after this cycle's push and
        # pop), for the flush's decision; the queue's own flag is a compare of its level
        ef_avail = Signal()
        m.d.sync += ef_avail.eq(ef.w_en | (ef.level >= 2) | ((ef.level == 1) & ~ef.r_en))
        efin = Signal()            # the last block's flush (early-drain mode)
        sc = Signal(cfg.n_bits + 1)
        # the scan's column: ``touched_p[sc]`` in a flip-flop (looked up a cycle ahead, as
        # ``tp_bit``), not a max_n-way multiplexer in front of ``ef``
        sc_bit = Signal()
        scan_done = limit(sc, "sc", new.n1)
        # registered decodes (off the element-to-output paths): n1 <= H and "this is the
        # last block of two or more, double buffered"
        pp_r = Signal()
        early_r = Signal()
        rowp_i = Signal(big)
        self._probes = dict(ef_level=ef.level, sc=sc, drain=drain, efin=efin, dpend=dpend,
                            i=i)      # for simulation probes (debugging only)

        el_in = self._el_in
        el = el_in.payload
        last_b = b_last

        # what this cycle wants to emit
        has_beat = Signal()
        has_el = Signal()          # consumes the current element (when ``el_mode``)
        w_src = Signal(WSrc)
        op0_row = Signal(big)
        x_row = Signal()
        x_rowaddr = Signal(big)
        has_wb = Signal()
        wbd = Signal(wb_layout(cfg))
        wb_row = Signal(big)
        wb_mul = Signal(max(1, cfg.word_bits - lb))  # MTxV_SP: the row is wb_mul * nt + wb_row
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
        m.d.sync += [lt_pend.eq(0), rot_q.eq(rotate)]
        # VXV_SP's bitmap of touched columns: its enable written out on its own (the few
        # flip-flops it depends on), not as a branch of ``advance``: ``max_n`` flip-flops
        # hang on it
        is_vxv_sp = Signal()
        is_mtxv_sp = Signal()
        is_sp = Signal()           # a sparse procedure: its items consume list elements
        with m.If(active & is_vxv_sp & ~drain & room & el_in.valid):
            m.d.sync += touched.eq(touched_next)
        # the flush may retire: the scan is done and no beat's column can still be pushed
        # (registered: a cycle in the drain phase runs no compute beat, so nothing can be
        # pending after it)
        retire_ok = Signal()
        m.d.sync += retire_ok.eq(drain & scan_done & ~lt_pend & ~lt_q_pend & ~lt_hit)
        with m.If(active):
            with m.Switch(proc):
                # ---------------------------------------------------------------- MxV_SP
                with m.Case(Proc.MxV_SP):
                    m.d.comb += [
                        has_beat.eq(1),
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
                            m.d.sync += [*steps["b"]["clr"], bn1.eq(0), bnt.eq(0)]
                            m.d.comb += reset.eq(el.last)
                        with m.Else():
                            m.d.sync += [*steps["b"]["inc"], bn1.eq(bn1 + ins.n1),
                                         bnt.eq(bnt + ins.nt)]
                # --------------------------------------------------------------- MTxV_SP
                with m.Case(Proc.MTxV_SP):
                    # the G_t rows are the same for every non-zero: the first one's beats
                    # fetch them from SMEM and store them in the DMX's cache, the others
                    # read the cache (frees the SMEM read cycles for the list reader)
                    use_cache = ins.cnt1 < x_cache_rows(cfg)
                    m.d.comb += [
                        has_beat.eq(~el.empty),
                        w_src.eq(WSrc.NEW), op0_row.eq(bn1 + el.nzi),
                        x_row.eq(~el.empty & (~use_cache | el.first)),
                        x_rowaddr.eq(ins.smem_op1 + bnt + ins.t),
                        beat.x_wr.eq(use_cache & el.first), beat.x_rd.eq(use_cache & ~el.first),
                        beat.x_slot.eq(b),
                        beat.mode.eq(PEMode.CHAIN), beat.addr.eq(kslot),
                        beat.first.eq(b == 0), beat.last.eq(last_b),
                        has_wb.eq(el.empty | last_b), result.eq(~el.empty),
                        wb_mul.eq(el.nzi >> lb), wb_row.eq(ins.t),
                        single.eq(1), lane.eq(el.nzi[:lb]),
                        retire.eq(el.last & (el.empty | last_b)),
                    ]
                    with m.If(advance):
                        with m.If(el.empty | last_b):
                            m.d.sync += [*steps["b"]["clr"], bn1.eq(0), bnt.eq(0),
                                         kslot.eq(kslot + 1)]
                            m.d.comb += reset.eq(el.last)
                        with m.Else():
                            m.d.sync += [*steps["b"]["inc"], bn1.eq(bn1 + ins.n1),
                                         bnt.eq(bnt + ins.nt)]
                # ---------------------------------------------------------------- VXV_SP
                with m.Case(Proc.VXV_SP):
                    last_t_ = t_last
                    last_i = i_last
                    pp = pp_r
                    early = early_r
                    m.d.comb += touched_next.eq(touched)
                    ef_col = ef.r_data[:cfg.n_bits]
                    ef_dz = ef.r_data[cfg.n_bits]
                    ef_push_beat = lt_hit
                    # the scan of untouched columns (last block only), when the beat does
                    # not push
                    sc_touched = sc_bit
                    with m.If(ef_push_beat):
                        m.d.comb += [ef.w_en.eq(1), ef.w_data.eq(Cat(lt_hit_col, 0))]
                    with m.If(early & ~scan_done & (sc_touched | (~ef_push_beat
                                                                   & ef_room))):
                        m.d.sync += [*steps["sc"]["inc"], sc_bit.eq(tp_after.bit_select(sc, 1))]
                        with m.If(~sc_touched):
                            m.d.comb += [ef.w_en.eq(1), ef.w_data.eq(Cat(sc[:cfg.n_bits], 1))]
                    with m.If(rot_q):
                        pass               # the rotation's cycle (below): no item
                    with m.Elif(~drain):
                        hit = touched.bit_select(el.nzi[:ib], 1)
                        # drain slot: the previous block's columns, or the last block's
                        # final ones (first when their queue is nearly full)
                        # (a column is popped with two pushes behind it: at least three
                        # beats after its final touch, so the PE array need not wait for
                        # that beat's write; the queue's rest goes to the flush)
                        # (the fill thresholds: see ``ef_high``)
                        use_ef = early & ef_poppable & (~dpend | ef_high)
                        use_p = dpend & ~use_ef
                        piggy = ~el.empty & (use_ef | use_p)
                        m.d.comb += [
                            has_beat.eq(~el.empty),
                            w_src.eq(Mux(el.first, WSrc.NEW, WSrc.HOLD)),
                            op0_row.eq(bnt + t),
                            beat.x_bcast.eq(1), beat.x_word.eq(el.nzv),
                            beat.mode.eq(PEMode.PARALLEL),
                            beat.addr.eq(el.nzi + Mux(hoff, H, 0)),
                            beat.first.eq(~hit),
                            beat.drain.eq(piggy),
                            beat.daddr.eq(Mux(use_ef, ef_col + Mux(hoff, H, 0),
                                              i + Mux(hoff_p, H, 0))),
                            beat.dzero.eq(Mux(use_ef, ef_dz, ~tp_bit)),
                            has_wb.eq(piggy),
                            wb_row.eq(Mux(use_ef, bn1 + ef_col, rowp_i)),
                            lt_r.addr.eq(el.nzi[:ib]),
                        ]
                        with m.If(~el.empty):
                            m.d.comb += touched_next.eq(
                                touched | (Const(1, cfg.max_n) << el.nzi[:ib]))
                        with m.If(advance):
                            m.d.comb += [
                                lt_w.en.eq(~el.empty & (b == 0)), lt_w.addr.eq(el.nzi[:ib]),
                                lt_w.data.eq(t),
                                ef.r_en.eq(~el.empty & use_ef),
                            ]
                            m.d.sync += [lt_pend.eq(early & ~el.empty), lt_pend_t.eq(t),
                                         lt_pend_col.eq(el.nzi[:cfg.n_bits])]
                            with m.If(~el.empty & use_p):
                                m.d.sync += [*steps["i"]["inc"], rowp_i.eq(rowp_i + 1),
                                             tp_bit.eq(tp_after.bit_select(i, 1))]
                                with m.If(last_i):
                                    m.d.sync += [dpend.eq(0), *steps["i"]["clr"]]
                            with m.If(el.last):
                                m.d.sync += steps["t"]["inc"]
                                with m.If(last_t_):
                                    m.d.sync += steps["t"]["clr"]
                                    with m.If(early):
                                        m.d.sync += [drain.eq(1), efin.eq(1)]
                                    with m.Elif(dpend & ~(piggy & use_p & last_i)):
                                        m.d.sync += [drain.eq(1), need_rot.eq(1)]
                                    with m.Else():
                                        m.d.comb += rotate.eq(1)
                    with m.Elif(efin & ~dpend):
                        # the last block's leftovers, then a result-less retirement
                        with m.If(ef_avail):
                            m.d.comb += [
                                has_beat.eq(1), w_src.eq(WSrc.NONE),
                                beat.mode.eq(PEMode.PARALLEL),
                                beat.addr.eq(ef_col + Mux(hoff, H, 0)),
                                beat.first.eq(ef_dz), beat.last.eq(1), beat.zero.eq(1),
                                has_wb.eq(1), wb_row.eq(bn1 + ef_col),
                                ef.r_en.eq(advance),
                            ]
                        with m.Elif(retire_ok):
                            m.d.comb += [has_wb.eq(1), result.eq(0), retire.eq(1)]
                            with m.If(advance):
                                m.d.comb += reset.eq(1)
                    with m.Else():
                        m.d.comb += [
                            has_beat.eq(dpend), w_src.eq(WSrc.NONE),
                            beat.mode.eq(PEMode.PARALLEL), beat.addr.eq(i + Mux(hoff_p, H, 0)),
                            beat.first.eq(~tp_bit), beat.last.eq(1),
                            beat.zero.eq(1),
                            has_wb.eq(dpend), wb_row.eq(rowp_i),
                            retire.eq(dpend & last_i & fin),
                        ]
                        with m.If(advance):
                            with m.If(dpend):
                                m.d.sync += [*steps["i"]["inc"], rowp_i.eq(rowp_i + 1),
                                             tp_bit.eq(tp_after.bit_select(i, 1))]
                                with m.If(last_i):
                                    m.d.sync += [dpend.eq(0), *steps["i"]["clr"]]
                            with m.If(~efin & (~dpend | last_i)):
                                with m.If(need_rot):
                                    m.d.comb += rotate.eq(1)
                                with m.Elif(fin):
                                    m.d.comb += reset.eq(1)
                                with m.Else():
                                    m.d.sync += drain.eq(0)
                    # the block just finished moves into the drain slot; the next one (if
                    # any) accumulates in the other half, or after the drains without
                    # double buffering (n1 > lmem_depth / 2). ``touched`` holds the whole
                    # block by now (its last beat was taken in the cycle of ``rotate``).
                    with m.If(rot_q):
                        m.d.sync += [
                            touched_p.eq(touched), tp_bit.eq(touched[0]), sc_bit.eq(touched[0]),
                            touched.eq(0), hoff_p.eq(hoff),
                            hoff.eq(pp & ~hoff), rowp_i.eq(bn1), dpend.eq(1),
                            *steps["i"]["clr"], early_r.eq(pp & (b == steps["b"]["lim_m1"])),
                            need_rot.eq(0), *steps["b"]["inc"], bn1.eq(bn1 + ins.n1),
                            bnt.eq(bnt + ins.nt),
                            drain.eq(last_b | ~pp), fin.eq(last_b),
                        ]
                # ------------------------------------------------------------------- MxV
                with m.Case(Proc.MxV):                       # b, n, t
                    last_t, last_n = t_last, n_last
                    m.d.comb += [
                        has_beat.eq(1),
                        w_src.eq(Mux(t == 0, WSrc.NEW, WSrc.HOLD)), op0_row.eq(bn1 + n),
                        x_row.eq(1), x_rowaddr.eq(ins.smem_op1 + nrow + t),
                        beat.x_bcast.eq(1), beat.x_lane.eq(n[:lb]),
                        beat.mode.eq(PEMode.PARALLEL), beat.addr.eq(t),
                        beat.first.eq(n == 0), beat.last.eq(last_n),
                        has_wb.eq(last_n), wb_row.eq(bnt + t),
                        retire.eq(last_t & last_n & last_b),
                    ]
                    with m.If(advance):
                        m.d.sync += steps["t"]["inc"]
                        with m.If(last_t):
                            m.d.sync += [*steps["t"]["clr"], *steps["n"]["inc"]]
                            with m.If(n[:lb] == Np - 1):
                                m.d.sync += nrow.eq(nrow + ins.nt)
                            with m.If(last_n):
                                m.d.sync += [*steps["n"]["clr"], nrow.eq(0), *steps["b"]["inc"],
                                             bn1.eq(bn1 + ins.n1), bnt.eq(bnt + ins.nt)]
                                m.d.comb += reset.eq(last_b)
                # ------------------------------------------------------------------ MTxV
                with m.Case(Proc.MTxV):                      # n, b, t
                    last_t, last_n = t_last, n_last
                    m.d.comb += [
                        has_beat.eq(1),
                        w_src.eq(Mux(t == 0, WSrc.NEW, WSrc.HOLD)), op0_row.eq(bn1 + n),
                        x_row.eq(1), x_rowaddr.eq(ins.smem_op1 + bnt + t),
                        beat.mode.eq(PEMode.CHAIN), beat.addr.eq(t),
                        beat.first.eq(b == 0), beat.last.eq(last_b),
                        has_wb.eq(last_b), wb_row.eq(nrow + t), single.eq(1),
                        lane.eq(n[:lb]),
                        retire.eq(last_t & last_n & last_b),
                    ]
                    with m.If(advance):
                        m.d.sync += steps["t"]["inc"]
                        with m.If(last_t):
                            m.d.sync += [*steps["t"]["clr"], *steps["b"]["inc"],
                                         bn1.eq(bn1 + ins.n1),
                                         bnt.eq(bnt + ins.nt)]
                            with m.If(last_b):
                                m.d.sync += [*steps["b"]["clr"], bn1.eq(0), bnt.eq(0),
                                             *steps["n"]["inc"]]
                                with m.If(n[:lb] == Np - 1):
                                    m.d.sync += nrow.eq(nrow + ins.nt)
                                m.d.comb += reset.eq(last_n)
                # ------------------------------------------------------------------- VXV
                with m.Case(Proc.VXV):                       # b, t, n
                    last_t, last_n = t_last, n_last
                    m.d.comb += [
                        has_beat.eq(1),
                        w_src.eq(Mux(n == 0, WSrc.NEW, WSrc.HOLD)), op0_row.eq(bnt + t),
                        x_row.eq(1), x_rowaddr.eq(ins.smem_op1 + nrow + t),
                        beat.x_bcast.eq(1), beat.x_lane.eq(n[:lb]),
                        beat.mode.eq(PEMode.PARALLEL), beat.addr.eq(n),
                        beat.first.eq(t == 0), beat.last.eq(last_t),
                        has_wb.eq(last_t), wb_row.eq(bn1 + n),
                        retire.eq(last_t & last_n & last_b),
                    ]
                    with m.If(advance):
                        m.d.sync += steps["n"]["inc"]
                        with m.If(n[:lb] == Np - 1):
                            m.d.sync += nrow.eq(nrow + ins.nt)
                        with m.If(last_n):
                            m.d.sync += [*steps["n"]["clr"], nrow.eq(0), *steps["t"]["inc"]]
                            with m.If(last_t):
                                m.d.sync += [*steps["t"]["clr"], *steps["b"]["inc"],
                                             bn1.eq(bn1 + ins.n1),
                                             bnt.eq(bnt + ins.nt)]
                                m.d.comb += reset.eq(last_b)
                with m.Default():                            # IDLE: nothing to do
                    m.d.comb += [has_wb.eq(1), result.eq(0), retire.eq(1)]
                    with m.If(advance):
                        m.d.comb += reset.eq(1)

        # the issue decision's inputs, written out flat from registered decodes rather than
        # as branches of the procedure switch: they reach the element's ready and the
        # clock enable of every loop counter
        el_mode = Signal()         # this cycle's item waits for a list element
        no_item = Signal()         # VXV_SP: a rotation's cycle, or the flush waits
        m.d.comb += [
            el_mode.eq(is_sp & ~(is_vxv_sp & (drain | rot_q))),
            no_item.eq(is_vxv_sp & (rot_q | (drain & efin & ~dpend & ~ef_avail
                                             & ~retire_ok))),
            work.eq(Mux(el_mode, el_in.valid, ~no_item)),
            has_el.eq(is_vxv_sp | last_b | (is_mtxv_sp & el.empty)),
        ]

        # --- hand-shakes: emit only when every needed stream takes its item -----------------
        need_d = has_beat & (w_src == WSrc.NEW) & ~ins.src0
        need_s = has_beat & (w_src == WSrc.NEW) & ins.src0
        need_x = has_beat & x_row
        # ``room`` is a flip-flop (every queue had two free entries a cycle ago), so the
        # "everything accepted" decision does not wait for which streams this item needs
        ok = work & room
        outs = self._out_queues
        m.d.comb += [
            advance.eq(active & ok),
            outs["cmd"].valid.eq(active & ok & has_beat),
            outs["cmd"].payload.eq(beat),
            outs["dreq"].valid.eq(active & ok & need_d),
            outs["dreq"].payload.row.eq(op0_row), outs["dreq"].payload.base.eq(ins.dram_op0),
            outs["sreq"].valid.eq(active & ok & need_s),
            outs["sreq"].payload.row.eq(op0_row), outs["sreq"].payload.base.eq(ins.smem_op0),
            outs["xreq"].valid.eq(active & ok & need_x),
            outs["xreq"].payload.row.eq(x_rowaddr),
            el_in.ready.eq(active & ok & el_mode & has_el),
            wbd.dst0.eq(ins.dst0 & result), wbd.dst1.eq(ins.dst1 & result),
            wbd.single.eq(single), wbd.lane.eq(lane),
            wbd.result.eq(result), wbd.retire.eq(retire),
        ]
        wb_busy = self._wb_pipeline(m, valid=active & ok & has_wb, flags=wbd,
                                    mul=wb_mul, nt=ins.nt, row=wb_row,
                                    smem_dst=ins.smem_dst, dram_dst=ins.dram_dst)
        wb_busy = wb_busy | self._queued
        m.d.comb += self.busy.eq(active | wb_busy)
        with m.If(reset):
            m.d.sync += [active.eq(0)]
        # after the loop nests: a new instruction's counter resets win over their updates
        with m.If(load):
            m.d.sync += [ins.eq(new), active.eq(1), is_vxv_sp.eq(new.proc == Proc.VXV_SP),
                         is_mtxv_sp.eq(new.proc == Proc.MTxV_SP),
                         is_sp.eq(is_new(Proc.MxV_SP, Proc.MTxV_SP, Proc.VXV_SP)),
                         *steps["b"]["load"], *steps["n"]["load"], *steps["t"]["load"],
                         *steps["i"]["load"], *steps["sc"]["load"], bn1.eq(0), bnt.eq(0),
                         nrow.eq(0), kslot.eq(0), touched.eq(0), drain.eq(0), dpend.eq(0),
                         hoff.eq(0), hoff_p.eq(0), need_rot.eq(0), fin.eq(0), efin.eq(0),
                         rot_q.eq(0),
                         early_r.eq(0), pp_r.eq(new.n1 <= H)]
        return m

    #: depth of the queues in front of ``cmd``/``dreq``/``sreq``/``xreq`` and of ``wb``
    #: (the request queues: one entry more per stage of `REQ_STAGES`, so ``room`` asks for
    #: the same level as without the registers)
    REQ_QUEUE_DEPTH = 6
    WB_QUEUE_DEPTH = 8
    #: register stages between the loop nests and the request queues (`_io_stages` builds
    #: them: the first takes the item, a row number and the instruction's base, the second
    #: its address, their sum; ``room``'s margin counts them)
    REQ_STAGES = 2
    #: register stages between the loop nests and the ``wb`` queue (see `_wb_pipeline`)
    WB_STAGES = 3

    def _io_stages(self, m):
        """Registered edges: a skid buffer on ``el``, small queues on every output stream.

        Why: the loop nests advance in the cycle every item of that cycle is accepted. With
        the element's valid/payload and the consumers' readies straight from the ports, that
        decision sat at the end of a long path (ports -> "everything accepted" -> the clock
        enable and next value of every counter) and held the block near 100 MHz. Here the
        element comes from flip-flops (`SkidBuffer`, full rate, one cycle later) and each
        output stream leaves through register stages (`REQ_STAGES`, ``WB_STAGES``) and a
        short queue of its own (the request streams' addresses are summed in the second of
        their register stages: the row's own adder comes before the first, and both in
        one cycle were a path of 10.3 ns on ECP5); the issue decision only looks at
        ``room``, a flip-flop that says "every queue had room, a cycle ago, for two items
        plus those still in its register stages". The level moves by at most one per
        cycle, so one free entry is left for this cycle's item. A stalled consumer stops
        the issue a few items later than before; the order of every stream is unchanged.
        Returns ``room``.
        """
        cfg = self.cfg
        rs = exact_log2(cfg.row_bytes)
        AW, sa = cfg.axi_addr_width, cfg.smem_addr_bits
        big = _row_number_bits(cfg)
        m.submodules.el_skid = el_skid = SkidBuffer(self.el.payload.shape())
        wiring.connect(m, wiring.flipped(self.el), el_skid.i)
        self._el_in = el_skid.o
        # each stream's item as the loop nests emit it, and what its queue takes from it
        # (the request streams: the address)
        req_items = dict(
            cmd=(beat_layout(cfg), lambda item: item),
            dreq=(data.StructLayout({"row": unsigned(big), "base": unsigned(AW)}),
                  lambda item: item.base + (item.row << rs)[:AW]),
            sreq=(data.StructLayout({"row": unsigned(big), "base": unsigned(sa)}),
                  lambda item: item.base + item.row),
            xreq=(data.StructLayout({"row": unsigned(big)}), lambda item: item.row))
        self._out_queues = {}
        room_now = []
        queued = []
        for name in ("cmd", "dreq", "sreq", "xreq", "wb"):
            shape = getattr(self, name).payload.shape()
            is_wb = name == "wb"
            depth = self.WB_QUEUE_DEPTH if is_wb else self.REQ_QUEUE_DEPTH
            # the items in the register stages and the one of this cycle land later
            margin = 2 + (self.WB_STAGES if is_wb else self.REQ_STAGES)
            q = StreamFIFO(shape, depth, buffered=False)
            m.submodules[f"{name}_queue"] = q
            wiring.connect(m, q.o, wiring.flipped(getattr(self, name)))
            if is_wb:
                self._out_queues[name] = q.i          # staged in `_wb_pipeline`
                queued.append(q.o.valid)
            else:
                # the loop nests' item goes into a register, not straight into the
                # queue's LUT-RAM write port (the element-to-queue path was the
                # sequencer's slowest: element fields, the drain queue's read, the
                # adders, then the LUT RAM's data setup, across the chip)
                item_shape, address = req_items[name]
                staged = stream.Signature(item_shape).create(path=(f"{name}_staged",))
                held = stream.Signature(item_shape).create(path=(f"{name}_held",))
                m.d.sync += [held.valid.eq(staged.valid), held.payload.eq(staged.payload),
                             q.i.valid.eq(held.valid), q.i.payload.eq(address(held.payload))]
                self._out_queues[name] = staged
                queued.append(q.o.valid | q.i.valid | held.valid)
            room_now.append(q.level <= depth - margin)
        room = Signal(init=1)
        m.d.sync += room.eq(Cat(*room_now).all())
        self._queued = Cat(*queued).any()
        return room

    def _wb_pipeline(self, m, *, valid, flags, mul, nt, row, smem_dst, dram_dst):
        """Three register stages between the loop nests and the ``wb`` queue.

        Why: MTxV_SP's result row ``(nzi // Np) * nt + t`` needs a multiply of the element
        just read from the list reader's FIFO, followed by the destination adders: as one
        combinational path it limited the whole accelerator (86 MHz). Here stage 1 takes the
        multiply's operands, the row and the instruction's destinations in registers (the
        row itself is a sum, e.g. of a LUT-RAM read: no adder behind it in that cycle),
        stage 2 registers the product and the bases ``dst + row``, stage 3 adds the two. The
        stages never stall (``room`` already counts their descriptors against the queue), so
        one descriptor per cycle flows; the write-back only sees descriptors a few cycles
        later, far less than the PE array's latency. Returns "a descriptor is in flight".
        """
        cfg = self.cfg
        rs = exact_log2(cfg.row_bytes)
        AW = cfg.axi_addr_width
        lay = wb_layout(cfg)
        s1 = dict(v=Signal(), f=Signal(lay), a=Signal(len(mul)), b=Signal(len(nt)),
                  r=Signal(len(row)), s=Signal(len(smem_dst)), d=Signal(len(dram_dst)))
        s2 = dict(v=Signal(), f=Signal(lay), p=Signal(len(mul) + len(nt)),
                  s=Signal(cfg.smem_addr_bits), d=Signal(AW))
        s3 = dict(v=Signal(), f=Signal(lay))
        m.d.sync += [s1["v"].eq(valid), s1["f"].eq(flags), s1["a"].eq(mul),
                     s1["b"].eq(nt), s1["r"].eq(row), s1["s"].eq(smem_dst), s1["d"].eq(dram_dst)]
        m.d.sync += [s2["v"].eq(s1["v"]), s2["f"].eq(s1["f"]), s2["p"].eq(s1["a"] * s1["b"]),
                     s2["s"].eq(s1["s"] + s1["r"]), s2["d"].eq(s1["d"] + (s1["r"] << rs)[:AW])]
        out = Signal(lay)
        m.d.comb += [out.eq(s2["f"]), out.smem_row.eq(s2["s"] + s2["p"]),
                     out.dram_addr.eq(s2["d"] + (s2["p"] << rs)[:AW])]
        m.d.sync += [s3["v"].eq(s2["v"]), s3["f"].eq(out)]
        q = self._out_queues["wb"]
        m.d.comb += [q.valid.eq(s3["v"]), q.payload.eq(s3["f"])]
        return s1["v"] | s2["v"] | s3["v"]
