"""ECP5 size and Fmax of the controller blocks and the whole accelerator at the defaults.

Why: the controller sits beside a datapath that must close timing at >= 150 MHz
(fixed point); this report keeps the checker, the controller (queue, issue, counters), the
register file + controller top with a stub core, and the complete `Reneta` measured.

Run ``python -m reneta_hw.ctrl.report [--no-pnr] [--full]`` or call `ecp5_figures`. Fmax
is nextpnr's out-of-context register-to-register figure with every port registered
(`platforms.synth.synth_ecp5_registered`); sizes come from the bare blocks' synthesis.
``--full`` adds the whole accelerator with the real core (slow: many minutes).
"""

from __future__ import annotations

import sys

from platforms.synth import synth_ecp5, synth_ecp5_registered

from ..config import AcceleratorConfig

__all__ = ["blocks", "ecp5_figures", "format_table"]


def blocks(cfg: AcceleratorConfig | None = None, full: bool = False):
    from ..top import Reneta
    from .checker import InstructionChecker
    from .controller import Controller
    from .stub_core import StubCore
    cfg = cfg or AcceleratorConfig()
    out = [("InstructionChecker", lambda: InstructionChecker(cfg)),
           ("Controller", lambda: Controller(cfg)),
           ("Reneta top, stub core", lambda: Reneta(cfg, core=StubCore(cfg)))]
    if full:
        out.append(("Reneta (full)", lambda: Reneta(cfg)))
    return out


def ecp5_figures(cfg: AcceleratorConfig | None = None, pnr: bool = True, full: bool = False,
                 log=None) -> list[dict]:
    """Rows (block, LUT, FF, DSP, BRAM, Fmax MHz)."""
    rows = []
    for name, make in blocks(cfg, full):
        size = synth_ecp5(make(), name="top", pnr=pnr)
        fmax = synth_ecp5_registered(make(), name="top", pnr=True).fmax_mhz if pnr else None
        row = {"block": name, "LUT": size.luts, "FF": size.ffs, "DSP": size.dsps,
               "BRAM": size.brams, "Fmax": fmax}
        rows.append(row)
        if log:
            log(row)
    return rows


def format_table(rows) -> str:
    cols = ["block", "LUT", "FF", "DSP", "BRAM", "Fmax"]
    w = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    lines = [" | ".join(c.ljust(x) for c, x in zip(cols, w)),
             "-|-".join("-" * x for x in w)]
    lines += [" | ".join(str(r[c]).ljust(x) for c, x in zip(cols, w)) for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    rows = ecp5_figures(pnr="--no-pnr" not in sys.argv, full="--full" in sys.argv,
                        log=lambda r: print(r, file=sys.stderr, flush=True))
    print(format_table(rows))
