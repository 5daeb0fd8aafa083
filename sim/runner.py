"""Runs vector sets on a backend and compares the results with the expected memories.

Backends: ``golden`` (the numpy ISA model, `sim.golden`). Cycle-accurate backends (the
Amaranth simulator, Verilator) plug in here with the same interface and fill ``cycles``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .golden import run_program
from .vectors import CheckResult, VectorSet, compare, summarize

BACKENDS = ("golden",)


@dataclass
class VectorRun:
    vectors: VectorSet
    checks: list          # CheckResult per expected region
    rows: list            # one dict per procedure (proc, pass, mismatches, beats, cycles)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def run_vectors(vs: VectorSet, backend: str = "golden") -> VectorRun:
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not available (available: "
                         f"{', '.join(BACKENDS)})")
    result = run_program(vs.config, vs.program, vs.memories)
    beats: dict = {}
    for r in result.results:
        beats[r.proc.name] = beats.get(r.proc.name, 0) + r.beats
    checks: list[CheckResult] = compare(vs, result.memories)
    return VectorRun(vs, checks, summarize(vs, checks, beats, cycles=None))
