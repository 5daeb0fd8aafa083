"""AXI4 read master: the DRAM request generator (DRG) of the accelerator.

Why: weights and time series live in DRAM. The compute pipeline wants them as a plain stream
of *rows* (``num_pe`` words each, one row per cycle) in the order it asked for them; DRAM wants
long INCR bursts, several of them in flight, none crossing a 4 KiB page. `AxiReadMaster`
translates between the two, so the rest of the design never sees AXI.

Request (``req`` stream, payload `read_request_layout`): ``addr`` (byte address of the first
row) and ``rows`` (number of rows, 0 is legal and produces nothing). Output (``data`` stream):
one row per beat, in request order, ``last`` set on the last row of each request.

Supported row / bus ratios (checked in the constructor):

* ``row_bytes * 8 == data_width``: one AXI beat per row;
* ``row_bytes * 8 == k * data_width`` (any integer k >= 2): a row is assembled from k
  consecutive beats, the first beat in the low bits;
* ``data_width == k * row_bytes * 8`` (k a power of two): a beat holds k rows (row j of a beat
  in bits ``[j*row_bits, (j+1)*row_bits)``), a request may start in the middle of a beat, and
  the unused rows of its first and last beat are dropped.

Address alignment: the hardware ignores the address bits below the beat (``data_width / 8``
bytes) when a row is at least a beat, and below ``row_bytes`` when a beat holds several rows.
Callers must keep addresses aligned (the simulation DRAM, ``sim.axi_memory``, rejects
unaligned bursts); the instruction set's DRAM addresses are row aligned by construction.

How it works::

    req -> [front: rows -> beats] -> BurstSplitter -> AR (gated: <= max_outstanding in flight,
            \\-> info FIFO (rows, first lane)            and R buffer space reserved)
    R -> data FIFO (buffer_beats) -> [row assembly / split] -> data

Bursts (`BurstSplitter`) are aligned to ``max_burst`` beats (a power of two): a transfer's first
burst runs to the next multiple of ``max_burst`` beats, so no burst crosses 4 KiB; ``ARSIZE``
is always the full bus width.

Space for every beat of a burst is reserved in the data FIFO before its AR is issued, so
``RREADY`` is always high: the master never stalls the interconnect, whatever the consumer
does. All bursts use one ID (``axi_id``), so AXI returns them in order.

Latency (nothing stalls): ARVALID rises 2 cycles after the request handshake (1 when every
request is a single beat: a two-entry buffer then replaces the burst splitter); a row is on
``data`` 4 cycles after its (last) R beat (a register slice, the FIFO, then a two-entry
output buffer). Throughput: one beat per cycle sustained, bursts back to back, as long as
``max_outstanding * max_burst`` and ``buffer_beats`` cover the memory's latency (for
single-row requests: ``max_outstanding`` >= latency + 4).

Errors: a SLVERR/DECERR on any R beat sets the sticky ``error`` flag with ``error_addr`` (the
byte address of that beat) and ``error_resp``; the first error is kept until ``error_clear``
(an error in the same cycle as the clear is recorded).
The data of a failing beat is still delivered (the stream stays in step with the requests).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from reneta_hw.mem.fifo import PingPongBuffer

from .axi import (BOUNDARY, CACHE_NORMAL_BUFFERABLE, MAX_BURST_BEATS, Axi4Signature, Burst,
                  check_widths, size_code)

#: requests that can be between the request port and the output besides the bursts in flight
#: (splitter pipeline, AR register, data FIFO latency, output stage)
INFO_SLACK = 6

__all__ = ["BurstSplitter", "burst_stage", "AxiReadMaster", "read_request_layout", "row_layout",
           "check_row_ratio"]


def _bits_for(n: int) -> int:
    return max(1, int(n).bit_length())


def _need_int(name, value, lo, hi=None):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name}: must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"from {lo} to {hi}"
        raise ValueError(f"{name}: must be {rng}, got {value}")


def check_row_ratio(row_bytes: int, data_width: int) -> None:
    """Validate the row / bus width ratio (see the module docstring)."""
    _need_int("row_bytes", row_bytes, 1)
    row_bits = row_bytes * 8
    if row_bits % data_width == 0:
        return
    if data_width % row_bits == 0 and (data_width // row_bits) & (data_width // row_bits - 1) == 0:
        return
    raise ValueError(
        f"row_bytes: a row of {row_bits} bits must be a multiple of data_width={data_width}, "
        f"or data_width a power-of-two multiple of it")


def read_request_layout(addr_width: int, max_rows: int) -> data.StructLayout:
    """Payload of a read or write request: byte address and number of rows (0 allowed)."""
    return data.StructLayout({"addr": unsigned(addr_width), "rows": unsigned(_bits_for(max_rows))})


def row_layout(row_bits: int) -> data.StructLayout:
    """Payload of the read master's output: one row, ``last`` on a request's last row."""
    return data.StructLayout({"data": unsigned(row_bits), "last": unsigned(1)})


class _Geometry:
    """Derived numbers shared by the read and write masters."""

    def __init__(self, data_width, addr_width, row_bytes, max_burst, max_rows):
        self.data_width = data_width
        self.addr_width = addr_width
        self.beat_bytes = data_width // 8
        self.lb = exact_log2(self.beat_bytes)
        self.row_bytes = row_bytes
        self.row_bits = row_bytes * 8
        if self.row_bits >= data_width:
            self.beats_per_row = self.row_bits // data_width      # k >= 1
            self.rows_per_beat = 1
        else:
            self.beats_per_row = 1
            self.rows_per_beat = data_width // self.row_bits       # power of two >= 2
        self.split = self.rows_per_beat > 1
        self.row_lb = exact_log2(row_bytes) if self.split else None
        self.lane_bits = max(1, exact_log2(self.rows_per_beat)) if self.split else 1
        # largest number of beats one request can need
        if self.split:
            self.max_beats = (self.rows_per_beat - 1 + max_rows + self.rows_per_beat - 1) \
                // self.rows_per_beat
        else:
            self.max_beats = max_rows * self.beats_per_row
        self.beats_bits = _bits_for(self.max_beats)
        self.beat_addr_bits = addr_width - self.lb
        self.max_burst = max_burst

    def front(self, m, req_payload):
        """Beat address, number of beats and first lane of a request (combinational)."""
        addr = req_payload.addr
        rows = req_payload.rows
        beat_addr = addr[self.lb:]
        if self.split:
            lane0 = addr[self.row_lb:self.lb]
            beats = (lane0 + rows + (self.rows_per_beat - 1)) >> exact_log2(self.rows_per_beat)
        else:
            lane0 = Const(0, 1)
            beats = rows * self.beats_per_row if self.beats_per_row > 1 else rows
        return beat_addr, beats, lane0


class BurstSplitter(wiring.Component):
    """Cuts a transfer (beat address, beat count >= 1) into AXI INCR bursts.

    Bursts are aligned to ``max_burst`` beats (a power of two): the first burst of a transfer
    runs up to the next multiple of ``max_burst`` beats, the next ones are full, the last one
    takes the rest. As ``max_burst`` divides a 4 KiB page, no burst crosses a 4 KiB boundary,
    and the boundary arithmetic reduces to the low ``log2(max_burst)`` address bits (short
    paths; aligned bursts also suit DRAM controllers). An unaligned transfer costs at most one
    extra burst.

    One burst per cycle; a new transfer is accepted in the cycle its predecessor's last burst
    leaves, so back-to-back single-beat transfers also run at one burst per cycle. Latency: a
    transfer accepted in cycle t shows its first burst on ``o`` in cycle t+2.

    Ports: ``i`` (payload ``addr``: beat address, ``beats``), ``o`` (payload ``addr``: beat
    address, ``len``: AXI ``AxLEN`` = beats - 1; registered), ``busy`` (a transfer is being
    cut; does not include a burst waiting on ``o``).
    """

    @staticmethod
    def burst_layout(beat_addr_bits: int) -> data.StructLayout:
        """Payload of ``o``: a burst's beat address and AXI ``AxLEN``."""
        return data.StructLayout({"addr": unsigned(beat_addr_bits), "len": unsigned(8)})

    def __init__(self, beat_addr_bits: int, beats_bits: int, beat_bytes: int, max_burst: int):
        _need_int("beat_addr_bits", beat_addr_bits, 1)
        _need_int("beats_bits", beats_bits, 1)
        _need_int("max_burst", max_burst, 1, MAX_BURST_BEATS)
        if max_burst & (max_burst - 1):
            raise ValueError(f"max_burst: must be a power of two, got {max_burst}")
        if beat_bytes not in (1, 2, 4, 8, 16, 32, 64, 128):
            raise ValueError(f"beat_bytes: must be a power of two from 1 to 128, got {beat_bytes}")
        if max_burst * beat_bytes > BOUNDARY:
            raise ValueError(f"max_burst: {max_burst} beats of {beat_bytes} bytes exceed a "
                             "4 KiB page")
        self.beat_addr_bits = beat_addr_bits
        self.beats_bits = beats_bits
        self.beat_bytes = beat_bytes
        self.max_burst = max_burst
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "addr": unsigned(beat_addr_bits), "beats": unsigned(beats_bits)}))),
            "o": Out(stream.Signature(self.burst_layout(beat_addr_bits))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        k = exact_log2(self.max_burst)
        cur_addr = Signal(self.beat_addr_bits)
        left_m1 = Signal(self.beats_bits)        # beats still to cut, minus one
        busy = self.busy

        # the burst that starts at cur_addr: up to the next max_burst-aligned beat
        last = Signal()
        blen_m1 = Signal(8)
        if k == 0:
            m.d.comb += [last.eq(left_m1 == 0), blen_m1.eq(0)]
            step_m1 = Const(0, 1)
        else:
            low = cur_addr[:k]
            step_m1 = ~low                           # (max_burst - low) - 1, k bits
            hi_zero = (left_m1[k:] == 0) if self.beats_bits > k else Const(1, 1)
            m.d.comb += [
                last.eq(hi_zero & (left_m1[:k] <= step_m1)),
                blen_m1.eq(Mux(last, left_m1[:k], step_m1)),
            ]

        emit = Signal()
        m.d.comb += emit.eq(busy & (~self.o.valid | self.o.ready))
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(emit):
            m.d.sync += [
                self.o.valid.eq(1),
                self.o.payload.addr.eq(cur_addr),
                self.o.payload.len.eq(blen_m1),
                # next burst starts at the next aligned address (unused after the last)
                cur_addr.eq(Cat(Const(0, k), cur_addr[k:] + 1) if k else cur_addr + 1),
                left_m1.eq(left_m1 - step_m1 - 1),
                busy.eq(~last),
            ]
        m.d.comb += self.i.ready.eq(~busy | (emit & last))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                cur_addr.eq(self.i.payload.addr),
                left_m1.eq(self.i.payload.beats - 1),
                busy.eq(1),
            ]
        return m


def burst_stage(m, g: _Geometry, max_burst: int, beat_addr, beats):
    """The masters' request -> bursts stage, added to ``m`` as ``split``; returns it and its
    "still cutting a transfer" flag.

    A `BurstSplitter`; or, when every request is a single beat (``g.max_beats == 1``, e.g.
    one row per request), a `PingPongBuffer` in its place: a cycle faster, and the AW/AR
    gate's ready (outstanding count, buffer space, xREADY) stops at its pointer and flags
    instead of running through the splitter into the request port and whatever feeds it
    (through a `SkidBuffer` it was the clock enable of every address bit: on ECP5, 7.6 ns of
    route from the gate to them)."""
    if g.max_beats == 1:
        m.submodules.split = split = PingPongBuffer(BurstSplitter.burst_layout(g.beat_addr_bits))
        splitting = ~split.i.ready
    else:
        m.submodules.split = split = BurstSplitter(g.beat_addr_bits, g.beats_bits,
                                                   g.beat_bytes, max_burst)
        splitting = split.busy
        m.d.comb += split.i.payload.beats.eq(beats)
    m.d.comb += split.i.payload.addr.eq(beat_addr)
    return split, splitting


class AxiReadMaster(wiring.Component):
    """AXI4 read master returning DRAM rows as a stream (see the module docstring).

    Parameters: ``data_width`` (AXI data bits, 32..1024), ``addr_width``, ``id_width``,
    ``row_bytes`` (bytes of one row), ``max_burst`` (beats per burst, 1..256),
    ``max_outstanding`` (bursts in flight), ``max_rows`` (largest ``rows`` of a request),
    ``buffer_beats`` (R data FIFO; default ``max_burst * max_outstanding``, at least
    ``max_burst``), ``axi_id`` (the ``ARID`` driven).

    Ports: ``req`` (In stream, `read_request_layout`), ``data`` (Out stream, `row_layout`),
    ``axi`` (Out `Axi4Signature` with read channels only), ``idle`` (nothing accepted is still
    pending), ``outstanding`` (bursts in flight), ``error``/``error_addr``/``error_resp``
    (sticky), ``error_clear`` (In).
    """

    def __init__(self, data_width: int = 64, addr_width: int = 32, id_width: int = 1, *,
                 row_bytes: int | None = None, max_burst: int = 16, max_outstanding: int = 4,
                 max_rows: int = 65536, buffer_beats: int | None = None, axi_id: int = 0):
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
        if buffer_beats is None:
            buffer_beats = max(max_burst * max_outstanding, 2)
        _need_int("buffer_beats", buffer_beats, max(max_burst, 2))
        _need_int("axi_id", axi_id, 0, (1 << id_width) - 1)
        self.geom = g = _Geometry(data_width, addr_width, row_bytes, max_burst, max_rows)
        self.data_width = data_width
        self.addr_width = addr_width
        self.id_width = id_width
        self.row_bytes = row_bytes
        self.row_bits = g.row_bits
        self.max_burst = max_burst
        self.max_outstanding = max_outstanding
        self.max_rows = max_rows
        self.buffer_beats = buffer_beats
        self.axi_id = axi_id
        super().__init__({
            "req": In(stream.Signature(read_request_layout(addr_width, max_rows))),
            "data": Out(stream.Signature(row_layout(g.row_bits))),
            "axi": Out(Axi4Signature(data_width, addr_width, id_width, write=False)),
            "idle": Out(1),
            "outstanding": Out(range(max_outstanding + 1)),
            "error": Out(1),
            "error_addr": Out(addr_width),
            "error_resp": Out(2),
            "error_clear": In(1),
        })

    @classmethod
    def from_config(cls, cfg, **kw) -> "AxiReadMaster":
        """Sized for an `AcceleratorConfig`: DRAM rows of ``cfg.row_bytes``, AXI widths."""
        kw.setdefault("max_rows", cfg.max_blocks * cfg.max_m)
        return cls(cfg.axi_data_width, cfg.axi_addr_width, cfg.axi_id_width,
                   row_bytes=cfg.row_bytes, **kw)

    def elaborate(self, platform):
        m = Module()
        g = self.geom
        ar, r = self.axi.ar, self.axi.r

        # --- front: request -> transfer (beats) + info for the output side ---------------
        beat_addr, beats, lane0 = g.front(m, self.req.payload)
        split, splitting = burst_stage(m, g, self.max_burst, beat_addr, beats)
        info_layout = data.StructLayout({"rows": unsigned(_bits_for(self.max_rows)),
                                         "lane0": unsigned(g.lane_bits)})
        m.submodules.info = info = SyncFIFOBuffered(width=info_layout.size,
                                                    depth=self.max_outstanding + INFO_SLACK)
        empty_req = self.req.payload.rows == 0
        m.d.comb += [
            split.i.valid.eq(self.req.valid & ~empty_req & info.w_rdy),
            info.w_data.eq(Cat(self.req.payload.rows, lane0)),
            info.w_en.eq(self.req.valid & ~empty_req & split.i.ready),
            self.req.ready.eq(empty_req | (split.i.ready & info.w_rdy)),
        ]

        # --- AR: gated by outstanding bursts and reserved buffer space -------------------
        outstanding = self.outstanding
        free = Signal(range(self.buffer_beats + 1), init=self.buffer_beats)
        can_issue = Signal()
        m.d.comb += can_issue.eq((outstanding != self.max_outstanding)
                                 & (free > split.o.payload.len))
        m.d.comb += [
            ar.arid.eq(self.axi_id),
            ar.araddr.eq(Cat(Const(0, g.lb), split.o.payload.addr)),
            ar.arlen.eq(split.o.payload.len),
            ar.arsize.eq(size_code(self.data_width)),
            ar.arburst.eq(Burst.INCR),
            ar.arcache.eq(CACHE_NORMAL_BUFFERABLE),
            ar.arvalid.eq(split.o.valid & can_issue),
            split.o.ready.eq(ar.arready & can_issue),
        ]
        ar_hs = Signal()
        m.d.comb += ar_hs.eq(ar.arvalid & ar.arready)

        # burst start addresses, for the error report
        m.submodules.addrs = addrs = SyncFIFO(width=g.beat_addr_bits, depth=self.max_outstanding)
        m.d.comb += [addrs.w_data.eq(split.o.payload.addr), addrs.w_en.eq(ar_hs)]

        # --- R: a register slice, then the data FIFO --------------------------------------
        # Every beat has its buffer space reserved at AR, so R is always ready and a beat
        # can wait a cycle in a plain register: the FIFO's write enable (a LUT RAM's,
        # width/4 cells) then starts at a flip-flop, not at the bus's RVALID.
        # R cannot wait, so every reserved beat must fit: a 2-deep `SyncFIFOBuffered`
        # refuses its second item in the cycle its one-entry inner memory hands the first
        # to the output register; from depth 3 on, ``depth`` items always fit.
        # (A LUT-RAM FIFO with a ping-pong head here, whose consumer's ready reaches only
        # the head's flags, routed worse on ECP5: 94 and 103 MHz on two seeds, against
        # 103 MHz and 3,039 instead of 5,467 endpoints over 6.67 ns with this one on the
        # same seed.)
        m.submodules.buf = buf = SyncFIFOBuffered(width=self.data_width,
                                                  depth=max(self.buffer_beats, 3))
        r_hs = Signal()                   # a beat in the slice (it enters the FIFO now)
        r_in = Signal.like(r.rdata, reset_less=True)
        r_in_last = Signal(reset_less=True)
        r_in_resp = Signal.like(r.rresp, reset_less=True)
        m.d.comb += r.rready.eq(1)
        m.d.sync += [r_hs.eq(r.rvalid), r_in.eq(r.rdata), r_in_last.eq(r.rlast),
                     r_in_resp.eq(r.rresp)]
        m.d.comb += [buf.w_data.eq(r_in), buf.w_en.eq(r_hs)]
        r_last = Signal()
        m.d.comb += [r_last.eq(r_hs & r_in_last), addrs.r_en.eq(r_last)]
        with m.If(ar_hs & ~r_last):
            m.d.sync += outstanding.eq(outstanding + 1)
        with m.Elif(~ar_hs & r_last):
            m.d.sync += outstanding.eq(outstanding - 1)

        beat_in_burst = Signal(8)
        with m.If(r_hs):
            m.d.sync += beat_in_burst.eq(Mux(r_in_last, 0, beat_in_burst + 1))
        with m.If(self.error_clear):
            m.d.sync += self.error.eq(0)
        with m.If(r_hs & r_in_resp[1] & (~self.error | self.error_clear)):
            m.d.sync += [
                self.error.eq(1),
                self.error_addr.eq(Cat(Const(0, g.lb), addrs.r_data + beat_in_burst)),
                self.error_resp.eq(r_in_resp),
            ]

        # --- output: rows from beats ------------------------------------------------------
        cur = data.View(info_layout, info.r_data)
        done_rows = Signal(_bits_for(self.max_rows))
        last_row = Signal()
        m.d.comb += last_row.eq(done_rows == cur.rows - 1)
        # rows leave through a two-entry buffer of this block's own: the data FIFO's read
        # (its level's carry chain, ``free``, the row counter) then waits on flip-flops
        # beside it, not on the consumer's ready across the chip (bf16 on ECP5: the
        # consumer's landing buffers placed far away made that loop three long routes,
        # 13.5 ns)
        m.submodules.out_buf = out_buf = PingPongBuffer(self.data.payload.shape())
        wiring.connect(m, out_buf.o, wiring.flipped(self.data))
        out = out_buf.i
        out_hs = Signal()
        m.d.comb += out_hs.eq(out.valid & out.ready)
        with m.If(out_hs):
            m.d.sync += done_rows.eq(Mux(last_row, 0, done_rows + 1))
        m.d.comb += [info.r_en.eq(out_hs & last_row), out.payload.last.eq(last_row)]
        assembling = Const(0, 1)

        if g.split:
            lane = Signal(g.lane_bits)
            first = Signal(init=1)
            lane_eff = Signal(g.lane_bits)
            m.d.comb += [
                lane_eff.eq(Mux(first, cur.lane0, lane)),
                out.valid.eq(buf.r_rdy & info.r_rdy),
                out.payload.data.eq(buf.r_data.word_select(lane_eff, g.row_bits)),
                buf.r_en.eq(out_hs & ((lane_eff == g.rows_per_beat - 1) | last_row)),
            ]
            with m.If(out_hs):
                m.d.sync += [lane.eq(lane_eff + 1), first.eq(last_row)]
        elif g.beats_per_row == 1:
            m.d.comb += [
                out.valid.eq(buf.r_rdy & info.r_rdy),
                out.payload.data.eq(buf.r_data),
                buf.r_en.eq(out_hs),
            ]
        else:
            k = g.beats_per_row
            parts = Signal(self.data_width * (k - 1))
            j = Signal(range(k))
            at_last = Signal()
            m.d.comb += at_last.eq(j == k - 1)
            m.d.comb += [
                out.valid.eq(buf.r_rdy & info.r_rdy & at_last),
                out.payload.data.eq(Cat(parts, buf.r_data)),
                buf.r_en.eq(Mux(at_last, out_hs, 1)),
            ]
            with m.If(buf.r_rdy & ~at_last):
                with m.Switch(j):
                    for i in range(k - 1):
                        with m.Case(i):
                            m.d.sync += parts.word_select(i, self.data_width).eq(buf.r_data)
                m.d.sync += j.eq(j + 1)
            with m.If(out_hs):
                m.d.sync += j.eq(0)
            assembling = j != 0

        beat_read = Signal()
        m.d.comb += beat_read.eq(buf.r_en & buf.r_rdy)
        with m.If(ar_hs):
            m.d.sync += free.eq(free - split.o.payload.len - 1 + beat_read)
        with m.Elif(beat_read):
            m.d.sync += free.eq(free + 1)

        m.d.comb += self.idle.eq(~splitting & ~split.o.valid
                                 & (free == self.buffer_beats) & ~info.r_rdy & ~assembling
                                 & ~out_buf.o.valid)
        return m
