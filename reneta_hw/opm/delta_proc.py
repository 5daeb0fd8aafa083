"""`DeltaProc`: the engine of the ``DELTA`` instruction (delta encoding on the machine).

Why: a Delta RNN layer's forward pass multiplies only the inputs that changed by more than
θ. Without this engine the host had to compute Δ, the non-zero lists and the SPM
descriptors itself and load them before every ``MxV_SP``; with it a program runs a layer
from its raw input time series. The arithmetic is `reneta_hw.opm.delta_encoder.DeltaEncoder`
(bit-exactly `sim.delta_ref`); this block only feeds it and stores what it produces. The
instruction's semantics are `sim.golden` (``_delta``) and `reneta_hw.isa` (field use).

Flow of one instruction (accepted only while the core is idle; nothing else is accepted
until it has finished, so the core's hazard check needs no ranges for it)::

    instr -> [t > 0: read SPM[spm_addr + t - 1]: list position after timestep t-1]
          -> commands (one per timestep) ----------------------------> DeltaEncoder.cmd
          -> row requests (SMEM ``sreq`` or DRAM ``dreq``, beat b of timestep t' at row
             op0 + b*nt + t') -> rows (``srow`` / ``drow``, in order) -> DeltaEncoder.i
    DeltaEncoder.o_rows -> two SMEM writes per list row (``smem_w``: index row at
             smem_nzl + row, value row at smem_op1 + row, under the row's lane mask)
    DeltaEncoder.o_desc -> SPM write at spm_addr + t' (``spm_we``/``spm_waddr``/``spm_wdata``)

The last descriptor marks the end (the encoder offers a descriptor only after its rows
left it, the rows pass a two-entry buffer, and the descriptor is taken only when that
buffer is empty, i.e. once both writes of each of its rows were taken): ``done`` pulses,
``busy`` falls. The x̂ state lives in the encoder's memory, `DELTA_XHAT_REGIONS` regions of
``max_n`` words (``cnt2``); ``t = 0`` encodes its first timestep from +0 words (``clear``).

Errors (``error``, one-cycle pulse; the core reports `ErrorCode.RANGE`): a list row past
the end of SMEM (that row is dropped, the instruction still finishes) or, for ``t > 0``, a
list position after timestep ``t - 1`` past the end of SMEM.

Ports: ``instr`` (In stream of `instruction_layout`), ``busy``, ``done``, ``error`` (Out);
``sreq`` (Out stream: SMEM row) / ``srow`` (In stream: the row); ``dreq`` (Out stream: DRAM
byte address of one row) / ``drow`` (In stream of `reneta_hw.bus.axi_read.row_layout`);
``smem_w`` (Out stream of `smem_write_layout`); ``spm_raddr``/``spm_re`` (Out) and
``spm_rdata`` (In, the cycle after ``spm_re``); ``spm_waddr``/``spm_wdata``/``spm_we`` (Out).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..bus.axi_read import row_layout as dram_row_layout
from ..config import AcceleratorConfig, bits_for
from ..isa import DELTA_XHAT_REGIONS, descriptor_layout, instruction_layout
from ..mem.fifo import PingPongBuffer
from ..mem.smem import smem_write_layout
from .delta_encoder import DeltaEncoder

__all__ = ["DeltaProc"]


class DeltaProc(wiring.Component):
    """``DeltaProc(cfg, **encoder_kw)`` (keywords go to `DeltaEncoder`); see the module doc."""

    def __init__(self, cfg: AcceleratorConfig, **encoder_kw):
        if not isinstance(cfg, AcceleratorConfig):
            self._MustUse__silence = True
            raise TypeError(f"DeltaProc: cfg must be an AcceleratorConfig, got {cfg!r}")
        self.cfg = cfg
        self.encoder = DeltaEncoder(cfg, xhat_regions=DELTA_XHAT_REGIONS, num_cursors=1,
                                    **encoder_kw)
        dl = descriptor_layout(cfg).size
        super().__init__({
            "instr": In(stream.Signature(instruction_layout(cfg))),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
            "sreq": Out(stream.Signature(unsigned(cfg.smem_addr_bits))),
            "srow": In(stream.Signature(unsigned(cfg.row_bits))),
            "dreq": Out(stream.Signature(unsigned(cfg.axi_addr_width))),
            "drow": In(stream.Signature(dram_row_layout(cfg.row_bits))),
            "smem_w": Out(stream.Signature(smem_write_layout(cfg))),
            "spm_raddr": Out(cfg.spm_addr_bits),
            "spm_re": Out(1),
            "spm_rdata": In(dl),
            "spm_waddr": Out(cfg.spm_addr_bits),
            "spm_wdata": Out(dl),
            "spm_we": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        Np, sa, lg = cfg.num_pe, cfg.smem_addr_bits, cfg.lane_bits
        rs = exact_log2(cfg.row_bytes)
        m.submodules.enc = enc = self.encoder
        cur = Signal(instruction_layout(cfg))
        pos = Signal(sa + lg)                     # list slot of the first timestep
        blocks_m1 = Signal(cfg.n_bits)            # ceil(n1/Np) - 1

        # --- instruction intake and the list position of timestep t - 1 ----------------------
        idle, head, head_data, head_sum, run = range(5)
        state = Signal(3)
        # ``busy`` is its own flip-flop (= state != idle): the core's writer and row
        # multiplexers hang on it, a wide fan-out that should start at a register
        m.d.comb += self.instr.ready.eq(state == idle)
        m.d.sync += [self.done.eq(0)]
        err_head = Signal()
        head_desc = Signal(descriptor_layout(cfg))   # the descriptor of timestep t - 1
        ins = self.instr.payload
        cmd_k = Signal(cfg.cnt_bits + 1)          # commands sent
        req_t = Signal(cfg.cnt_bits + 1)          # timestep offset of the next row request
        req_b = Signal(cfg.n_bits)                # its block
        req_row = Signal(bits_for(cfg.max_blocks * cfg.max_m + cfg.max_m))   # b*nt + t'
        req_tbase = Signal.like(req_row)          # t' of the current timestep
        desc_k = Signal(cfg.cnt_bits + 1)         # descriptors written
        with m.Switch(state):
            with m.Case(idle):
                # the registers follow the offered instruction while idle (nothing reads
                # them then), so their clock enables hang on ``state`` alone, not on
                # ``instr.valid`` (the end of the core's intake logic)
                m.d.sync += [cur.eq(ins), pos.eq(0), cmd_k.eq(0), req_t.eq(0),
                             req_b.eq(0), req_row.eq(ins.t), req_tbase.eq(ins.t),
                             desc_k.eq(0),
                             blocks_m1.eq((ins.n1 - 1) >> lg)]
                with m.If(self.instr.valid):
                    m.d.sync += [state.eq(Mux(ins.t == 0, run, head)), self.busy.eq(1)]
            with m.Case(head):
                m.d.comb += [self.spm_re.eq(1),
                             self.spm_raddr.eq(cur.spm_addr + cur.t - 1)]
                m.d.sync += state.eq(head_data)
            with m.Case(head_data):
                # the descriptor lands in a register first: a block RAM's clock-to-output
                # (4.1 ns on ECP5) leaves no time for the adder behind it
                m.d.sync += [head_desc.eq(self.spm_rdata), state.eq(head_sum)]
            with m.Case(head_sum):
                end = Signal(sa + lg + 1)
                m.d.comb += end.eq(Cat(head_desc.head_lane, head_desc.head_row)
                                   + head_desc.count)
                m.d.sync += [pos.eq(end[:sa + lg]), state.eq(run)]
                m.d.comb += err_head.eq(end[sa + lg])
            with m.Case(run):
                pass

        steps_m1 = cur.cnt0
        running = state == run

        # --- encoder commands: one per timestep --------------------------------------------
        c = enc.cmd.payload
        m.d.comb += [
            enc.cmd.valid.eq(running & (cmd_k <= steps_m1)),
            c.n.eq(cur.n1), c.theta.eq(cur.dram_dst[:cfg.word_bits]),
            c.head_row.eq(pos[lg:]), c.head_lane.eq(pos[:lg]),
            c.cont.eq(cmd_k != 0), c.cursor.eq(0),
            c.clear.eq((cmd_k == 0) & (cur.t == 0)),
            c.xhat_base.eq(cur.cnt2 * cfg.max_blocks),
        ]
        with m.If(enc.cmd.valid & enc.cmd.ready):
            m.d.sync += cmd_k.eq(cmd_k + 1)

        # --- source row requests: beat b of timestep t' at row op0 + b*nt + t' ---------------
        # through a two-entry buffer: the row counters step on its "has room" flip-flop,
        # not on the SMEM's or the DRAM reader's ready, and their registers stay beside
        # their adders instead of being pulled toward the request queues (req_row on ECP5:
        # 8.0 ns, a 2.2 ns route after the adder)
        m.submodules.req_buf = req_buf = PingPongBuffer(unsigned(max(sa, cfg.axi_addr_width)))
        req_on = running & (req_t <= steps_m1)
        m.d.comb += [
            req_buf.i.valid.eq(req_on),
            req_buf.i.payload.eq(Mux(cur.src0, cur.smem_op0 + req_row,
                                     cur.dram_op0 + (req_row << rs))),
            self.sreq.valid.eq(req_buf.o.valid & cur.src0),
            self.sreq.payload.eq(req_buf.o.payload[:sa]),
            self.dreq.valid.eq(req_buf.o.valid & ~cur.src0),
            self.dreq.payload.eq(req_buf.o.payload[:cfg.axi_addr_width]),
            req_buf.o.ready.eq(Mux(cur.src0, self.sreq.ready, self.dreq.ready)),
        ]
        req_hs = req_buf.i.valid & req_buf.i.ready
        with m.If(req_hs):
            with m.If(req_b == blocks_m1):
                m.d.sync += [req_b.eq(0), req_t.eq(req_t + 1), req_row.eq(req_tbase + 1),
                             req_tbase.eq(req_tbase + 1)]
            with m.Else():
                m.d.sync += [req_b.eq(req_b + 1), req_row.eq(req_row + cur.nt)]

        # --- source rows into the encoder ------------------------------------------------------
        # through a two-entry buffer of this block's own: the encoder's acceptance (its
        # pipeline's advance, hundreds of clock enables) starts from flip-flops here, not
        # from the valid of the DRAM rows' buffer across the chip (9.7 ns on ECP5)
        m.submodules.src_buf = src_buf = PingPongBuffer(unsigned(cfg.row_bits))
        m.d.comb += [
            src_buf.i.valid.eq(Mux(cur.src0, self.srow.valid, self.drow.valid)),
            src_buf.i.payload.eq(Mux(cur.src0, self.srow.payload, self.drow.payload.data)),
            self.srow.ready.eq(cur.src0 & src_buf.i.ready),
            self.drow.ready.eq(~cur.src0 & src_buf.i.ready),
        ]
        wiring.connect(m, src_buf.o, enc.i)

        # --- list rows: index row, then value row ----------------------------------------------
        # through a two-entry buffer: the writer's take (the SMEM write port's ready, the
        # range check's adders) reaches only the buffer's flags, not the encoder's row queue
        # and the stall logic behind it (at 16 PEs a route-dominated path across the chip)
        m.submodules.row_buf = row_buf = PingPongBuffer(enc.o_rows.payload.shape())
        wiring.connect(m, enc.o_rows, row_buf.i)
        rows = row_buf.o
        r = rows.payload
        phase = Signal()
        a_idx = Signal(sa + 1)
        a_val = Signal(sa + 1)
        m.d.comb += [a_idx.eq(cur.smem_nzl + r.row), a_val.eq(cur.smem_op1 + r.row)]
        out_of_range = a_idx[sa] | a_val[sa]
        w = self.smem_w.payload
        m.d.comb += [
            self.smem_w.valid.eq(rows.valid & ~out_of_range),
            w.addr.eq(Mux(phase, a_val[:sa], a_idx[:sa])),
            w.mask.eq(r.mask),
            w.data.eq(Mux(phase, r.value.as_value(), r.index.as_value())),
            rows.ready.eq(out_of_range | (phase & self.smem_w.ready)),
        ]
        with m.If(self.smem_w.valid & self.smem_w.ready):
            m.d.sync += phase.eq(~phase)
        m.d.comb += self.error.eq(err_head | (rows.valid & out_of_range))

        # --- descriptors into the SPM; the last one ends the instruction -----------------------
        # a descriptor is taken once the row buffer is empty: its rows are then written
        m.d.comb += [
            enc.o_desc.ready.eq(~rows.valid),
            self.spm_we.eq(enc.o_desc.valid & enc.o_desc.ready),
            self.spm_waddr.eq(cur.spm_addr + cur.t + desc_k),
            self.spm_wdata.eq(enc.o_desc.payload.as_value()),
        ]
        with m.If(enc.o_desc.valid & enc.o_desc.ready):
            m.d.sync += desc_k.eq(desc_k + 1)
            with m.If(desc_k == steps_m1):
                m.d.sync += [state.eq(idle), self.busy.eq(0), self.done.eq(1)]
        return m
