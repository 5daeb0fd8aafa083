"""Runs a vector set's program on `reneta_hw.core.RenetaCore` in pysim (memories by backdoor).

Why: the core is tested and measured without the controller: SMEM and SPM are preloaded
through ``core.smem_memories`` / ``core.spm_memory``, DRAM is an `sim.axi_memory.AxiMemory`
(latency, random back-pressure, protocol checks), instructions are fed one by one on
``core.instr`` (optionally with random gaps), and after the core is idle again the
memories are read back for comparison with `sim.golden`.

``run_core(vs, dram_latency=20, stall=0.0, seed=0, max_cycles=None, instr_stall=0.0,
probes=None)`` returns ``(memories, cycles, events)``:

* ``memories``: `sim.golden.Memories` after the run (DRAM, SMEM, SPM images);
* ``cycles``: ``{"total": cycles from the first instruction offered to idle,
  "instructions": [(accept_cycle, retire_cycle), ...], "per_proc": {proc name: cycles}}``
  (per_proc: each cycle between two retirements goes to the instruction retiring),
  ``"trace"``: with ``probes`` (a function of the elaborated core returning ``{name:
  signal}``, e.g. of ``core._blocks``), one ``{name: value}`` per cycle (debugging);
* ``events``: totals of the core's per-cycle event bits (``busy``, ``mac_beat``, ...)
  over the run, plus ``cycles``.
"""

from __future__ import annotations

import random

import numpy as np

from amaranth.sim import Simulator

from reneta_hw.core import RenetaCore
from reneta_hw.isa import encode
from sim.axi_memory import AxiMemory
from sim.golden import Memories
from sim.layout import pack_row, unpack_row
from sim.vectors import VectorSet

__all__ = ["run_core", "make_core"]

_last_dram = [None]
EVENTS = ("busy", "mac_beat", "stall_dram", "stall_smem", "stall_hazard", "stall_out")


def make_core(cfg, **kw) -> RenetaCore:
    return RenetaCore(cfg, **kw)



def run_core(vs: VectorSet, dram_latency: int = 20, stall: float = 0.0, seed: int = 0,
             max_cycles: int | None = None, instr_stall: float = 0.0, core_kw=None,
             vcd: str | None = None, probes=None):
    cfg = vs.config
    mem0 = vs.memories
    mem0.validate(cfg)
    core = RenetaCore(cfg, **(core_kw or {}))
    wb, Np, W = cfg.word_bytes, cfg.num_pe, cfg.word_bits
    size = max(4096, -(-(mem0.dram.shape[0] * wb) // 4096) * 4096)
    dram = AxiMemory(core.dram, size=size, read_latency=dram_latency, stall=stall, seed=seed,
                     max_reads=64, max_writes=32, trace=True)
    _last_dram[0] = dram
    if mem0.dram.shape[0]:
        dram.write_words(0, [int(x) for x in mem0.dram], wb)
    program = [encode(cfg, i) for i in vs.program]
    if max_cycles is None:
        max_cycles = 2000 + 40 * sum(1 for _ in vs.program) * 50 + 200000
    rng = random.Random(seed + 17)
    bank_rows = cfg.smem_bank_rows
    res = {"accept": [], "retire": [], "events": dict.fromkeys(EVENTS, 0), "cycles": 0,
           "smem": None, "spm": None, "error": 0, "error_code": 0}

    async def bench(ctx):
        # backdoor preload
        for r in np.nonzero(mem0.smem.any(axis=1))[0]:
            bank, idx = divmod(int(r), bank_rows)
            ctx.set(core.smem_memories[bank].data[idx], pack_row(mem0.smem[r], W))
        for a in np.nonzero(mem0.spm)[0]:
            ctx.set(core.spm_memory.data[int(a)], int(mem0.spm[a]))
        k = 0
        cycle = 0
        retired = 0
        ev_sig = core.events.as_value()
        valid = False
        probe_sigs = probes(core) if probes else {}
        res["trace"] = trace = []
        while True:
            if probe_sigs:
                trace.append({n: ctx.get(v) for n, v in probe_sigs.items()})
            if k < len(program) and not valid and not (instr_stall and rng.random() < instr_stall):
                ctx.set(core.instr.valid, 1)
                ctx.set(core.instr.payload.as_value(), program[k])
                valid = True
            ready = ctx.get(core.instr.ready)
            ev = ctx.get(ev_sig)
            for j, name in enumerate(EVENTS):
                if (ev >> j) & 1:
                    res["events"][name] += 1
            if ctx.get(core.retired):
                retired += 1
                res["retire"].append(cycle)
            if valid and ready:
                res["accept"].append(cycle)
                k += 1
            if k == len(program) and retired == len(program) and ctx.get(core.idle) \
                    and not valid:
                break
            await ctx.tick()
            cycle += 1
            if valid and ready:
                ctx.set(core.instr.valid, 0)
                valid = False
            if cycle >= max_cycles:
                raise TimeoutError(f"run_core: not idle after {cycle} cycles ({k} of "
                                   f"{len(program)} instructions accepted, {retired} retired)")
        res["cycles"] = cycle
        res["error"] = ctx.get(core.error)
        res["error_code"] = ctx.get(core.error_code)
        smem = np.zeros((cfg.smem_depth, Np), dtype=np.int64)
        for r in range(cfg.smem_depth):
            bank, idx = divmod(r, bank_rows)
            v = ctx.get(core.smem_memories[bank].data[idx])
            if v:
                smem[r] = unpack_row(v, Np, W)
        res["smem"] = smem

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_process(dram.process)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    dram.check_quiescent()
    n = mem0.dram.shape[0]
    dwords = np.array(dram.read_words(0, n, wb), dtype=np.int64) if n else \
        np.zeros(0, dtype=np.int64)
    out = Memories(dram=dwords, smem=res["smem"], spm=mem0.spm.copy())
    per_proc: dict = {}
    prev = res["accept"][0] if res["accept"] else 0
    for ins, rc in zip(vs.program, res["retire"]):
        per_proc[ins.proc.name] = per_proc.get(ins.proc.name, 0) + (rc - prev)
        prev = rc
    cycles = {"total": res["cycles"], "instructions": list(zip(res["accept"], res["retire"])),
              "trace": res.get("trace", []),
              "per_proc": per_proc, "error": res["error"], "error_code": res["error_code"]}
    events = dict(res["events"], cycles=res["cycles"])
    return out, cycles, events


def benchmark(sparsities=(0.5, 0.8, 0.9), procs=("MxV_SP", "MTxV_SP", "VXV_SP"), nx=64,
              nh=64, nt=64, dram_latency=20, dst="dram", seed=0, cfg=None, verify=True):
    """Utilization (MAC beats / cycles over the whole program) at the benchmark point:
    16 PEs, W (nh x nx) in DRAM, Nt timesteps, Δ sparsity as given. Returns rows."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from core_programs import build_program
    from golden_problems import make_problem
    from reneta_hw.config import AcceleratorConfig
    from sim.golden import run_program
    cfg = cfg or AcceleratorConfig(max_n=256, max_m=256, smem_depth=2048, spm_depth=256)
    rows = []
    for s in sparsities:
        pb = make_problem(cfg, nh, nx, nt, s, seed=seed)
        for proc in procs:
            prog = build_program(pb, proc, dst=dst)
            vs = VectorSet(cfg, prog, pb.mem)
            import time
            t0 = time.time()
            mem, cyc, ev = run_core(vs, dram_latency=dram_latency, seed=seed)
            dt = time.time() - t0
            ok = None
            if verify:
                g = run_program(cfg, prog, pb.mem).memories
                ok = bool((g.smem == mem.smem).all() and (g.dram == mem.dram).all())
            rows.append(dict(proc=proc, sparsity=s, beats=ev["mac_beat"], cycles=cyc["total"],
                             util=ev["mac_beat"] / max(cyc["total"], 1), exact=ok,
                             stall_dram=ev["stall_dram"], stall_smem=ev["stall_smem"],
                             stall_hazard=ev["stall_hazard"], stall_out=ev["stall_out"],
                             sim_cps=cyc["total"] / dt))
            print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    import sys
    args = sys.argv[1:]
    dst = args[0] if args else "dram"
    benchmark(dst=dst)
