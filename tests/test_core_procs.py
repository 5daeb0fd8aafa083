"""RenetaCore: every procedure bit-exact with sim.golden, under DRAM back-pressure."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from core_programs import PROCS, build_program  # noqa: E402
from golden_problems import make_problem  # noqa: E402
from reneta_hw.config import AcceleratorConfig  # noqa: E402
from reneta_hw.isa import Func  # noqa: E402
from reneta_hw.numeric.bfloat16 import BFloat16  # noqa: E402
from reneta_hw.numeric.fixed_point import FixedPoint  # noqa: E402
from sim.core_harness import run_core  # noqa: E402
from sim.golden import run_program  # noqa: E402
from sim.vectors import VectorSet  # noqa: E402


def small_cfg(fmt=None, num_pe=4, axi=64, banks=2):
    return AcceleratorConfig(num_pe=num_pe, max_n=32, max_m=16, smem_depth=256, smem_banks=banks,
                             spm_depth=16, axi_data_width=axi, fmt=fmt or FixedPoint())


def check(cfg, prog, mem, **kw):
    vs = VectorSet(cfg, prog, mem)
    gold = run_program(cfg, prog, mem)
    got, cyc, ev = run_core(vs, **kw)
    bad_s = np.argwhere(got.smem != gold.memories.smem)
    bad_d = np.argwhere(got.dram != gold.memories.dram)
    assert not len(bad_s), f"SMEM differs at {bad_s[:5].tolist()}"
    assert not len(bad_d), f"DRAM differs at word {bad_d[:5].ravel().tolist()}"
    assert ev["mac_beat"] == gold.beats()
    assert cyc["error"] == 0
    return cyc, ev


@pytest.mark.parametrize("proc", PROCS)
def test_fixed_point_each_proc(proc):
    """Fixed point, results to SMEM and DRAM, weights in DRAM, random DRAM stalls,
    a timestep without non-zeros."""
    cfg = small_cfg()
    pb = make_problem(cfg, 8, 12, 4, 0.5, seed=PROCS.index(proc), empty_steps=(1,))
    check(cfg, build_program(pb, proc, dst="both", func=Func.RELU), pb.mem, stall=0.3,
          seed=3, instr_stall=0.3)


@pytest.mark.parametrize("fmt", [FixedPoint(), BFloat16()], ids=["fixed", "bf16"])
def test_mixed_program(fmt):
    """Every procedure in one program (consecutive instructions overlap), operand 0 from
    SMEM, a second problem geometry (2 PEs, one row per AXI beat)."""
    cfg = small_cfg(fmt, num_pe=2, axi=32, banks=1)
    pb = make_problem(cfg, 6, 5, 3, 0.6, seed=7, empty_steps=(0,), weights_in_smem=True)
    prog = []
    for k, proc in enumerate(PROCS):
        prog += build_program(pb, proc, dst="smem" if k % 2 else "dram",
                              src="smem" if k % 3 else "dram")
    check(cfg, prog, pb.mem, stall=0.2, seed=1)


@pytest.mark.parametrize("seed", range(3))
def test_random_sparse(seed):
    """Random sizes and sparsities (incl. all-empty lists) for the three sparse kernels."""
    rng = np.random.default_rng(seed)
    cfg = small_cfg(num_pe=int(rng.choice([2, 4])))
    n_out = int(rng.integers(1, 3)) * cfg.num_pe
    n_in = int(rng.integers(1, 9))
    nt = int(rng.integers(1, 5))
    sp = float(rng.choice([0.0, 0.5, 0.9, 1.0]))
    pb = make_problem(cfg, n_out, n_in, nt, sp, seed=seed)
    prog = []
    for proc in ("MxV_SP", "MTxV_SP", "VXV_SP"):
        prog += build_program(pb, proc, dst="both")
    check(cfg, prog, pb.mem, stall=0.25, seed=seed)


def test_bad_index_sets_error_and_returns_to_idle():
    cfg = small_cfg()
    pb = make_problem(cfg, 4, 6, 2, 0.0, seed=2)
    prog = build_program(pb, "MxV_SP", dst="smem")
    prog = [prog[0].replace(n1=3)]          # indices 3..5 are now out of range
    vs = VectorSet(cfg, prog, pb.mem)
    _, cyc, _ = run_core(vs)
    assert cyc["error"] == 1 and cyc["error_code"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("fmt", [FixedPoint(), BFloat16()], ids=["fixed", "bf16"])
@pytest.mark.parametrize("proc", PROCS)
def test_bigger(fmt, proc):
    cfg = AcceleratorConfig(num_pe=4, max_n=64, max_m=16, smem_depth=512, spm_depth=16,
                            axi_data_width=256, fmt=fmt)
    pb = make_problem(cfg, 16, 20, 6, 0.7, seed=5, empty_steps=(3,))
    check(cfg, build_program(pb, proc, dst="both"), pb.mem, stall=0.3, seed=2)
