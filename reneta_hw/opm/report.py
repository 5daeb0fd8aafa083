"""ECP5 size and Fmax of the OPM blocks at the default parameters.

Why: the delta encoder sits in the forward pass of every timestep; its resources and clock
rate are part of the accelerator's budget. ``python -m reneta_hw.opm.report`` synthesizes
`DeltaEncoder` (and its Δ datapath alone) at ``AcceleratorConfig()`` defaults (16 PEs,
16-bit words, max_n 256) for Q8.8 and bfloat16 with Yosys + nextpnr (ECP5-85F, speed 8,
out of context) and prints a table.
"""

from __future__ import annotations

import argparse
import sys

from ..config import AcceleratorConfig
from ..numeric import BFloat16, FixedPoint
from .delta_encoder import DeltaEncoder, DeltaUnit

__all__ = ["ecp5_figures", "format_table", "main"]

#: Fmax targets of the project (MHz): fixed point / bfloat16
TARGET_MHZ = {"fixed": 150.0, "bfloat16": 100.0}


def _blocks(cfg_kwargs: dict | None = None):
    for fmt, tag in ((FixedPoint(), "Q8.8"), (BFloat16(), "bf16")):
        cfg = AcceleratorConfig(fmt=fmt, **(cfg_kwargs or {}))
        kind = "fixed" if isinstance(fmt, FixedPoint) else "bfloat16"
        yield f"DeltaEncoder {tag} Np={cfg.num_pe}", DeltaEncoder(cfg), kind
        yield f"DeltaUnit {tag} x{cfg.num_pe}", DeltaUnit(fmt, cfg.num_pe), kind


def ecp5_figures(pnr: bool = True, cfg_kwargs: dict | None = None, seed: int = 1,
                 progress=None) -> list[dict]:
    """Rows ``{block, luts, ffs, dsps, brams, lutrams, fmax_mhz, target_mhz, error}``.

    One row per block at ``AcceleratorConfig(**cfg_kwargs)`` (default: the defaults); a block
    whose toolchain run fails gets its error message and no figures instead of aborting the
    table. ``progress(row)`` is called after each block.
    """
    from platforms.synth import SynthError, synth_ecp5

    rows = []
    for name, block, kind in _blocks(cfg_kwargs):
        row = {"block": name, "luts": None, "ffs": None, "dsps": None, "brams": None,
               "lutrams": None, "fmax_mhz": None, "target_mhz": TARGET_MHZ[kind], "error": None}
        try:
            r = synth_ecp5(block, name="top", pnr=pnr, seed=seed)
            row.update(luts=r.luts, ffs=r.ffs, dsps=r.dsps, brams=r.brams, lutrams=r.lutrams,
                       fmax_mhz=r.fmax_mhz)
        except SynthError as e:
            row["error"] = str(e).splitlines()[0]
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def format_table(rows: list[dict]) -> str:
    head = (f"| {'block':<26} | {'LUT':>6} | {'FF':>6} | {'DSP':>3} | {'BRAM':>4} | "
            f"{'LUTRAM':>6} | {'Fmax MHz':>8} | {'target':>6} |")
    sep = "|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|"
    lines = [head, sep]

    def f(v, spec=""):
        return "-" if v is None else format(v, spec)

    for r in rows:
        lines.append(f"| {r['block']:<26} | {f(r['luts']):>6} | {f(r['ffs']):>6} | "
                     f"{f(r['dsps']):>3} | {f(r['brams']):>4} | {f(r['lutrams']):>6} | "
                     f"{f(r['fmax_mhz'], '.1f'):>8} | {r['target_mhz']:>6.0f} |"
                     + (f" failed: {r['error']}" if r.get("error") else ""))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reneta_hw.opm.report", description=__doc__)
    ap.add_argument("--no-pnr", action="store_true", help="Yosys only (no Fmax)")
    ap.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    args = ap.parse_args(argv)
    rows = ecp5_figures(pnr=not args.no_pnr, seed=args.seed,
                        progress=lambda r: print(f"done: {r['block']}", file=sys.stderr,
                                                 flush=True))
    print(format_table(rows))
    return 0 if not any(r["error"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
