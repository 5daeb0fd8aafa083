"""ECP5 resource and Fmax figures of the bus blocks at the default accelerator parameters.

Why: the bus blocks sit between DRAM and a 256-bit datapath; they must not be what limits
the clock or eats the LUT budget. ``python -m reneta_hw.bus.report`` synthesizes each block
out of context (YoWASP Yosys + nextpnr, LFE5U-85F speed 8) and prints a table; `ecp5_figures`
returns the rows for other reports.

Blocks (``AcceleratorConfig()`` defaults: 16 PEs x 16-bit words = 256-bit rows, 256-bit AXI,
32-bit addresses, 4-bit IDs):

* ``AxiReadMaster``: max_burst 16, max_outstanding 4, 64-beat R buffer;
* ``AxiWriteMaster``: max_burst 16, max_outstanding 4, per-word (16-bit) strobes;
* ``AxiLiteRegisters``: a 16-register control map (`control_registers`), including an
  instruction-queue push register as wide as an instruction.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..config import AcceleratorConfig
from .axi_lite import AxiLiteRegisters, Register
from .axi_read import AxiReadMaster
from .axi_write import AxiWriteMaster

__all__ = ["control_registers", "blocks", "ecp5_figures"]


def control_registers(cfg: AcceleratorConfig) -> list:
    """A representative 16-register control map (what the controller is expected to use)."""
    from ..isa import instruction_layout
    iw = instruction_layout(cfg).size
    nw = -(-iw // 32)
    regs = [
        Register("ctrl", 0x00, "rw", 8, doc="run, pause, soft reset"),
        Register("status", 0x04, "ro", 32, doc="busy, idle, queue level"),
        Register("irq", 0x08, "w1c", 4, doc="done, error flags"),
        Register("start", 0x0C, "pulse", 1, doc="start strobe"),
        Register("instr", 0x10, "push", iw, doc="instruction queue push"),
    ]
    off = 0x10 + 4 * nw
    off = (off + 0xF) & ~0xF
    for name in ("dram_base0", "dram_base1", "dram_base2", "dram_base3"):
        regs.append(Register(name, off, "rw", cfg.axi_addr_width))
        off += 4 * (-(-cfg.axi_addr_width // 32))
    regs.append(Register("threshold", off, "rw", 16))
    off += 4
    regs.append(Register("err_addr", off, "ro", cfg.axi_addr_width))
    off += 4 * (-(-cfg.axi_addr_width // 32))
    for name in ("cycles", "busy_cycles", "dram_bytes_rd", "dram_bytes_wr"):
        regs.append(Register(name, off, "ro", 32))
        off += 4
    regs.append(Register("version", off, "ro", 32))
    assert len(regs) == 16
    return regs


def blocks(cfg: AcceleratorConfig | None = None) -> dict:
    """``name -> factory`` of the blocks at ``cfg`` (default: ``AcceleratorConfig()``)."""
    cfg = cfg or AcceleratorConfig()
    return {
        "AxiReadMaster": lambda: AxiReadMaster.from_config(cfg),
        "AxiWriteMaster": lambda: AxiWriteMaster.from_config(cfg),
        "AxiLiteRegisters": lambda: AxiLiteRegisters(control_registers(cfg), addr_width=12),
    }


def ecp5_figures(cfg: AcceleratorConfig | None = None, *, pnr: bool = True) -> list:
    """Synthesize each block (ECP5-85F, speed 8) and return rows
    ``{"block", "LUT", "FF", "DSP", "BRAM", "LUTRAM", "Fmax"}`` (Fmax in MHz, None without P&R)."""
    from platforms.synth import synth_ecp5
    rows = []
    for name, make in blocks(cfg).items():
        rep = synth_ecp5(make(), name=name.lower(), pnr=pnr, device="85k", speed=8,
                         freq_mhz=150.0)
        rows.append({"block": name, "LUT": rep.luts, "FF": rep.ffs, "DSP": rep.dsps,
                     "BRAM": rep.brams, "LUTRAM": rep.lutrams, "Fmax": rep.fmax_mhz})
    return rows


def format_table(rows) -> str:
    head = "| block | LUT | FF | DSP | BRAM (DP16KD) | LUTRAM cells | Fmax (MHz) |"
    sep = "|---|---:|---:|---:|---:|---:|---:|"
    lines = [head, sep]
    for r in rows:
        fmax = "-" if r["Fmax"] is None else f"{r['Fmax']:.1f}"
        lines.append(f"| {r['block']} | {r['LUT']} | {r['FF']} | {r['DSP']} | {r['BRAM']} | "
                     f"{r['LUTRAM']} | {fmax} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reneta_hw.bus.report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-pnr", action="store_true", help="synthesis only (no Fmax)")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    rows = ecp5_figures(pnr=not args.no_pnr)
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
