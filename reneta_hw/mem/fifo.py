"""Stream FIFOs and pipeline stages: `amaranth.lib.stream` links with storage in between.

Why: every block of the accelerator talks through valid/ready streams, and the reference
decouples its blocks with FIFOs that have **no overflow/underflow protection**
(reference §3.2: pushing a full ``FIFO_STD`` silently corrupts it). Here a FIFO is only
reachable through a stream interface whose ``ready``/``valid`` are the FIFO's own
``w_rdy``/``r_rdy``, so overflow and underflow cannot be expressed at all.
`PipelineRegister`, `SkidBuffer`, `PingPongBuffer` and `SplitBuffer` are one-deep/two-deep
stages that cut long combinational paths between blocks without losing throughput.

Summary (a "transfer" is a cycle with ``valid & ready`` high; latency = cycles from the
transfer into ``i`` to ``o.valid`` going high for that item, with an empty stage):

====================== ======= ======================= =========================================
block                  latency cut paths               storage
====================== ======= ======================= =========================================
StreamFIFO buffered    2       valid, data, ready      ``SyncFIFOBuffered`` (block RAM friendly)
StreamFIFO unbuffered  1       valid, data, ready      ``SyncFIFO`` (async-read RAM: LUT RAM)
StreamFIFO prefetch    4       valid, data, ready      `PrefetchFIFO` (block RAM, read ahead)
PipelineRegister       1       valid, data             1 register; ``i.ready`` is combinational
SkidBuffer             1       valid, data, ready      2 registers (output + skid)
PingPongBuffer         1       valid, data, ready      2 registers, 2:1 mux on the output
SplitBuffer            1       valid, data, ready      wide fields ping-pong, the others skid
====================== ======= ======================= =========================================

All of them move one item per cycle when neither side stalls (FIFOs from depth 3 buffered,
depth 2 unbuffered), keep order, never drop or duplicate. A stage "cuts" a path when no
combinational path crosses it (e.g. from ``o.ready`` to ``i.ready``).

The stages' payload registers are reset-less: only flags and pointers are reset (a payload
is never looked at without its valid), so the reset net reaches the control state only and
not the thousands of data bits of a 16-PE design.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .bram import _Validated
from .ecp5_bram import ecp5_fifo_ram, ecp5_fifo_ram_blocks, uses_ecp5_bram

__all__ = ["StreamFIFO", "PrefetchFIFO", "PipelineRegister", "SkidBuffer", "PingPongBuffer",
           "SplitBuffer"]


def _check_shape(owner: str, shape):
    try:
        width = Shape.cast(shape).width
    except TypeError as e:
        raise ValueError(f"{owner}.shape: must be shape-like (an int, unsigned/signed, or an "
                         f"amaranth.lib.data layout), got {shape!r}") from e
    if width < 1:
        raise ValueError(f"{owner}.shape: must be at least 1 bit wide, got {shape!r}")
    return width


def _bits(payload):
    """The payload as a plain value (a `data.View` is unwrapped)."""
    return payload.as_value() if isinstance(payload, data.View) else payload


class StreamFIFO(wiring.Component):
    """A first-in first-out queue between two streams of ``shape`` (``depth`` items).

    Why: blocks of the accelerator run at their own pace; a FIFO between them absorbs the
    difference, and a deep one (e.g. the 256-entry non-zero index lists) holds a whole list.

    Parameters
    ----------
    shape : shape-like
        Payload shape, an int width, ``signed(n)`` or an `amaranth.lib.data` layout
        (``o.payload`` is then a view of that layout).
    depth : int (>= 1)
        Items it can hold; any positive value (not only powers of two).
    buffered : bool
        ``True`` (default): `SyncFIFOBuffered` whose output is the block RAM's read
        register: maps to block RAM; an item written into an empty FIFO is offered on ``o``
        2 cycles later. Full throughput needs ``depth >= 3``: depths 1 and 2 alternate
        full/empty (one item every 2 cycles; use `PipelineRegister` or `SkidBuffer` for a
        one- or two-item stage).
        ``False``: `SyncFIFO` with an asynchronous read (LUT RAM or flip-flops), 1 cycle
        from ``i`` to ``o``; full throughput from ``depth >= 2`` (depth 1 cannot take an item
        in the cycle it gives one, so it runs at half rate).
    prefetch : bool
        ``True`` (with ``buffered``): a `PrefetchFIFO` (``depth >= 5``): ``o`` comes from
        registers the block RAM is read ahead into, 4 cycles from ``i`` to ``o``; for deep
        queues whose consumer starts logic from the payload (see `PrefetchFIFO`).

    Ports
    -----
    ``i``: `stream.Signature` (in), ``i.ready`` = the FIFO is not full (independent of
    ``o.ready``: no combinational path from ``o`` to ``i``).
    ``o``: `stream.Signature` (out), ``o.valid`` = the FIFO is not empty.
    ``level``: number of items held (0 .. depth); updated after each edge; an item counts
    from the edge it is accepted at until the edge it leaves at (buffered FIFOs count the
    item in their output register too).
    """

    def __init__(self, shape, depth: int, *, buffered: bool = True, prefetch: bool = False):
        owner = type(self).__name__
        with _Validated(self):
            self.width = _check_shape(owner, shape)
            if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
                raise ValueError(f"{owner}.depth: must be a positive integer, got {depth!r}")
            for name, flag in (("buffered", buffered), ("prefetch", prefetch)):
                if not isinstance(flag, bool):
                    raise ValueError(f"{owner}.{name}: must be True or False, got {flag!r}")
            if prefetch and not buffered:
                raise ValueError(f"{owner}.prefetch: needs buffered=True")
            if prefetch and depth < PrefetchFIFO.MIN_DEPTH:
                raise ValueError(f"{owner}.depth: a prefetching FIFO holds at least "
                                 f"{PrefetchFIFO.MIN_DEPTH} items, got {depth}")
        self.shape = shape
        self.depth = depth
        self.buffered = buffered
        self.prefetch = prefetch
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        cls = (PrefetchFIFO if self.prefetch else
               SyncFIFOBuffered if self.buffered else SyncFIFO)
        m.submodules.fifo = fifo = cls(width=self.width, depth=self.depth)
        m.d.comb += [
            fifo.w_data.eq(_bits(self.i.payload)),
            fifo.w_en.eq(self.i.valid),
            self.i.ready.eq(fifo.w_rdy),
            self.o.payload.eq(fifo.r_data),
            self.o.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.o.ready),
            self.level.eq(fifo.level),
        ]
        return m


class PrefetchFIFO(wiring.Component):
    """``PrefetchFIFO(width=, depth=)``: a block-RAM FIFO whose read data never feeds logic
    straight from the block RAM. Same ports and meaning as `SyncFIFOBuffered` (``w_data``,
    ``w_en``, ``w_rdy``, ``r_data``, ``r_en``, ``r_rdy``, ``level``).

    Why: in `SyncFIFOBuffered` the read data is the block RAM's read latch, 4.3 ns after
    the clock on ECP5 before any route, and the consumer's ready is that latch's clock
    enable. Here the block RAM is read every cycle into a free-running register (no
    enable, so the placer can put it next to the block; elaborated for ECP5 it is the
    DP16KD's own output register, with no collision bypass behind the block), and items
    are read ahead into a ring of `RING` registers that ``r_data`` comes from. A read is
    issued only when the ring has room for it, so the two read stages never stall. The
    consumer's ready reaches the ring's pointers and flags and the read-ahead decision,
    never the data registers' clock enables; ``r_rdy`` is a flip-flop.

    Timing: an item written into an empty FIFO is on ``r_data`` 4 cycles later; one item
    per cycle in and out when neither side stalls. ``depth - RING`` items wait in the
    memory (at least 2), the rest in the read stages and the ring. Costs ``RING + 1``
    registers of ``width`` bits (``RING`` on ECP5) and a ``RING``:1 multiplexer besides
    the memory.
    """

    RING = 3
    #: the least ``depth``: the ring and two items in the memory
    MIN_DEPTH = RING + 2

    def __init__(self, *, width: int, depth: int):
        owner = type(self).__name__
        with _Validated(self):
            if isinstance(width, bool) or not isinstance(width, int) or width < 1:
                raise ValueError(f"{owner}.width: must be a positive integer, got {width!r}")
            if isinstance(depth, bool) or not isinstance(depth, int) \
                    or depth < self.MIN_DEPTH:
                raise ValueError(f"{owner}.depth: must be an integer >= {self.MIN_DEPTH}, "
                                 f"got {depth!r}")
        self.width = width
        self.depth = depth
        super().__init__({
            "w_data": In(width), "w_en": In(1), "w_rdy": Out(1),
            "r_data": Out(width), "r_en": In(1), "r_rdy": Out(1),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        R, Dm = self.RING, self.depth - self.RING
        w_ptr = Signal(range(Dm))
        r_ptr = Signal(range(Dm))
        stored = Signal(range(Dm + 1))             # items in the memory, not yet read
        in_use = Signal(range(R + 1))              # ring entries taken or reserved
        fetched = Signal()                         # the read latch holds an item
        staged = Signal()                          # the stage register holds an item
        stage = Signal(self.width, reset_less=True)
        write = self.w_en & self.w_rdy
        if uses_ecp5_bram(platform) and ecp5_fifo_ram_blocks(Dm, self.width):
            # the block's own output register is the stage register
            m.d.comb += stage.eq(ecp5_fifo_ram(m, depth=Dm, width=self.width, waddr=w_ptr,
                                               wdata=self.w_data, wen=write, raddr=r_ptr,
                                               name="storage"))
        else:
            m.submodules.storage = storage = Memory(shape=self.width, depth=Dm, init=[])
            wp = storage.write_port()
            rp = storage.read_port(domain="sync")      # enabled every cycle
            m.d.comb += [wp.addr.eq(w_ptr), wp.data.eq(self.w_data), wp.en.eq(write),
                         rp.addr.eq(r_ptr)]
            m.d.sync += stage.eq(rp.data)
        ring = [Signal(self.width, name=f"ring{k}", reset_less=True) for k in range(R)]
        ring_w = Signal(range(R))
        ring_r = Signal(range(R))
        held = Signal(range(R + 1))                # items in the ring

        pop = self.r_rdy & self.r_en
        issue = (stored != 0) & ((in_use != R) | pop)

        def step(ptr, n):
            return Mux(ptr == n - 1, 0, ptr + 1)

        out = ring[R - 1]
        for k in reversed(range(R - 1)):
            out = Mux(ring_r == k, ring[k], out)

        m.d.comb += [
            self.w_rdy.eq(stored != Dm),
            self.r_data.eq(out),
            self.level.eq(stored + in_use),
        ]
        with m.If(write):
            m.d.sync += w_ptr.eq(step(w_ptr, Dm))
        with m.If(issue):
            m.d.sync += r_ptr.eq(step(r_ptr, Dm))
        m.d.sync += [stored.eq(stored + write - issue), in_use.eq(in_use + issue - pop),
                     fetched.eq(issue), staged.eq(fetched)]
        for k in range(R):
            with m.If(staged & (ring_w == k)):
                m.d.sync += ring[k].eq(stage)
        with m.If(staged):
            m.d.sync += ring_w.eq(step(ring_w, R))
        with m.If(pop):
            m.d.sync += ring_r.eq(step(ring_r, R))
        held_next = held + staged - pop
        m.d.sync += [held.eq(held_next), self.r_rdy.eq(held_next != 0)]
        return m


class _StreamStage(wiring.Component):
    """A one-in, one-out stream stage of a fixed payload shape (the register stages below)."""

    def __init__(self, shape):
        with _Validated(self):
            self.width = _check_shape(type(self).__name__, shape)
        self.shape = shape
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })


class PipelineRegister(_StreamStage):
    """One register stage on a stream: registered ``o.valid``/``o.payload``, full throughput.

    Why: the cheapest way to cut a long forward (valid/data) path between two blocks; it
    costs ``width + 1`` flip-flops. The backward path is **not** cut:
    ``i.ready = o.ready | ~o.valid`` (combinational from ``o.ready``). Use `SkidBuffer` when
    the ready path is the long one.

    Timing: an item accepted on ``i`` at edge k is offered on ``o`` from just after edge k
    (latency 1); a new item can be accepted at the same edge the held one leaves.
    """

    def elaborate(self, platform):
        m = Module()
        out_data = Signal(self.width, reset_less=True)
        m.d.comb += [self.i.ready.eq(self.o.ready | ~self.o.valid),
                     _bits(self.o.payload).eq(out_data)]
        with m.If(self.i.ready):
            m.d.sync += [
                self.o.valid.eq(self.i.valid),
                out_data.eq(_bits(self.i.payload)),
            ]
        return m


class SkidBuffer(_StreamStage):
    """A fully registered stream stage: cuts valid, data **and** ready; full throughput.

    Why: a long ``ready`` chain (e.g. a broadcast to many consumers, or a far-away block)
    limits Fmax; this stage makes ``i.ready`` a flip-flop output, so the producer never sees
    the consumer's combinational ready. Cutting ready at full throughput needs a second
    ("skid") register: when ``o`` stalls, the item that the producer sent in the same cycle
    (trusting last cycle's ``i.ready``) parks there.

    Timing: latency 1 (an item accepted at edge k is on ``o`` just after edge k when the
    output register is free). ``i.ready`` is high exactly when the skid register is empty.
    Costs ``2 * width + 2`` flip-flops and a ``width``-bit 2:1 mux.
    """

    def elaborate(self, platform):
        m = Module()
        skid_valid = Signal()
        skid_data = Signal(self.width, reset_less=True)
        out_data = Signal(self.width, reset_less=True)
        in_data = _bits(self.i.payload)
        m.d.comb += _bits(self.o.payload).eq(out_data)

        m.d.comb += self.i.ready.eq(~skid_valid)
        load_out = ~self.o.valid | self.o.ready     # the output register may take a new item
        # the skid register follows the input while it is empty, so its clock enables hang
        # on ``skid_valid`` (a flip-flop), not on the consumer's ready
        with m.If(~skid_valid):
            m.d.sync += skid_data.eq(in_data)
        with m.If(load_out):
            with m.If(skid_valid):
                # drain the skid register first (order kept); input is stalled meanwhile
                m.d.sync += [out_data.eq(skid_data), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [out_data.eq(in_data), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & self.i.ready):
            # output is full and stalled: the incoming item stays parked
            m.d.sync += skid_valid.eq(1)
        return m


class PingPongBuffer(_StreamStage):
    """A two-entry stream buffer whose wide registers never wait for the consumer.

    Why: in a `SkidBuffer` the output register must hold while the consumer stalls, so the
    consumer's ``ready`` drives the clock enable of every payload bit; for a wide row taken
    by a join (the DMX pairs four streams) that is a net of hundreds of loads at the end of
    the join's logic. Here the two entries are written alternately, each while it is empty
    (its clock enable is its own flip-flop), and ``o.payload`` is a 2:1 multiplexer of them
    chosen by a read pointer: ``o.ready`` reaches three flip-flops (the pointer and the two
    full flags), never the payload.

    Timing: latency 1, one item per cycle; ``i.ready`` (the write entry is empty) and
    ``o.valid`` (the read entry is full) are flip-flops. Costs ``2 * width + 4`` flip-flops
    and a ``width``-bit 2:1 multiplexer on the output.
    """

    def elaborate(self, platform):
        m = Module()
        entry = [Signal(self.width, name=f"entry{k}", reset_less=True) for k in range(2)]
        full = [Signal(name=f"full{k}") for k in range(2)]
        wp = Signal()      # the entry the next item goes to
        rp = Signal()      # the entry ``o`` shows
        in_data = _bits(self.i.payload)
        # ``i.ready`` / ``o.valid`` as flip-flops: copies of full[wp] / full[rp] kept in step
        in_ready = Signal(init=1)
        out_valid = Signal()
        m.d.comb += [self.i.ready.eq(in_ready), self.o.valid.eq(out_valid),
                     _bits(self.o.payload).eq(Mux(rp, entry[1], entry[0]))]
        push = self.i.valid & in_ready
        pop = out_valid & self.o.ready
        # the full bits and pointers after this edge; the flags are taken from them
        full_next = [Signal(name=f"full{k}_next") for k in range(2)]
        for k in range(2):
            m.d.comb += full_next[k].eq(Mux(push & (wp == k), 1,
                                            Mux(pop & (rp == k), 0, full[k])))
            with m.If(~full[k]):
                m.d.sync += entry[k].eq(in_data)
        wp_next = wp ^ push
        rp_next = rp ^ pop
        m.d.sync += [full[0].eq(full_next[0]), full[1].eq(full_next[1]),
                     wp.eq(wp_next), rp.eq(rp_next),
                     in_ready.eq(~Mux(wp_next, full_next[1], full_next[0])),
                     out_valid.eq(Mux(rp_next, full_next[1], full_next[0]))]
        return m


class SplitBuffer(_StreamStage):
    """``SplitBuffer(layout, wide)``: a two-entry stream buffer for a struct payload whose
    consumer decides its ``ready`` from a few narrow fields next to wide ones.

    Why: through a `SkidBuffer` that ready drives the clock enable of every payload bit;
    through a `PingPongBuffer` the narrow fields the decision starts from come out of the
    entry multiplexer, whose select fans out to every payload bit. Here the fields named in
    ``wide`` (a non-empty, proper subset of ``layout``'s fields) go through a
    `PingPongBuffer` (the ready reaches only its pointer and flags) and the others through
    a `SkidBuffer` (they come straight from flip-flops). Both are two-entry buffers whose
    ``i.ready`` means "not both entries full" and whose ``o.valid`` means "an entry is
    full"; fed the same handshakes they stay in step, so one side's flags serve for both.

    Timing: as `SkidBuffer` (latency 1, one item per cycle, ``i.ready`` and ``o.valid``
    flip-flops). Costs the two buffers' registers and a 2:1 multiplexer per wide bit.
    """

    def __init__(self, layout, wide):
        with _Validated(self):
            if not isinstance(layout, data.StructLayout):
                raise ValueError(f"SplitBuffer.layout: must be a data.StructLayout, got "
                                 f"{layout!r}")
            names = list(dict(layout.members))
            wide = tuple(wide)
            unknown = [n for n in wide if n not in names]
            if unknown or not wide or len(set(wide)) == len(names):
                raise ValueError(f"SplitBuffer.wide: must name some but not all of the fields "
                                 f"{names}, got {list(wide)}")
            self.wide = wide
            self.narrow = tuple(n for n in names if n not in wide)
        super().__init__(layout)

    def elaborate(self, platform):
        m = Module()
        members = dict(self.shape.members)
        m.submodules.wide = wide = PingPongBuffer(
            data.StructLayout({n: members[n] for n in self.wide}))
        m.submodules.narrow = narrow = SkidBuffer(
            data.StructLayout({n: members[n] for n in self.narrow}))
        self._halves = (wide, narrow)        # of the last elaboration (for tests)
        for buf, names in ((wide, self.wide), (narrow, self.narrow)):
            m.d.comb += [buf.i.valid.eq(self.i.valid), buf.o.ready.eq(self.o.ready)]
            for n in names:
                m.d.comb += [getattr(buf.i.payload, n).eq(getattr(self.i.payload, n)),
                             getattr(self.o.payload, n).eq(getattr(buf.o.payload, n))]
        m.d.comb += [self.i.ready.eq(narrow.i.ready), self.o.valid.eq(narrow.o.valid)]
        return m
