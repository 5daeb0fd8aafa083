"""The hardware half of ``build.py demo``: pick a gateware simulator, synthesize in the
background, and write the report.

Why: the demo shows the whole product in minutes on two cores. Synthesis of the whole
accelerator is the slow part (Yosys alone takes minutes; ECP5 place and route of the
default 16-PE design tens of minutes), so it runs in a separate process while the
gateware simulation runs, and its result is cached by content (`platforms.synth`'s key:
the RTLIL, the options and the tool versions) in one directory shared with ``build.py
synth``: a later demo, or one after ``build.py synth`` of the same design, reuses it.

Synthesis modes: ``auto`` (default) uses a cached place-and-route report when there is one
and otherwise runs Yosys only (resources, no Fmax); ``pnr`` always places and routes
(Fmax; cached afterwards); ``yosys``; ``none``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["pick_backend", "synth_cache_dir", "start_synth", "SynthJob", "SYNTH_MODES",
           "write_report"]

SYNTH_MODES = ("auto", "pnr", "yosys", "none")


def synth_cache_dir() -> Path:
    """The cache shared with ``build.py synth`` (`platforms.synth.default_cache_dir`)."""
    from platforms.synth import default_cache_dir
    return default_cache_dir()


def pick_backend(requested: str) -> tuple[str, str]:
    """``(backend, why)``: Verilator when it is there and works (``auto``), else pysim."""
    from sim import runner
    if requested in ("pysim", "golden"):
        return requested, "requested"
    have = "verilator" in getattr(runner, "BACKENDS", ())
    reason = None
    if have:
        from sim.verilator_eval import unavailable_reason
        reason = unavailable_reason()
    if have and reason is None:
        return "verilator", "Verilator found"
    if requested == "verilator":
        raise ValueError(f"--sim-backend verilator: {reason or 'not in sim.runner.BACKENDS'}")
    return "pysim", f"Verilator unavailable ({reason or 'no backend'}): pysim"


def _synth_worker(cfg_json: dict, mode: str, cache_dir: str, workdir: str) -> dict:
    os.nice(5)                            # the simulation in the parent goes first
    from platforms.synth import synth_target
    from reneta_hw.config import AcceleratorConfig
    cfg = AcceleratorConfig.from_json(cfg_json)
    if mode == "auto":
        rep = synth_target(cfg, "ecp5", pnr=True, cache_dir=cache_dir, cached_only=True)
        if rep is not None:
            return rep
        mode = "yosys"
    return synth_target(cfg, "ecp5", pnr=(mode == "pnr"), cache_dir=cache_dir,
                        workdir=workdir)


class SynthJob:
    """`synth_target` running in a child process: ``result()`` waits for its report,
    ``cancel()`` stops it (the demo failed or was interrupted)."""

    def __init__(self, cfg, mode: str, workdir: Path, cache_dir: Path | None):
        import multiprocessing
        self._pool = multiprocessing.get_context("spawn").Pool(1)
        self._async = self._pool.apply_async(
            _synth_worker, (cfg.to_json(), mode, str(cache_dir or synth_cache_dir()),
                            str(workdir)))

    def result(self) -> dict:
        try:
            return self._async.get()
        finally:
            self._pool.close()
            self._pool.join()

    def cancel(self) -> None:
        self._pool.terminate()
        self._pool.join()


def start_synth(cfg, mode: str, workdir: Path, cache_dir: Path | None = None):
    """A `SynthJob` of `synth_target` for ``cfg`` on ECP5-85F, or None for ``none``."""
    if mode not in SYNTH_MODES:
        raise ValueError(f"synth mode must be one of {', '.join(SYNTH_MODES)}, got {mode!r}")
    if mode == "none":
        return None
    return SynthJob(cfg, mode, workdir, cache_dir)


def _plot(path: Path, rows: list) -> Path | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    procs = [r["proc"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    x = range(len(procs))
    ax.bar([i - 0.2 for i in x], [r["dense_beats"] for r in rows], 0.4, label="dense MAC beats")
    ax.bar([i + 0.2 for i in x], [r["cycles"] or 0 for r in rows], 0.4,
           label="sparse: measured cycles")
    ax.set_xticks(list(x), procs)
    ax.set_ylabel("cycles")
    ax.set_title("one sample's training kernels on the accelerator")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(out: Path, summary: dict, rows: list) -> dict[str, Path]:
    """``report.md`` (the summary in prose and tables) and ``cycles.png``."""
    out = Path(out)
    paths = {}
    png = _plot(out / "cycles.png", rows)
    if png:
        paths["plot"] = png
    pct = lambda v: "-" if v is None else f"{100 * v:.1f} %"      # noqa: E731
    s = summary
    lines = [
        "# reneta demo", "",
        f"A DeltaLSTM (H = {s['hidden_size']}) trained on the built-in synthetic data: test "
        f"accuracy {pct(s['accuracy'])}, Δx sparsity {pct(s['sparsity_dx'])}, Δh sparsity "
        f"{pct(s['sparsity_dh'])}, operations saved {pct(s.get('op_reduction'))}.", "",
        f"Test sample {s['sample']}'s training kernels (layer 0) ran on the accelerator "
        f"({s['config_summary']}) in **{s['sim_backend']}**: bit-exact with the golden "
        f"model: **{s['bit_exact']}**; {s['cycles_total']} cycles, MAC utilization "
        f"{pct(s['utilization'])}.", "",
        "| procedure | pass | MAC beats | cycles | utilization | dense beats | speedup vs dense |",
        "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['proc']} | {r['pass']} | {r['beats']} | {r['cycles']} | "
                     f"{pct(r['utilization'])} | {r['dense_beats']} | {r['speedup']} |")
    lines += ["", f"Speedup vs dense: {s['speedup_method']}", ""]
    syn = s.get("synthesis") or {}
    if syn:
        lines += [f"Synthesis ({syn.get('part')}, {s['synth_mode']}): {syn.get('message')}"
                  + (" (cached)" if syn.get("cached") else ""), ""]
        if syn.get("critical_path"):
            lines += ["Critical path:", "", "```", *syn["critical_path"][:12], "```", ""]
        late = syn.get("failing_endpoints")
        if late and late["count"]:
            lines += [f"{late['count']} endpoints later than {late['period_ns']} ns "
                      f"({late['target_mhz']:g} MHz):", "",
                      "| block | endpoints | worst arrival (ns) |", "|---|---|---|",
                      *[f"| {b} | {n} | {w} |" for b, n, w in late["by_block"]], ""]
    else:
        lines += [f"Synthesis: {s.get('synth_note') or 'skipped'}", ""]
    if png:
        lines += ["![cycles](cycles.png)", ""]
    lines += [f"Files: `summary.json`, `vectors.npz`, `hdl/` (Verilog, RTLIL, config), "
              f"`train/` (model and training plots). Elapsed {s['elapsed_s']} s.", ""]
    (out / "report.md").write_text("\n".join(lines))
    paths["report"] = out / "report.md"
    return paths
