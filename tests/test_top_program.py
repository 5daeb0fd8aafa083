"""The whole accelerator (real core) on pysim against the golden model, via the harness,
the runner, ``build.py sim --backend pysim`` and ``build.py bench``."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog

from reneta_hw.config import AcceleratorConfig
from reneta_hw.numeric.fixed_point import FixedPoint
from reneta_hw.top import Reneta
from sim.bench import make_bench_problem, run_bench
from sim.golden import GoldenModel
from sim.runner import run_vectors
from sim.vectors import Expected, VectorSet, region

ROOT = Path(__file__).resolve().parents[1]
CFG = AcceleratorConfig(num_pe=4, max_n=16, max_m=16, smem_depth=256, spm_depth=16,
                        axi_data_width=64, axi_addr_width=16, instr_queue_depth=4,
                        fmt=FixedPoint.int16_reference())


def _mixed_program(seed=0):
    """Several procedures back to back (one paused), results in SMEM and DRAM."""
    p = make_bench_problem(CFG, 8, 8, 4, 0.5, seed=seed)
    A = p.addr
    p.mem.dram = np.concatenate([p.mem.dram, np.zeros(8 * 4 * 4, dtype=np.int64)])
    out_dram = 8 * 8 * 2                         # bytes: after the weights
    from reneta_hw.isa import Assembler
    a = Assembler(CFG)
    for t in range(4):
        a.mxv_sp(t=t, nt=4, blocks=2, n1=8, spm_addr=0, nzl=A["nzl"], values=A["nzv"],
                 w_dram=A["w"], dst_smem=A["out"], pause=int(t == 1))
    a.mtxv_sp(t=2, nt=4, blocks=2, n1=8, spm_addr=0, nzl=A["nzl"], grad=A["g"], w_dram=A["w"],
              dst_dram=out_dram)
    a.vxv_sp(steps=4, nt=4, blocks=2, n1=8, spm_addr=0, nzl=A["nzl"], values=A["nzv"],
             g_smem=A["g"], dst_smem=A["out"] + 8)
    a.mxv(steps=4, nt=4, blocks=2, n_in=8, n1=8, act=A["dense"], w_dram=A["w"],
          dst_smem=A["out"] + 24)
    mem = p.mem.copy()
    gm = GoldenModel(CFG, mem)
    for k, ins in enumerate(a.instructions):
        gm.execute(ins, k)
    exp = [Expected("mxv_sp", "MxV_SP", "smem", A["out"], region(mem, CFG, "smem", A["out"], 8)),
           Expected("mtxv_sp", "MTxV_SP", "dram", out_dram, region(mem, CFG, "dram", out_dram, 8)),
           Expected("vxv_sp", "VXV_SP", "smem", A["out"] + 8,
                    region(mem, CFG, "smem", A["out"] + 8, 16)),
           Expected("mxv", "MxV", "smem", A["out"] + 24,
                    region(mem, CFG, "smem", A["out"] + 24, 8))]
    return VectorSet(CFG, a.instructions, p.mem, exp)


def test_mixed_program_bit_exact_under_dram_stalls():
    vs = _mixed_program()
    run = run_vectors(vs, "pysim", dram_latency=7, dram_stall=0.3, seed=3)
    assert run.passed, [c for c in run.checks if not c.passed]
    h = run.harness
    assert h.pauses == 1
    assert h.counters["retired"] == len(vs.program)
    assert all(r["cycles"] and r["cycles"] > 0 for r in run.rows)
    beats = sum(r["beats"] for r in run.rows)
    assert h.counters["mac_beats"] == beats
    assert h.cycles_total >= sum(h.cycles_per_proc.values()) - 5


def test_build_sim_pysim_reference_dat(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from reneta_dat_writer import write_sample
    write_sample(tmp_path / "dat", nx=16, nh=16, nt=4, sparsity=0.6, seed=2)
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, str(ROOT / "build.py"), "sim", "--reneta-vectors",
                        str(tmp_path / "dat"), "--backend", "pysim", "--num-pe", "4",
                        "--dram-latency", "5", "--json", str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["backend"] == "pysim"
    assert [x["proc"] for x in res["results"]] == ["MxV_SP", "MTxV_SP", "VXV_SP"]
    assert all(x["pass"] and x["cycles"] > 0 for x in res["results"])


def test_run_bench_tiny():
    rows = run_bench(num_pe=4, n=8, nt=4, sparsities=(0.7,), procs=("VXV_SP",), log=None)
    assert [r["proc"] for r in rows] == ["VXV_SP", "VXV"]
    assert all(r["pass"] for r in rows)
    sp = rows[0]
    assert sp["mac_beats"] == sp["golden_beats"] and sp["speedup"] > 1.0
    assert 0 < sp["utilization"] <= 1


@pytest.mark.slow      # ~15-40 s: the whole core; the stub-core top is converted by default
def test_verilog_of_the_top_is_reproducible():
    a = verilog.convert(Reneta(CFG), name="reneta", emit_src=False)
    b = verilog.convert(Reneta(CFG), name="reneta", emit_src=False)
    assert a == b and "module reneta" in a


@pytest.mark.slow
def test_build_bench_quick(tmp_path):
    out = tmp_path / "b.json"
    r = subprocess.run([sys.executable, str(ROOT / "build.py"), "bench", "--quick", "--json",
                        str(out)], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())["results"]
    assert all(x["pass"] for x in rows) and len(rows) == 9
