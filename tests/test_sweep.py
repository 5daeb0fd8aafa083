"""Parameter sweeps (`platforms.sweep`): grid parsing, the point table, the cache, the
executors (inline, local processes, a Dask LocalCluster) and the report files.

Synthesis is replaced by `fake_synth`, a TEST DOUBLE whose numbers are derived from the
config (real Yosys/nextpnr of the whole accelerator takes minutes); one sweep runs the
real pysim benchmark on a tiny case.
"""

from __future__ import annotations

import io
import json

import pytest

from platforms import sweep
from platforms.sweep import (SweepError, SweepOptions, expand_grid, parse_grid, run_sweep,
                             write_table)
from platforms.report_html import write_report
from reneta_hw.config import AcceleratorConfig

TINY = AcceleratorConfig(num_pe=2, max_n=16, max_m=16, smem_depth=256, spm_depth=16,
                         nzi_fifo_depth=16)
CALLS = {"synth": 0, "bench": 0}


def fake_synth(cfg, target="ecp5", device=None, pnr=True):
    """TEST DOUBLE for `sweep.synthesize`: plausible numbers from the config, no toolchain."""
    CALLS["synth"] += 1
    if cfg.max_n == 32 and cfg.num_pe == 4:
        raise RuntimeError("fake synthesis failure for num_pe=4 max_n=32")
    n = cfg.num_pe
    return {"luts": 900 * n + cfg.max_n, "ffs": 700 * n, "dsps": n, "brams": 2 + n // 2,
            "lutrams": 0, "fmax_mhz": (200.0 - 6 * n) if pnr else None}


def fake_bench(cfg, sparsities, n, nt, procs, dram_latency, seed):
    """TEST DOUBLE for `sweep.benchmark`: rows shaped like its rows, cycles from the config."""
    CALLS["bench"] += 1
    rows = []
    dense = {p: 100 * n // cfg.num_pe for p in ("MxV", "MTxV", "VXV")}
    for k, sp in enumerate(sparsities):
        for p in procs:
            beats = round(dense[sweep.DENSE_OF[p]] * (1 - sp))
            rows.append({"sparsity": sp, "proc": p, "pass": True, "cycles": beats + 40,
                         "mac_beats": beats, "utilization": round(beats / (beats + 40), 4)})
        if k == 0:
            rows += [{"sparsity": sp, "proc": sweep.DENSE_OF[p], "pass": True,
                      "cycles": dense[sweep.DENSE_OF[p]] + 20,
                      "mac_beats": dense[sweep.DENSE_OF[p]], "utilization": 0.9}
                     for p in procs]
    return rows


def counting_benchmark(cfg, **kw):
    """The real benchmark, counted (to show a cached sweep runs none)."""
    CALLS["bench"] += 1
    return sweep.benchmark(cfg, **kw)


FAKE = dict(synth_fn=fake_synth, bench_fn=fake_bench, sparsities=(0.5, 0.9), bench_n=8,
            bench_nt=4)
TIMING = ("synth_s", "bench_s", "cached")


def _table(result):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in result.rows]


# --- the grid -----------------------------------------------------------------------------------

def test_grid_expands_every_combination_over_the_base():
    grid = parse_grid(["num_pe=2,4", 'fmt=fixed,bf16,{"kind":"fixed","int_bits":4,'
                                     '"frac_bits":12}'])
    assert grid["fmt"][2].startswith("{") and len(grid["fmt"]) == 3
    points = expand_grid(grid, TINY)
    assert len(points) == 6
    assert [p.cfg.num_pe for p in points[:3]] == [2, 2, 2]
    assert points[1].cfg.fmt.to_json()["kind"] == "bfloat16"
    assert points[2].cfg.fmt.frac_bits == 12 and points[2].cfg.max_m == TINY.max_m
    assert points[4].label == "num_pe=4 fmt=bf16"
    lists = expand_grid(parse_grid(['procedures=["MxV","MxV_SP"],["MxV_SP"]']), TINY)
    assert [p.cfg.procedures for p in lists] == [("MxV", "MxV_SP"), ("MxV_SP",)]
    assert [p.label for p in expand_grid({}, TINY)] == ["base"]


@pytest.mark.parametrize("items, message", [
    (["num_pes=2,4"], "--grid num_pes: unknown parameter"),
    (["num_pe"], "expected key=v1,v2"),
    (["num_pe=2", "num_pe=4"], "given twice"),
    (["num_pe=2,4,2"], "value(s) 2 given twice"),
    (["num_pe=2,,4"], "empty value"),
    (['procedures=["MxV"'], "unbalanced"),
])
def test_grid_syntax_errors_name_the_key(items, message):
    with pytest.raises(SweepError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_grid(items)


@pytest.mark.parametrize("items, message", [
    (["num_pe=2,3"], r"--grid point num_pe=3: AcceleratorConfig.num_pe: must be a power of two"),
    (["max_n=16,17"], r"point max_n=17: AcceleratorConfig.max_n: must be a positive multiple"),
    (["fmt=fixed,float8"], r"point fmt=float8: .*fmt=float8"),
    (["num_pe=two"], r"point num_pe=two: .*num_pe: must be an integer"),
    (["fmt=bf16,bfloat16"], "are the same configuration"),
])
def test_impossible_points_are_refused_before_any_work(items, message):
    with pytest.raises(SweepError, match=message):
        expand_grid(parse_grid(items), TINY)


def test_options_and_benchmark_case_are_checked():
    with pytest.raises(SweepError, match=r"--sparsity: each must be in \[0, 1\)"):
        SweepOptions(sparsities=(0.5, 1.0))
    with pytest.raises(SweepError, match="bench procedures"):
        SweepOptions(bench_procs=("MxV",))
    small = expand_grid(parse_grid(["max_n=8"]), TINY)
    with pytest.raises(SweepError, match=r"point max_n=8: max_n=8 is too small .*needs 16"):
        run_sweep(small, SweepOptions(bench_n=16, **{k: v for k, v in FAKE.items()
                                                     if k != "bench_n"}), progress=False)
    noproc = expand_grid(parse_grid(['procedures=["MxV_SP"]']), TINY)
    with pytest.raises(SweepError, match="MxV_SP and MxV, which the config does not"):
        run_sweep(noproc, SweepOptions(**FAKE), progress=False)
    assert SweepOptions(bench=False).check_point(noproc[0]) is None


def test_pareto_front():
    rows = [{"luts": 10, "t": 1.0}, {"luts": 20, "t": 3.0}, {"luts": 15, "t": 0.5},
            {"luts": 30, "t": 3.0}, {"luts": 5, "t": None}, {"luts": 40, "t": 4.0}]
    assert sweep.pareto_front(rows, "luts", "t") == [0, 1, 5]


# --- sweeps --------------------------------------------------------------------------------------

def test_tiny_sweep_with_real_benchmark_writes_the_report_and_caches(tmp_path):
    """Two points, fake synthesis, the real pysim benchmark; then the same sweep from the
    cache: no unit runs again."""
    points = expand_grid(parse_grid(["num_pe=2,4"]), TINY)
    opts = SweepOptions(synth_fn=fake_synth, bench_fn=counting_benchmark, sparsities=(0.5,),
                        bench_n=4, bench_nt=2, bench_procs=("MxV_SP",))
    CALLS.update(synth=0, bench=0)
    err = io.StringIO()
    res = run_sweep(points, opts, cache_dir=tmp_path / "cache", jobs=1, progress=err)
    assert CALLS == {"synth": 2, "bench": 2}
    assert res.computed == {"synth": 2, "bench": 2} and res.ok
    assert "4/4 units" in err.getvalue()
    for r, n in zip(res.rows, (2, 4)):
        assert r["num_pe"] == n and r["bench_pass"] is True and r["cached"] is False
        assert r["luts"] == 900 * n + 16 and r["fmax_mhz"] == 200 - 6 * n
        assert 0 < r["util@0.5"] <= 1 and r["cycles@0.5"] > 0 and r["bench_n"] == 4
        assert r["throughput_gmacs"] == pytest.approx(r["mac_per_cycle"] * r["fmax_mhz"] / 1e3,
                                                      abs=1e-3)
        ran = {b["proc"] for b in r["bench_rows"]}
        assert ran == {"MxV_SP", "MxV"} and all(b["pass"] for b in r["bench_rows"])
    assert any(r["pareto"] for r in res.rows)

    files = write_table(res, tmp_path / "out")
    files.update(write_report(res.rows, tmp_path / "out", res.meta))
    csv_lines = files["csv"].read_text().splitlines()
    assert csv_lines[0].startswith("point,config_hash,num_pe,") and len(csv_lines) == 3
    assert "util@0.5" in csv_lines[0] and "bench_rows" not in csv_lines[0]
    data = json.loads(files["json"].read_text())
    assert data["results"][1]["config"]["num_pe"] == 4
    assert data["meta"]["pareto_metric"] == "throughput_gmacs"
    for name in ("resources", "fmax", "utilization", "pareto"):
        assert files[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = files["html"].read_text()
    assert page.count("data:image/png;base64,") == 4 and "num_pe=4" in page
    assert "fake_synth" in page       # the report says the synthesis was a test double

    again = run_sweep(points, opts, cache_dir=tmp_path / "cache", jobs=1, progress=False)
    assert CALLS == {"synth": 2, "bench": 2}, "a cached sweep must not run any unit"
    assert again.computed == {} and all(r["cached"] for r in again.rows)
    assert _table(again) == _table(res)


def test_cache_key_covers_options_and_failures_are_not_cached(tmp_path):
    points = expand_grid(parse_grid(["num_pe=2,4", "max_n=16,32"]), TINY)
    CALLS.update(synth=0, bench=0)
    res = run_sweep(points, SweepOptions(**FAKE), cache_dir=tmp_path, jobs=1, progress=False)
    assert CALLS == {"synth": 4, "bench": 4} and not res.ok
    bad = [r for r in res.rows if r["error"]]
    assert [r["point"] for r in bad] == ["num_pe=4 max_n=32"]
    assert "RuntimeError: fake synthesis failure" in bad[0]["error"]
    assert bad[0]["luts"] is None and bad[0]["util@0.5"] is not None
    # same sweep: only the failed synthesis runs again
    run_sweep(points, SweepOptions(**FAKE), cache_dir=tmp_path, jobs=1, progress=False)
    assert CALLS == {"synth": 5, "bench": 4}
    # other sparsities: new benchmarks, synthesis from the cache (except the failed one)
    run_sweep(points, SweepOptions(**{**FAKE, "sparsities": (0.8,)}), cache_dir=tmp_path,
              jobs=1, progress=False)
    assert CALLS == {"synth": 6, "bench": 8}
    # --no-pnr is another synthesis; --force recomputes everything
    run_sweep(points[:1], SweepOptions(**FAKE, pnr=False), cache_dir=tmp_path, jobs=1, progress=False)
    assert CALLS == {"synth": 7, "bench": 8}
    run_sweep(points[:1], SweepOptions(**FAKE), cache_dir=tmp_path, force=True, jobs=1, progress=False)
    assert CALLS == {"synth": 8, "bench": 9}


def test_seeds_reach_the_synthesis_and_the_table(tmp_path, monkeypatch):
    """``--seeds N`` is passed to the place-and-route flow, is part of the cache key, and the
    winning seed and the median Fmax reach the table; one seed keeps the old keys."""
    seen = []

    def fake_target(cfg, target, device=None, pnr=True, seeds=1):
        seen.append(seeds)
        return {"luts": 1, "ffs": 1, "dsps": 0, "brams": 0, "lutrams": 0, "fmax_mhz": 120.0,
                **({"seed": 2, "fmax_median_mhz": 110.0} if seeds > 1 else {})}

    monkeypatch.setattr("platforms.synth.synth_target", fake_target)
    points = expand_grid(parse_grid(["num_pe=2"]), TINY)
    opts = dict(bench=False)
    one = run_sweep(points, SweepOptions(**opts), cache_dir=tmp_path, jobs=1, progress=False)
    three = run_sweep(points, SweepOptions(**opts, seeds=3), cache_dir=tmp_path, jobs=1,
                      progress=False)
    assert seen == [1, 3]
    assert "seed" not in one.rows[0] and one.rows[0]["fmax_mhz"] == 120.0
    assert (three.rows[0]["seed"], three.rows[0]["fmax_median_mhz"]) == (2, 110.0)
    run_sweep(points, SweepOptions(**opts, seeds=3), cache_dir=tmp_path, jobs=1, progress=False)
    assert seen == [1, 3]                                   # cached
    run_sweep(points, SweepOptions(**opts, seeds=3, pnr=False), cache_dir=tmp_path, jobs=1,
              progress=False)
    assert seen == [1, 3, 1]                                # Yosys only: seeds are moot
    for bad in (0, -1, 1.5, True):
        with pytest.raises(SweepError, match="--seeds: must be an integer >= 1"):
            SweepOptions(seeds=bad)


def test_local_processes_give_the_same_table(tmp_path):
    points = expand_grid(parse_grid(["num_pe=2,4"]), TINY)
    inline = run_sweep(points, SweepOptions(**FAKE), cache_dir=tmp_path / "a", jobs=1,
                       progress=False)
    pool = run_sweep(points, SweepOptions(**FAKE), cache_dir=tmp_path / "b", jobs=2,
                     progress=False)
    assert pool.computed == {"synth": 2, "bench": 2}
    assert pool.meta["executor"] == "2 local processes"
    assert _table(pool) == _table(inline)


def test_dask_local_cluster_gives_the_same_table(tmp_path):
    distributed = pytest.importorskip("distributed")
    points = expand_grid(parse_grid(["num_pe=2,4"]), TINY)
    inline = run_sweep(points, SweepOptions(**FAKE), cache_dir=tmp_path / "a", jobs=1,
                       progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        remote = run_sweep(points, SweepOptions(**FAKE), cache_dir=tmp_path / "b",
                           scheduler=cluster.scheduler_address, progress=False)
    assert remote.computed == {"synth": 2, "bench": 2}
    assert remote.meta["executor"].startswith("dask tcp://127.0.0.1:")
    assert _table(remote) == _table(inline)


def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    pytest.importorskip("distributed")
    points = expand_grid(parse_grid(["num_pe=2"]), TINY)
    with pytest.raises(SweepError, match=r"--scheduler tcp://127.0.0.1:9: cannot connect"):
        run_sweep(points, SweepOptions(**FAKE), cache_dir=tmp_path,
                  scheduler="tcp://127.0.0.1:9", connect_timeout=1, progress=False)


def test_cli_rejects_a_bad_grid_before_any_work(capsys):
    import build
    assert build.main(["sweep", "--grid", "num_pe=2,3", "--out", "/nonexistent/x"]) == 2
    assert "sweep: --grid point num_pe=3: AcceleratorConfig.num_pe" in capsys.readouterr().err
    assert build.main(["sweep", "--grid", "colour=red"]) == 2
    assert "--grid colour: unknown parameter" in capsys.readouterr().err


def test_cli_sweep_writes_table_and_report(tmp_path, monkeypatch, capsys):
    """``build.py sweep`` end to end, with the test doubles patched in for the real steps."""
    import build
    monkeypatch.setattr(sweep, "synthesize", fake_synth)
    monkeypatch.setattr(sweep, "benchmark", fake_bench)
    cfg = tmp_path / "base.json"
    cfg.write_text(json.dumps(TINY.to_json()))
    argv = ["sweep", "--config", str(cfg), "--grid", "num_pe=2,4", "--grid", "fmt=fixed,bf16",
            "--sparsity", "0.5", "--sparsity", "0.9", "--bench-n", "8", "--bench-nt", "4",
            "--jobs", "1", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c")]
    assert build.main(argv) == 0
    out = capsys.readouterr().out
    assert "num_pe=4 fmt=bf16" in out and "util@0.9" in out
    assert "computed 4 synthesis and 4 benchmark unit(s), 0 from the cache" in out
    for name in ("results.csv", "results.json", "report.html", "pareto.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert build.main(argv) == 0
    assert "computed 0 synthesis and 0 benchmark unit(s), 8 from the cache" in \
        capsys.readouterr().out
