"""`InstructionFetcher`: reads a program from DRAM and queues it as if pushed over AXI4-Lite.

Why: a host that must push every instruction through the AXI4-Lite window stays in the loop
for the whole run (and a long program costs W register writes per instruction). With the
program in DRAM the host writes a pointer and a count and starts the machine once.

DRAM format (`program_slot_bytes`, `program_image`): instruction k occupies the slot of
``program_slot_bytes(cfg)`` bytes (``4 * W`` rounded up to a power of two) at
``PROG_ADDR + k * slot``, its 32-bit words (`reneta_hw.isa.to_words`) little-endian from the
slot's start; the rest of the slot is ignored. ``PROG_ADDR`` must be slot aligned (its low
bits are ignored).

Operation: a ``start`` pulse with ``count > 0`` issues one read of ``count`` slots through an
`AxiReadMaster` (``ARID = axi_id``; bursts of up to ``max_burst`` beats, never across
4 KiB); each slot read becomes one instruction on ``push`` (back-pressure from the queue
holds the read master, which keeps its reserved buffer, so AXI is never stalled). ``busy``
until the last instruction was pushed. A read error (SLVERR/DECERR) sets the sticky
``error`` until ``error_clear`` (the controller reports it like a core bus error).

Ports: ``start`` (In 1), ``addr`` (In axi_addr_width), ``count`` (In 16), ``push`` (Out
stream of the instruction bits), ``busy`` (Out), ``error`` (Out), ``error_clear`` (In),
``axi`` (Out `Axi4Signature`, read channels only).
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from ..bus.axi import Axi4Signature
from ..bus.axi_read import AxiReadMaster
from ..config import AcceleratorConfig
from ..isa import instruction_layout, to_words, words_per_instruction

__all__ = ["InstructionFetcher", "program_slot_bytes", "program_image", "MAX_PROGRAM"]

#: instructions one fetch can read (the PROG_COUNT register's range)
MAX_PROGRAM = 65535


def program_slot_bytes(cfg: AcceleratorConfig) -> int:
    """Bytes one instruction takes in a DRAM program (``4 * W`` rounded up to 2**k)."""
    return 1 << ceil_log2(4 * words_per_instruction(cfg))


def program_image(cfg: AcceleratorConfig, program) -> np.ndarray:
    """The bytes (uint8) of ``program`` in the DRAM format of the module docstring."""
    slot = program_slot_bytes(cfg)
    out = np.zeros(len(program) * slot, dtype=np.uint8)
    for k, ins in enumerate(program):
        for j, w in enumerate(to_words(cfg, ins)):
            out[k * slot + 4 * j:k * slot + 4 * j + 4] = list(int(w).to_bytes(4, "little"))
    return out


class InstructionFetcher(wiring.Component):
    """``InstructionFetcher(cfg, *, axi_id=1, max_burst=4, max_outstanding=2)``."""

    def __init__(self, cfg: AcceleratorConfig, *, axi_id: int = 1, max_burst: int = 4,
                 max_outstanding: int = 2):
        if not isinstance(cfg, AcceleratorConfig):
            self._MustUse__silence = True
            raise ValueError(f"InstructionFetcher.cfg: must be an AcceleratorConfig, got {cfg!r}")
        self.cfg = cfg
        slot = program_slot_bytes(cfg)
        beat = cfg.axi_data_width // 8
        max_burst = max(1, min(max_burst, 4096 // beat))
        self._rd = AxiReadMaster(cfg.axi_data_width, cfg.axi_addr_width, cfg.axi_id_width,
                                 row_bytes=slot, max_burst=max_burst,
                                 max_outstanding=max_outstanding, max_rows=MAX_PROGRAM,
                                 axi_id=axi_id)
        super().__init__({
            "start": In(1),
            "addr": In(cfg.axi_addr_width),
            "count": In(16),
            "push": Out(stream.Signature(unsigned(instruction_layout(cfg).size))),
            "busy": Out(1),
            "error": Out(1),
            "error_clear": In(1),
            "axi": Out(Axi4Signature(cfg.axi_data_width, cfg.axi_addr_width,
                                     cfg.axi_id_width, write=False)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.rd = rd = self._rd
        wiring.connect(m, rd.axi, wiring.flipped(self.axi))
        ib = instruction_layout(cfg).size
        k = exact_log2(program_slot_bytes(cfg))
        left = Signal(17)                 # instructions still to push
        req_pending = Signal()
        with m.If(self.start & (self.count != 0) & (left == 0)):
            m.d.sync += [left.eq(self.count), req_pending.eq(1)]
        m.d.comb += [
            rd.req.valid.eq(req_pending),
            rd.req.payload.addr.eq((self.addr >> k) << k),
            rd.req.payload.rows.eq(left),
        ]
        with m.If(rd.req.valid & rd.req.ready):
            m.d.sync += req_pending.eq(0)
        m.d.comb += [
            self.push.valid.eq(rd.data.valid),
            self.push.payload.eq(rd.data.payload.data[:ib]),
            rd.data.ready.eq(self.push.ready),
            self.busy.eq(left != 0),
            self.error.eq(rd.error),
            rd.error_clear.eq(self.error_clear),
        ]
        with m.If(self.push.valid & self.push.ready):
            m.d.sync += left.eq(left - 1)
        return m
