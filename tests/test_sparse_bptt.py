"""Sparse BPTT (custom autograd Functions) against autograd through the masked delta forward."""

import copy

import pytest
import torch
from hypothesis import given, settings
from torch.func import functional_call
from hypothesis import strategies as st

from reneta_train import DeltaGRU, DeltaLSTM
from reneta_train.sparse_bptt import FULL, fired_groups

torch.set_num_threads(1)

F64 = torch.float64
IDS = ["lstm", "gru"]


def walk(T, B, F, step=0.3, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.cumsum(torch.randn(T, B, F, generator=g, dtype=dtype) * step, 0)


def grads(model, x, state, lengths, seed=5, state_loss=True):
    """Run forward+backward with a loss on the output and the final state.

    Returns (output, final state, [grad input, grad state..., grad params...])."""
    g = torch.Generator().manual_seed(seed)
    x = x.clone().requires_grad_()
    if state is None:
        st_in = None
    elif isinstance(state, tuple):
        st_in = tuple(s.clone().requires_grad_() for s in state)
    else:
        st_in = state.clone().requires_grad_()
    y, s = model(x, st_in, lengths=lengths)
    R = torch.randn(y.shape, generator=g, dtype=y.dtype)
    loss = (y * R).sum()
    if state_loss:
        finals = s if isinstance(s, tuple) else (s,)
        for k, f in enumerate(finals):
            loss = loss + (f * torch.randn(f.shape, generator=g, dtype=f.dtype)).sum() * (k + 1)
    loss.backward()
    out = [x.grad]
    if st_in is not None:
        out += [a.grad for a in (st_in if isinstance(st_in, tuple) else (st_in,))]
    out += [p.grad for p in model.parameters()]
    return y.detach(), s, out


def compare(cls, theta, *, layers=2, B=3, T=10, F=4, H=5, lengths=None, state=True,
            strategy="union", bias=True, dtype=F64, seed=0, state_loss=True):
    torch.manual_seed(seed)
    m = cls(F, H, num_layers=layers, theta_x=theta, theta_h=theta, dtype=dtype, bias=bias,
            sparse_strategy=strategy)
    ref = copy.deepcopy(m)
    ref.sparse_bptt = False
    x = walk(T, B, F, seed=seed, dtype=dtype)
    s0 = None
    if state:
        g = torch.Generator().manual_seed(seed + 1)
        h0 = torch.randn(layers, B, H, generator=g, dtype=dtype) * 0.5
        s0 = (h0, torch.randn(layers, B, H, generator=g, dtype=dtype) * 0.5) if cls is DeltaLSTM else h0
    y1, f1, g1 = grads(m, x, s0, lengths, state_loss=state_loss)
    y2, f2, g2 = grads(ref, x, s0, lengths, state_loss=state_loss)
    assert (y1 - y2).abs().max() <= (1e-12 if dtype == F64 else 1e-5)
    assert all(a is not None and b is not None for a, b in zip(g1, g2))
    err = max((a - b).abs().max().item() for a, b in zip(g1, g2))
    assert m.stats == ref.stats
    return err, m.stats


@pytest.mark.parametrize("theta", [0.0, 0.05, 0.1, 0.3])
@pytest.mark.parametrize("cls", [DeltaLSTM, DeltaGRU], ids=IDS)
def test_gradients_equal_autograd(cls, theta):
    err, stats = compare(cls, theta, lengths=[10, 6, 1])
    assert err <= 1e-10
    if theta >= 0.1:
        assert stats[0].sparsity > 0.3        # the comparison exercised real sparsity


@pytest.mark.parametrize("cls", [DeltaLSTM, DeltaGRU], ids=IDS)
def test_gradients_per_sample_strategy(cls):
    err, _ = compare(cls, 0.1, strategy="per_sample", lengths=[10, 3, 7])
    assert err <= 1e-10


@pytest.mark.parametrize("cls", [DeltaLSTM, DeltaGRU], ids=IDS)
def test_gradients_single_layer_no_bias_no_state(cls):
    err, _ = compare(cls, 0.1, layers=1, B=1, state=False, bias=False)
    assert err <= 1e-10


@pytest.mark.parametrize("cls", [DeltaLSTM, DeltaGRU], ids=IDS)
def test_gradients_three_layers_float32(cls):
    err, _ = compare(cls, 0.05, layers=3, dtype=torch.float32, lengths=[10, 8, 5])
    assert err <= 1e-4


@pytest.mark.parametrize("cls", [DeltaLSTM, DeltaGRU], ids=IDS)
def test_only_final_state_loss(cls):
    """The final state is differentiable on its own (the original DeltaLSTM3's was not)."""
    torch.manual_seed(0)
    m = cls(3, 4, theta_x=0.1, theta_h=0.1, dtype=F64)
    ref = copy.deepcopy(m)
    ref.sparse_bptt = False
    x = walk(6, 2, 3)
    outs = []
    for mm in (m, ref):
        _, s = mm(x)
        h = s[0] if isinstance(s, tuple) else s
        h.sum().backward()
        outs.append([p.grad.clone() for p in mm.parameters()])
    assert max((a - b).abs().max().item() for a, b in zip(*outs)) <= 1e-12
    assert outs[0][0].abs().sum() > 0


@pytest.mark.parametrize("cls", [DeltaLSTM, DeltaGRU], ids=IDS)
def test_gradcheck_theta0(cls):
    """At θ = 0 the function is smooth where no change is exactly 0: gradcheck applies."""
    torch.manual_seed(0)
    m = cls(2, 3, dtype=F64)
    names = [n for n, _ in m.named_parameters()]
    x = walk(4, 2, 2).requires_grad_()
    params = [p.detach().clone().requires_grad_() for p in m.parameters()]
    h0 = (torch.randn(1, 2, 3, dtype=F64) * 0.5).requires_grad_()

    def f(x, h0, *p):
        state = (h0, h0 * 0.5) if cls is DeltaLSTM else h0
        y, s = functional_call(m, dict(zip(names, p)), (x, state))
        return y, (s[1] if cls is DeltaLSTM else s)

    assert torch.autograd.gradcheck(f, (x, h0, *params), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls", [DeltaLSTM, DeltaGRU], ids=IDS)
def test_sparse_kernels_never_touch_unfired_columns(cls):
    """Weights of a column that never fires are never read: NaN there stays harmless.

    Input feature 1 is constant 0, so its Δx never fires. The autograd reference
    multiplies the NaN column by zeros and returns NaN; the sparse kernels skip it.
    """
    torch.manual_seed(0)
    m = cls(3, 4, theta_x=0.05, theta_h=0.05, dtype=F64)
    x = walk(8, 2, 3)
    x[:, :, 1] = 0.0
    with torch.no_grad():
        m.weight_ih_l0[:, 1] = float("nan")
    x.requires_grad_()
    y, _ = m(x)
    y.sum().backward()
    assert torch.isfinite(y).all()
    assert torch.isfinite(x.grad).all()
    assert torch.isfinite(m.weight_hh_l0.grad).all()
    assert torch.all(m.weight_ih_l0.grad[:, 1] == 0)
    assert torch.isfinite(m.weight_ih_l0.grad).all()
    ref = copy.deepcopy(m)
    ref.sparse_bptt = False
    assert torch.isnan(ref(x)[0]).any()


def test_fired_groups():
    fired = torch.tensor([[True, False, True, False], [False, False, True, True]])
    (rows, cols), = fired_groups(fired, "union")
    assert rows is None and cols.tolist() == [0, 2, 3]
    groups = fired_groups(fired, "per_sample")
    assert [(r, c.tolist()) for r, c in groups] == [(0, [0, 2]), (1, [2, 3])]
    assert fired_groups(torch.zeros(2, 3, dtype=torch.bool), "union") == []
    assert fired_groups(torch.ones(2, 3, dtype=torch.bool), "union") == [(None, FULL)]
    assert fired_groups(torch.zeros(2, 3, dtype=torch.bool), "per_sample") == []


def test_backward_rejects_weights_changed_in_place():
    m = DeltaLSTM(2, 3)
    y, _ = m(walk(4, 1, 2, dtype=torch.float32))
    with torch.no_grad():
        m.weight_hh_l0.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


@settings(max_examples=25, deadline=None)
@given(cell=st.sampled_from([DeltaLSTM, DeltaGRU]),
       theta=st.sampled_from([0.0, 0.02, 0.1, 0.2, 0.5]),
       B=st.integers(1, 3), T=st.integers(1, 6), F=st.integers(1, 4), H=st.integers(1, 4),
       layers=st.integers(1, 2), seed=st.integers(0, 1000), data=st.data())
def test_random_shapes_match_autograd(cell, theta, B, T, F, H, layers, seed, data):
    lengths = data.draw(st.lists(st.integers(0, T), min_size=B, max_size=B))
    err, _ = compare(cell, theta, layers=layers, B=B, T=T, F=F, H=H, lengths=lengths,
                     seed=seed, state=bool(seed % 2))
    assert err <= 1e-10
