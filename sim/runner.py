"""Runs vector sets on a backend and compares the results with the expected memories.

Backends: ``golden`` (the numpy ISA model, `sim.golden`), ``pysim`` (the whole
accelerator, `reneta_hw.top.Reneta`, in Amaranth's simulator through `sim.harness.run_pysim`)
and ``verilator`` (the same accelerator's emitted Verilog under Verilator, through
`sim.verilator_top.run_verilator`: same harness behaviour, same cycle counts, much faster).
pysim and verilator fill ``cycles`` per procedure and keep the `HarnessResult` in
``VectorRun.harness``. Options of a backend are passed as keywords (pysim: ``dram_latency``,
``dram_stall``, ``seed``, ``max_cycles``, ``vcd``, ``core``, ``load``; verilator:
``dram_latency``, ``dram_stall``, ``seed``, ``max_cycles``, ``vcd``, ``dram_log``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .golden import run_program
from .vectors import CheckResult, VectorSet, compare, summarize

BACKENDS = ("golden", "pysim", "verilator")
HARNESS_BACKENDS = ("pysim", "verilator")


@dataclass
class VectorRun:
    vectors: VectorSet
    checks: list          # CheckResult per expected region
    rows: list            # one dict per procedure (proc, pass, mismatches, beats, cycles)
    harness: object = None  # sim.harness.HarnessResult (pysim, verilator)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def run_vectors(vs: VectorSet, backend: str = "golden", **options) -> VectorRun:
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not available (available: "
                         f"{', '.join(BACKENDS)})")
    if backend == "golden" and options:
        raise ValueError(f"backend golden takes no options, got {sorted(options)}")
    result = run_program(vs.config, vs.program, vs.memories)
    results = list(result.results)
    if backend in HARNESS_BACKENDS:
        # the harness resumes after every pause: count the beats of the whole program
        while result.paused and result.pc < len(vs.program):
            result = run_program(vs.config, vs.program, result.memories, start=result.pc)
            results += result.results
    beats: dict = {}
    for r in results:
        beats[r.proc.name] = beats.get(r.proc.name, 0) + r.beats
    if backend in HARNESS_BACKENDS:
        if backend == "pysim":
            from .harness import run_pysim as run
        else:
            from .verilator_top import run_verilator as run
        h = run(vs, **options)
        checks: list[CheckResult] = compare(vs, h.memories)
        return VectorRun(vs, checks, summarize(vs, checks, beats, cycles=h.cycles_per_proc),
                         harness=h)
    checks = compare(vs, result.memories)
    return VectorRun(vs, checks, summarize(vs, checks, beats, cycles=None))
