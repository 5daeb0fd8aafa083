"""The whole accelerator's Verilog under Verilator (`sim.verilator_top`) against pysim: the
same memories, the same cycle counts (DRAM back-pressure included), the same errors, and
``build.py sim --backend verilator``.

The first run on a machine builds the model of the 4-PE test configuration (about a
minute: Verilog conversion, Verilator, C++ compile); later runs find it in the cache."""

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.harness import HarnessError, HarnessTimeout, run_pysim
from sim.runner import BACKENDS, run_vectors
from sim.vectors import write_vectors
from sim import verilator_top
from sim.verilator_top import build_model, run_verilator

from test_top_program import CFG, _mixed_program

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(verilator_top.unavailable_reason() is not None,
                                reason=str(verilator_top.unavailable_reason()))


@pytest.fixture(scope="module", autouse=True)
def quick_build():
    """Tests build with -O0: about a third of the -O1 compile time, still far faster than
    pysim (the CLI and the benchmark use -O1)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RENETA_VERILATOR_OPT", "-O0")
        yield


@pytest.fixture(scope="module")
def model(quick_build):
    return build_model(CFG)


def _same_run(hp, hv):
    assert hv.counters == hp.counters
    assert hv.cycles_total == hp.cycles_total
    assert hv.cycles_per_proc == hp.cycles_per_proc
    assert hv.instructions == hp.instructions
    assert hv.sim_cycles == hp.sim_cycles
    assert hv.dram_stats == hp.dram_stats
    assert hv.pauses == hp.pauses
    for name in ("dram", "smem", "spm"):
        np.testing.assert_array_equal(getattr(hv.memories, name), getattr(hp.memories, name),
                                      err_msg=name)


def test_python_random_in_cpp(model):
    """The C++ back-pressure draws are `random.Random(seed).random()`, bit for bit."""
    for seed in (0, 3, 2**40 + 5):
        key = verilator_top._seed_key(seed)
        out = subprocess.run([str(model), "mt", "700", *map(str, key)], capture_output=True,
                             text=True, check=True).stdout.split()
        rng = random.Random(seed)
        assert [float(x) for x in out] == [rng.random() for _ in range(700)]


def _max_reads_in_flight(log: Path) -> int:
    n = most = 0
    for line in log.read_text().splitlines():
        ev = line.split()[1]
        n += (ev == "ar") - (ev == "rlast")
        most = max(most, n)
    return most


def test_equals_pysim_under_dram_stalls(model, tmp_path):
    """Memories and every cycle figure equal pysim's, with random back-pressure, a pause and
    more reads in flight than AxiMemory's default limit (the harness's own limits apply)."""
    vs = _mixed_program()
    kw = dict(dram_latency=30, dram_stall=0.2, seed=3)
    hp = run_pysim(vs, **kw)
    run = run_vectors(vs, "verilator", dram_log=str(tmp_path / "dram.log"), **kw)
    assert run.passed, [c for c in run.checks if not c.passed]
    _same_run(hp, run.harness)
    assert run.harness.pauses == 1
    assert run.harness.extras["load_cycles"] > 0
    assert _max_reads_in_flight(tmp_path / "dram.log") > 16


def test_ecp5_elaboration_equals_pysim(quick_build):
    """The design as ECP5 synthesis elaborates it (SMEM banks on DP16KD blocks with their
    output register, multipliers on MULT18X18D blocks, through behavioural models of both)
    gives pysim's memories and cycle counts, under DRAM stalls."""
    vs = _mixed_program()
    kw = dict(dram_latency=12, dram_stall=0.2, seed=7)
    hp = run_pysim(vs, **kw)
    hv = run_verilator(vs, target="ecp5", **kw)
    _same_run(hp, hv)
    with pytest.raises(ValueError, match="target: must be one of"):
        run_verilator(vs, target="xc7")


@pytest.mark.parametrize("program_in", ["queued", "dram"])
def test_program_sources_equal_pysim(model, program_in):
    """The program queued before START, or fetched from DRAM by pointer: the same cycles,
    DRAM traffic (the fetch's reads included) and memories as pysim's, under stalls."""
    vs = _mixed_program()
    kw = dict(dram_latency=9, dram_stall=0.25, seed=5, program_in=program_in)
    hp = run_pysim(vs, **kw)
    hv = run_verilator(vs, **kw)
    _same_run(hp, hv)
    assert hv.pauses == 1
    axil = run_verilator(vs, dram_latency=9, dram_stall=0.25, seed=5)
    assert hv.instructions != axil.instructions   # the mode reached the testbench
    if program_in == "dram":
        assert hv.dram_stats["read_bursts"] > axil.dram_stats["read_bursts"]


def test_fetch_from_outside_dram_is_a_bus_error(model):
    from reneta_hw.core import ErrorCode
    vs = _mixed_program()
    vs.program = vs.program[:1]
    with pytest.raises(HarnessError, match=f"run_verilator: .*error code {ErrorCode.BUS}"):
        run_verilator(vs, program_in="dram", max_cycles=5000, program_addr=0xF000)


def test_other_seed_changes_cycles_not_results(model):
    vs = _mixed_program()
    a = run_verilator(vs, dram_latency=7, dram_stall=0.3, seed=3)
    b = run_verilator(vs, dram_latency=7, dram_stall=0.3, seed=4)
    c = run_verilator(vs, dram_latency=7, dram_stall=0.3, seed=3)
    assert a.cycles_total == c.cycles_total and a.instructions == c.instructions
    # (the stall pattern moves instructions; the total may still come out the same)
    assert a.instructions != b.instructions
    for name in ("dram", "smem", "spm"):
        np.testing.assert_array_equal(getattr(a.memories, name), getattr(b.memories, name))


def test_timeout_and_illegal_instruction(model):
    vs = _mixed_program()
    with pytest.raises(HarnessTimeout, match="within 50 cycles"):
        run_verilator(vs, max_cycles=50)
    prog = list(vs.program)
    prog[2] = prog[2].replace(nt=0)            # rule 3 (the assembler would refuse it)
    bad = type(vs)(CFG, prog, vs.memories, vs.expected)
    with pytest.raises(HarnessError, match=r"run_verilator: instruction 2 \(MxV_SP\) is "
                                           r"illegal: rule 3 \(nt\)"):
        run_verilator(bad)

def test_bad_options():
    vs = _mixed_program()
    with pytest.raises(ValueError, match="dram_stall"):
        run_verilator(vs, dram_stall=1.5)
    with pytest.raises(ValueError, match="seed"):
        run_verilator(vs, seed="x")
    with pytest.raises(ValueError, match="dram_latency"):
        run_verilator(vs, dram_latency=0)
    with pytest.raises(ValueError, match="program_in"):
        run_verilator(vs, program_in="flash")
    with pytest.raises(ValueError, match="program_addr"):
        run_verilator(vs, program_in="dram", program_addr=-4)
    assert "verilator" in BACKENDS


def test_build_sim_backend_verilator(model, tmp_path):
    vs = _mixed_program()
    write_vectors(vs, tmp_path / "v")
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, str(ROOT / "build.py"), "sim", str(tmp_path / "v"),
                        "--backend", "verilator", "--dram-latency", "7", "--dram-stall", "0.3",
                        "--seed", "3", "--program-in", "dram", "--json", str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "cycles/s, verilator" in r.stdout
    rows = json.loads(out.read_text())["results"]
    golden = run_vectors(vs, "verilator", dram_latency=7, dram_stall=0.3, seed=3,
                         program_in="dram")
    assert {x["proc"]: x["cycles"] for x in rows} == golden.harness.cycles_per_proc


def test_bench_rows_equal_pysim(quick_build):
    """``build.py bench --backend verilator`` measures what pysim measures: every row's
    cycles, beats and stall counters are the same (both queue the program before START)."""
    from sim.bench import run_bench
    kw = dict(num_pe=4, n=8, nt=4, sparsities=(0.7,), procs=("VXV_SP",), log=None)
    speed = ("sim_cycles_per_s", "wall_s")
    rows = {b: [{k: v for k, v in r.items() if k not in speed}
                for r in run_bench(backend=b, **kw)] for b in ("pysim", "verilator")}
    assert rows["verilator"] == rows["pysim"]
    assert all(r["pass"] for r in rows["verilator"])
