"""Hardware-numerics mode: bit-exact MxV_SP products, quantized deltas, training works."""

import numpy as np
import pytest
import torch

from reneta_hw.numeric import BFloat16, FixedPoint
from reneta_train import DeltaGRU, DeltaLSTM
from reneta_train.numerics import HardwareNumerics
from reneta_train.trace import trace_layer

torch.set_num_threads(1)

F64 = torch.float64
IDS = ["lstm", "gru"]
FORMATS = [FixedPoint(4, 10, acc_bits=32), FixedPoint(8, 8, "truncate", "wrap", acc_bits=24),
           BFloat16("fp32"), BFloat16("bf16")]
FMT_IDS = ["q4.10", "q8.8-trunc-wrap", "bf16-fp32", "bf16-bf16"]


def walk(T, B, F, step=0.3, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.cumsum(torch.randn(T, B, F, generator=g, dtype=dtype) * step, 0)


def expected_products(fmt, W_words, delta_words):
    """Independent MxV_SP: per step, fmt.dot over the fired columns, ascending."""
    out = []
    for d in delta_words:
        cols = np.flatnonzero(d != 0)
        out.append(fmt.to_word(fmt.dot(W_words[:, cols], d[cols][None, :])))
    return np.stack(out)


@pytest.mark.parametrize("fmt", FORMATS, ids=FMT_IDS)
@pytest.mark.parametrize("cls", [DeltaLSTM, DeltaGRU], ids=IDS)
def test_products_bit_identical_to_format_dot(cls, fmt):
    torch.manual_seed(0)
    m = cls(3, 4, num_layers=2, theta_x=0.1, theta_h=0.05, numerics=HardwareNumerics(fmt))
    x = walk(7, 2, 3)
    for layer_index in (0, 1):
        tr = trace_layer(m, x, layer_index=layer_index, sample=1)
        w = tr.words
        F = tr.x.shape[1]
        # weights and deltas are the format's words; Δ words are 0 exactly where not fired
        w_ih, w_hh, _, _ = m.layer_parameters(layer_index)
        assert np.array_equal(w["W_ih"], fmt.encode(w_ih.detach().double().numpy(), on_overflow="saturate"))
        assert np.array_equal(w["W_hh"], fmt.encode(w_hh.detach().double().numpy(), on_overflow="saturate"))
        for t in range(tr.steps):
            assert np.array_equal(np.flatnonzero(w["delta"][t]), tr.fired[t])
        assert np.array_equal(fmt.decode(w["delta"]), tr.delta)
        if cls is DeltaLSTM:
            # one MxV_SP run over [Δx; Δh] with W = [W_ih | W_hh]
            assert np.array_equal(w["product"], expected_products(fmt, w["W"], w["delta"]))
        else:
            # two runs: W_ih·Δx and W_hh·Δh
            assert np.array_equal(w["product_x"], expected_products(fmt, w["W_ih"], w["dx"]))
            assert np.array_equal(w["product_h"], expected_products(fmt, w["W_hh"], w["dh"]))
        assert tr.nnz.sum() > 0 and (tr.nnz < F + m.hidden_size).any()   # really sparse


def test_mxv_sp_per_sample_lists_and_empty_steps():
    fmt = BFloat16("bf16")
    hn = HardwareNumerics(fmt)
    rng = np.random.default_rng(0)
    wt = fmt.encode(rng.normal(size=(6, 5)))             # (N, R)
    delta = fmt.encode(rng.normal(size=(3, 6)))
    fired = np.array([[1, 0, 1, 1, 0, 1], [0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 1]], bool)
    delta = np.where(fired, delta, 0)
    out = hn.mxv_sp(wt, delta, fired)
    for b in range(3):
        cols = np.flatnonzero(fired[b])
        exp = fmt.to_word(fmt.dot(wt[cols].T, delta[b, cols][None, :]))
        assert np.array_equal(out[b], exp)
    assert np.all(out[1] == 0)                            # no non-zero: +0


def test_threshold_quantized_once():
    """θ is rounded to a word and compared with the quantized delta."""
    fmt = FixedPoint(8, 4)                                # LSB 1/16
    hn = HardwareNumerics(fmt)
    assert hn.quantize_theta(0.1) == 0.125                # 0.1 rounds to 2/16
    m = DeltaLSTM(1, 2, theta_x=0.1, numerics=hn)
    # Δ = 2/16 = θ_q: strict comparison, no fire; Δ = 3/16 fires
    x = torch.tensor([[[2 / 16]], [[5 / 16]], [[5 / 16]]])
    m(x)
    assert (m.stats[0].dx_total, m.stats[0].dx_zeros) == (3, 2)


@pytest.mark.parametrize("elementwise", ["word", "float"])
@pytest.mark.parametrize("cls", [DeltaLSTM, DeltaGRU], ids=IDS)
def test_close_to_float_at_fine_resolution(cls, elementwise):
    torch.manual_seed(0)
    m = cls(3, 5, theta_x=0.05, theta_h=0.05)
    x = walk(8, 2, 3)
    y, _ = m(x)
    m.numerics = HardwareNumerics(FixedPoint(6, 16, acc_bits=40), elementwise=elementwise)
    yq, _ = m(x)
    # fine words: only the activation tables (±0.01 worst case) and rare threshold flips differ
    assert (y - yq).abs().max() < 0.1
    assert (y - yq).abs().mean() < 0.02


@pytest.mark.parametrize("fmt", [FixedPoint(4, 10, acc_bits=32), BFloat16()], ids=["q4.10", "bf16"])
@pytest.mark.parametrize("cls", [DeltaLSTM, DeltaGRU], ids=IDS)
def test_training_in_numerics_mode_reduces_loss(cls, fmt):
    """Straight-through gradients train the quantized model on a tiny regression."""
    torch.manual_seed(0)
    m = cls(2, 6, theta_x=0.02, theta_h=0.02, numerics=HardwareNumerics(fmt))
    head = torch.nn.Linear(6, 1)
    x = walk(10, 4, 2, step=0.4, seed=1)
    target = torch.tanh(x.sum(2, keepdim=True).cumsum(0) * 0.2)
    opt = torch.optim.Adam(list(m.parameters()) + list(head.parameters()), lr=0.05)
    losses = []
    for _ in range(12):
        opt.zero_grad()
        y, _ = m(x)
        loss = torch.nn.functional.mse_loss(head(y), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.6 * losses[0]
    assert m.stats[0].macs_bwd > 0


def test_numerics_validation():
    with pytest.raises(ValueError, match="NumberFormat"):
        HardwareNumerics("bf16")
    with pytest.raises(ValueError, match="elementwise"):
        HardwareNumerics(BFloat16(), elementwise="half")
    with pytest.raises(ValueError, match="on_overflow"):
        HardwareNumerics(FixedPoint(), on_overflow="clip")
    with pytest.raises(ValueError, match="sparse_bptt=True"):
        DeltaGRU(2, 3, sparse_bptt=False, numerics=HardwareNumerics(BFloat16()))
    m = DeltaGRU(2, 3, numerics=HardwareNumerics(BFloat16()))
    m._sparse_bptt = False          # bypassing the setter is still caught at run time
    with pytest.raises(ValueError, match="sparse_bptt=True"):
        m(torch.zeros(2, 1, 2))


def test_overflow_error_mode_names_the_value():
    from reneta_hw.numeric import FormatOverflowError
    m = DeltaLSTM(2, 3, numerics=HardwareNumerics(FixedPoint(2, 6), on_overflow="error"))
    with pytest.raises(FormatOverflowError, match="100"):
        m(torch.full((2, 1, 2), 100.0))
