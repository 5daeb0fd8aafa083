"""trace_layer: per-step vectors agree with autograd and with each other."""

import copy

import numpy as np
import pytest
import torch

from reneta_hw.numeric import FixedPoint
from reneta_train import DeltaGRU, DeltaLSTM
from reneta_train.numerics import HardwareNumerics
from reneta_train.trace import trace_layer

torch.set_num_threads(1)

F64 = torch.float64
IDS = ["lstm", "gru"]


def walk(T, B, F, step=0.3, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.cumsum(torch.randn(T, B, F, generator=g, dtype=dtype) * step, 0)


def autograd_of_sample(m, x, sample, layer_index, grad_output, steps):
    """Reference gradients for the trace's loss Σ_t <grad_output_t, h_t> of one layer.

    The input of the traced layer is computed (detached) by the lower layers; then a
    copy with autograd (sparse_bptt=False) runs just that layer.
    """
    ref = copy.deepcopy(m)
    ref.sparse_bptt = False
    inp = x[:steps, sample:sample + 1].detach()
    with torch.no_grad():
        for lower in range(layer_index):
            valid = torch.ones(steps, 1, dtype=torch.bool)
            z = [inp.new_zeros(1, m.hidden_size)] * (2 if isinstance(m, DeltaLSTM) else 1)
            inp, _ = ref._run_layer(lower, inp, valid, z)
    single = type(m)(inp.shape[2], m.hidden_size, theta_x=m.theta_x, theta_h=m.theta_h,
                     dtype=F64, sparse_bptt=False)
    w = m.layer_parameters(layer_index)
    with torch.no_grad():
        for p, q in zip(single.parameters(), w):
            p.copy_(q)
    inp = inp.clone().requires_grad_()
    y, _ = single(inp)
    (y[:, 0] * torch.as_tensor(grad_output)).sum().backward()
    return single, inp, y


@pytest.mark.parametrize("layer_index", [0, 1])
@pytest.mark.parametrize("cls", [DeltaLSTM, DeltaGRU], ids=IDS)
def test_weight_gradient_equals_autograd(cls, layer_index):
    torch.manual_seed(0)
    m = cls(3, 5, num_layers=2, theta_x=0.1, theta_h=0.1, dtype=F64)
    x = walk(9, 3, 3)
    tr = trace_layer(m, x, layer_index=layer_index, sample=2, lengths=[9, 9, 7])
    assert tr.steps == 7
    single, inp, y = autograd_of_sample(m, x, 2, layer_index, tr.grad_output, 7)
    assert np.abs(tr.h - y[:, 0].detach().numpy()).max() <= 1e-12
    assert np.abs(tr.dW_ih - single.weight_ih_l0.grad.numpy()).max() <= 1e-10
    assert np.abs(tr.dW_hh - single.weight_hh_l0.grad.numpy()).max() <= 1e-10
    # VXV_SP: Σ_t G_t Δ_tᵀ over the concatenated operands
    if cls is DeltaLSTM:
        assert np.abs(tr.dW - np.einsum("tr,tc->rc", tr.G, tr.delta)).max() <= 1e-12
    # G_0 is the bias gradient (M_{-1} = biases)
    assert np.abs(tr.G_x[0] - single.bias_ih_l0.grad.numpy()).max() <= 1e-10
    assert np.abs(tr.G_h[0] - single.bias_hh_l0.grad.numpy()).max() <= 1e-10
    # the input gradient follows from D and the held-memory carry:
    # ∂L/∂x_t = m_t ⊙ (D_t + a_t),  a_{t-1} = ¬m_t ⊙ a_t − m_t ⊙ D_t
    a = np.zeros(tr.x.shape[1])
    dx = np.zeros_like(tr.x)
    for t in range(tr.steps - 1, -1, -1):
        msk = np.zeros(tr.x.shape[1], bool)
        msk[tr.fired_x[t]] = True
        dx[t] = np.where(msk, tr.D_x[t] + a, 0.0)
        a = np.where(msk, -tr.D_x[t], a)
    assert np.abs(dx - inp.grad[:, 0].numpy()).max() <= 1e-10


@pytest.mark.parametrize("cls", [DeltaLSTM, DeltaGRU], ids=IDS)
def test_trace_fields_are_consistent(cls):
    torch.manual_seed(1)
    F, H = 4, 3
    m = cls(F, H, theta_x=0.15, theta_h=0.1, dtype=F64, batch_first=True)
    x = walk(8, 2, F).transpose(0, 1)                 # (B, T, F): batch_first
    before = m.stats
    tr = trace_layer(m, x, sample=0, seed=3)
    assert m.stats == before                          # tracing counts nothing
    R = (4 if cls is DeltaLSTM else 3) * H
    assert tr.W.shape == (R, F + H) and tr.delta.shape == (8, F + H)
    assert np.array_equal(tr.W, np.concatenate([m.weight_ih_l0.detach().numpy(),
                                                m.weight_hh_l0.detach().numpy()], 1))
    assert np.array_equal(tr.x, x[0].numpy())
    for t in range(tr.steps):
        assert np.array_equal(tr.fired[t], np.flatnonzero(tr.delta[t]))   # ascending
        assert np.all(np.diff(tr.fired[t]) > 0)
        assert np.array_equal(tr.fired_x[t], tr.fired[t][tr.fired[t] < F])
    assert len(tr.fired_h[0]) == 0                    # Δh at t = 0 is 0 (no initial state)
    assert np.abs(tr.product_x - tr.dx @ tr.W_ih.T).max() <= 1e-12
    assert np.abs(tr.product_h - tr.dh @ tr.W_hh.T).max() <= 1e-12
    assert np.abs(tr.product - tr.delta @ tr.W.T).max() <= 1e-12
    # D is the masked transposed product, zero off the fired columns
    assert np.all(tr.D[tr.delta == 0] == 0)
    assert np.abs(tr.D_x - (tr.G_x @ tr.W_ih) * (tr.dx != 0)).max() <= 1e-12
    assert np.abs(tr.D_h - (tr.G_h @ tr.W_hh) * (tr.dh != 0)).max() <= 1e-12
    if cls is DeltaLSTM:
        assert np.array_equal(tr.G_x, tr.G_h) and np.array_equal(tr.G, tr.G_x)
        assert np.abs(tr.D - (tr.G @ tr.W) * (tr.delta != 0)).max() <= 1e-12
    else:
        assert tr.G.shape == (8, 4 * H)               # [G_r; G_z; G_nx; G_nh]
        assert np.array_equal(tr.G_x, tr.G[:, :3 * H])
        assert np.array_equal(tr.G_h[:, :2 * H], tr.G[:, :2 * H])
        assert np.array_equal(tr.G_h[:, 2 * H:], tr.G[:, 3 * H:])
    # default grad_output is seeded
    again = trace_layer(m, x, sample=0, seed=3)
    assert np.array_equal(again.grad_output, tr.grad_output)
    assert np.array_equal(again.dW, tr.dW)


def test_trace_in_numerics_mode_has_words():
    torch.manual_seed(0)
    fmt = FixedPoint(4, 8)
    m = DeltaGRU(2, 3, theta_x=0.1, theta_h=0.1, numerics=HardwareNumerics(fmt))
    tr = trace_layer(m, walk(6, 1, 2, dtype=torch.float32))
    w = tr.words
    assert set(w) >= {"W", "W_ih", "W_hh", "delta", "dx", "dh", "product_x", "product_h"}
    assert np.array_equal(fmt.decode(w["W"]), tr.W)
    assert np.abs(fmt.decode(w["product_x"]) - tr.product_x).max() <= 4 * fmt.lsb
    assert trace_layer(DeltaLSTM(2, 3), torch.zeros(3, 2)).words is None


def test_trace_validation():
    m = DeltaLSTM(2, 3, num_layers=2)
    x = torch.zeros(4, 2, 2)
    with pytest.raises(ValueError, match="layer_index"):
        trace_layer(m, x, layer_index=2)
    with pytest.raises(ValueError, match="sample"):
        trace_layer(m, x, sample=2)
    with pytest.raises(ValueError, match="grad_output"):
        trace_layer(m, x, grad_output=np.zeros((4, 5)))
    with pytest.raises(ValueError, match="length 0"):
        trace_layer(m, x, lengths=[0, 4])
    with pytest.raises(ValueError, match="DeltaLSTM or DeltaGRU"):
        trace_layer(torch.nn.LSTM(2, 3), x)
