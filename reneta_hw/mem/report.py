"""ECP5 size and Fmax of the memory blocks at the accelerator's default parameters.

Why: the memory wrappers are instantiated many times (per PE, per bank, per link), so their
cost and their speed set a floor for the whole design; this report keeps them measured.

Run ``python -m reneta_hw.mem.report`` (place and route, about a minute) or call
`ecp5_figures`. Sizes come from `AcceleratorConfig` (default: 16-bit words, 256-bit rows,
16-deep data FIFOs, 256-deep non-zero index FIFOs, 4096-row SMEM bank lanes).

Reading the Fmax columns: out of context, nextpnr times only register-to-register paths,
so the "bare" figure ignores what leaves a block through its ports (a block RAM's output
is such a path). The "ports registered" figure puts a flip-flop on every port and is the
one to plan with. On ECP5 it is bounded near 185-210 MHz for anything read from a
``DP16KD``: its clock-to-output alone is about 4.3 ns at speed 8 when the block's own
output register is not used, and Yosys 0.70 does not put ``read_latency=2`` registers
there (see `SimpleDualPortRAM`).
"""

from __future__ import annotations

import sys

from platforms.synth import synth_ecp5, synth_ecp5_registered

from ..config import AcceleratorConfig
from .bram import SimpleDualPortRAM, SinglePortRAM
from .fifo import PipelineRegister, SkidBuffer, StreamFIFO

__all__ = ["blocks", "ecp5_figures", "format_table"]


def blocks(cfg: AcceleratorConfig | None = None):
    """(name, factory) for every memory block at the sizes ``cfg`` implies."""
    cfg = cfg or AcceleratorConfig()
    w, row = cfg.word_bits, cfg.row_bits
    return [
        (f"SimpleDualPortRAM({w}x256, lat 1)", lambda: SimpleDualPortRAM(w, 256)),
        (f"SimpleDualPortRAM({w}x256, lat 2)", lambda: SimpleDualPortRAM(w, 256, read_latency=2)),
        (f"SimpleDualPortRAM({w}x1024, lat 1)", lambda: SimpleDualPortRAM(w, 1024)),
        (f"SinglePortRAM({w}x{cfg.smem_bank_rows})",
         lambda: SinglePortRAM(w, cfg.smem_bank_rows)),
        (f"StreamFIFO({row} bit, {cfg.data_fifo_depth})",
         lambda: StreamFIFO(row, cfg.data_fifo_depth)),
        (f"StreamFIFO({w} bit, {cfg.nzi_fifo_depth})",
         lambda: StreamFIFO(w, cfg.nzi_fifo_depth)),
        (f"SkidBuffer({row} bit)", lambda: SkidBuffer(row)),
        (f"PipelineRegister({row} bit)", lambda: PipelineRegister(row)),
    ]


def ecp5_figures(cfg: AcceleratorConfig | None = None, *, pnr: bool = True,
                 device: str = "85k", speed: int = 8) -> list[dict]:
    """Synthesize each block (Yosys, and nextpnr out of context when ``pnr``).

    Returns one dict per block: ``block, luts, ffs, dsps, brams, lutrams`` (the bare block)
    and two clock rates: ``fmax_mhz`` of the bare block (only its internal
    register-to-register paths count out of context; None if it has none) and
    ``fmax_io_mhz`` with every port registered (`synth_ecp5_registered`), which includes
    the block RAM's clock-to-output and any output logic: the figure to plan with.
    """
    rows = []
    for i, (name, make) in enumerate(blocks(cfg)):
        r = synth_ecp5(make(), name=f"mem{i}", pnr=pnr, device=device, speed=speed)
        row = dict(block=name, luts=r.luts, ffs=r.ffs, dsps=r.dsps, brams=r.brams,
                   lutrams=r.lutrams, fmax_mhz=r.fmax_mhz, fmax_io_mhz=None)
        if pnr:
            row["fmax_io_mhz"] = synth_ecp5_registered(make(), name=f"mem{i}io", pnr=True,
                                                       device=device, speed=speed).fmax_mhz
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    def mhz(v):
        return "-" if v is None else f"{v:.1f}"

    lines = ["| block | LUT | FF | DSP | BRAM (DP16KD) | LUTRAM (DPR16X4) | Fmax MHz (bare) |"
             " Fmax MHz (ports registered) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['block']} | {r['luts']} | {r['ffs']} | {r['dsps']} | {r['brams']} |"
                     f" {r['lutrams']} | {mhz(r['fmax_mhz'])} | {mhz(r['fmax_io_mhz'])} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    pnr = "--no-pnr" not in argv
    print(format_table(ecp5_figures(pnr=pnr)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
