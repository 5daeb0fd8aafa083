"""A trained Delta RNN layer on the machine from raw inputs: the exported program encodes
Δ with DELTA, then forward MxV_SP, backward MTxV_SP, weight gradient VXV_SP, bit-exact with
the trainer's expectations (golden model for every cell/format, pysim for the whole top)."""

import pytest
import torch

from reneta_hw.config import AcceleratorConfig
from reneta_hw.isa import Proc
from reneta_hw.numeric import BFloat16, FixedPoint
from reneta_train import DeltaGRU, DeltaLSTM
from reneta_train.export import ExportError, export_vectors
from reneta_train.numerics import HardwareNumerics
from reneta_train.trace import trace_layer
from sim.runner import run_vectors

torch.set_num_threads(1)
CFG = AcceleratorConfig(num_pe=4, max_n=64, max_m=8, smem_depth=256, spm_depth=8,
                        axi_data_width=64, axi_addr_width=16)
PROCS = {"DELTA", "MxV_SP", "MTxV_SP", "VXV_SP"}


def _trace(cell, fmt, hidden=8, steps=4, theta_h=0.1, numerics=True, seed=0):
    torch.manual_seed(seed)
    layer = cell(6, hidden, theta_x=0.1, theta_h=theta_h,
                 numerics=HardwareNumerics(fmt) if numerics else None)
    g = torch.Generator().manual_seed(seed)
    x = torch.cumsum(torch.randn(steps, 1, 6, generator=g) * 0.3, 0)
    return trace_layer(layer, x)


@pytest.mark.parametrize("cell", [DeltaLSTM, DeltaGRU])
@pytest.mark.parametrize("fmt", [FixedPoint(), BFloat16()], ids=["q8.8", "bf16"])
def test_machine_deltas_golden(cell, fmt):
    cfg = CFG.replace(fmt=fmt)
    vs = export_vectors(_trace(cell, fmt), cfg, deltas="machine")
    assert vs.program[0].proc == Proc.DELTA and not vs.memories.spm.any()
    run = run_vectors(vs)
    assert run.passed, [c.name for c in run.checks if not c.passed]
    assert {r["proc"] for r in run.rows} == PROCS
    assert 0 < vs.meta["sparsity"] < 1


def test_trained_lstm_layer_on_pysim_top():
    fmt = FixedPoint()
    vs = export_vectors(_trace(DeltaLSTM, fmt), CFG.replace(fmt=fmt), deltas="machine")
    run = run_vectors(vs, "pysim", dram_latency=8)
    assert run.passed, [c.name for c in run.checks if not c.passed]
    assert {r["proc"] for r in run.rows} == PROCS
    assert run.harness.counters["retired"] == len(vs.program)


@pytest.mark.slow
@pytest.mark.parametrize("cell", [DeltaLSTM, DeltaGRU])
def test_trained_layer_hidden16_bf16_on_pysim_top(cell):
    fmt = BFloat16()
    vs = export_vectors(_trace(cell, fmt, hidden=16, steps=4), CFG.replace(fmt=fmt),
                        deltas="machine")
    run = run_vectors(vs, "pysim", dram_latency=8, dram_stall=0.2, seed=1)
    assert run.passed, [c.name for c in run.checks if not c.passed]


def test_machine_deltas_refused_with_reasons():
    fmt = FixedPoint()
    with pytest.raises(ExportError, match="hardware-numerics"):
        export_vectors(_trace(DeltaLSTM, fmt, numerics=False), CFG, deltas="machine")
    with pytest.raises(ExportError, match="theta_x .* must equal theta_h"):
        export_vectors(_trace(DeltaLSTM, fmt, theta_h=0.3), CFG, deltas="machine")
    with pytest.raises(ExportError, match="deltas must be"):
        export_vectors(_trace(DeltaLSTM, fmt), CFG, deltas="gpu")
    # a GRU has separate kernels: different thresholds are fine
    assert run_vectors(export_vectors(_trace(DeltaGRU, fmt, theta_h=0.3), CFG,
                                      deltas="machine")).passed
