"""DeltaLSTM / DeltaGRU as modules: torch compatibility, delta semantics, lengths, counters."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from reneta_train import DeltaGRU, DeltaLSTM, LayerStats, merge, stats

torch.set_num_threads(1)

F64 = torch.float64
CELLS = [(DeltaLSTM, nn.LSTM), (DeltaGRU, nn.GRU)]
IDS = ["lstm", "gru"]


def walk(T, B, F, step=0.3, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.cumsum(torch.randn(T, B, F, generator=g, dtype=dtype) * step, 0)


def rand_state(cls, L, B, H, seed=1):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(L, B, H, generator=g, dtype=F64) * 0.5
    if cls is DeltaLSTM:
        return h, torch.randn(L, B, H, generator=g, dtype=F64) * 0.5
    return h


def max_diff(a, b):
    if isinstance(a, (tuple, list)):
        return max(max_diff(x, y) for x, y in zip(a, b))
    return (a - b).abs().max().item()


# --- construction ---------------------------------------------------------------------

@pytest.mark.parametrize("cls,ref", CELLS, ids=IDS)
def test_parameters_match_torch(cls, ref):
    torch.manual_seed(3)
    m = cls(5, 7, num_layers=3)
    torch.manual_seed(3)
    r = ref(5, 7, num_layers=3)
    ms, rs = m.state_dict(), r.state_dict()
    assert list(ms) == list(rs)
    for k in rs:
        assert ms[k].shape == rs[k].shape
        assert torch.equal(ms[k], rs[k]), k        # same draws in the same order
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in r.named_parameters()]


@pytest.mark.parametrize("cls,ref", CELLS, ids=IDS)
def test_no_bias_parameters(cls, ref):
    m, r = cls(3, 4, num_layers=2, bias=False), ref(3, 4, num_layers=2, bias=False)
    assert list(m.state_dict()) == list(r.state_dict())


@pytest.mark.parametrize("cls,ref", CELLS, ids=IDS)
def test_load_state_dict_both_ways(cls, ref):
    r = ref(4, 6, num_layers=2, dtype=F64)
    m = cls(4, 6, num_layers=2, dtype=F64)
    m.load_state_dict(r.state_dict())
    x = walk(8, 3, 4)
    assert max_diff(m(x)[0], r(x)[0]) <= 1e-12
    r2 = ref(4, 6, num_layers=2, dtype=F64)
    r2.load_state_dict(m.state_dict())
    assert max_diff(r2(x)[0], r(x)[0]) == 0


@pytest.mark.parametrize("kwargs,msg", [
    (dict(input_size=0), "input_size"),
    (dict(input_size=2.5), "input_size"),
    (dict(hidden_size=True), "hidden_size"),
    (dict(num_layers=0), "num_layers"),
    (dict(bias=1), "bias"),
    (dict(batch_first="yes"), "batch_first"),
    (dict(theta_x=-0.1), "theta_x"),
    (dict(theta_h=float("nan")), "theta_h"),
    (dict(theta_h="a"), "theta_h"),
    (dict(sparse_bptt=None), "sparse_bptt"),
    (dict(numerics="bf16"), "numerics"),
    (dict(dtype=torch.int32), "dtype"),
    (dict(sparse_strategy="magic"), "sparse_strategy"),
])
@pytest.mark.parametrize("cls", [DeltaLSTM, DeltaGRU], ids=IDS)
def test_constructor_validation(cls, kwargs, msg):
    args = dict(input_size=3, hidden_size=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=msg):
        cls(**args)


def test_theta_setter_validates():
    m = DeltaLSTM(2, 3)
    m.theta_x = 0.25
    assert m.theta_x == 0.25
    with pytest.raises(ValueError, match="theta_x"):
        m.theta_x = -1


# --- theta = 0 equals torch --------------------------------------------------------------

@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "autograd"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tb", "bt"])
@pytest.mark.parametrize("cls,ref", CELLS, ids=IDS)
def test_theta0_equals_torch(cls, ref, batch_first, sparse):
    torch.manual_seed(0)
    r = ref(4, 6, num_layers=2, batch_first=batch_first, dtype=F64)
    m = cls(4, 6, num_layers=2, batch_first=batch_first, dtype=F64, sparse_bptt=sparse)
    m.load_state_dict(r.state_dict())
    x = walk(9, 3, 4)
    if batch_first:
        x = x.transpose(0, 1).contiguous()
    for state in (None, rand_state(cls, 2, 3, 6)):
        y, s = m(x, state)
        yr, sr = r(x, state)
        assert y.shape == yr.shape
        assert max_diff(y, yr) <= 1e-12
        assert max_diff(s, sr) <= 1e-12


@pytest.mark.parametrize("cls,ref", CELLS, ids=IDS)
def test_theta0_unbatched_and_float32(cls, ref):
    torch.manual_seed(0)
    r = ref(3, 5)
    m = cls(3, 5)
    m.load_state_dict(r.state_dict())
    x = walk(7, 1, 3, dtype=torch.float32)[:, 0]
    y, s = m(x)
    yr, sr = r(x)
    assert y.dtype == torch.float32 and y.shape == yr.shape == (7, 5)
    assert max_diff(y, yr) <= 1e-5
    assert max_diff(s, sr) <= 1e-5


@pytest.mark.parametrize("cls,ref", CELLS, ids=IDS)
def test_packed_sequence_matches_torch(cls, ref):
    torch.manual_seed(0)
    r = ref(3, 5, num_layers=2, dtype=F64)
    m = cls(3, 5, num_layers=2, dtype=F64)
    m.load_state_dict(r.state_dict())
    x = walk(8, 4, 3)
    lengths = torch.tensor([5, 8, 1, 3])
    p = pack_padded_sequence(x, lengths, enforce_sorted=False)
    state = rand_state(cls, 2, 4, 5)
    y, s = m(p, state)
    yr, sr = r(p, state)
    assert isinstance(y, nn.utils.rnn.PackedSequence)
    assert torch.equal(y.batch_sizes, yr.batch_sizes)
    assert torch.equal(y.sorted_indices, yr.sorted_indices)
    assert max_diff(y.data, yr.data) <= 1e-12
    assert max_diff(s, sr) <= 1e-12
    # and the same as the lengths= interface
    y2, s2 = m(x, state, lengths=lengths)
    yp, _ = pad_packed_sequence(y, total_length=8)
    assert max_diff(y2, yp) == 0
    assert max_diff(s2, s) == 0


# --- delta semantics ------------------------------------------------------------------------

def test_threshold_is_strict():
    m = DeltaLSTM(1, 2, theta_x=0.5, dtype=F64)
    # Δx sequence: 0.5 (== θ: no fire), then 1.0 - 0 = 1.0 (> θ: fires), then 0 change
    x = torch.tensor([[[0.5]], [[1.0]], [[1.0]]], dtype=F64)
    m(x)
    st = m.stats[0]
    assert (st.dx_total, st.dx_zeros) == (3, 2)


def test_theta0_skips_exact_zero_changes():
    m = DeltaGRU(2, 3, dtype=F64)
    x = torch.zeros(4, 1, 2, dtype=F64)
    x[1:, 0, 0] = 1.0          # feature 0 changes once, feature 1 never
    m(x)
    st = m.stats[0]
    assert st.dx_total == 8 and st.dx_zeros == 7


def test_initial_state_is_first_hidden_delta():
    """ĥ starts at 0 with a given state: step 0 sees Δh = h0 (documented)."""
    torch.manual_seed(0)
    m = DeltaLSTM(2, 3, dtype=F64)
    h0 = torch.tensor([[[0.5, 0.0, -0.25]]], dtype=F64)
    c0 = torch.zeros(1, 1, 3, dtype=F64)
    m(torch.zeros(1, 1, 2, dtype=F64), (h0, c0))
    st = m.stats[0]
    assert (st.dh_total, st.dh_zeros) == (3, 1)      # 0.0 does not fire, the two others do
    assert st.dx_zeros == 2                           # zero input never fires


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "autograd"])
@pytest.mark.parametrize("cls", [DeltaLSTM, DeltaGRU], ids=IDS)
def test_lengths_freeze_state_and_zero_output(cls, sparse):
    torch.manual_seed(0)
    m = cls(3, 4, num_layers=2, theta_x=0.1, theta_h=0.05, dtype=F64, sparse_bptt=sparse)
    x = walk(7, 3, 3)
    lengths = [7, 4, 2]
    y, s = m(x, lengths=lengths)
    for b, n in enumerate(lengths):
        yb, sb = m(x[:n, b:b + 1])
        assert max_diff(y[:n, b:b + 1], yb) <= 1e-12
        assert torch.all(y[n:, b] == 0)
        if cls is DeltaLSTM:
            assert max_diff((s[0][:, b:b + 1], s[1][:, b:b + 1]), sb) <= 1e-12
        else:
            assert max_diff(s[:, b:b + 1], sb) <= 1e-12
    # garbage in the padding changes nothing
    x2 = x.clone()
    x2[4:, 1] = 1e3
    x2[2:, 2] = -7
    y2, s2 = m(x2, lengths=lengths)
    assert max_diff(y, y2) == 0 and max_diff(s, s2) == 0


@pytest.mark.parametrize("lengths,msg", [
    ([3, 2], "entries"), ([5, 2, 1], r"\[0, 4\]"), ([-1, 2, 2], r"\[0, 4\]"),
    (torch.tensor([1.0, 2.0, 3.0]), "integers"),
])
def test_lengths_validation(lengths, msg):
    m = DeltaGRU(2, 3)
    with pytest.raises(ValueError, match=msg):
        m(torch.zeros(4, 3, 2), lengths=lengths)


def test_input_and_state_validation():
    m = DeltaLSTM(2, 3, num_layers=2)
    with pytest.raises(ValueError, match="features"):
        m(torch.zeros(4, 1, 5))
    with pytest.raises(ValueError, match="dtype"):
        m(torch.zeros(4, 1, 2, dtype=F64))
    with pytest.raises(ValueError, match="2-D .* or 3-D"):
        m(torch.zeros(4))
    with pytest.raises(ValueError, match="no time steps"):
        m(torch.zeros(0, 1, 2))
    with pytest.raises(ValueError, match=r"tuple \(h0, c0\)"):
        m(torch.zeros(4, 1, 2), torch.zeros(2, 1, 3))
    with pytest.raises(ValueError, match=r"\(2, 1, 3\)"):
        m(torch.zeros(4, 1, 2), (torch.zeros(1, 1, 3), torch.zeros(2, 1, 3)))
    with pytest.raises(TypeError, match="PackedSequence"):
        m([[1.0, 2.0]])


# --- counters -------------------------------------------------------------------------------

def test_stats_fields_and_merge():
    a = LayerStats(dense_macs_fwd=100, macs_fwd=20, dense_macs_bwd=100, macs_bwd=30,
                   dense_macs_wgrad=100, macs_wgrad=10, dx_zeros=3, dx_total=4,
                   dh_zeros=1, dh_total=4)
    assert a.sparsity_dx == 0.75 and a.sparsity_dh == 0.25 and a.sparsity == 0.5
    assert a.op_reduction == pytest.approx(0.8)
    t = merge([a, a, LayerStats()])
    assert t.macs_fwd == 40 and t.dx_total == 8 and t.op_reduction == pytest.approx(0.8)
    assert LayerStats().op_reduction == 0.0 and LayerStats().sparsity == 0.0
    with pytest.raises(TypeError):
        stats.merge([a, 3])


@pytest.mark.parametrize("cls,gates", [(DeltaLSTM, 4), (DeltaGRU, 3)], ids=IDS)
def test_counters_are_per_sample_fired_columns(cls, gates):
    torch.manual_seed(0)
    F, H = 3, 5
    m = cls(F, H, num_layers=2, theta_x=0.2, theta_h=0.1, dtype=F64)
    x = walk(6, 4, F)
    lengths = torch.tensor([6, 3, 5, 1])
    y, _ = m(x, lengths=lengths)
    st0, st1 = m.stats
    valid = int(lengths.sum())
    R = gates * H
    # recompute layer 0's fired counts independently
    x_hat = torch.zeros(4, F, dtype=F64)
    fired = 0
    for t in range(6):
        v = (t < lengths).unsqueeze(1)
        f = ((x[t] - x_hat).abs() > 0.2) & v
        x_hat = torch.where(f, x[t], x_hat)
        fired += int(f.sum())
    assert st0.dx_total == F * valid and st0.dx_zeros == F * valid - fired
    assert st0.dh_total == H * valid and st1.dx_total == H * valid
    for st, nx in ((st0, F), (st1, H)):
        assert st.dense_macs_fwd == R * (nx + H) * valid
        assert st.macs_fwd == R * ((st.dx_total - st.dx_zeros) + (st.dh_total - st.dh_zeros))
        assert st.macs_bwd == 0 and st.dense_macs_wgrad == 0     # no backward yet
    y.sum().backward()
    st0, st1 = m.stats
    # layer 0's input needs no gradient: its backward covers the h part only
    assert st0.dense_macs_bwd == R * H * valid
    assert st0.macs_bwd == R * (st0.dh_total - st0.dh_zeros)
    assert st1.dense_macs_bwd == R * 2 * H * valid
    assert st1.macs_bwd == st1.macs_fwd
    for st in (st0, st1):
        assert st.macs_wgrad == st.macs_fwd and st.dense_macs_wgrad == st.dense_macs_fwd
    m.reset_stats()
    assert m.stats == [LayerStats(), LayerStats()]


@pytest.mark.parametrize("cls", [DeltaLSTM, DeltaGRU], ids=IDS)
def test_counters_equal_across_implementations_and_accumulate(cls):
    torch.manual_seed(0)
    m = cls(3, 4, num_layers=2, theta_x=0.1, theta_h=0.1, dtype=F64)
    x = walk(6, 3, 3).requires_grad_()
    res = []
    for sparse, strategy in ((True, "union"), (True, "per_sample"), (False, "union")):
        mm = copy.deepcopy(m)
        mm.sparse_bptt, mm.sparse_strategy = sparse, strategy
        for _ in range(2):
            y, _ = mm(x, lengths=[6, 2, 4])
            y.sum().backward()
        res.append(mm.stats)
    assert res[0] == res[1] == res[2]
    one = copy.deepcopy(m)
    y, _ = one(x, lengths=[6, 2, 4])
    y.sum().backward()
    assert merge(res[0]).macs == 2 * merge(one.stats).macs
    assert res[0][0].dense_macs_bwd == res[0][0].dense_macs_wgrad     # x requires grad here


def test_counters_under_no_grad_count_forward_only():
    m = DeltaGRU(2, 3, theta_x=0.1)
    with torch.no_grad():
        m(walk(5, 2, 2, dtype=torch.float32))
    st = m.stats[0]
    assert st.dense_macs_fwd > 0 and st.dense_macs_bwd == 0 and st.dense_macs_wgrad == 0
