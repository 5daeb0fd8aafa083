"""The two small blocks that make a board top usable on its own: a UART-to-AXI4-Lite bridge
(the host's control path) and a block-RAM AXI4 slave (the accelerator's "DRAM").

Why: an FPGA board has a clock, a USB serial port and LEDs, but no AXI host; these give
the accelerator one, so a PC can load memories, queue a program, start it and read the
results with nothing but a serial terminal library. They are deliberately simple (one
transaction at a time, a few hundred LUTs), not fast.

`UartAxiLite` (8N1, ``baud`` from the clock frequency). Host protocol, big-endian bytes:

- write: ``'W' A1 A0 D3 D2 D1 D0`` -> the bridge answers one byte, BRESP (0 = OKAY);
- read:  ``'R' A1 A0`` -> the bridge answers ``D3 D2 D1 D0`` then RRESP.

Any other command byte is ignored (resynchronizes a confused host).

`AxiBramSlave`: ``depth`` words of the AXI data width in block RAM; INCR bursts (FIXED and
WRAP are treated as INCR), one burst at a time, read beats every other cycle; addresses
wrap modulo the memory; OKAY responses.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from reneta_hw.bus.axi import Axi4Signature, AxiLiteSignature

__all__ = ["UartAxiLite", "AxiBramSlave", "CMD_WRITE", "CMD_READ"]

CMD_WRITE, CMD_READ = ord("W"), ord("R")


class _UartRx(wiring.Component):
    """8N1 receiver: ``data``/``valid`` for one cycle per byte."""

    def __init__(self, divisor: int):
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1), "data": Out(8), "valid": Out(1)})

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.d.sync += rx.eq(self.rx)                  # one synchronizer flop (+ the pin's)
        timer = Signal(range(self.divisor * 3 // 2 + 1))
        bits = Signal(4)
        shreg = Signal(8)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += [timer.eq(self.divisor * 3 // 2 - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), bits.eq(bits + 1),
                                 timer.eq(self.divisor - 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.comb += [self.valid.eq(rx), self.data.eq(shreg)]
                    m.next = "IDLE"
        return m


class _UartTx(wiring.Component):
    """8N1 transmitter: ``data`` is taken when ``valid & ready``."""

    def __init__(self, divisor: int):
        self.divisor = divisor
        super().__init__({"tx": Out(1, init=1), "data": In(8), "valid": In(1),
                          "ready": Out(1)})

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        shreg = Signal(10, init=0x3FF)
        bits = Signal(4)
        m.d.comb += [self.tx.eq(shreg[0]), self.ready.eq(bits == 0)]
        with m.If(bits == 0):
            with m.If(self.valid):
                m.d.sync += [shreg.eq(Cat(Const(0, 1), self.data, Const(1, 1))),
                             bits.eq(10), timer.eq(self.divisor - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [shreg.eq(Cat(shreg[1:], Const(1, 1))), bits.eq(bits - 1),
                         timer.eq(self.divisor - 1)]
        return m


class UartAxiLite(wiring.Component):
    """UART (``rx``/``tx`` pins) to an AXI4-Lite master ``axi`` (see the module docstring)."""

    def __init__(self, clk_freq: float, baud: int = 115200, addr_width: int = 12):
        divisor = round(clk_freq / baud)
        if divisor < 4:
            raise ValueError(f"UartAxiLite: clock {clk_freq} Hz is too slow for {baud} baud")
        if not 1 <= addr_width <= 16:
            raise ValueError(f"UartAxiLite: addr_width must be 1..16, got {addr_width}")
        self.divisor = divisor
        self.addr_width = addr_width
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1),
                          "axi": Out(AxiLiteSignature(addr_width, 32))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.urx = urx = _UartRx(self.divisor)
        m.submodules.utx = utx = _UartTx(self.divisor)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        axi = self.axi
        addr = Signal(16)
        data = Signal(32)
        resp = Signal(2)
        count = Signal(3)
        aw_done, w_done = Signal(), Signal()
        m.d.comb += [axi.aw.awaddr.eq(addr), axi.ar.araddr.eq(addr), axi.w.wdata.eq(data),
                     axi.w.wstrb.eq(0xF)]
        with m.FSM():
            with m.State("CMD"):
                with m.If(urx.valid & (urx.data == CMD_WRITE)):
                    m.d.sync += count.eq(6)
                    m.next = "W_BYTES"
                with m.Elif(urx.valid & (urx.data == CMD_READ)):
                    m.d.sync += count.eq(2)
                    m.next = "R_BYTES"
            with m.State("W_BYTES"):
                with m.If(urx.valid):
                    m.d.sync += [Cat(data, addr).eq(Cat(urx.data, data, addr)),
                                 count.eq(count - 1)]
                    with m.If(count == 1):
                        m.d.sync += [aw_done.eq(0), w_done.eq(0)]
                        m.next = "W_AXI"
            with m.State("W_AXI"):
                m.d.comb += [axi.aw.awvalid.eq(~aw_done), axi.w.wvalid.eq(~w_done)]
                m.d.sync += [aw_done.eq(aw_done | axi.aw.awready),
                             w_done.eq(w_done | axi.w.wready)]
                with m.If((aw_done | axi.aw.awready) & (w_done | axi.w.wready)):
                    m.next = "W_RESP"
            with m.State("W_RESP"):
                m.d.comb += axi.b.bready.eq(1)
                with m.If(axi.b.bvalid):
                    m.d.sync += [resp.eq(axi.b.bresp), count.eq(1), data.eq(0)]
                    m.next = "SEND"
            with m.State("R_BYTES"):
                with m.If(urx.valid):
                    m.d.sync += [addr.eq(Cat(urx.data, addr)), count.eq(count - 1)]
                    with m.If(count == 1):
                        m.next = "R_AXI"
            with m.State("R_AXI"):
                m.d.comb += axi.ar.arvalid.eq(1)
                with m.If(axi.ar.arready):
                    m.next = "R_DATA"
            with m.State("R_DATA"):
                m.d.comb += axi.r.rready.eq(1)
                with m.If(axi.r.rvalid):
                    m.d.sync += [data.eq(axi.r.rdata), resp.eq(axi.r.rresp), count.eq(5)]
                    m.next = "SEND"
            with m.State("SEND"):
                # data bytes high first (count 5..2), then the response byte (count 1)
                m.d.comb += [utx.valid.eq(1),
                             utx.data.eq(data[24:32])]
                with m.If(count == 1):
                    m.d.comb += utx.data.eq(resp)
                with m.If(utx.ready):
                    m.d.sync += [data.eq(data << 8), count.eq(count - 1)]
                    with m.If(count == 1):
                        m.next = "CMD"
        return m


class AxiBramSlave(wiring.Component):
    """``depth`` words of block RAM behind an AXI4 slave port ``axi`` (module docstring)."""

    def __init__(self, data_width: int, addr_width: int, id_width: int, depth: int = 512):
        if depth < 2 or depth & (depth - 1):
            raise ValueError(f"AxiBramSlave: depth must be a power of two >= 2, got {depth}")
        self.data_width, self.depth = data_width, depth
        self.mem = Memory(shape=data_width, depth=depth, init=[])
        super().__init__({"axi": In(Axi4Signature(data_width, addr_width, id_width))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = self.mem
        rd = self.mem.read_port()
        wr = self.mem.write_port(granularity=8)
        axi = self.axi
        shift = exact_log2(self.data_width // 8)
        abits = ceil_log2(self.depth)
        addr = Signal(abits)
        left = Signal(8)
        ident = Signal(len(axi.ar.arid))
        m.d.comb += [rd.addr.eq(addr), wr.addr.eq(addr), wr.data.eq(axi.w.wdata),
                     axi.r.rdata.eq(rd.data), axi.r.rid.eq(ident), axi.b.bid.eq(ident),
                     axi.r.rlast.eq(left == 0)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(axi.ar.arvalid):
                    m.d.comb += axi.ar.arready.eq(1)
                    m.d.sync += [addr.eq(axi.ar.araddr[shift:]), left.eq(axi.ar.arlen),
                                 ident.eq(axi.ar.arid)]
                    m.next = "R_ADDR"
                with m.Elif(axi.aw.awvalid):
                    m.d.comb += axi.aw.awready.eq(1)
                    m.d.sync += [addr.eq(axi.aw.awaddr[shift:]), left.eq(axi.aw.awlen),
                                 ident.eq(axi.aw.awid)]
                    m.next = "W_DATA"
            with m.State("R_ADDR"):            # the read port samples addr this cycle
                m.next = "R_DATA"
            with m.State("R_DATA"):
                m.d.comb += axi.r.rvalid.eq(1)
                with m.If(axi.r.rready):
                    m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
                    m.next = "IDLE"
                    with m.If(left != 0):
                        m.next = "R_ADDR"
            with m.State("W_DATA"):
                m.d.comb += axi.w.wready.eq(1)
                with m.If(axi.w.wvalid):
                    m.d.comb += wr.en.eq(axi.w.wstrb)
                    m.d.sync += addr.eq(addr + 1)
                    with m.If(axi.w.wlast):
                        m.next = "W_RESP"
            with m.State("W_RESP"):
                m.d.comb += axi.b.bvalid.eq(1)
                with m.If(axi.b.bready):
                    m.next = "IDLE"
        return m
