"""Runs a `VectorSet` on the whole accelerator (`reneta_hw.top.Reneta`) in Amaranth's pysim.

Why: the golden model says *what* a program computes; this harness runs the real design,
cycle by cycle, as a host would drive it, and returns the memories after the run (to be
compared bit-exactly with `sim.golden`), the cycle counts and the performance counters.

What `run_pysim` does:

1. builds ``Reneta(vs.config)`` (or with ``core=``: a stand-in core with the same ports);
2. loads SMEM and SPM: ``load="backdoor"`` (default) sets the memories' initial contents
   before the simulation starts; ``load="axi"`` writes every non-zero SMEM row and SPM
   word through the AXI4-Lite windows (slow: ~50 cycles per row; for tests of the windows);
3. puts the DRAM image into a `sim.axi_memory.AxiMemory` (``read_latency=dram_latency``,
   random back-pressure ``dram_stall``, seeded by ``seed``) that checks the AXI4 protocol;
4. writes ``INSTR_COUNT`` = program length, enables the interrupts, writes START and
   (``program_in="axil"``, the default) pushes the program over AXI4-Lite (as fast as the queue takes it: the host reads ``STATUS`` for
   the free space, so a full queue never blocks the bus while the machine waits for a
   ``RESUME``); on each interrupt it reads ``IRQ_STATUS``: paused -> RESUME, error -> stop
   (`HarnessError` naming the instruction and the rule), done -> finish;
   ``program_in="queued"``: the same pushes, but the first ``instr_queue_depth`` before
   START (the cycles then measure the machine, not the host's ~20-cycle pushes);
   with ``program_in="dram"`` the program is placed in the DRAM model after every region the
   program touches (`reneta_hw.ctrl.fetch.program_image`, 4 KiB aligned) and started by
   pointer: PROG_ADDR, PROG_COUNT, then CTRL = START | FETCH (no INSTR writes);
5. reads the performance counters over AXI4-Lite and the memories by backdoor.

``max_cycles`` (default: 2,000,000) bounds the run: past it a `HarnessTimeout` says where
the machine was. ``cycles_total`` is the hardware's CYCLES counter (START to done, pauses
excluded); ``cycles_per_proc`` attributes to each instruction the cycles from its issue (or
the previous retirement, if later) to its retirement, summed per procedure.

``vcd=FILE`` writes the run's VCD (every signal) and next to it ``FILE`` with suffix
``.gtkw``, a GTKWave save file of the main buses (`sim.waves`). `sim.verilator_top`
runs the same harness on the Verilog under Verilator (`smem_rows_used` and
`attribute_cycles` are shared with it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from amaranth.lib import data
from amaranth.sim import Simulator

from reneta_hw.ctrl.checker import rule_name
from reneta_hw.ctrl.controller import COUNTERS
from reneta_hw.isa import Proc, region_rows, to_words
from reneta_hw.ctrl.fetch import program_image
from reneta_hw.top import CTRL_BITS, FETCH_BIT, IRQ_BITS, REG, Reneta

from .axi_memory import AxiMemory, axil_read, axil_write
from .golden import Memories
from .layout import pack_row, unpack_row
from .vectors import VectorSet

__all__ = ["HarnessResult", "HarnessError", "HarnessTimeout", "run_pysim", "dram_size_for",
           "DRAM_MODEL", "smem_rows_used", "attribute_cycles", "PROGRAM_IN",
           "program_placement"]


class HarnessError(RuntimeError):
    """The accelerator stopped with an error (illegal instruction or core error)."""


class HarnessTimeout(TimeoutError):
    """The run did not finish within ``max_cycles``."""


@dataclass
class HarnessResult:
    memories: Memories
    cycles_total: int                 # the CYCLES counter: START to done, pauses excluded
    cycles_per_proc: dict             # proc name -> cycles attributed (see module doc)
    counters: dict                    # every performance counter, read over AXI4-Lite
    sim_cycles: int = 0               # clock edges simulated (loading and read-back included)
    wall_seconds: float = 0.0
    instructions: list = field(default_factory=list)   # (index, proc, issue, retire) cycles
    dram_stats: dict = field(default_factory=dict)
    pauses: int = 0
    extras: dict = field(default_factory=dict)   # backend-specific figures (Verilator: load
                                                 # and read-back cycles, process seconds)

    @property
    def cycles_per_second(self) -> float:
        return self.sim_cycles / self.wall_seconds if self.wall_seconds else 0.0


#: fixed options of the harness's DRAM model (`AxiMemory`), shared with `sim.verilator_top`:
#: as many reads in flight as the core issues (a 16-read limit caps single-row weight
#: fetches at 16 / latency rows per cycle: the DRAM model, not the machine, would be slow)
DRAM_MODEL = {"max_reads": 64, "max_writes": 32, "write_latency": 4}


def dram_size_for(vs: VectorSet) -> int:
    """Bytes of DRAM the program can touch (image and every DRAM region), 4 KiB rounded."""
    cfg = vs.config
    top = len(vs.memories.dram) * cfg.word_bytes
    for ins in vs.program:
        if ins.proc == Proc.IDLE:
            continue
        for name, rng in region_rows(cfg, ins).items():
            if name == "dram_op0":
                top = max(top, ins.dram_op0 + rng[1] * cfg.row_bytes)
            elif name == "dram_dst":
                top = max(top, ins.dram_dst + rng[1] * cfg.row_bytes)
    return max(4096, -(-top // 4096) * 4096)


PROGRAM_IN = ("axil", "queued", "dram")


def program_placement(vs: VectorSet, program_in: str, program_addr: int | None = None):
    """``(dram_size, prog_addr, image)``: the DRAM model's size in bytes and, for
    ``program_in="dram"``, where the program's image (`program_image`) goes; ``image`` is
    None when the program is not stored (other modes, or ``program_addr`` puts it past the
    model: the fetch then gets DECERR). Shared by both harness backends so that they place
    it alike."""
    if program_in not in PROGRAM_IN:
        raise ValueError(f"program_in: must be 'axil', 'queued' or 'dram', got {program_in!r}")
    dram_size = dram_size_for(vs)
    prog_addr = dram_size if program_addr is None else int(program_addr)
    if program_in != "dram":
        return dram_size, prog_addr, None
    if prog_addr < 0 or prog_addr >= 1 << vs.config.axi_addr_width:
        raise ValueError(f"program_addr: {prog_addr:#x} is not a {vs.config.axi_addr_width}"
                         f"-bit DRAM address")
    image = program_image(vs.config, vs.program)
    if program_addr is None:
        dram_size += max(4096, -(-len(image) // 4096) * 4096)
    return dram_size, prog_addr, (image if prog_addr + len(image) <= dram_size else None)


def smem_rows_used(vs: VectorSet) -> int:
    """SMEM rows [0, n) that can differ from the input after the run (every non-zero input
    row and every SMEM region; all rows if a DELTA writes lists of unknown extent): the
    rows a harness reads back."""
    cfg = vs.config
    nz_rows = np.flatnonzero(vs.memories.smem.any(axis=1))
    smem_hi = int(nz_rows[-1]) + 1 if len(nz_rows) else 0
    for ins in vs.program:
        if ins.proc != Proc.IDLE:
            for name, (lo, hi) in region_rows(cfg, ins).items():
                if name.startswith("smem_"):
                    smem_hi = max(smem_hi, hi)
    if any(ins.proc == Proc.DELTA for ins in vs.program):
        smem_hi = cfg.smem_depth          # list extents are only known after the run
    return min(smem_hi, cfg.smem_depth)


def attribute_cycles(vs: VectorSet, issue: list, retire: list) -> tuple[list, dict]:
    """``(instructions, cycles_per_proc)`` from the edges at which core instructions were
    issued and retired (see the module docstring): each instruction gets the cycles from its
    issue, or the previous retirement if later, to its retirement."""
    core_instr = [(k, ins.proc.name) for k, ins in enumerate(vs.program)
                  if ins.proc != Proc.IDLE]
    instructions, per_proc = [], {}
    prev = 0
    for (k, name), iss, ret in zip(core_instr, issue, retire):
        instructions.append((k, name, iss, ret))
        per_proc[name] = per_proc.get(name, 0) + ret - max(iss, prev)
        prev = ret
    return instructions, per_proc



def _as_int(v) -> int:
    if isinstance(v, data.Const):
        return v.as_bits()
    if isinstance(v, (list, tuple)):
        raise TypeError("unexpected sequence value")
    return int(v)


def _init_value(mem, value: int):
    shape = mem.shape
    if isinstance(shape, data.Layout):
        return data.Const(shape, value)
    return value


def run_pysim(vs: VectorSet, dram_latency: int = 20, dram_stall: float = 0.0, seed: int = 0,
              max_cycles: int | None = None, vcd: str | None = None, core=None,
              load: str = "backdoor", program_in: str = "axil",
              program_addr: int | None = None) -> HarnessResult:
    """See the module docstring. ``program_addr`` (``program_in="dram"``): the program's DRAM
    byte address instead of the default; outside the DRAM model the program is not stored
    and the fetch gets DECERR (a test of fetch errors)."""
    if load not in ("backdoor", "axi"):
        raise ValueError(f"load: must be 'backdoor' or 'axi', got {load!r}")
    cfg = vs.config
    vs.memories.validate(cfg)
    dram_size, prog_addr, image = program_placement(vs, program_in, program_addr)
    max_cycles = 2_000_000 if max_cycles is None else int(max_cycles)
    top = Reneta(cfg, core=core)
    smem = vs.memories.smem
    nz_rows = np.flatnonzero(smem.any(axis=1))
    br = cfg.smem_bank_rows
    if load == "backdoor":
        for b, mem in enumerate(top.smem_memories):
            last = nz_rows[(nz_rows >= b * br) & (nz_rows < (b + 1) * br)]
            if len(last):
                n = int(last[-1]) - b * br + 1
                mem.init = [_init_value(mem, v) for v in
                            (pack_row(r, cfg.word_bits) for r in smem[b * br:b * br + n])]
        spm = vs.memories.spm
        nz = np.flatnonzero(spm)
        if len(nz):
            top.spm_memory.init = [_init_value(top.spm_memory, int(v))
                                   for v in spm[:int(nz[-1]) + 1]]
    smem_hi = smem_rows_used(vs)
    dram = AxiMemory(top.dram, size=dram_size, read_latency=dram_latency,
                     stall=dram_stall, seed=seed, **DRAM_MODEL)
    if len(vs.memories.dram):
        dram.write_words(0, vs.memories.dram, cfg.word_bytes)
    if image is not None:
        dram.write(prog_addr, image.tobytes())

    bus = top.ctrl
    program = [to_words(cfg, i) for i in vs.program]
    depth = cfg.instr_queue_depth
    ticks = [0]
    stamps = {"issue": [], "retire": []}
    out: dict = {}

    async def wr(ctx, name, value, off=0):
        resp = await axil_write(ctx, bus, REG[name] + off, value)
        if resp != 0:
            raise HarnessError(f"AXI4-Lite write to {name}+{off:#x} answered {resp}")

    async def rd(ctx, name, off=0):
        v, resp = await axil_read(ctx, bus, REG[name] + off)
        if resp != 0:
            raise HarnessError(f"AXI4-Lite read of {name}+{off:#x} answered {resp}")
        return int(v)

    async def error_of(ctx):
        e = await rd(ctx, "ERROR")
        idx = await rd(ctx, "ERROR_INDEX")
        rule, code, from_core = e & 0xF, (e >> 4) & 0xF, (e >> 8) & 1
        if from_core:
            return f"the core reported error code {code} at instruction {idx}"
        ins = vs.program[idx] if idx < len(vs.program) else None
        return (f"instruction {idx} ({ins.proc.name if ins else '?'}) is illegal: rule "
                f"{rule} ({rule_name(rule)})")

    async def main(ctx):
        if load == "axi":
            for row in nz_rows:
                await wr(ctx, "SMEM_ADDR", int(row))
                v = pack_row(smem[row], cfg.word_bits)
                for k in range(-(-cfg.row_bits // 32)):
                    await wr(ctx, "SMEM_WDATA", (v >> (32 * k)) & 0xFFFF_FFFF, 4 * k)
            for a in np.flatnonzero(vs.memories.spm):
                await wr(ctx, "SPM_ADDR", int(a))
                v = int(vs.memories.spm[a])
                await wr(ctx, "SPM_WDATA", v & 0xFFFF_FFFF)
                await wr(ctx, "SPM_WDATA", v >> 32, 4)
        await wr(ctx, "IRQ_ENABLE", 0b111)
        await wr(ctx, "INSTR_COUNT", len(program))
        if program_in == "dram":
            await wr(ctx, "PROG_ADDR", prog_addr & 0xFFFF_FFFF)
            if cfg.axi_addr_width > 32:
                await wr(ctx, "PROG_ADDR", prog_addr >> 32, 4)
            await wr(ctx, "PROG_COUNT", len(program))
            await wr(ctx, "CTRL", (1 << CTRL_BITS["start"]) | (1 << FETCH_BIT))
            pending = []
        else:
            pending = list(program)
            if program_in == "queued":     # fill the queue first: START finds it ready
                for _ in range(min(depth, len(pending))):
                    for k, w in enumerate(pending.pop(0)):
                        await wr(ctx, "INSTR", w, 4 * k)
            await wr(ctx, "CTRL", 1 << CTRL_BITS["start"])
        pauses = 0
        while True:
            if pending:
                st = await rd(ctx, "STATUS")
                free = depth - ((st >> 8) & 0xFFFF)
                for _ in range(min(free, len(pending))):
                    words = pending.pop(0)
                    for k, w in enumerate(words):
                        await wr(ctx, "INSTR", w, 4 * k)
                if pending:
                    for _ in range(32):
                        if ctx.get(top.irq):
                            break
                        await ctx.tick()
                    if not ctx.get(top.irq):
                        continue
            if not ctx.get(top.irq):
                await ctx.tick().until(top.irq)
            irq = await rd(ctx, "IRQ_STATUS")
            await wr(ctx, "IRQ_STATUS", irq)
            if irq & (1 << IRQ_BITS["error"]):
                out["error"] = await error_of(ctx)
                break
            if irq & (1 << IRQ_BITS["paused"]):
                pauses += 1
                await wr(ctx, "CTRL", 1 << CTRL_BITS["resume"])
            if irq & (1 << IRQ_BITS["done"]):
                break
        out["pauses"] = pauses
        counters = {}
        for n in COUNTERS:
            lo = await rd(ctx, n.upper())
            hi = await rd(ctx, n.upper(), 4)
            counters[n] = lo | (hi << 32)
        out["counters"] = counters
        out["status"] = await rd(ctx, "STATUS")
        # memories by backdoor (rows past every input and result region are unchanged)
        res = smem.copy()
        for b, mem in enumerate(top.smem_memories):
            for i in range(min(br, smem_hi - b * br)):
                v = _as_int(ctx.get(mem.data[i]))
                res[b * br + i] = 0
                if v:
                    res[b * br + i] = unpack_row(v, cfg.num_pe, cfg.word_bits)
        spm = np.array([_as_int(ctx.get(top.spm_memory.data[i])) for i in range(cfg.spm_depth)],
                       dtype=np.int64)
        out["smem"], out["spm"] = res, spm

    core_ = top.core

    async def monitor(ctx):
        async for _, _, v, r, ret in ctx.tick().sample(core_.instr.valid, core_.instr.ready,
                                                       core_.retired):
            ticks[0] += 1
            if v and r:
                stamps["issue"].append(ticks[0])
            if ret:
                stamps["retire"].append(ticks[0])
            if ticks[0] >= max_cycles:
                raise HarnessTimeout(
                    f"run_pysim: the program did not finish within {max_cycles} cycles "
                    f"({len(stamps['issue'])} of {sum(i.proc != Proc.IDLE for i in vs.program)}"
                    f" instructions issued to the core, {len(stamps['retire'])} retired)")

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(main)
    sim.add_testbench(monitor, background=True)
    sim.add_process(dram.process)
    t0 = time.perf_counter()
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
        from .waves import write_gtkw
        write_gtkw(vcd, Path(vcd).with_suffix(".gtkw"))
    else:
        sim.run()
    wall = time.perf_counter() - t0
    if "error" in out:
        raise HarnessError(f"run_pysim: {out['error']}")
    dram.check_quiescent()
    n_img = len(vs.memories.dram)
    wb = cfg.word_bytes
    raw = dram.data[:n_img * wb].reshape(n_img, wb).astype(np.int64)
    dwords = (raw << (8 * np.arange(wb, dtype=np.int64))).sum(axis=1)
    mems = Memories(dram=dwords[:n_img], smem=out["smem"], spm=out["spm"])
    instructions, per_proc = attribute_cycles(vs, stamps["issue"], stamps["retire"])
    return HarnessResult(memories=mems, cycles_total=out["counters"]["cycles"],
                         cycles_per_proc=per_proc, counters=out["counters"],
                         sim_cycles=ticks[0], wall_seconds=wall, instructions=instructions,
                         dram_stats=dict(dram.stats), pauses=out["pauses"])
