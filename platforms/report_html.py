"""The sweep's plots (PNG, matplotlib's Agg backend) and its self-contained HTML report.

Why: a table of twenty configurations is hard to read; four plots answer the usual
questions: how resources grow with ``num_pe``, what Fmax each point reaches, how
utilization falls with Δ sparsity, and which points are worth building (throughput against
LUTs, with the Pareto front). The report embeds the plots (base64) and the table, so the
one file can be mailed or attached to CI as it is.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

__all__ = ["write_report", "plot_resources", "plot_fmax", "plot_utilization", "plot_pareto"]

RESOURCES = (("luts", "LUT4"), ("ffs", "FF"), ("dsps", "DSP (MULT18X18D)"),
             ("brams", "BRAM (DP16KD)"))


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _grid_keys(meta: dict) -> list[str]:
    grid = meta.get("grid") or [{}]
    return list(grid[0])


def _groups(rows: list[dict], meta: dict, x: str = "num_pe") -> dict[str, list[dict]]:
    """Rows grouped by every grid parameter except ``x`` (one line per group)."""
    keys = [k for k in _grid_keys(meta) if k != x]
    out: dict[str, list[dict]] = {}
    for r, params in zip(rows, meta.get("grid") or [{}] * len(rows)):
        label = " ".join(f"{k}={params.get(k)}" for k in keys) or "all"
        out.setdefault(label, []).append(r)
    return out


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="gray")


def _layout(fig) -> None:
    """Fixed margins: ``tight_layout`` measures every text and costs seconds per figure."""
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.2, top=0.88, wspace=0.3, hspace=0.45)


def _save(fig, path: Path) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    data = buf.getvalue()
    path.write_bytes(data)
    return data


def plot_resources(rows, meta, path: Path) -> bytes:
    """LUT, FF, DSP and BRAM counts against ``num_pe``, one line per group of the others."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5))
    groups = _groups(rows, meta)
    for ax, (key, name) in zip(axes.flat, RESOURCES):
        any_data = False
        for label, rs in groups.items():
            pts = sorted((r["num_pe"], r[key]) for r in rs if r.get(key) is not None)
            if pts:
                any_data = True
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
        ax.set_title(name)
        ax.set_xlabel("num_pe")
        ax.set_xscale("log", base=2)
        ticks = sorted({r["num_pe"] for r in rows})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.margins(x=0.1)
        ax.grid(alpha=0.3)
        if not any_data:
            _empty(ax, "no data")
    if len(groups) > 1:
        axes.flat[0].legend(fontsize=7)
    fig.suptitle("Resources against num_pe")
    _layout(fig)
    data = _save(fig, path)
    plt.close(fig)
    return data


def plot_fmax(rows, meta, path: Path) -> bytes:
    """Fmax of every point (bars, labelled by point)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(rows) + 2), 4))
    vals = [r.get("fmax_mhz") for r in rows]
    if any(v is not None for v in vals):
        ax.bar(range(len(rows)), [v or 0 for v in vals], color="tab:blue")
        for i, v in enumerate(vals):
            ax.text(i, v or 0, "-" if v is None else f"{v:g}", ha="center", va="bottom",
                    fontsize=8)
    else:
        _empty(ax, "no place and route (--no-pnr): no Fmax")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["point"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("Fmax (MHz)")
    ax.set_title(f"Fmax ({rows[0].get('target', '')}, out of context)" if rows else "Fmax")
    _layout(fig)
    data = _save(fig, path)
    plt.close(fig)
    return data


def plot_utilization(rows, meta, path: Path) -> bytes:
    """PE-array utilization (MAC beats / cycles of the sparse procedures) against sparsity."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    sps = sorted({float(c.split("@", 1)[1]) for r in rows for c in r if c.startswith("util@")})
    drawn = False
    for r in rows:
        pts = [(s, r.get(f"util@{s}")) for s in sps if r.get(f"util@{s}") is not None]
        if pts:
            drawn = True
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=r["point"])
    if drawn:
        ax.legend(fontsize=7)
    else:
        _empty(ax, "no benchmark")
    ax.set_xlabel("Δ sparsity")
    ax.set_ylabel("utilization (MAC beats / cycle)")
    ax.set_title("Utilization of the sparse procedures")
    ax.grid(alpha=0.3)
    _layout(fig)
    data = _save(fig, path)
    plt.close(fig)
    return data


def plot_pareto(rows, meta, path: Path) -> bytes:
    """Throughput against LUTs, every point labelled, the Pareto front drawn as a step line."""
    plt = _pyplot()
    metric = meta.get("pareto_metric", "throughput_gmacs")
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    pts = [(r["luts"], r[metric], r) for r in rows
           if r.get("luts") is not None and r.get(metric) is not None]
    if pts:
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], color="tab:gray", zorder=2,
                   label="points")
        for x, y, r in pts:
            ax.annotate(r["point"], (x, y), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
        front = sorted((x, y) for x, y, r in pts if r.get("pareto"))
        if front:
            ax.step([p[0] for p in front], [p[1] for p in front], "-o", where="post",
                    color="tab:red", zorder=3, label="Pareto front")
        ax.legend(fontsize=8)
    else:
        _empty(ax, "needs LUTs and a benchmark")
    ax.margins(x=0.2, y=0.1)
    ax.set_xlabel("LUT4")
    ax.set_ylabel("throughput (GMAC/s at Fmax)" if metric == "throughput_gmacs"
                  else "MACs per cycle (no Fmax without P&R)")
    ax.set_title("Throughput against LUTs")
    ax.grid(alpha=0.3)
    _layout(fig)
    data = _save(fig, path)
    plt.close(fig)
    return data


PLOTS = (("resources.png", plot_resources, "Resources against num_pe"),
         ("fmax.png", plot_fmax, "Fmax"),
         ("utilization.png", plot_utilization, "Utilization against sparsity"),
         ("pareto.png", plot_pareto, "Throughput against LUTs (Pareto front in red)"))

_CSS = """body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}
th{background:#eee}tr.pareto td{background:#fff3e0;font-weight:bold}tr.error td{color:#b00}
img{max-width:48%;margin:4px;border:1px solid #ddd}code{background:#f4f4f4}"""


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return html.escape(str(v))


def write_report(rows: list[dict], out_dir, meta: dict) -> dict:
    """Write the four PNG plots and ``report.html`` to ``out_dir``; return their paths."""
    from .sweep import table_columns

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files, imgs = {}, []
    for name, fn, title in PLOTS:
        data = fn(rows, meta, out / name)
        files[name.removesuffix(".png")] = out / name
        imgs.append(f'<figure style="display:inline-block;width:48%;margin:0">'
                    f'<img style="max-width:100%" alt="{html.escape(title)}" '
                    f'src="data:image/png;base64,{base64.b64encode(data).decode()}">'
                    f'<figcaption>{html.escape(title)}</figcaption></figure>')
    cols = table_columns(rows)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for r in rows:
        cls = "error" if r.get("error") else ("pareto" if r.get("pareto") else "")
        body.append(f'<tr class="{cls}">' + "".join(f"<td>{_cell(r.get(c))}</td>" for c in cols)
                    + "</tr>")
    opts = meta.get("options", {})
    fp = meta.get("fingerprint", {})
    info = [
        f"{meta.get('points', len(rows))} point(s), {meta.get('units', '?')} units, "
        f"{meta.get('cached_units', 0)} from the cache; {meta.get('elapsed_s', '?')} s on "
        f"{html.escape(str(meta.get('executor', '?')))}",
        f"target <code>{html.escape(str(opts.get('target')))}</code>, device "
        f"<code>{html.escape(str(opts.get('device') or 'default'))}</code>, place and route "
        f"{'yes' if opts.get('pnr') else 'no'}; synthesis by "
        f"<code>{html.escape(str(opts.get('synth_fn')))}</code>",
        f"benchmark (<code>{html.escape(str(opts.get('bench_fn')))}</code>): each point's own "
        f"accelerator in pysim, Nx = Nh = {opts.get('bench_n')} (rounded up to num_pe), "
        f"Nt = {opts.get('bench_nt')}, sparsities {opts.get('sparsities')}, DRAM latency "
        f"{opts.get('dram_latency')} cycles; utilization = MAC beats / cycles of "
        f"{', '.join(opts.get('bench_procs') or ())}; throughput = MACs per cycle x Fmax",
        f"Pareto front: smallest LUTs for the largest "
        f"<code>{html.escape(str(meta.get('pareto_metric')))}</code> (highlighted rows)",
        f"environment {html.escape(str(meta.get('fingerprint_id')))}: sources "
        f"{html.escape(str(fp.get('source_sha256', ''))[:16])}, "
        + ", ".join(f"{html.escape(k)} {html.escape(str(v))}"
                    for k, v in (fp.get("versions") or {}).items()),
    ]
    doc = ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>RENETA sweep</title>"
           f"<style>{_CSS}</style></head><body>\n<h1>RENETA parameter sweep</h1>\n<ul>"
           + "".join(f"<li>{x}</li>" for x in info) + "</ul>\n<h2>Plots</h2>\n"
           + "\n".join(imgs) + "\n<h2>Results</h2>\n<p>Also as <a href='results.csv'>CSV</a> "
           "and <a href='results.json'>JSON</a>.</p>\n<table><tr>" + head + "</tr>\n"
           + "\n".join(body) + "\n</table>\n</body></html>\n")
    (out / "report.html").write_text(doc)
    files["html"] = out / "report.html"
    return files
