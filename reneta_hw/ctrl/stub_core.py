"""A stand-in for `reneta_hw.core.RenetaCore` with the same ports, for controller tests.

Why: the controller, the register map and the harness must be tested without waiting for
(and without the simulation cost of) the datapath. `StubCore` takes one instruction at a
time and holds it ``latency`` cycles (plus ``per_block`` cycles per block of the
instruction), raising the event bits in a fixed pattern (``mac_beat`` on even busy cycles,
``stall_dram`` on odd ones) and pulsing ``retired`` at the end. It computes nothing, never
touches DRAM (all AXI outputs idle), and raises ``error`` (code 5) on an instruction whose
``dram_dst`` equals ``error_on_dst`` with ``dst1`` set. SMEM and SPM are real memories with
the host ports of `reneta_hw.ctrl.interfaces` (writes and reads while idle), and they are
exposed as ``smem_memories`` / ``spm_memory`` like the real core's.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..bus.axi import Axi4Signature
from ..config import AcceleratorConfig
from ..isa import descriptor_layout, instruction_layout
from .interfaces import events_layout, smem_host_signature, spm_host_signature

__all__ = ["StubCore"]


class StubCore(wiring.Component):
    def __init__(self, cfg: AcceleratorConfig, latency: int = 8, per_block: int = 0,
                 error_on_dst: int | None = None):
        if not isinstance(latency, int) or latency < 1:
            raise ValueError(f"StubCore.latency: must be an integer >= 1, got {latency!r}")
        self.cfg = cfg
        self.latency = latency
        self.per_block = per_block
        self.error_on_dst = error_on_dst
        self.smem_memories = [Memory(shape=cfg.row_bits, depth=cfg.smem_bank_rows, init=[])
                              for _ in range(cfg.smem_banks)]
        self.spm_memory = Memory(shape=descriptor_layout(cfg).size, depth=cfg.spm_depth,
                                 init=[])
        super().__init__({
            "instr": In(stream.Signature(instruction_layout(cfg))),
            "dram": Out(Axi4Signature(cfg.axi_data_width, cfg.axi_addr_width,
                                      cfg.axi_id_width)),
            "idle": Out(1, init=1),
            "retired": Out(1),
            "error": Out(1),
            "error_code": Out(4),
            "error_clear": In(1),
            "events": Out(events_layout()),
            "smem_host": In(smem_host_signature(cfg)),
            "spm_host": In(spm_host_signature(cfg)),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        left = Signal(range(self.latency + self.per_block * (1 << cfg.cnt_bits) + 2))
        busy = Signal()
        phase = Signal()
        m.d.comb += [self.instr.ready.eq(~busy), self.idle.eq(~busy),
                     self.events.busy.eq(busy),
                     self.events.mac_beat.eq(busy & ~phase),
                     self.events.stall_dram.eq(busy & phase)]
        m.d.sync += self.retired.eq(0)
        with m.If(busy):
            m.d.sync += [phase.eq(~phase), left.eq(left - 1)]
            with m.If(left == 1):
                m.d.sync += [busy.eq(0), self.retired.eq(1)]
        with m.If(self.instr.valid & self.instr.ready):
            ins = self.instr.payload
            m.d.sync += [busy.eq(1), phase.eq(0),
                         left.eq(self.latency + self.per_block * (ins.cnt2 + 1))]
            if self.error_on_dst is not None:
                with m.If(ins.dst1 & (ins.dram_dst == self.error_on_dst)):
                    m.d.sync += [self.error.eq(1), self.error_code.eq(5)]
        with m.If(self.error_clear):
            m.d.sync += [self.error.eq(0), self.error_code.eq(0)]

        # host windows
        h = self.smem_host
        bank_bits = (cfg.smem_banks - 1).bit_length()
        row_bits = cfg.smem_addr_bits - bank_bits
        bank_r = Signal(max(1, bank_bits))
        rds = []
        for b, mem in enumerate(self.smem_memories):
            m.submodules[f"smem{b}"] = mem
            wp = mem.write_port(granularity=cfg.word_bits)
            rp = mem.read_port()
            sel = (h.addr[row_bits:] == b) if bank_bits else 1
            m.d.comb += [wp.addr.eq(h.addr[:row_bits]), wp.data.eq(h.wdata),
                         wp.en.eq(0),
                         rp.addr.eq(h.addr[:row_bits]), rp.en.eq(h.re)]
            with m.If(h.we & ~busy & sel):
                m.d.comb += wp.en.eq(h.lane_mask)
            rds.append(rp.data)
        if bank_bits:
            with m.If(h.re):
                m.d.sync += bank_r.eq(h.addr[row_bits:])
            with m.Switch(bank_r):
                for b, d in enumerate(rds):
                    with m.Case(b):
                        m.d.comb += h.rdata.eq(d)
        else:
            m.d.comb += h.rdata.eq(rds[0])
        s = self.spm_host
        m.submodules.spm = self.spm_memory
        wp = self.spm_memory.write_port()
        rp = self.spm_memory.read_port()
        m.d.comb += [wp.addr.eq(s.addr), wp.data.eq(s.wdata), wp.en.eq(s.we & ~busy),
                     rp.addr.eq(s.addr), rp.en.eq(s.re), s.rdata.eq(rp.data)]
        return m
