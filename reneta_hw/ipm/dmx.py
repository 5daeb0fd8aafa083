"""Operand pairing (DMX): joins beat commands with operand rows into PE-array beats.

Why: operands arrive from three independent streams (DRAM rows through the AXI read master,
on-chip operand-0 rows and operand-1 rows from SMEM) at their own pace, requested ahead
of time by the `reneta_hw.ipm.sequencer.Sequencer` in beat order. The DMX takes one beat
command per cycle, pops exactly the rows that command needs, builds ``w`` (new row, held
row, or zero) and ``x`` (a broadcast word from the command, a broadcast lane of an SMEM
row, a whole SMEM row, or a row of its small operand-1 cache: ``x_wr`` stores the popped
row in slot ``x_slot``, ``x_rd`` takes slot ``x_slot`` instead of popping) and offers the beat to the PE array through a register.

Ports: ``cmd`` (In, `beat_layout`), ``drow`` (In, AXI read-master rows: ``data``, ``last``),
``srow`` / ``xrow`` (In, SMEM rows), ``o`` (Out, `pe_in_layout`), and per-cycle stall flags
``stall_dram`` / ``stall_smem`` (a command waits for its row). ``cmd`` enters through a
skid register (``cmd.ready`` is a flip-flop); latency 2 from a command to its beat on ``o``
(registered), one beat per cycle. Each row stream lands in a `PingPongBuffer` of the DMX's
own before the join (one more cycle of latency per row): the join's take and the buffers'
pops that hang on it then stay next to the DMX, while the rows' producers (the read master,
the SMEM's response FIFOs) sit across the chip and see only registered ``ready``s.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from reneta_hw.bus.axi_read import row_layout
from reneta_hw.ccm.pe_array import pe_in_layout
from reneta_hw.config import AcceleratorConfig
from reneta_hw.mem.fifo import PingPongBuffer, SkidBuffer

from .sequencer import WSrc, beat_layout, x_cache_rows

__all__ = ["DMX"]


class DMX(wiring.Component):
    def __init__(self, cfg: AcceleratorConfig):
        if not isinstance(cfg, AcceleratorConfig):
            raise TypeError(f"DMX: cfg must be an AcceleratorConfig, got {cfg!r}")
        self.cfg = cfg
        R = cfg.row_bits
        super().__init__({
            "cmd": In(stream.Signature(beat_layout(cfg))),
            "drow": In(stream.Signature(row_layout(R))),
            "srow": In(stream.Signature(unsigned(R))),
            "xrow": In(stream.Signature(unsigned(R))),
            "o": Out(stream.Signature(pe_in_layout(cfg.fmt, cfg.num_pe, cfg.lmem_depth))),
            "stall_dram": Out(1),
            "stall_smem": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        Np, W, R = cfg.num_pe, cfg.word_bits, cfg.row_bits
        # the command enters through a skid register that also holds which rows it needs
        # and where operand 1 comes from (decoded before the register): the take decision
        # is an AND of flip-flops, and operand 1 an AND-OR of its sources under one-hot
        # selects (after the lane multiplexer, three 2:1 multiplexers in a row had made it
        # a path of 10.4 ns on ECP5)
        cmd_layout = data.StructLayout({"beat": beat_layout(cfg), "need_d": 1, "need_s": 1,
                                        "need_x": 1, "x_cache": 1, "x_full": 1,
                                        "x_lane_word": 1, "x_imm": 1})
        m.submodules.cmd_reg = cmd_reg = SkidBuffer(cmd_layout)
        ci = self.cmd.payload
        new_in = ci.w_src == WSrc.NEW
        m.d.comb += [
            cmd_reg.i.valid.eq(self.cmd.valid), self.cmd.ready.eq(cmd_reg.i.ready),
            cmd_reg.i.payload.beat.eq(ci), cmd_reg.i.payload.need_d.eq(new_in & ~ci.w_smem),
            cmd_reg.i.payload.need_s.eq(new_in & ci.w_smem),
            cmd_reg.i.payload.need_x.eq(ci.x_row),
            cmd_reg.i.payload.x_cache.eq(ci.x_rd),
            cmd_reg.i.payload.x_full.eq(~ci.x_rd & ci.x_row & ~ci.x_bcast),
            cmd_reg.i.payload.x_lane_word.eq(~ci.x_rd & ci.x_row & ci.x_bcast),
            cmd_reg.i.payload.x_imm.eq(~ci.x_rd & ~ci.x_row),
        ]
        rows = {}
        for name in ("drow", "srow", "xrow"):
            port = getattr(self, name)
            land = m.submodules[f"{name}_in"] = PingPongBuffer(port.payload.shape())
            wiring.connect(m, wiring.flipped(port), land.i)
            rows[name] = land.o
        drow, srow, xrow = rows["drow"], rows["srow"], rows["xrow"]
        c = cmd_reg.o.payload.beat
        new = c.w_src == WSrc.NEW
        need_d = cmd_reg.o.valid & cmd_reg.o.payload.need_d
        need_s = cmd_reg.o.valid & cmd_reg.o.payload.need_s
        need_x = cmd_reg.o.valid & cmd_reg.o.payload.need_x
        have = (cmd_reg.o.valid & (~need_d | drow.valid) & (~need_s | srow.valid)
                & (~need_x | xrow.valid))
        load = Signal()
        m.d.comb += load.eq(~self.o.valid | self.o.ready)
        take = have & load
        m.d.comb += [
            cmd_reg.o.ready.eq(take),
            drow.ready.eq(take & need_d),
            srow.ready.eq(take & need_s),
            xrow.ready.eq(take & need_x),
            self.stall_dram.eq(load & need_d & ~drow.valid),
            self.stall_smem.eq(load & ((need_s & ~srow.valid) | (need_x & ~xrow.valid))),
        ]
        held = Signal(R, reset_less=True)
        w = Signal(R)
        with m.Switch(c.w_src):
            with m.Case(WSrc.NEW):
                m.d.comb += w.eq(Mux(c.w_smem, srow.payload, drow.payload.data))
            with m.Case(WSrc.HOLD):
                m.d.comb += w.eq(held)
        # operand-1 cache (MTxV_SP's G_t rows): written by x_wr beats, read by x_rd beats
        cache = Memory(shape=unsigned(R), depth=x_cache_rows(cfg), init=[])
        m.submodules.xcache = cache
        cw = cache.write_port()
        cr = cache.read_port(domain="comb")
        m.d.comb += [cw.addr.eq(c.x_slot), cw.data.eq(xrow.payload),
                     cw.en.eq(take & c.x_wr), cr.addr.eq(c.x_slot)]
        # operand 1: a cached row, the SMEM row, one lane of it or the beat's own word,
        # broadcast (exactly one select is high)
        sel = cmd_reg.o.payload
        lane_word = xrow.payload.word_select(c.x_lane, W)
        x = (cr.data & sel.x_cache.replicate(R)) | (xrow.payload & sel.x_full.replicate(R)) \
            | Cat(*([lane_word] * Np)) & sel.x_lane_word.replicate(R) \
            | Cat(*([c.x_word] * Np)) & sel.x_imm.replicate(R)
        o = Signal(self.o.payload.shape(), reset_less=True)     # data: only valid is reset
        m.d.comb += self.o.payload.eq(o)
        with m.If(take & new):
            m.d.sync += held.eq(w)
        # the output register loads whenever it may (its valid says whether the load was a
        # beat): its ~600 clock enables hang on ``load`` alone, not on every input's valid
        with m.If(load):
            m.d.sync += self.o.valid.eq(have)
            m.d.sync += [
                o.w.eq(w), o.x.eq(x), o.mode.eq(c.mode), o.addr.eq(c.addr),
                o.first.eq(c.first), o.last.eq(c.last), o.zero.eq(c.zero), o.func.eq(c.func),
                o.drain.eq(c.drain), o.daddr.eq(c.daddr), o.dzero.eq(c.dzero),
            ]
        return m
