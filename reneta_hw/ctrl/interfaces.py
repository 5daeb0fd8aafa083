"""Signatures shared by the controller and the datapath core (`reneta_hw.core.RenetaCore`).

Why: the controller (`reneta_hw.ctrl`) and the core are written separately; the few links
between them (host access windows to SMEM and SPM, the per-cycle event bits the performance
counters count) are named once here so both sides and the test stub agree.

* `events_layout`: one bit per cause, valid every cycle (the core registers them: a bit
  stands for the cycle before): ``busy`` (an instruction is being
  executed), ``mac_beat`` (a row of ``num_pe`` multiply-accumulates happened), and the stall
  causes ``stall_dram``, ``stall_smem``, ``stall_hazard``, ``stall_out``.
* `smem_host_signature` (host side = Out): ``addr`` (row), ``lane_mask`` (``num_pe`` bits,
  lanes written), ``wdata`` (a row, lane 0 in the LSBs), ``we``, ``re``; ``rdata`` (In):
  the row at the ``addr`` of the previous cycle's ``re`` (1 cycle read latency).
* `spm_host_signature` (host side = Out): ``addr``, ``wdata``, ``we``, ``re``; ``rdata`` (In)
  with 1 cycle latency. Words are `reneta_hw.isa.descriptor_layout` bits.

The core takes both as ``In(...)`` (flipped) and only honours them while it is idle.
"""

from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..config import AcceleratorConfig
from ..isa import descriptor_layout

__all__ = ["EVENTS", "events_layout", "smem_host_signature", "spm_host_signature"]

EVENTS = ("busy", "mac_beat", "stall_dram", "stall_smem", "stall_hazard", "stall_out")


def events_layout() -> data.StructLayout:
    return data.StructLayout({name: 1 for name in EVENTS})


def smem_host_signature(cfg: AcceleratorConfig) -> wiring.Signature:
    return wiring.Signature({
        "addr": Out(unsigned(cfg.smem_addr_bits)),
        "lane_mask": Out(unsigned(cfg.num_pe)),
        "wdata": Out(unsigned(cfg.row_bits)),
        "we": Out(1),
        "re": Out(1),
        "rdata": In(unsigned(cfg.row_bits)),
    })


def spm_host_signature(cfg: AcceleratorConfig) -> wiring.Signature:
    w = descriptor_layout(cfg).size
    return wiring.Signature({
        "addr": Out(unsigned(cfg.spm_addr_bits)),
        "wdata": Out(unsigned(w)),
        "we": Out(1),
        "re": Out(1),
        "rdata": In(unsigned(w)),
    })
