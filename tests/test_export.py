"""Vectors exported from the trainer run bit-exact on the golden model (both formats, both
cells, hardware-numerics mode included), and the .dat export reads back through build.py."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reneta_hw.config import AcceleratorConfig
from reneta_hw.numeric import BFloat16, FixedPoint
from reneta_train import DeltaGRU, DeltaLSTM
from reneta_train.export import ExportError, expected_products, export_reneta_dat, \
    export_vectors, kernels_of
from reneta_train.numerics import HardwareNumerics
from reneta_train.trace import trace_layer
from sim.runner import run_vectors
from sim.vectors import read_vectors, write_vectors

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
CFG = AcceleratorConfig(num_pe=4, max_n=64, max_m=32, smem_depth=2048, spm_depth=64)


def slow_input(T=12, F=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.cumsum(torch.randn(T, 1, F, generator=g) * 0.3, 0)


@pytest.mark.parametrize("cell", [DeltaLSTM, DeltaGRU])
@pytest.mark.parametrize("fmt", [FixedPoint(), BFloat16()], ids=["q8.8", "bf16"])
def test_exported_vectors_run_bit_exact(cell, fmt, tmp_path):
    torch.manual_seed(0)
    layer = cell(6, 8, num_layers=2, theta_x=0.1, theta_h=0.1)
    tr = trace_layer(layer, slow_input(), layer_index=1)
    cfg = CFG.replace(fmt=fmt)
    vs = export_vectors(tr, cfg)
    assert 0 < vs.meta["sparsity"] < 1
    run = run_vectors(vs)
    assert run.passed, [c.first for c in run.checks if not c.passed]
    assert {r["proc"] for r in run.rows} == {"MxV_SP", "MTxV_SP", "VXV_SP"}
    # the file round trip keeps it passing
    assert run_vectors(read_vectors(write_vectors(vs, tmp_path / "v.npz"))).passed


def test_expected_values_are_the_trainers_math():
    """Decoded expected results are close to the float trace (quantization aside)."""
    torch.manual_seed(1)
    layer = DeltaLSTM(6, 8, theta_x=0.05, theta_h=0.05)
    tr = trace_layer(layer, slow_input(seed=3))
    fmt = BFloat16()
    k, = kernels_of(tr, fmt)
    prod = fmt.decode(expected_products(fmt, k))
    assert np.allclose(prod, tr.product, atol=0.05, rtol=0.02)


def test_numerics_mode_words_match_export():
    """In hardware-numerics mode the trainer's own per-step product words equal the
    exported MxV_SP expectations (one reference function, two call sites)."""
    torch.manual_seed(2)
    fmt = FixedPoint()
    layer = DeltaLSTM(6, 8, theta_x=0.1, theta_h=0.1, numerics=HardwareNumerics(fmt))
    tr = trace_layer(layer, slow_input(seed=4))
    assert tr.words is not None
    k, = kernels_of(tr, fmt)
    assert np.array_equal(expected_products(fmt, k), tr.words["product"])
    assert run_vectors(export_vectors(tr, CFG)).passed


def test_timesteps_without_nonzeros_and_overflow_errors():
    torch.manual_seed(3)
    layer = DeltaLSTM(6, 8, theta_x=0.5, theta_h=0.5)
    x = slow_input(seed=5)
    x[3:6] = x[2]                               # constant input: no Δx fires
    tr = trace_layer(layer, x)
    assert (tr.nnz == 0).any()
    assert run_vectors(export_vectors(tr, CFG)).passed
    big = DeltaLSTM(6, 8)
    with torch.no_grad():
        big.weight_ih_l0.mul_(1000)
    with pytest.raises(ExportError, match="weights does not fit"):
        export_vectors(trace_layer(big, x), CFG.replace(fmt=FixedPoint(4, 8, acc_bits=24)))
    with pytest.raises(ExportError, match="max_n"):
        export_vectors(trace_layer(DeltaLSTM(6, 32), x), CFG)


def test_reneta_dat_export_reads_back(tmp_path):
    torch.manual_seed(4)
    layer = DeltaLSTM(6, 8, theta_x=0.1, theta_h=0.1)
    for s in range(2):
        tr = trace_layer(layer, slow_input(seed=10 + s))
        export_reneta_dat(tr, tmp_path, sample=s)
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, str(ROOT / "build.py"), "sim", "--reneta-vectors",
                        str(tmp_path), "--json", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())["results"]
    assert len(res) == 6 and all(x["pass"] for x in res)
    with pytest.raises(ExportError, match="overflows int16"):
        export_reneta_dat(tr, tmp_path / "big", scale_bits=14)
