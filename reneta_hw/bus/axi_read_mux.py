"""`AxiReadMux`: two AXI4 read masters on one read port, told apart by their IDs.

Why: the accelerator has one AXI4 master port to DRAM, and two blocks read through it: the
core (operand rows) and the controller's instruction fetcher. Rather than a second port
(an interconnect the system may not have), the AR channels are arbitrated here and the R
beats are routed back by ``RID``: input 1 owns one ID (``id1``), input 0 every other ID.

AR: input 1 first when the channel is free; once an ``ARVALID`` has been shown downstream
without ``ARREADY`` the choice is held until the handshake (AXI requires a shown request to
stay, unchanged). R: ``RID == id1`` goes to input 1, anything else to input 0; ``RREADY``
is the addressed input's. Purely combinational apart from the hold flag; nothing is added
to the latency.

Ports: ``s0``, ``s1`` (In `Axi4Signature` with read channels only: the masters connect
here), ``m`` (Out, read channels only: towards DRAM).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import Axi4Signature

__all__ = ["AxiReadMux"]


class AxiReadMux(wiring.Component):
    """``AxiReadMux(data_width, addr_width, id_width, *, id1=1)``; see the module docstring."""

    def __init__(self, data_width: int, addr_width: int, id_width: int, *, id1: int = 1):
        if not (isinstance(id1, int) and 0 <= id1 < (1 << id_width)):
            self._MustUse__silence = True
            raise ValueError(f"AxiReadMux.id1: must be an ID of {id_width} bits, got {id1!r}")
        self.id1 = id1
        sig = Axi4Signature(data_width, addr_width, id_width, write=False)
        super().__init__({"s0": In(sig), "s1": In(sig), "m": Out(sig)})

    def elaborate(self, platform):
        m = Module()
        ar, s0, s1 = self.m.ar, self.s0.ar, self.s1.ar
        hold = Signal()
        held = Signal()
        sel = Signal()
        m.d.comb += sel.eq(Mux(hold, held, s1.arvalid))
        for name in ar.signature.members:
            if name == "arready":
                continue
            m.d.comb += getattr(ar, name).eq(Mux(sel, getattr(s1, name), getattr(s0, name)))
        m.d.comb += [s0.arready.eq(~sel & ar.arready), s1.arready.eq(sel & ar.arready)]
        m.d.sync += [hold.eq(ar.arvalid & ~ar.arready), held.eq(sel)]

        r = self.m.r
        to1 = r.rid == self.id1
        for dst, mine in ((self.s0.r, ~to1), (self.s1.r, to1)):
            for name in r.signature.members:
                if name == "rready":
                    continue
                if name == "rvalid":
                    m.d.comb += dst.rvalid.eq(r.rvalid & mine)
                else:
                    m.d.comb += getattr(dst, name).eq(getattr(r, name))
        m.d.comb += r.rready.eq(Mux(to1, self.s1.r.rready, self.s0.r.rready))
        return m
