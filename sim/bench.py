"""Cycle benchmark of the accelerator on pysim: sparse procedures against their dense forms.

Why: the point of the machine is that Δ-sparsity saves cycles. `bench` builds the reference
testbench's case (16 PEs, Nx = Nh = 64, Nt = 64, int16 arithmetic) with random integer data
at several Δ sparsities, runs each procedure's program alone on the whole accelerator
(`sim.harness.run_pysim`, 20-cycle DRAM latency), checks every result bit-exactly against
`sim.golden`, and reports cycles, MAC beats, utilization (beats / cycles), the speedup of
each sparse procedure over its dense counterpart on the same data, and the simulator's
speed.

Programs (weights W in DRAM, everything else in SMEM):

* ``MxV_SP``: one instruction per timestep t (``W·Δ_t``); ``MxV``: one instruction, all t,
  with the Δ time series as a dense operand (zeros included);
* ``MTxV_SP``: one instruction per t (``Wᵀ·G_t`` at the fired columns); ``MTxV``: dense, all
  columns and timesteps;
* ``VXV_SP``: one instruction (``Σ_t G_t Δ_tᵀ``); ``VXV``: dense.

Dense cycles do not depend on the data's values, so by default the dense programs run once
(on the first sparsity's data) and their cycles serve every sparsity (``dense_each=True``
runs them for each).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from reneta_hw.config import AcceleratorConfig
from reneta_hw.isa import Assembler, pack_descriptor
from reneta_hw.numeric.fixed_point import FixedPoint

from .golden import GoldenModel, Memories
from .layout import sparse_lists, timeseries_to_rows, weights_to_rows
from .vectors import Expected, VectorSet, compare, region

__all__ = ["BenchProblem", "make_bench_problem", "bench_vectors", "run_bench", "DENSE_OF",
           "bench_config", "stall_line"]

DENSE_OF = {"MxV_SP": "MxV", "MTxV_SP": "MTxV", "VXV_SP": "VXV"}


def bench_config(num_pe: int = 16, n: int = 64, nt: int = 64) -> AcceleratorConfig:
    """int16 arithmetic (the reference's), sizes large enough for the case; the instruction
    queue holds a per-timestep program (``nt`` instructions)."""
    max_n = max(num_pe, -(-n // num_pe) * num_pe)
    spm = 1 << max(4, (nt - 1).bit_length())
    # max_n = 2n: the PE array's local memories (max(max_n, max_m) deep) hold two blocks of
    # VXV_SP partial sums, so a block is drained while the next one accumulates
    return AcceleratorConfig(num_pe=num_pe, max_n=max(2 * max_n, 64), max_m=max(nt, 16),
                             fmt=FixedPoint.int16_reference(), smem_depth=4096,
                             spm_depth=max(spm, 16), instr_queue_depth=max(spm, 16))


@dataclass
class BenchProblem:
    cfg: AcceleratorConfig
    n_out: int
    n_in: int
    nt: int
    sparsity: float
    mem: Memories
    addr: dict


def make_bench_problem(cfg: AcceleratorConfig, n_out: int, n_in: int, nt: int,
                       sparsity: float, seed: int = 0) -> BenchProblem:
    """Random small integers (W, G, Δ) laid out in memory; Δ fires with 1 - sparsity."""
    rng = np.random.default_rng(seed)
    fmt, Np = cfg.fmt, cfg.num_pe
    if n_out % Np or n_in % Np:
        raise ValueError(f"make_bench_problem: n_out={n_out} and n_in={n_in} must be "
                         f"multiples of num_pe={Np}")

    def ints(shape):
        return fmt.encode(rng.integers(-64, 64, shape).astype(float))

    w, g = ints((n_out, n_in)), ints((n_out, nt))
    fired = rng.random((nt, n_in)) >= sparsity
    vals = rng.integers(1, 64, (nt, n_in)) * rng.choice([-1, 1], (nt, n_in))
    delta = np.where(fired, fmt.encode(vals.astype(float)), 0)
    lists = sparse_lists(delta, Np, fired=fired)
    mem = Memories.empty(cfg)
    addr, row = {}, 0

    def put(name, rows):
        nonlocal row
        addr[name] = row
        mem.smem[row:row + rows.shape[0]] = rows
        row += rows.shape[0]

    put("nzl", lists.index_rows)
    put("nzv", lists.value_rows)
    put("g", timeseries_to_rows(g, Np))
    put("dense", timeseries_to_rows(delta.T, Np))        # Δ as a dense (n_in, nt) series
    addr["out"] = row
    out_rows = max(n_out // Np * nt, n_in // Np * nt, n_out // Np * n_in)
    if row + out_rows > cfg.smem_depth:
        raise ValueError(f"make_bench_problem: the case needs {row + out_rows} SMEM rows, the "
                         f"config has {cfg.smem_depth}")
    for t in range(nt):
        mem.spm[t] = pack_descriptor(cfg, int(lists.head_row[t]), int(lists.head_lane[t]),
                                     int(lists.count[t]))
    mem.dram = weights_to_rows(w, Np).reshape(-1).astype(np.int64)
    addr["w"] = 0
    return BenchProblem(cfg, n_out, n_in, nt, sparsity, mem, addr)


def bench_vectors(p: BenchProblem, proc: str) -> VectorSet:
    """One procedure's program on ``p`` with its expected results (from `sim.golden`)."""
    cfg, A = p.cfg, p.addr
    a = Assembler(cfg)
    bo, bi = p.n_out // cfg.num_pe, p.n_in // cfg.num_pe
    common = dict(nt=p.nt, n1=p.n_in)
    if proc == "MxV_SP":
        for t in range(p.nt):
            a.mxv_sp(t=t, blocks=bo, spm_addr=0, nzl=A["nzl"], values=A["nzv"], w_dram=A["w"],
                     dst_smem=A["out"], **common)
        rows = bo * p.nt
    elif proc == "MTxV_SP":
        for t in range(p.nt):
            a.mtxv_sp(t=t, blocks=bo, spm_addr=0, nzl=A["nzl"], grad=A["g"], w_dram=A["w"],
                      dst_smem=A["out"], **common)
        rows = bi * p.nt
    elif proc == "VXV_SP":
        a.vxv_sp(steps=p.nt, blocks=bo, spm_addr=0, nzl=A["nzl"], values=A["nzv"],
                 g_smem=A["g"], dst_smem=A["out"], **common)
        rows = bo * p.n_in
    elif proc == "MxV":
        a.mxv(steps=p.nt, blocks=bo, n_in=p.n_in, act=A["dense"], w_dram=A["w"],
              dst_smem=A["out"], **common)
        rows = bo * p.nt
    elif proc == "MTxV":
        a.mtxv(steps=p.nt, blocks=bo, n_in=p.n_in, grad=A["g"], w_dram=A["w"],
               dst_smem=A["out"], **common)
        rows = bi * p.nt
    elif proc == "VXV":
        a.vxv(steps=p.nt, blocks=bo, n_in=p.n_in, act=A["dense"], g_smem=A["g"],
              dst_smem=A["out"], **common)
        rows = bo * p.n_in
    else:
        raise ValueError(f"bench_vectors: unknown procedure {proc!r}")
    mem = p.mem.copy()
    gm = GoldenModel(cfg, mem)
    beats = sum(gm.execute(ins, k).beats for k, ins in enumerate(a.instructions))
    exp = Expected(name=f"{proc}_out", proc=proc, memory="smem", address=A["out"],
                   data=region(mem, cfg, "smem", A["out"], rows).copy())
    return VectorSet(cfg, a.instructions, p.mem, [exp],
                     meta={"bench": proc, "sparsity": p.sparsity, "beats": beats})


def stall_line(row: dict) -> str:
    """Where the cycles without a MAC beat went (per-cycle counters; the causes may
    overlap: a cycle can wait for DRAM and SMEM at once)."""
    lost = row["cycles"] - row["mac_beats"]
    return (f"cycles without a MAC beat: {lost} = waiting for DRAM {row['stall_dram']}, "
            f"SMEM {row['stall_smem']}, a hazard {row['stall_hazard']}, the output "
            f"{row['stall_out']}, core idle {row['not_busy']}; the rest: pipeline fill, "
            f"drains and zero beats")


def run_bench(num_pe: int = 16, n: int = 64, nt: int = 64, sparsities=(0.5, 0.8, 0.9),
              dram_latency: int = 20, seed: int = 0, dense_each: bool = False,
              procs=("MxV_SP", "MTxV_SP", "VXV_SP"), log=print,
              backend: str = "pysim") -> list[dict]:
    """Rows: sparsity, proc, pass, instructions, cycles, mac_beats, utilization, dense_cycles,
    speedup, the stall counters, not_busy (cycles the core was idle), sim_cycles_per_s (see
    the module docstring); ``log`` also gets each run's `stall_line`. pysim runs queue the
    program before START (``program_in="queued"``), on either backend: ``"verilator"`` runs
    the emitted Verilog (`sim.verilator_top`, much faster) and gives the same cycles."""
    if backend == "pysim":
        from .harness import run_pysim as run_backend
    elif backend == "verilator":
        from .verilator_top import run_verilator as run_backend
    else:
        raise ValueError(f"run_bench: backend must be 'pysim' or 'verilator', got {backend!r}")

    def run(vs, **kw):        # the program queued before START (see bench_config)
        return run_backend(vs, program_in="queued", **kw)
    cfg = bench_config(num_pe, n, nt)
    rows, dense_cycles = [], {}
    for k, sp in enumerate(sparsities):
        p = make_bench_problem(cfg, n, n, nt, sp, seed=seed + k)
        runs = list(procs)
        if dense_each or k == 0:
            runs += [DENSE_OF[q] for q in procs]
        for proc in runs:
            vs = bench_vectors(p, proc)
            t0 = time.perf_counter()
            h = run(vs, dram_latency=dram_latency, seed=seed)
            wall = time.perf_counter() - t0
            ok = all(c.passed for c in compare(vs, h.memories))
            cyc = h.cycles_total
            row = {"sparsity": sp, "proc": proc, "pass": ok, "instructions": len(vs.program),
                   "cycles": cyc, "mac_beats": h.counters["mac_beats"],
                   "golden_beats": vs.meta["beats"],
                   "utilization": round(h.counters["mac_beats"] / cyc, 3) if cyc else None,
                   "stall_dram": h.counters["stall_dram"], "stall_hazard":
                       h.counters["stall_hazard"], "stall_smem": h.counters["stall_smem"],
                   "stall_out": h.counters["stall_out"],
                   "not_busy": cyc - h.counters["busy"],
                   "sim_cycles_per_s": round(h.cycles_per_second), "wall_s": round(wall, 1)}
            if proc in DENSE_OF.values():
                dense_cycles[(sp, proc)] = cyc
            rows.append(row)
            if log:
                log(f"  sparsity {sp}: {proc:<8} {cyc:>7} cycles, {row['mac_beats']:>6} beats, "
                    f"{'ok' if ok else 'MISMATCH'} ({row['sim_cycles_per_s']} cycles/s)")
                log("    " + stall_line(row))
    first = sparsities[0]
    for row in rows:
        dense = DENSE_OF.get(row["proc"])
        if dense:
            dc = dense_cycles.get((row["sparsity"], dense), dense_cycles.get((first, dense)))
            row["dense_cycles"] = dc
            row["speedup"] = round(dc / row["cycles"], 2) if dc and row["cycles"] else None
    return rows
