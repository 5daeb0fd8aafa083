"""`DuplicateIndexMonitor`: flags a non-zero list that names the same index twice.

Why: the sparse procedures assume each index appears at most once per list (per timestep);
a repeated index would silently count an input twice (MxV_SP, VXV_SP) or write a result
twice (MTxV_SP). The golden model refuses such lists; the machine must say so too.

How: it watches the elements the list reader hands to the sequencer (it never stalls
them). A bitmap of ``max_n`` flip-flops holds the indices seen in the current list: an
element with ``first`` starts a new list (the bitmap is replaced by that element's bit),
any other element whose bit is already set raises ``error`` for one cycle. Elements with
``bad`` (index >= n1, reported separately) and the token of an empty list are ignored.
One element per cycle; cost ``max_n`` flip-flops and a ``max_n``-to-1 multiplexer (256 at
the defaults: cheaper than a tag memory with its clearing machinery).

Ports: ``valid`` (In: an element is handed over this cycle), ``nzi``, ``first``, ``empty``,
``bad`` (In: its fields, `reneta_hw.ipm.list_reader.element_layout`), ``error`` (Out).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import AcceleratorConfig, bits_for

__all__ = ["DuplicateIndexMonitor"]


class DuplicateIndexMonitor(wiring.Component):
    def __init__(self, cfg: AcceleratorConfig):
        if not isinstance(cfg, AcceleratorConfig):
            self._MustUse__silence = True
            raise TypeError(f"DuplicateIndexMonitor: cfg must be an AcceleratorConfig, got {cfg!r}")
        self.cfg = cfg
        super().__init__({"valid": In(1), "nzi": In(cfg.word_bits), "first": In(1),
                          "empty": In(1), "bad": In(1), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        n = self.cfg.max_n
        seen = Signal(n)
        idx = self.nzi[:bits_for(n - 1)]
        onehot = Signal(n)
        m.d.comb += onehot.eq(1 << idx)
        check = self.valid & ~self.empty & ~self.bad
        m.d.comb += self.error.eq(check & ~self.first & seen.bit_select(idx, 1))
        with m.If(self.valid & self.first):        # a new list (even if its first is bad)
            m.d.sync += seen.eq(Mux(check, onehot, 0))
        with m.Elif(check):
            m.d.sync += seen.eq(seen | onehot)
        return m
