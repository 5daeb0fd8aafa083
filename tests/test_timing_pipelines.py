"""The register stages added for timing closure (issue #6) keep results bit-exact.

Why: the sequencer's VXV_SP early drains now push a column into their queue two cycles
after its final beat (the last-touch table is a block RAM read and compared in registers),
and its write-back descriptors pass a three-stage pipeline (MTxV_SP's row multiply). A
dense VXV_SP whose last block finalizes every column in its last timestep drives the
queue to its forced-pop threshold; MTxV_SP with output stalls exercises the descriptor
pipeline's back-pressure.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from core_programs import build_program  # noqa: E402
from golden_problems import make_problem  # noqa: E402
from test_overlap import _check  # noqa: E402
from reneta_hw.config import AcceleratorConfig  # noqa: E402


def _cfg():
    return AcceleratorConfig(num_pe=2, max_n=64, max_m=8, smem_depth=1024, spm_depth=16,
                             axi_data_width=32)


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_vxv_sp_dense_last_block_fills_the_drain_queue(stall):
    cfg = _cfg()
    pb = make_problem(cfg, 6, 32, 3, 0.0, seed=11)
    _check(cfg, build_program(pb, "VXV_SP", dst="both"), pb.mem, stall=stall, seed=2)


def test_mtxv_sp_descriptor_pipeline_under_stalls():
    cfg = _cfg()
    pb = make_problem(cfg, 12, 10, 3, 0.3, seed=12)
    _check(cfg, build_program(pb, "MTxV_SP", dst="both"), pb.mem, stall=0.4, seed=3)
