"""Write-back: PE-array results -> SMEM rows/lanes and/or DRAM rows (AXI write master).

Why: results leave the PE array in beat order, but where each goes (an SMEM row, one lane
of it, a DRAM row through the AXI write master with per-word strobes, or both) is only
known to the sequencer that generated the beat. The sequencer queues one write-back
descriptor (`reneta_hw.ipm.sequencer.wb_layout`) per result, in the same order; this block
pairs the two streams and performs the writes. A descriptor with ``result = 0`` consumes no
result (an instruction that produces nothing still retires). ``retired`` pulses when a
descriptor with ``retire`` is done.

Ports: ``res`` (In, PE-array output), ``wb`` (In, descriptors), ``smem_w`` (Out, SMEM write:
addr, mask, data), ``dreq`` (Out, `read_request_layout`: one row) and ``ddata`` (Out,
`write_row_layout` with one strobe bit per word) to the write master, ``retired``,
``stall`` (a result waits for a write port). Single-lane results (CHAIN mode: the PE array
gives the word in every lane) are written with one lane's mask/strobe; the rows go out as
the PE array gives them, with no multiplexer between its output buffer and the writes.
One result per cycle; no latency of its own (the handshakes are combinational; put FIFOs
before the write master).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from reneta_hw.bus.axi_read import read_request_layout
from reneta_hw.bus.axi_write import write_row_layout
from reneta_hw.ccm.pe_array import pe_out_layout
from reneta_hw.config import AcceleratorConfig
from reneta_hw.ipm.sequencer import wb_layout
from reneta_hw.mem.smem import smem_write_layout

__all__ = ["WriteBack"]


class WriteBack(wiring.Component):
    def __init__(self, cfg: AcceleratorConfig, max_rows: int = 1):
        if not isinstance(cfg, AcceleratorConfig):
            raise TypeError(f"WriteBack: cfg must be an AcceleratorConfig, got {cfg!r}")
        self.cfg = cfg
        self.max_rows = max_rows
        super().__init__({
            "res": In(stream.Signature(pe_out_layout(cfg.fmt, cfg.num_pe, cfg.lmem_depth))),
            "wb": In(stream.Signature(wb_layout(cfg))),
            "smem_w": Out(stream.Signature(smem_write_layout(cfg))),
            "dreq": Out(stream.Signature(read_request_layout(cfg.axi_addr_width, max_rows))),
            "ddata": Out(stream.Signature(write_row_layout(cfg.row_bits, cfg.num_pe))),
            "retired": Out(1),
            "stall": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        Np = cfg.num_pe
        d = self.wb.payload
        res = self.res.payload
        row = Cat(*[res.data[p] for p in range(Np)])
        mask = Mux(d.single, Const(1, Np) << d.lane, Const((1 << Np) - 1, Np))
        have = self.wb.valid & (~d.result | self.res.valid)
        ports_ok = ((~d.dst0 | self.smem_w.ready)
                    & (~d.dst1 | (self.dreq.ready & self.ddata.ready)))
        go = have & ports_ok
        m.d.comb += [
            self.wb.ready.eq(go),
            self.res.ready.eq(go & d.result),
            self.smem_w.valid.eq(go & d.dst0),
            self.smem_w.payload.addr.eq(d.smem_row),
            self.smem_w.payload.mask.eq(mask),
            self.smem_w.payload.data.eq(row),
            self.dreq.valid.eq(go & d.dst1),
            self.dreq.payload.addr.eq(d.dram_addr),
            self.dreq.payload.rows.eq(1),
            self.ddata.valid.eq(go & d.dst1),
            self.ddata.payload.data.eq(row),
            self.ddata.payload.strb.eq(mask),
            self.retired.eq(go & d.retire),
            self.stall.eq(have & ~ports_ok),
        ]
        return m
