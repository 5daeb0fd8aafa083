"""The shared memory (SMEM): banked on-chip rows of ``num_pe`` words, with an arbiter.

Why: every operand that does not come from DRAM (non-zero lists, gradient and activation
time series, on-chip weights) and every on-chip result lives here. Several blocks of the
core read it at once (the non-zero list reader, the operand-1 reader, the operand-0 reader
when weights are on chip) and the write-back writes it, so the memory needs ports that
queue requests, an arbiter that gives each cycle's read to one of them, and credits so a
reader never receives more rows than it can hold (the memory itself cannot wait).

Organisation: ``smem_banks`` `amaranth.lib.memory.Memory` objects (``smem_memories``), each
``smem_bank_rows`` deep and ``row_bits`` wide; SMEM row ``r`` is row ``r % bank_rows`` of bank
``r // bank_rows`` (bank = row address MSBs); lane ``p`` of a row sits in bits
``[p*word_bits, (p+1)*word_bits)``. Writes have one enable per lane (single-lane results).
Elaborated for ECP5 (`reneta_hw.mem.ecp5_bram`), the banks are DP16KD blocks whose own
output register is the bank register behind the read; the ports' timing and data are the
same (see ``_ecp5_banks``).

Ports
-----
``rreq[i]`` (In stream, payload: row address) / ``rresp[i]`` (Out stream, payload: the row),
``i < read_ports``: answers in request order. A request is granted when its response FIFO
(``resp_depth`` rows, one depth or one per port) has room counting the rows in flight; one
read per cycle in total, lower port index first (the host first of all). Latency without
contention: the row is offered on ``rresp`` 5 cycles after the request handshake (the
registers in front of and behind the block RAMs: see the comment in ``elaborate``).
With ``out_reg`` (one flag, or one per port) a `PingPongBuffer` behind the port's FIFO
registers ``rresp`` (valid, payload and ready) for one more cycle of latency: the FIFO's
read data comes out of a block RAM, too slow (4 ns on ECP5) to feed a consumer's wide
multiplexers at full speed.
With ``prefetch`` (one flag, or one per port; ``resp_depth`` at least 5) the port's FIFO
is a `PrefetchFIFO`: ``rresp`` comes from registers its block RAM is read ahead into (as
with ``out_reg``, whose buffer it replaces), 2 cycles later than without ``out_reg``; for
the deep operand queues, whose block RAMs otherwise feed the consumer's registers from
their read latch.
With ``req_reg`` (one flag, or one per port) a `SkidBuffer` in front of the port's
arbitration registers ``rreq`` (valid, payload and ready) for one more cycle of latency:
the arbiter then starts from flip-flops next to it, not from the requester's logic across
the chip, and the requester sees a registered ``ready``.
``wreq`` (In stream: ``addr``, ``mask`` (one bit per lane), ``data``): one write per cycle;
it reaches the block RAM one edge after its handshake (``write_pending`` meanwhile: an idle
flag of the core must wait for it; host writes do not raise it).
``host`` (`smem_host_signature`): ``addr``, ``lane_mask``, ``wdata``, ``we``, ``re`` in,
``rdata`` out. Fixed timing, no handshake: a write happens at the edge where ``we`` is
high (registered: it reaches the block RAM one edge later), a read's row is on ``rdata``
three cycles after ``re`` (and held until the next read). The host wins over the ports
(meant for use while the core is idle; while busy it just steals cycles).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from reneta_hw.config import AcceleratorConfig
from reneta_hw.mem.ecp5_bram import ecp5_lane_ram, ecp5_lane_ram_blocks, uses_ecp5_bram
from reneta_hw.mem.fifo import PingPongBuffer, PrefetchFIFO, SkidBuffer

__all__ = ["SharedMemory", "smem_host_signature", "smem_write_layout"]


def smem_host_signature(cfg: AcceleratorConfig) -> wiring.Signature:
    """Host access, from the host's side (``rdata`` comes back; components take ``In(...)``)."""
    return wiring.Signature({
        "addr": Out(cfg.smem_addr_bits),
        "lane_mask": Out(cfg.num_pe),
        "wdata": Out(cfg.row_bits),
        "we": Out(1),
        "re": Out(1),
        "rdata": In(cfg.row_bits),
    })


def smem_write_layout(cfg: AcceleratorConfig) -> data.StructLayout:
    return data.StructLayout({"addr": unsigned(cfg.smem_addr_bits),
                              "mask": unsigned(cfg.num_pe),
                              "data": unsigned(cfg.row_bits)})


def _per_port_flags(name: str, flags, read_ports: int) -> list[bool]:
    """One flag for every read port, or one per port, as a list."""
    if isinstance(flags, bool):
        return [flags] * read_ports
    if not isinstance(flags, (list, tuple)) or len(flags) != read_ports or any(
            not isinstance(f, bool) for f in flags):
        raise ValueError(f"SharedMemory: {name} must be a bool or one per read port, "
                         f"got {flags!r}")
    return list(flags)


class SharedMemory(wiring.Component):
    """``SharedMemory(cfg, read_ports=3, resp_depth=8, out_reg=False, req_reg=False,
    prefetch=False)``; see the module docstring."""

    def __init__(self, cfg: AcceleratorConfig, read_ports: int = 3, resp_depth: int = 8,
                 out_reg: bool | list[bool] = False, req_reg: bool | list[bool] = False,
                 prefetch: bool | list[bool] = False):
        self._MustUse__silence = True       # a refused memory is not an unused one
        if not isinstance(cfg, AcceleratorConfig):
            raise TypeError(f"SharedMemory: cfg must be an AcceleratorConfig, got {cfg!r}")
        if not isinstance(read_ports, int) or read_ports < 1:
            raise ValueError(f"SharedMemory: read_ports must be an integer >= 1, got "
                             f"{read_ports!r}")
        if isinstance(resp_depth, int):
            resp_depth = [resp_depth] * read_ports
        resp_depth = list(resp_depth)
        if len(resp_depth) != read_ports or any(
                not isinstance(d, int) or d < 2 for d in resp_depth):
            raise ValueError(f"SharedMemory: resp_depth must be an integer >= 2 or one per "
                             f"read port, got {resp_depth!r}")
        self.out_reg = _per_port_flags("out_reg", out_reg, read_ports)
        self.req_reg = _per_port_flags("req_reg", req_reg, read_ports)
        self.prefetch = _per_port_flags("prefetch", prefetch, read_ports)
        for i, (on, depth) in enumerate(zip(self.prefetch, resp_depth)):
            if on and depth < PrefetchFIFO.MIN_DEPTH:
                raise ValueError(f"SharedMemory: port {i} prefetches, so its resp_depth "
                                 f"must be at least {PrefetchFIFO.MIN_DEPTH}, got {depth}")
        self._MustUse__silence = False
        self.cfg = cfg
        self.read_ports = read_ports
        self.resp_depth = resp_depth
        self.smem_memories = [Memory(shape=unsigned(cfg.row_bits), depth=cfg.smem_bank_rows,
                                     init=[]) for _ in range(cfg.smem_banks)]
        super().__init__({
            "rreq": In(stream.Signature(unsigned(cfg.smem_addr_bits))).array(read_ports),
            "rresp": Out(stream.Signature(unsigned(cfg.row_bits))).array(read_ports),
            "wreq": In(stream.Signature(smem_write_layout(cfg))),
            "host": In(smem_host_signature(cfg)),
            "write_pending": Out(1),
        })

    def bank_of(self, row: int) -> tuple[int, int]:
        """(bank, row in bank) of SMEM row ``row``."""
        return divmod(row, self.cfg.smem_bank_rows)

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        nb, bank_rows = cfg.smem_banks, cfg.smem_bank_rows
        lb = (bank_rows - 1).bit_length()
        W = cfg.word_bits

        # --- read arbitration --------------------------------------------------------------
        rd_addr = Signal(cfg.smem_addr_bits)
        rd_en = Signal()
        rd_port = Signal(range(self.read_ports + 1))       # read_ports = the host
        grants = []
        fifos = []
        requests = []
        for i in range(self.read_ports):
            # Credits allow resp_depth rows in the FIFO; a 2-deep SyncFIFOBuffered cannot
            # always take its second row (its 1-entry inner memory is full for the cycle
            # in which the row moves to the output register), so it gets one spare entry.
            # (With a LUT-RAM FIFO with a ping-pong head here, five of them at row width,
            # the 16-PE design had not finished routing on ECP5 after 620k nextpnr
            # iterations; with this one it routes.)
            if self.prefetch[i]:
                fifo = PrefetchFIFO(width=cfg.row_bits, depth=self.resp_depth[i])
            else:
                fifo = SyncFIFOBuffered(width=cfg.row_bits, depth=max(self.resp_depth[i], 3))
            m.submodules[f"resp{i}"] = fifo
            fifos.append(fifo)
            cnt = Signal(range(self.resp_depth[i] + 1), name=f"credit{i}")
            grant = Signal(name=f"grant{i}")
            if self.out_reg[i] and not self.prefetch[i]:
                reg = m.submodules[f"resp{i}_reg"] = PingPongBuffer(unsigned(cfg.row_bits))
                wiring.connect(m, reg.o, wiring.flipped(self.rresp[i]))
                out = reg.i
            else:
                out = self.rresp[i]
            if self.req_reg[i]:
                req = m.submodules[f"req{i}_reg"] = SkidBuffer(unsigned(cfg.smem_addr_bits))
                wiring.connect(m, wiring.flipped(self.rreq[i]), req.i)
                req = req.o
            else:
                req = self.rreq[i]
            requests.append(req)
            pop = fifo.r_rdy & out.ready
            m.d.comb += [
                out.valid.eq(fifo.r_rdy),
                out.payload.eq(fifo.r_data),
                fifo.r_en.eq(out.ready),
                req.ready.eq(grant),
            ]
            # the count steps by one: its next value and "room for a row" are picked from
            # values computed from the registers alone, so the late grant and pop only
            # steer multiplexers (an adder and a compare behind the arbiter's priority
            # chain were a path of 8.6 ns on ECP5)
            depth = self.resp_depth[i]
            room = Signal(init=1, name=f"room{i}")      # cnt < depth
            up, down = grant & ~pop, pop & ~grant
            m.d.sync += [cnt.eq(Mux(up, cnt + 1, Mux(down, cnt - 1, cnt))),
                         room.eq(Mux(up, cnt < depth - 1, Mux(down, 1, room)))]
            grants.append((grant, req.valid & room))
        busy = self.host.re
        for i, (grant, want) in enumerate(grants):
            m.d.comb += grant.eq(want & ~busy)
            busy = busy | want
        with m.If(self.host.re):
            m.d.comb += [rd_addr.eq(self.host.addr), rd_en.eq(1), rd_port.eq(self.read_ports)]
        for i, (grant, _) in reversed(list(enumerate(grants))):
            with m.If(grant):
                m.d.comb += [rd_addr.eq(requests[i].payload), rd_en.eq(1), rd_port.eq(i)]

        # --- banks ---------------------------------------------------------------------------
        wr = self.wreq.payload
        w_addr = Signal(cfg.smem_addr_bits)
        w_mask = Signal(cfg.num_pe)
        w_data = Signal(cfg.row_bits)
        w_en = Signal()
        m.d.comb += self.wreq.ready.eq(~self.host.we)
        with m.If(self.host.we):
            m.d.comb += [w_addr.eq(self.host.addr), w_mask.eq(self.host.lane_mask),
                         w_data.eq(self.host.wdata), w_en.eq(1)]
        with m.Else():
            m.d.comb += [w_addr.eq(wr.addr), w_mask.eq(wr.mask), w_data.eq(wr.data),
                         w_en.eq(self.wreq.valid)]
        # the granted read and the write are registered before they fan out to every block
        # RAM (at the default size 128 of them); both take the same extra cycle, so a read
        # granted after a write was accepted still sees it. The block RAM's read data (its
        # clock-to-output is slow, 4 ns on ECP5) lands straight in a per-bank register, and
        # the bank multiplexer works from those registers in the next cycle: a row is in
        # its response FIFO four cycles after the grant.
        # (from here on the names stand for the registered copies)
        # (only the two enables are reset: the rest is data beside them)
        regs = [Signal.like(v, reset_less=v is not rd_en and v is not w_en)
                for v in (rd_addr, rd_en, rd_port, w_addr, w_mask, w_data, w_en)]
        m.d.sync += [q.eq(v) for q, v in zip(regs, (rd_addr, rd_en, rd_port, w_addr, w_mask,
                                                     w_data, w_en))]
        rd_addr, rd_en, rd_port, w_addr, w_mask, w_data, w_en = regs
        port_write = Signal()      # a ``wreq`` write (not the host's) waits in the register
        m.d.sync += port_write.eq(self.wreq.valid & self.wreq.ready)
        m.d.comb += self.write_pending.eq(port_write)
        rd_bank = Signal(range(max(nb, 2)))
        rd_valid = Signal()
        rd_port_q = Signal.like(rd_port)
        rd_bank2 = Signal.like(rd_bank)
        rd_valid2 = Signal()
        rd_port_q2 = Signal.like(rd_port)
        m.d.sync += [rd_bank.eq(rd_addr[lb:] if nb > 1 else 0), rd_valid.eq(rd_en),
                     rd_port_q.eq(rd_port), rd_bank2.eq(rd_bank), rd_valid2.eq(rd_valid),
                     rd_port_q2.eq(rd_port_q)]
        row = Signal(cfg.row_bits)
        if uses_ecp5_bram(platform) and ecp5_lane_ram_blocks(bank_rows, cfg.num_pe, W):
            self._ecp5_banks(m, row, rd_addr, rd_bank2, w_addr, w_mask, w_data, w_en)
        else:
            for k, mem in enumerate(self.smem_memories):
                m.submodules[f"bank{k}"] = mem
                wp = mem.write_port(granularity=W)
                rp = mem.read_port(domain="sync")
                sel_w = (w_addr[lb:] == k) if nb > 1 else 1
                m.d.comb += [
                    wp.addr.eq(w_addr[:lb]),
                    wp.data.eq(w_data),
                    wp.en.eq(Mux(w_en & sel_w, w_mask, 0)),
                    rp.addr.eq(rd_addr[:lb]),
                    rp.en.eq(rd_en),
                ]
                bank_q = Signal(cfg.row_bits, name=f"bank{k}_q", reset_less=True)
                with m.If(rd_valid & (rd_bank == k)):
                    m.d.sync += bank_q.eq(rp.data)
                with m.If(rd_bank2 == k):
                    m.d.comb += row.eq(bank_q)
        for i, fifo in enumerate(fifos):
            m.d.comb += [fifo.w_data.eq(row), fifo.w_en.eq(rd_valid2 & (rd_port_q2 == i))]
        host_hit = rd_valid2 & (rd_port_q2 == self.read_ports)
        held = Signal(cfg.row_bits, reset_less=True)
        with m.If(host_hit):
            m.d.sync += held.eq(row)
        m.d.comb += self.host.rdata.eq(Mux(host_hit, row, held))
        return m

    def _ecp5_banks(self, m, row, rd_addr, rd_bank2, w_addr, w_mask, w_data, w_en):
        """The banks on ECP5 block RAMs whose output register is ``bank_q``
        (`reneta_hw.mem.ecp5_bram`): ``row`` gets the same row in the same cycle as with
        the generic memories.

        A DP16KD's read of the row its other port writes at the same edge is undefined, so
        the write reaches the blocks one edge later than the generic memory's, and a read
        at that edge takes the lanes it writes from the delayed write's data instead
        (carried beside the read for two cycles): every read sees exactly the writes of the
        earlier edges, as the generic memory's."""
        cfg = self.cfg
        lb = (cfg.smem_bank_rows - 1).bit_length()
        W = cfg.word_bits
        wd_addr, wd_mask, wd_data = (Signal.like(v, name=f"{n}_d", reset_less=True)
                                     for v, n in ((w_addr, "w_addr"), (w_mask, "w_mask"),
                                                  (w_data, "w_data")))
        wd_en = Signal(name="w_en_d")
        m.d.sync += [wd_addr.eq(w_addr), wd_mask.eq(w_mask), wd_data.eq(w_data),
                     wd_en.eq(w_en)]
        byp_mask = [Signal(cfg.num_pe, name=f"bypass_mask{i}", reset_less=True)
                    for i in (1, 2)]
        byp_data = [Signal(cfg.row_bits, name=f"bypass_data{i}", reset_less=True)
                    for i in (1, 2)]
        hit = wd_en & (wd_addr == rd_addr)
        m.d.sync += [byp_mask[0].eq(Mux(hit, wd_mask, 0)), byp_data[0].eq(wd_data),
                     byp_mask[1].eq(byp_mask[0]), byp_data[1].eq(byp_data[0])]
        bank_row = Signal(cfg.row_bits)
        for k, mem in enumerate(self.smem_memories):
            # the simulation backdoor stays elaborated; without ports synthesis drops it
            m.submodules[f"bank{k}"] = mem
            sel_w = (wd_addr[lb:] == k) if cfg.smem_banks > 1 else 1
            bank_q = ecp5_lane_ram(m, depth=cfg.smem_bank_rows, lanes=cfg.num_pe,
                                   lane_bits=W, waddr=wd_addr[:lb], wdata=wd_data,
                                   wlanes=Mux(wd_en & sel_w, wd_mask, 0),
                                   raddr=rd_addr[:lb], name=f"bank{k}_q")
            with m.If(rd_bank2 == k):
                m.d.comb += bank_row.eq(bank_q)
        for lane in range(cfg.num_pe):
            bits = slice(lane * W, (lane + 1) * W)
            m.d.comb += row[bits].eq(Mux(byp_mask[1][lane], byp_data[1][bits],
                                         bank_row[bits]))
