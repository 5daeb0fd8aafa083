"""Waveforms: ``--vcd FILE`` writes a VCD and a GTKWave save file of the main buses, for pysim
and for Verilator (`sim.waves`)."""

import subprocess
import sys
from pathlib import Path

import pytest

from sim import verilator_top
from sim.bench import bench_vectors, make_bench_problem
from sim.vectors import write_vectors
from sim.waves import MAIN_BUSES, gtkw_for, vcd_variables, write_gtkw

from test_top_program import CFG

ROOT = Path(__file__).resolve().parents[1]
GROUPS = [g for g, _, _ in MAIN_BUSES]


def _small_vectors():
    """Two MxV_SP instructions: a short run that still moves every bus."""
    return bench_vectors(make_bench_problem(CFG, 8, 8, 2, 0.5, seed=1), "MxV_SP")


def _traces(gtkw: Path) -> dict:
    groups, cur = {}, None
    lines = gtkw.read_text().splitlines()
    for prev, line in zip(lines, lines[1:]):
        if line.startswith("-") and prev == "@800200":
            cur = groups.setdefault(line[1:], [])
        elif cur is not None and line and line[0] not in "@-[*":
            cur.append(line)
    return groups


def _check_waves(vcd: Path) -> dict:
    gtkw = vcd.with_suffix(".gtkw")
    assert vcd.stat().st_size > 10_000 and gtkw.exists()
    groups = _traces(gtkw)
    assert list(groups) == GROUPS                   # every main bus was found
    names = {".".join(s + (n,)) for s, n, _, _ in vcd_variables(vcd)}
    for traces in groups.values():
        for t in traces:
            assert t.split("[")[0] in names, t      # each trace is a variable of the VCD
    assert any(t.endswith("ctrl__aw__awaddr[11:0]") for t in groups["AXI4-Lite control"])
    assert any(t.endswith("instr__valid") for t in groups["core instructions"])
    return groups


def test_gtkw_groups_from_vcd_header(tmp_path):
    vcd = tmp_path / "t.vcd"
    vcd.write_text("$timescale 1ps $end\n$scope module TOP $end\n$scope module top $end\n"
                   "$var wire 12 ! ctrl__ar__araddr [11:0] $end\n$var wire 1 \" irq $end\n"
                   "$scope module core $end\n$var wire 1 # instr__valid $end\n"
                   "$var wire 7 $ instr__payload $end\n$var wire 7 % \\instr__payload.x $end\n"
                   "$upscope $end\n$upscope $end\n$upscope $end\n$enddefinitions $end\n#0\n")
    assert gtkw_for(vcd_variables(vcd)) == [
        ("AXI4-Lite control", ["TOP.top.ctrl__ar__araddr[11:0]", "TOP.top.irq"]),
        ("core instructions", ["TOP.top.core.instr__payload[6:0]", "TOP.top.core.instr__valid"]),
    ]
    bad = tmp_path / "bad.vcd"
    bad.write_text("$scope module x $end\n$var wire 1 ! a $end\n$upscope $end\n"
                   "$enddefinitions $end\n")
    with pytest.raises(ValueError, match="accelerator's ports"):
        write_gtkw(bad, tmp_path / "bad.gtkw")


def test_build_sim_vcd_pysim(tmp_path):
    write_vectors(_small_vectors(), tmp_path / "v")
    vcd = tmp_path / "w" / "run.vcd"
    r = subprocess.run([sys.executable, str(ROOT / "build.py"), "sim", str(tmp_path / "v"),
                        "--backend", "pysim", "--vcd", str(vcd)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "waves:" in r.stdout
    groups = _check_waves(vcd)
    assert all(t.startswith("bench.top.") for g in groups.values() for t in g)


def test_vcd_needs_a_harness_backend(tmp_path):
    write_vectors(_small_vectors(), tmp_path / "v")
    r = subprocess.run([sys.executable, str(ROOT / "build.py"), "sim", str(tmp_path / "v"),
                        "--vcd", str(tmp_path / "x.vcd")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and "--vcd needs" in r.stderr


@pytest.mark.slow
@pytest.mark.skipif(verilator_top.unavailable_reason() is not None,
                    reason=str(verilator_top.unavailable_reason()))
def test_verilator_vcd_same_buses_as_pysim(tmp_path):
    """The trace build (a separate cached model) shows the very signals pysim's VCD shows,
    under its own root, and a run with tracing has the same cycles as one without."""
    from sim.harness import run_pysim

    vs = _small_vectors()
    vcd = tmp_path / "v.vcd"
    traced = verilator_top.run_verilator(vs, vcd=str(vcd))
    plain = verilator_top.run_verilator(vs)
    assert traced.instructions == plain.instructions
    assert traced.counters == plain.counters
    groups = _check_waves(vcd)
    root = "TOP.reneta_sim.reneta."
    assert all(t.startswith(root) for g in groups.values() for t in g)
    run_pysim(vs, vcd=str(tmp_path / "p.vcd"))
    pysim_groups = _check_waves(tmp_path / "p.vcd")
    assert {g: [t[len(root):] for t in ts] for g, ts in groups.items()} == \
        {g: [t[len("bench.top."):] for t in ts] for g, ts in pysim_groups.items()}
