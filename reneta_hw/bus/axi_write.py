"""AXI4 write master: writes a stream of rows to DRAM (results, gradients, updated weights).

Why: the write-back path (OPM) produces rows, one per cycle, with addresses known per
instruction; DRAM wants INCR bursts on AW/W with a B response per burst. `AxiWriteMaster`
does that translation with the same burst rules as `AxiReadMaster` (INCR bursts aligned to
``max_burst`` beats, a power of two, so none crosses 4 KiB; up to ``max_outstanding`` bursts
awaiting their response) and
gives the controller what it needs to fence: ``idle`` and ``outstanding``.

Inputs: ``req`` (stream, `read_request_layout`: ``addr`` = byte address of the first row,
``rows``, 0 allowed) and ``data`` (stream, `write_row_layout`: ``data`` = one row and, if
``strobe_granularity`` is set, ``strb`` with one bit per ``strobe_granularity`` bits of the row,
e.g. 16 for one bit per 16-bit word: a single-lane write sets one bit). The ``data`` stream
carries exactly the rows of the requests, in request order; rows and requests are otherwise
independent streams (the data may lead or lag its request).

Row / bus ratios as for the read master: a row of k beats is sent low beat first; when a beat
holds several rows, a request may start in the middle of a beat and the beat's other rows are
not written (their strobes are 0). Address bits below the row (or beat, if larger) are
ignored.

How it works::

    req -> [rows -> beats] -> BurstSplitter -> fork -> AW (<= max_outstanding awaiting B)
                                                  \\-> burst-length FIFO -> W (WLAST)
    data -> [row -> beats, or rows -> beat] -> W register

W beats do not wait for their AW handshake (AXI allows data before address), and the AW never
waits for W data, so there is no deadlock with any compliant slave. ``BREADY`` is always high.

Latency (no stalls): AW leaves 2 cycles after the request handshake (1 when every request is
a single beat, see `burst_stage`); a row accepted in cycle t is on W in cycle t+1 (once its
burst is known). Throughput: one W beat per cycle.

Errors: SLVERR/DECERR on B sets the sticky ``error`` flag, ``error_addr`` (the start address
of that burst) and ``error_resp``; the first error is kept until ``error_clear`` (an error in
the same cycle as the clear is recorded).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .axi import (BOUNDARY, CACHE_NORMAL_BUFFERABLE, MAX_BURST_BEATS, Axi4Signature, Burst,
                  check_widths, size_code)
from .axi_read import (_bits_for, burst_stage, _Geometry, _need_int, check_row_ratio,
                       read_request_layout)

__all__ = ["AxiWriteMaster", "write_row_layout"]


def write_row_layout(row_bits: int, strb_bits: int | None = None) -> data.StructLayout:
    """Payload of the write master's ``data`` stream: ``data`` and, optionally, ``strb``."""
    fields = {"data": unsigned(row_bits)}
    if strb_bits:
        fields["strb"] = unsigned(strb_bits)
    return data.StructLayout(fields)


class AxiWriteMaster(wiring.Component):
    """AXI4 write master for rows (see the module docstring).

    Parameters: ``data_width``, ``addr_width``, ``id_width``, ``row_bytes`` (default: one
    beat), ``max_burst`` (1..256), ``max_outstanding`` (bursts awaiting B), ``max_rows``,
    ``strobe_granularity`` (None: every byte of a row is written; else bits per strobe bit, a
    multiple of 8 dividing the row and, for multi-beat rows, the bus), ``axi_id``.

    Ports: ``req`` (In stream), ``data`` (In stream), ``axi`` (Out `Axi4Signature`, write
    channels only), ``idle`` (every accepted request has been written and acknowledged),
    ``outstanding`` (bursts issued on AW awaiting B), ``error``/``error_addr``/``error_resp``
    (sticky), ``error_clear`` (In).
    """

    def __init__(self, data_width: int = 64, addr_width: int = 32, id_width: int = 1, *,
                 row_bytes: int | None = None, max_burst: int = 16, max_outstanding: int = 4,
                 max_rows: int = 65536, strobe_granularity: int | None = None, axi_id: int = 0):
        check_widths(data_width, addr_width, id_width)
        if row_bytes is None:
            row_bytes = data_width // 8
        check_row_ratio(row_bytes, data_width)
        _need_int("max_burst", max_burst, 1, MAX_BURST_BEATS)
        if max_burst & (max_burst - 1):
            raise ValueError(f"max_burst: must be a power of two, got {max_burst}")
        if max_burst > BOUNDARY // (data_width // 8):
            raise ValueError(f"max_burst: {max_burst} beats of {data_width // 8} bytes exceed "
                             f"a 4 KiB page ({BOUNDARY // (data_width // 8)} beats)")
        _need_int("max_outstanding", max_outstanding, 1, 256)
        _need_int("max_rows", max_rows, 1)
        _need_int("axi_id", axi_id, 0, (1 << id_width) - 1)
        row_bits = row_bytes * 8
        if strobe_granularity is not None:
            _need_int("strobe_granularity", strobe_granularity, 8)
            if (strobe_granularity % 8 or row_bits % strobe_granularity
                    or (row_bits > data_width and data_width % strobe_granularity)):
                raise ValueError(
                    f"strobe_granularity: must be a multiple of 8 that divides the row "
                    f"({row_bits} bits) and, for rows of several beats, the bus "
                    f"({data_width} bits); got {strobe_granularity}")
        self.geom = g = _Geometry(data_width, addr_width, row_bytes, max_burst, max_rows)
        self.data_width = data_width
        self.addr_width = addr_width
        self.id_width = id_width
        self.row_bytes = row_bytes
        self.row_bits = row_bits
        self.max_burst = max_burst
        self.max_outstanding = max_outstanding
        self.max_rows = max_rows
        self.strobe_granularity = strobe_granularity
        self.strb_bits = row_bits // strobe_granularity if strobe_granularity else None
        self.axi_id = axi_id
        super().__init__({
            "req": In(stream.Signature(read_request_layout(addr_width, max_rows))),
            "data": In(stream.Signature(write_row_layout(row_bits, self.strb_bits))),
            "axi": Out(Axi4Signature(data_width, addr_width, id_width, read=False)),
            "idle": Out(1),
            "outstanding": Out(range(max_outstanding + 1)),
            "error": Out(1),
            "error_addr": Out(addr_width),
            "error_resp": Out(2),
            "error_clear": In(1),
        })

    @classmethod
    def from_config(cls, cfg, **kw) -> "AxiWriteMaster":
        """Sized for an `AcceleratorConfig` (rows of ``cfg.row_bytes``; per-word strobes)."""
        kw.setdefault("max_rows", cfg.max_blocks * cfg.max_m)
        kw.setdefault("strobe_granularity", cfg.word_bits if cfg.word_bits % 8 == 0 else None)
        return cls(cfg.axi_data_width, cfg.axi_addr_width, cfg.axi_id_width,
                   row_bytes=cfg.row_bytes, **kw)

    def _row_byte_strobes(self):
        """Byte strobes (``row_bytes`` bits) of the row on ``data``."""
        if self.strobe_granularity is None:
            return Const((1 << self.row_bytes) - 1, self.row_bytes)
        rep = self.strobe_granularity // 8
        strb = self.data.payload.strb
        if rep == 1:
            return strb
        return Cat(*(strb[i].replicate(rep) for i in range(self.strb_bits)))

    def elaborate(self, platform):
        m = Module()
        g = self.geom
        aw, w, b = self.axi.aw, self.axi.w, self.axi.b

        # --- front: request -> transfer ----------------------------------------------------
        beat_addr, beats, lane0 = g.front(m, self.req.payload)
        split, splitting = burst_stage(m, g, self.max_burst, beat_addr, beats)
        empty_req = self.req.payload.rows == 0
        if g.split:
            info_layout = data.StructLayout({"rows": unsigned(_bits_for(self.max_rows)),
                                             "lane0": unsigned(g.lane_bits)})
            m.submodules.info = info = SyncFIFOBuffered(width=info_layout.size,
                                                        depth=self.max_outstanding + 2)
            m.d.comb += [
                split.i.valid.eq(self.req.valid & ~empty_req & info.w_rdy),
                info.w_data.eq(Cat(self.req.payload.rows, lane0)),
                info.w_en.eq(self.req.valid & ~empty_req & split.i.ready),
                self.req.ready.eq(empty_req | (split.i.ready & info.w_rdy)),
            ]
        else:
            m.d.comb += [
                split.i.valid.eq(self.req.valid & ~empty_req),
                self.req.ready.eq(empty_req | split.i.ready),
            ]

        # --- fork: each burst goes to AW and to the burst-length FIFO of the W side --------
        # (buffered: WLAST's compare and the queue's read enable start at its output
        # register; with a LUT-RAM read in front they were a path of 11.6 ns on ECP5)
        m.submodules.lens = lens = SyncFIFOBuffered(width=8, depth=self.max_outstanding + 2)
        outstanding = self.outstanding
        aw_done = Signal()
        len_done = Signal()
        can_issue = Signal()
        m.d.comb += can_issue.eq(outstanding != self.max_outstanding)
        m.d.comb += [
            aw.awid.eq(self.axi_id),
            aw.awaddr.eq(Cat(Const(0, g.lb), split.o.payload.addr)),
            aw.awlen.eq(split.o.payload.len),
            aw.awsize.eq(size_code(self.data_width)),
            aw.awburst.eq(Burst.INCR),
            aw.awcache.eq(CACHE_NORMAL_BUFFERABLE),
            aw.awvalid.eq(split.o.valid & ~aw_done & can_issue),
            lens.w_data.eq(split.o.payload.len),
            lens.w_en.eq(split.o.valid & ~len_done),
        ]
        aw_hs = Signal()
        len_wr = Signal()
        m.d.comb += [
            aw_hs.eq(aw.awvalid & aw.awready),
            len_wr.eq(lens.w_en & lens.w_rdy),
            split.o.ready.eq((aw_done | aw_hs) & (len_done | len_wr)),
        ]
        with m.If(split.o.valid & ~split.o.ready):
            m.d.sync += [aw_done.eq(aw_done | aw_hs), len_done.eq(len_done | len_wr)]
        with m.Else():
            m.d.sync += [aw_done.eq(0), len_done.eq(0)]

        # --- B: responses, outstanding count, errors ---------------------------------------
        m.submodules.addrs = addrs = SyncFIFO(width=g.beat_addr_bits, depth=self.max_outstanding)
        b_hs = Signal()
        m.d.comb += [
            b.bready.eq(1),
            b_hs.eq(b.bvalid),
            addrs.w_data.eq(split.o.payload.addr),
            addrs.w_en.eq(aw_hs),
            addrs.r_en.eq(b_hs),
        ]
        with m.If(aw_hs & ~b_hs):
            m.d.sync += outstanding.eq(outstanding + 1)
        with m.Elif(~aw_hs & b_hs):
            m.d.sync += outstanding.eq(outstanding - 1)
        with m.If(self.error_clear):
            m.d.sync += self.error.eq(0)
        with m.If(b_hs & b.bresp[1] & (~self.error | self.error_clear)):
            m.d.sync += [
                self.error.eq(1),
                self.error_addr.eq(Cat(Const(0, g.lb), addrs.r_data)),
                self.error_resp.eq(b.bresp),
            ]

        # --- W: beats from rows, WLAST from the burst lengths -------------------------------
        bcnt = Signal(8)
        wlast_next = Signal()
        m.d.comb += wlast_next.eq(bcnt == lens.r_data)
        can_load = Signal()
        m.d.comb += can_load.eq(~w.wvalid | w.wready)
        complete = Signal()          # a beat is completed into the W register this cycle
        with m.If(w.wvalid & w.wready):
            m.d.sync += w.wvalid.eq(0)
        with m.If(complete):
            m.d.sync += [
                w.wvalid.eq(1),
                w.wlast.eq(wlast_next),
                bcnt.eq(Mux(wlast_next, 0, bcnt + 1)),
            ]
        m.d.comb += lens.r_en.eq(complete & wlast_next)

        row = self.data.payload.data
        row_strb = self._row_byte_strobes()
        if g.split:
            rpb, rb = g.rows_per_beat, self.row_bytes
            cur = data.View(info_layout, info.r_data)
            done_rows = Signal(_bits_for(self.max_rows))
            lane = Signal(g.lane_bits)
            first = Signal(init=1)
            lane_eff = Signal(g.lane_bits)
            last_row = Signal()
            accept = Signal()
            m.d.comb += [
                lane_eff.eq(Mux(first, cur.lane0, lane)),
                last_row.eq(done_rows == cur.rows - 1),
                accept.eq(self.data.valid & info.r_rdy & lens.r_rdy & can_load),
                self.data.ready.eq(accept),
                complete.eq(accept & ((lane_eff == rpb - 1) | last_row)),
                info.r_en.eq(accept & last_row),
            ]
            with m.If(w.wvalid & w.wready):
                m.d.sync += w.wstrb.eq(0)
            with m.If(accept):
                m.d.sync += [
                    done_rows.eq(Mux(last_row, 0, done_rows + 1)),
                    lane.eq(lane_eff + 1),
                    first.eq(last_row),
                ]
                with m.Switch(lane_eff):
                    for i in range(rpb):
                        with m.Case(i):
                            m.d.sync += w.wdata.word_select(i, self.row_bits).eq(row)
                            with m.If(w.wvalid):     # the previous beat leaves: start afresh
                                m.d.sync += w.wstrb.eq(row_strb if i == 0 else
                                                       Cat(Const(0, i * rb), row_strb))
                            with m.Else():
                                m.d.sync += w.wstrb.word_select(i, rb).eq(row_strb)
        else:
            k = g.beats_per_row
            dw, db = self.data_width, self.data_width // 8
            accept = Signal()
            m.d.comb += accept.eq(self.data.valid & lens.r_rdy & can_load)
            m.d.comb += complete.eq(accept)
            if k == 1:
                m.d.comb += self.data.ready.eq(accept)
                with m.If(accept):
                    m.d.sync += [w.wdata.eq(row), w.wstrb.eq(row_strb)]
            else:
                j = Signal(range(k))
                m.d.comb += self.data.ready.eq(accept & (j == k - 1))
                with m.If(accept):
                    m.d.sync += [
                        w.wdata.eq(row.word_select(j, dw)),
                        w.wstrb.eq(row_strb.word_select(j, db)),
                        j.eq(Mux(j == k - 1, 0, j + 1)),
                    ]

        m.d.comb += self.idle.eq(~splitting & ~split.o.valid & (outstanding == 0)
                                 & (lens.level == 0) & ~w.wvalid)
        return m
