"""Behavioural AXI4 DRAM slave for Amaranth's simulator, with a protocol checker.

Why: every simulation that touches DRAM (the read/write masters' unit tests, the accelerator
harness) needs a memory that answers AXI4 like a real DRAM controller would (latency,
limited bandwidth, back-pressure on every channel) and that catches protocol mistakes at
the cycle they happen, instead of letting them turn into wrong data far away.

Usage::

    mem = AxiMemory(dut.axi, size=1 << 16, read_latency=20, stall=0.2, seed=1)
    mem.write(0x100, b"...")                      # or mem.data[...] = ... (numpy uint8)
    simulate(dut, testbench, processes=[mem.process])
    mem.read(0x200, 64); mem.stats

``AxiMemory(*buses)`` takes one or more interfaces that carry AXI4 channels (members ``ar``/
``r`` and/or ``aw``/``w``/``b`` as in `reneta_hw.bus.axi.Axi4Signature`; typically a
master's ``axi`` port, or two ports: a read master's and a write master's). It runs as an
``add_process`` process: once per clock edge it samples every master-driven signal, updates
its state and drives the slave-driven signals (``ctx.set`` only for the signals that change),
so it behaves like a slave whose outputs are registers.

Behaviour
---------
* Backing store: ``data``, a numpy ``uint8`` array of ``size`` bytes at byte address ``base``.
  A burst that reaches outside it gets DECERR (and writes nothing); a burst that touches an
  ``errors`` range ``(lo, hi, resp)`` (``lo <= addr < hi``) gets ``resp`` (SLVERR by default)
  and writes nothing. Reads of such bursts return zeros.
* Reads: up to ``max_reads`` accepted AR bursts; served strictly in acceptance order (whatever
  their IDs: the model does not reorder, which AXI allows). The first beat of a burst is
  offered ``read_latency`` cycles after the cycle of its AR handshake (1 = the next cycle),
  beats of later bursts follow back to back. Read data is taken from ``data`` when the beat
  is offered.
* Writes: up to ``max_writes`` accepted AW bursts; W beats may come before their AW (they
  are held and checked when it arrives). The B response is offered ``write_latency`` cycles
  after the burst's last W beat (and its AW) were taken, in order. ``WSTRB`` is honoured
  byte by byte.
* Bandwidth: ``bandwidth`` (0 < b <= 1) is the fraction of cycles in which an R beat can be
  offered and a W beat taken (a token bucket, deterministic).
* Back-pressure: ``stall`` is a probability (or a dict with keys ``ar``, ``aw``, ``w``, ``r``,
  ``b``) that in a given cycle the model holds ARREADY/AWREADY/WREADY low, or does not yet
  offer the next R beat / B response. Seeded by ``seed``: runs are reproducible.

Protocol rules checked (an `AxiProtocolError` names the channel, the cycle and the rule):
AxBURST is INCR; AxSIZE is the full bus width; the address is aligned to the beat; AxLEN <=
255; no burst crosses a 4 KiB boundary; once VALID is high on AR, AW or W it stays high and
the payload stays stable until READY; WLAST is set on exactly the last beat of each burst (so
no W beat goes beyond its burst); `check_quiescent` at the end of a test finds W beats without
an AW and transactions still open. ``check=False`` turns the checks off (the errors are
still answered with the responses above).

Counters (``stats``): ``cycles``, ``busy_cycles`` (any channel valid or any burst open),
``read_bursts``, ``write_bursts``, ``r_beats``, ``w_beats``, ``bytes_read``, ``bytes_written``
(strobed bytes). ``trace=True`` also logs every AR/AW handshake, last R beat and B handshake
in ``log`` (for checks of burst sizes and outstanding counts).

Speed: the model costs a few percent of a pysim run (one sampling wait and two or three
``ctx.set`` per cycle when a beat moves); alone it runs at about 3k cycles/s.

`axil_write` / `axil_read` are the matching testbench-side AXI4-Lite master helpers (any
AW/W order, delayed BREADY/RREADY), for register-file tests and the harness.
"""

from __future__ import annotations

import random
from collections import deque

import numpy as np

__all__ = ["AxiMemory", "AxiProtocolError", "axil_write", "axil_read"]

BOUNDARY = 4096
_OKAY, _SLVERR, _DECERR = 0, 2, 3
_CHANNELS = ("ar", "aw", "w", "r", "b")


class AxiProtocolError(AssertionError):
    """A master broke an AXI4 rule. ``channel``, ``cycle`` and ``rule`` say which, when, what."""

    def __init__(self, channel: str, cycle: int, rule: str):
        self.channel = channel
        self.cycle = cycle
        self.rule = rule
        super().__init__(f"AXI protocol error on {channel.upper()} channel at cycle {cycle}: "
                         f"{rule}")


class _Read:
    __slots__ = ("addr", "beats", "id", "resp", "ready_at", "beat")

    def __init__(self, addr, beats, id_, resp, ready_at):
        self.addr, self.beats, self.id, self.resp, self.ready_at = addr, beats, id_, resp, ready_at
        self.beat = 0


class _Write:
    __slots__ = ("addr", "beats", "id", "resp", "beat")

    def __init__(self, addr, beats, id_, resp):
        self.addr, self.beats, self.id, self.resp = addr, beats, id_, resp
        self.beat = 0


class AxiMemory:
    """A DRAM-like AXI4 slave model (see the module docstring)."""

    def __init__(self, *buses, size: int = 1 << 20, base: int = 0, read_latency: int = 20,
                 write_latency: int = 4, bandwidth: float = 1.0, stall=0.0, seed: int = 0,
                 max_reads: int = 16, max_writes: int = 16, errors=(), check: bool = True,
                 trace: bool = False):
        if not buses:
            raise ValueError("AxiMemory: give at least one AXI4 bus interface")
        self._ch = {}
        for bus in buses:
            for name in _CHANNELS:
                if hasattr(bus, name):
                    if name in self._ch:
                        raise ValueError(f"AxiMemory: two buses carry the {name.upper()} channel")
                    self._ch[name] = getattr(bus, name)
        has_read = "ar" in self._ch and "r" in self._ch
        has_write = all(c in self._ch for c in ("aw", "w", "b"))
        if not (has_read or has_write):
            raise ValueError("AxiMemory: the buses carry neither a full read (AR, R) nor a "
                             "full write (AW, W, B) interface")
        self.has_read, self.has_write = has_read, has_write
        if has_read:
            self.data_width = len(self._ch["r"].rdata)
        else:
            self.data_width = len(self._ch["w"].wdata)
        if has_read and has_write and len(self._ch["w"].wdata) != self.data_width:
            raise ValueError("AxiMemory: read and write buses have different data widths")
        self.beat_bytes = self.data_width // 8
        self.size_code = self.beat_bytes.bit_length() - 1
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"size: must be a positive number of bytes, got {size!r}")
        if not isinstance(read_latency, int) or read_latency < 1:
            raise ValueError(f"read_latency: must be an integer >= 1, got {read_latency!r}")
        if not isinstance(write_latency, int) or write_latency < 1:
            raise ValueError(f"write_latency: must be an integer >= 1, got {write_latency!r}")
        if not 0 < bandwidth <= 1:
            raise ValueError(f"bandwidth: must be in (0, 1], got {bandwidth!r}")
        if isinstance(stall, dict):
            unknown = set(stall) - set(_CHANNELS)
            if unknown:
                raise ValueError(f"stall: unknown channel(s) {sorted(unknown)}")
            self.stall = {c: float(stall.get(c, 0.0)) for c in _CHANNELS}
        else:
            self.stall = {c: float(stall) for c in _CHANNELS}
        for c, p in self.stall.items():
            if not 0 <= p < 1:
                raise ValueError(f"stall[{c!r}]: must be a probability in [0, 1), got {p}")
        if max_reads < 1 or max_writes < 1:
            raise ValueError("max_reads and max_writes: must be >= 1")
        self.base = base
        self.size = size
        self.data = np.zeros(size, dtype=np.uint8)
        self.read_latency = read_latency
        self.write_latency = write_latency
        self.bandwidth = float(bandwidth)
        self.max_reads = max_reads
        self.max_writes = max_writes
        self.errors = []
        for e in errors:
            lo, hi, *rest = e
            resp = rest[0] if rest else _SLVERR
            resp = int(getattr(resp, "value", resp))
            if resp not in (_SLVERR, _DECERR):
                raise ValueError(f"errors: response of range {lo:#x}..{hi:#x} must be SLVERR (2)"
                                 f" or DECERR (3), got {resp}")
            self.errors.append((int(lo), int(hi), resp))
        self.check = check
        self.seed = seed
        self.stats = dict(cycles=0, busy_cycles=0, read_bursts=0, write_bursts=0, r_beats=0,
                          w_beats=0, bytes_read=0, bytes_written=0)
        self.reads: deque[_Read] = deque()          # accepted AR bursts not fully returned
        self.writes: deque[_Write] = deque()        # accepted AW bursts still taking W data
        self.w_early: deque = deque()               # W beats that came before their AW
        self.b_queue: deque = deque()               # (ready_at, id, resp)
        self.trace = trace
        #: with ``trace=True``: ``(cycle, event, addr, len, id)`` for every AR/AW handshake
        #: (event "ar"/"aw"), every last R beat ("rlast") and every B handshake ("b")
        self.log: list = []

    # --- backing store ----------------------------------------------------------------------
    def _offset(self, addr: int, n: int) -> int:
        off = addr - self.base
        if off < 0 or off + n > self.size:
            raise IndexError(f"AxiMemory: bytes {addr:#x}..{addr + n - 1:#x} are outside "
                             f"{self.base:#x}..{self.base + self.size - 1:#x}")
        return off

    def write(self, addr: int, values) -> None:
        """Store bytes (bytes, bytearray or a uint8 array) at byte address ``addr``."""
        arr = np.frombuffer(bytes(values), dtype=np.uint8) \
            if isinstance(values, (bytes, bytearray)) else np.asarray(values, dtype=np.uint8)
        off = self._offset(addr, arr.size)
        self.data[off:off + arr.size] = arr

    def read(self, addr: int, n: int) -> bytes:
        off = self._offset(addr, n)
        return self.data[off:off + n].tobytes()

    def write_words(self, addr: int, words, word_bytes: int) -> None:
        """Store integers as little-endian words of ``word_bytes`` bytes."""
        raw = b"".join(int(w).to_bytes(word_bytes, "little") for w in words)
        self.write(addr, raw)

    def read_words(self, addr: int, n: int, word_bytes: int) -> list:
        raw = self.read(addr, n * word_bytes)
        return [int.from_bytes(raw[i * word_bytes:(i + 1) * word_bytes], "little")
                for i in range(n)]

    # --- checks -------------------------------------------------------------------------------
    def _fail(self, channel, cycle, rule):
        raise AxiProtocolError(channel, cycle, rule)

    def _check_addr(self, ch, cycle, addr, ln, size, burst):
        """Protocol checks of an address beat; returns the response the burst will get."""
        beats = ln + 1
        if self.check:
            if burst != 1:
                kind = {0: "FIXED", 2: "WRAP"}.get(burst, "reserved")
                self._fail(ch, cycle, f"{ch}burst={burst} ({kind}): only INCR bursts are allowed")
            if size != self.size_code:
                self._fail(ch, cycle, f"{ch}size={size}: must be the full bus width "
                           f"({self.size_code} = {self.beat_bytes} bytes); narrow bursts are "
                           "not modelled")
            if addr % self.beat_bytes:
                self._fail(ch, cycle, f"{ch}addr={addr:#x} is not aligned to the "
                           f"{self.beat_bytes}-byte beat (unaligned bursts not modelled)")
            if ln > 255:
                self._fail(ch, cycle, f"{ch}len={ln} exceeds 255")
            if addr // BOUNDARY != (addr + beats * self.beat_bytes - 1) // BOUNDARY:
                self._fail(ch, cycle, f"burst {ch}addr={addr:#x} {ch}len={ln} ({beats} beats of "
                           f"{self.beat_bytes} bytes) crosses a 4 KiB boundary")
        end = addr + beats * self.beat_bytes
        if addr < self.base or end > self.base + self.size:
            return _DECERR
        for lo, hi, resp in self.errors:
            if addr < hi and end > lo:
                return resp
        return _OKAY

    # --- the process --------------------------------------------------------------------------
    async def process(self, ctx):
        """Pass to ``Simulator.add_process`` (or ``simulate(..., processes=[mem.process])``)."""
        ch = self._ch
        rng = random.Random(self.seed)
        st = self.stats
        bb = self.beat_bytes
        sampled = []
        idx = {}

        def add(name, sig):
            idx[name] = len(sampled)
            sampled.append(sig)

        if self.has_read:
            ar, r = ch["ar"], ch["r"]
            for n in ("arvalid", "araddr", "arlen", "arsize", "arburst", "arid"):
                add(n, getattr(ar, n))
            add("rready", r.rready)
        if self.has_write:
            aw, w, b = ch["aw"], ch["w"], ch["b"]
            for n in ("awvalid", "awaddr", "awlen", "awsize", "awburst", "awid"):
                add(n, getattr(aw, n))
            for n in ("wvalid", "wdata", "wstrb", "wlast"):
                add(n, getattr(w, n))
            add("bready", b.bready)

        driven = {}

        def drive(sig, value):
            if driven.get(id(sig)) != value:
                driven[id(sig)] = value
                ctx.set(sig, value)

        stall = self.stall
        bw = self.bandwidth
        r_tokens = w_tokens = 1.0
        arready = awready = wready = 0
        rvalid = bvalid = 0
        pend_ar = pend_aw = pend_w = None   # payload of a valid that was not taken
        cycle = 0

        # initial outputs
        if self.has_read:
            arready = int(rng.random() >= stall["ar"])
            drive(ar.arready, arready)
            drive(r.rvalid, 0)
        if self.has_write:
            awready = int(rng.random() >= stall["aw"])
            wready = int(rng.random() >= stall["w"])
            drive(aw.awready, awready)
            drive(w.wready, wready)
            drive(b.bvalid, 0)

        async for _clk, _rst, *v in ctx.tick().sample(*sampled):
            st["cycles"] += 1
            busy = bool(self.reads or self.writes or self.b_queue or self.w_early
                        or rvalid or bvalid)

            # ---------------- read address -----------------
            if self.has_read:
                arvalid = v[idx["arvalid"]]
                if arvalid:
                    busy = True
                    pay = (v[idx["araddr"]], v[idx["arlen"]], v[idx["arsize"]],
                           v[idx["arburst"]], v[idx["arid"]])
                    if self.check and pend_ar is not None and pend_ar != pay:
                        self._fail("ar", cycle, f"payload changed while ARVALID waited for "
                                   f"ARREADY: {_fmt(pend_ar)} -> {_fmt(pay)}")
                    if arready:
                        addr, ln, size, burst, id_ = pay
                        resp = self._check_addr("ar", cycle, addr, ln, size, burst)
                        self.reads.append(_Read(addr, ln + 1, id_, resp,
                                                cycle + self.read_latency))
                        st["read_bursts"] += 1
                        if self.trace:
                            self.log.append((cycle, "ar", addr, ln, id_))
                        pend_ar = None
                    else:
                        pend_ar = pay
                elif pend_ar is not None and self.check:
                    self._fail("ar", cycle, f"ARVALID dropped before ARREADY "
                               f"(payload {_fmt(pend_ar)})")

                # ---------------- read data ----------------
                if rvalid and v[idx["rready"]]:
                    rd = self.reads[0]
                    rd.beat += 1
                    st["r_beats"] += 1
                    st["bytes_read"] += bb
                    if rd.beat == rd.beats:
                        self.reads.popleft()
                        if self.trace:
                            self.log.append((cycle, "rlast", rd.addr, rd.beats - 1, rd.id))
                    rvalid = 0
                r_tokens = min(1.0, r_tokens + bw)
                if not rvalid and self.reads:
                    rd = self.reads[0]
                    if (cycle + 1 >= rd.ready_at and r_tokens >= 1.0
                            and not (stall["r"] and rng.random() < stall["r"])):
                        r_tokens -= 1.0
                        a = rd.addr + rd.beat * bb
                        if rd.resp == _OKAY:
                            off = a - self.base
                            word = int.from_bytes(self.data[off:off + bb].tobytes(), "little")
                        else:
                            word = 0
                        rvalid = 1
                        drive(r.rdata, word)
                        drive(r.rresp, rd.resp)
                        drive(r.rlast, int(rd.beat == rd.beats - 1))
                        drive(r.rid, rd.id)
                drive(r.rvalid, rvalid)
                arready = int(len(self.reads) < self.max_reads
                              and not (stall["ar"] and rng.random() < stall["ar"]))
                drive(ar.arready, arready)

            if self.has_write:
                # ---------------- write address -----------------
                awvalid = v[idx["awvalid"]]
                if awvalid:
                    busy = True
                    pay = (v[idx["awaddr"]], v[idx["awlen"]], v[idx["awsize"]],
                           v[idx["awburst"]], v[idx["awid"]])
                    if self.check and pend_aw is not None and pend_aw != pay:
                        self._fail("aw", cycle, f"payload changed while AWVALID waited for "
                                   f"AWREADY: {_fmt(pend_aw)} -> {_fmt(pay)}")
                    if awready:
                        addr, ln, size, burst, id_ = pay
                        resp = self._check_addr("aw", cycle, addr, ln, size, burst)
                        self.writes.append(_Write(addr, ln + 1, id_, resp))
                        st["write_bursts"] += 1
                        if self.trace:
                            self.log.append((cycle, "aw", addr, ln, id_))
                        pend_aw = None
                        # W beats that came early
                        while self.w_early and self.writes:
                            self._w_beat(cycle, *self.w_early.popleft())
                    else:
                        pend_aw = pay
                elif pend_aw is not None and self.check:
                    self._fail("aw", cycle, f"AWVALID dropped before AWREADY "
                               f"(payload {_fmt(pend_aw)})")

                # ---------------- write data -----------------
                wvalid = v[idx["wvalid"]]
                if wvalid:
                    busy = True
                    pay = (v[idx["wdata"]], v[idx["wstrb"]], v[idx["wlast"]])
                    if self.check and pend_w is not None and pend_w != pay:
                        same = "same" if pend_w[0] == pay[0] else "changed"
                        self._fail("w", cycle, "payload changed while WVALID waited for WREADY "
                                   f"(wstrb {pend_w[1]:#x} -> {pay[1]:#x}, wlast {pend_w[2]} -> "
                                   f"{pay[2]}, wdata {same})")
                    if wready:
                        pend_w = None
                        st["w_beats"] += 1
                        if self.writes and not self.w_early:
                            self._w_beat(cycle, *pay)
                        else:
                            self.w_early.append(pay)
                    else:
                        pend_w = pay
                elif pend_w is not None and self.check:
                    self._fail("w", cycle, "WVALID dropped before WREADY")

                # ---------------- write response -----------------
                if bvalid and v[idx["bready"]]:
                    _, bid, _ = self.b_queue.popleft()
                    if self.trace:
                        self.log.append((cycle, "b", None, None, bid))
                    bvalid = 0
                if not bvalid and self.b_queue:
                    ready_at, id_, resp = self.b_queue[0]
                    if cycle + 1 >= ready_at and not (stall["b"] and rng.random() < stall["b"]):
                        bvalid = 1
                        drive(b.bid, id_)
                        drive(b.bresp, resp)
                drive(b.bvalid, bvalid)
                awready = int(len(self.writes) < self.max_writes
                              and not (stall["aw"] and rng.random() < stall["aw"]))
                drive(aw.awready, awready)
                w_tokens = min(1.0, w_tokens + bw)
                wready = int(w_tokens >= 1.0 and len(self.w_early) < 1024
                             and not (stall["w"] and rng.random() < stall["w"]))
                if wready:
                    w_tokens -= 1.0   # spent whether or not the master uses it
                drive(w.wready, wready)

            if busy:
                st["busy_cycles"] += 1
            cycle += 1
            self.cycle = cycle

    def _w_beat(self, cycle, wdata, wstrb, wlast):
        """One W beat, matched with the oldest AW burst still taking data."""
        wr = self.writes[0]
        if self.check:
            if wlast and wr.beat != wr.beats - 1:
                self._fail("w", cycle, f"WLAST on beat {wr.beat} of a {wr.beats}-beat burst "
                           f"(awaddr={wr.addr:#x})")
            if not wlast and wr.beat == wr.beats - 1:
                self._fail("w", cycle, f"WLAST missing on the last beat ({wr.beat}) of a "
                           f"{wr.beats}-beat burst (awaddr={wr.addr:#x}); no W beat may go "
                           "beyond its burst")
        bb = self.beat_bytes
        if wr.resp == _OKAY and wstrb:
            off = wr.addr + wr.beat * bb - self.base
            raw = np.frombuffer(int(wdata).to_bytes(bb, "little"), dtype=np.uint8)
            if wstrb == (1 << bb) - 1:
                self.data[off:off + bb] = raw
                self.stats["bytes_written"] += bb
            else:
                mask = np.array([(wstrb >> i) & 1 for i in range(bb)], dtype=bool)
                seg = self.data[off:off + bb]
                seg[mask] = raw[mask]
                self.stats["bytes_written"] += int(mask.sum())
        wr.beat += 1
        if wr.beat == wr.beats:
            self.writes.popleft()
            self.b_queue.append((cycle + self.write_latency, wr.id, wr.resp))

    # --- end-of-test checks ------------------------------------------------------------------
    @property
    def quiescent(self) -> bool:
        """No burst open, no W beat waiting, no response pending."""
        return not (self.reads or self.writes or self.w_early or self.b_queue)

    def check_quiescent(self) -> None:
        """Raise `AxiProtocolError` if the test ended with open transactions or stray W beats."""
        cycle = getattr(self, "cycle", 0)
        if self.w_early:
            self._fail("w", cycle, f"{len(self.w_early)} W beat(s) were sent without an AW "
                       "burst to carry them (W beyond the bursts)")
        if self.writes:
            wr = self.writes[0]
            self._fail("w", cycle, f"burst awaddr={wr.addr:#x} got only {wr.beat} of "
                       f"{wr.beats} W beats")
        if self.reads:
            rd = self.reads[0]
            self._fail("r", cycle, f"burst araddr={rd.addr:#x}: {rd.beats - rd.beat} beat(s) "
                       "not taken by the master")
        if self.b_queue:
            self._fail("b", cycle, f"{len(self.b_queue)} write response(s) not taken")


def _fmt(pay):
    addr, ln, size, burst, id_ = pay
    return f"addr={addr:#x} len={ln} size={size} burst={burst} id={id_}"


# --- testbench-side AXI4-Lite master (for register-file tests and the harness) ---------------

async def axil_write(ctx, bus, addr: int, value: int, strb: int | None = None, *,
                     order: str = "together", gap: int = 0, bready_delay: int = 0) -> int:
    """Write one word over AXI4-Lite from an async testbench; returns BRESP.

    ``bus`` is the slave's ``bus`` port (or any AXI4-Lite interface). ``order`` is
    ``"together"`` (AW and W offered in the same cycle), ``"aw_first"`` or ``"w_first"``;
    the other channel is offered ``gap`` cycles later. ``BREADY`` rises ``bready_delay``
    cycles after both were taken.
    """
    if order not in ("together", "aw_first", "w_first"):
        raise ValueError(f"order: must be together, aw_first or w_first, got {order!r}")
    nbytes = len(bus.w.wstrb)
    ctx.set(bus.aw.awaddr, addr)
    ctx.set(bus.w.wdata, value)
    ctx.set(bus.w.wstrb, (1 << nbytes) - 1 if strb is None else strb)
    aw_on = order != "w_first"
    w_on = order != "aw_first"
    if aw_on:
        ctx.set(bus.aw.awvalid, 1)
    if w_on:
        ctx.set(bus.w.wvalid, 1)
    aw_left = w_left = True
    n = 0
    while aw_left or w_left:
        _, _, awready, wready = await ctx.tick().sample(bus.aw.awready, bus.w.wready)
        n += 1
        if aw_on and aw_left and awready:
            aw_left = False
            ctx.set(bus.aw.awvalid, 0)
        if w_on and w_left and wready:
            w_left = False
            ctx.set(bus.w.wvalid, 0)
        if n >= gap:
            if not aw_on:
                aw_on = True
                ctx.set(bus.aw.awvalid, 1)
            if not w_on:
                w_on = True
                ctx.set(bus.w.wvalid, 1)
    for _ in range(bready_delay):
        await ctx.tick()
    ctx.set(bus.b.bready, 1)
    while True:
        _, _, bvalid, bresp = await ctx.tick().sample(bus.b.bvalid, bus.b.bresp)
        if bvalid:
            break
    ctx.set(bus.b.bready, 0)
    return bresp


async def axil_read(ctx, bus, addr: int, *, rready_delay: int = 0) -> tuple:
    """Read one word over AXI4-Lite from an async testbench; returns ``(RDATA, RRESP)``."""
    ctx.set(bus.ar.araddr, addr)
    ctx.set(bus.ar.arvalid, 1)
    while True:
        _, _, arready = await ctx.tick().sample(bus.ar.arready)
        if arready:
            break
    ctx.set(bus.ar.arvalid, 0)
    for _ in range(rready_delay):
        await ctx.tick()
    ctx.set(bus.r.rready, 1)
    while True:
        _, _, rvalid, rdata, rresp = await ctx.tick().sample(bus.r.rvalid, bus.r.rdata,
                                                             bus.r.rresp)
        if rvalid:
            break
    ctx.set(bus.r.rready, 0)
    return rdata, rresp
