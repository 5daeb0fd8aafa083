"""Activation functions: FUNC semantics, ROM tables and indices, measured worst-case errors."""

from fractions import Fraction

import numpy as np
import pytest

from reneta_hw.numeric import BFloat16, FixedPoint, Func, apply_func
from reneta_hw.numeric.activation import (
    WORST_CASE_ERROR, WORST_CASE_REL_ERROR, ActivationSpec, activation_index, activation_spec,
    activation_table, one_word, sigmoid_deriv, tanh_deriv,
)
from reneta_hw.numeric.fixed_point import from_signed, to_signed

Q88 = FixedPoint()
BF = BFloat16()
ALL = np.arange(1 << 16, dtype=np.int64)


def sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


REF = {"sigmoid": sigmoid, "tanh": np.tanh,
       "sigmoid_deriv": lambda y: y * (1 - y), "tanh_deriv": lambda y: 1 - y * y}
FUNC = {"sigmoid": Func.SIGMOID, "tanh": Func.TANH}


def bf16_nan(w):
    return (((w >> 7) & 0xFF) == 0xFF) & ((w & 0x7F) != 0)


def test_func_enum():
    assert [(f.name, int(f)) for f in Func] == [("NONE", 0), ("RELU", 1), ("SIGMOID", 2), ("TANH", 3)]
    assert Func(2) is Func.SIGMOID


@pytest.mark.parametrize("fmt", [Q88, BF, FixedPoint.int16_reference(), BFloat16("bf16")], ids=str)
def test_none_and_relu(fmt):
    assert np.array_equal(apply_func(fmt, Func.NONE, ALL), ALL)
    relu = apply_func(fmt, 1, ALL)
    assert np.array_equal(relu, np.where(ALL >= 0x8000, 0, ALL))
    assert int(apply_func(fmt, Func.RELU, 0x8000)) == 0                  # bf16 -0 -> +0
    assert apply_func(fmt, Func.RELU, ALL.reshape(256, 256)).shape == (256, 256)


def test_default_specs():
    assert activation_spec(Q88) == ActivationSpec(3, 10)
    assert activation_spec(BF) == activation_spec(BFloat16("bf16")) == ActivationSpec(3, 10)
    assert activation_spec(FixedPoint(1, 15)) == ActivationSpec(0, 10)
    assert activation_spec(FixedPoint(2, 2)) == ActivationSpec(1, 4)
    assert activation_spec(FixedPoint.int16_reference()) == ActivationSpec(3, 4)
    s = ActivationSpec(3, 10)
    assert (s.R, s.entries, s.step, s.step_log2) == (8.0, 1024, 2.0 ** -6, -6)


def test_fixed_index_is_bit_slicing():
    idx = activation_index(Q88, ALL)
    s = to_signed(ALL, 16)
    c = np.clip(s, -2048, 2047) & 0xFFF                  # 12-bit two's complement
    assert np.array_equal(idx, (c >> 2) ^ 0x200)         # bits [11:2], MSB inverted
    assert idx.min() == 0 and idx.max() == 1023
    # custom geometry: full resolution over [-4, 4)
    spec = ActivationSpec(2, 11)
    idx = activation_index(Q88, ALL, spec)
    assert np.array_equal(idx, (np.clip(s, -1024, 1023) & 0x7FF) ^ 0x400)


def test_bf16_index_rounds_half_away():
    spec = activation_spec(BF)
    w = ALL[~bf16_nan(ALL)]
    x = BF.decode(w)
    with np.errstate(invalid="ignore"):
        mag = np.floor(np.abs(x) / spec.step + 0.5)
    mag = np.where(np.isinf(x), 1e9, mag)
    k = np.clip(np.where(np.signbit(x), -mag, mag), -512, 511)
    assert np.array_equal(activation_index(BF, w), k.astype(np.int64) + 512)
    enc = lambda v: BF.encode(v)
    idx = lambda v: int(activation_index(BF, enc(v)))
    assert idx(0.0) == idx(-0.0) == 512 and idx(2.0 ** -7) == 513 and idx(-(2.0 ** -7)) == 511
    assert idx(2.0 ** -7 - 2.0 ** -15) == 512 and idx(8.0) == 1023 and idx(-8.0) == 0
    assert idx(-1e30) == 0 and idx(7.96875) == 1022 and idx(-7.96875) == 2
    assert int(activation_index(BF, 0x7FC0)) == 1023 and int(activation_index(BF, 0xFFC0)) == 0
    assert int(activation_index(BF, 0x0001)) == 512      # subnormal = 0


def test_table_contents():
    tab = activation_table(Q88, Func.SIGMOID)
    assert tab.shape == (1024,) and tab.dtype == np.int64
    # entry 512 covers the words 0..3 (0 .. 3/256): centre 1.5/256
    assert tab[512] == Q88.encode(sigmoid(1.5 / 256))
    assert tab[0] == Q88.encode(sigmoid(-8 + 1.5 / 256)) == 0
    assert tab[1023] == Q88.encode(1.0)
    assert np.all(np.diff(to_signed(tab, 16)) >= 0)
    t = activation_table(Q88, Func.TANH)
    assert np.all(np.diff(to_signed(t, 16)) >= 0)
    assert t[1023] == 0x0100 and t[0] == 0xFF00
    b = activation_table(BF, Func.TANH)
    assert b[512] == 0 and b[513] == BF.encode(np.tanh(2.0 ** -6))
    assert b[0] == BF.encode(np.tanh(-8.0)) and b[1023] == BF.encode(1.0)
    assert np.all(np.diff(BF.decode(b)) >= 0)
    assert np.array_equal(activation_table(BFloat16("bf16"), Func.SIGMOID),
                          activation_table(BF, Func.SIGMOID))
    # apply_func is a lookup
    for fmt in (Q88, BF):
        for f in (Func.SIGMOID, Func.TANH):
            assert np.array_equal(apply_func(fmt, f, ALL),
                                  activation_table(fmt, f)[activation_index(fmt, ALL)])


def test_saturated_entries_and_one():
    # int_bits = 1: 1.0 is not a word; table entries saturate to the largest word
    q = FixedPoint(1, 7, acc_bits=16)
    assert one_word(q) == 0x7F
    big = ActivationSpec(0, 8)                           # [-1, 1), one entry per word
    assert np.array_equal(activation_index(q, np.arange(256)), np.arange(256) ^ 0x80)
    assert activation_table(q, Func.SIGMOID, big).max() <= 0x7F
    assert int(tanh_deriv(q, 0)) == 0x7F                 # 1 - 0 = the largest word
    assert int(tanh_deriv(Q88, 0)) == 0x100
    # a coarse Q2.2: entries f(centre) with rounding, 1.0 encodes fine
    q22 = FixedPoint(2, 2)
    assert activation_table(q22, Func.SIGMOID).tolist() == \
        q22.encode(sigmoid((np.arange(16) - 8 + 0.0) / 4)).tolist()


def test_derivatives_exact_models():
    # Q8.8: y - round_half_even(y*y / 256), exactly (y in [0, 1])
    ys = np.arange(0, 257)
    want = [y - round(Fraction(y * y, 256)) for y in ys]
    assert to_signed(sigmoid_deriv(Q88, ys), 16).tolist() == want
    ys = np.arange(-256, 257)
    want = [256 - round(Fraction(y * y, 256)) for y in ys]
    assert to_signed(tanh_deriv(Q88, from_signed(ys, 16)), 16).tolist() == want
    # bf16: values at a few points
    assert BF.decode(sigmoid_deriv(BF, BF.encode(0.5))) == 0.25
    assert BF.decode(tanh_deriv(BF, BF.encode([1.0, -1.0, 0.0]))).tolist() == [0.0, 0.0, 1.0]
    assert int(tanh_deriv(BF, BF.encode(1.0))) == 0         # x - x = +0
    assert BF.decode(tanh_deriv(BFloat16("bf16"), BF.encode(0.5))) == 0.75
    assert sigmoid_deriv(BF, np.zeros((3, 4), dtype=np.int64)).shape == (3, 4)


def measured_errors(fmt, name):
    """Exhaustive (absolute, relative) error over every input word of the function."""
    x = fmt.decode(ALL)
    if name in FUNC:
        keep = ~bf16_nan(ALL) if isinstance(fmt, BFloat16) else np.ones(ALL.shape, bool)
        got = fmt.decode(apply_func(fmt, FUNC[name], ALL[keep]))
    else:
        lo = 0.0 if name == "sigmoid_deriv" else -1.0
        keep = (x >= lo) & (x <= 1.0)
        fn = sigmoid_deriv if name == "sigmoid_deriv" else tanh_deriv
        got = fmt.decode(fn(fmt, ALL[keep]))
    want = REF[name](x[keep])
    err = np.abs(got - want)
    nz = want != 0
    assert np.all(err[~nz] == 0) or name in FUNC
    rel = np.max(err[nz] / np.abs(want[nz]))
    return float(err.max()), float(rel), int(keep.sum())


@pytest.mark.parametrize("fmt,name", list(WORST_CASE_ERROR), ids=lambda v: str(v))
def test_stated_worst_case_error_is_honest(fmt, name):
    err, rel, n = measured_errors(fmt, name)
    assert n >= 257                                      # Q8.8 has 257 words in [0, 1]
    stated = WORST_CASE_ERROR[(fmt, name)]
    assert err <= stated, (err, stated)
    assert stated <= 2 * err, (err, stated)
    if (fmt, name) in WORST_CASE_REL_ERROR:
        stated = WORST_CASE_REL_ERROR[(fmt, name)]
        assert rel <= stated <= 2 * rel, (rel, stated)


def test_full_resolution_table_is_correctly_rounded():
    # one entry per input word over [-8, 8): the error is the output rounding only
    spec = ActivationSpec(3, 12)
    x = Q88.decode(ALL)
    inside = np.abs(x) < 8
    for f, ref in ((Func.SIGMOID, sigmoid), (Func.TANH, np.tanh)):
        got = apply_func(Q88, f, ALL, spec)
        assert np.array_equal(got[inside], Q88.encode(ref(x[inside])))


def test_validation():
    with pytest.raises(ValueError, match=r"func must be one of .*got 7"):
        apply_func(Q88, 7, 0)
    with pytest.raises(ValueError, match="only SIGMOID and TANH"):
        activation_table(Q88, Func.RELU)
    with pytest.raises(ValueError, match=r"ActivationSpec.table_bits: must be <= range_log2 \+ 1 "
                       r"\+ frac_bits = 12"):
        activation_index(Q88, 0, ActivationSpec(3, 13))
    with pytest.raises(ValueError, match=r"ActivationSpec.range_log2: must be <= int_bits - 1 = 0"):
        activation_table(FixedPoint(1, 15), Func.TANH, ActivationSpec(1, 10))
    with pytest.raises(ValueError, match=r"ActivationSpec.table_bits: must be 1..20, got 0"):
        ActivationSpec(3, 0)
    with pytest.raises(ValueError, match="pattern 65536"):
        apply_func(BF, Func.SIGMOID, 65536)
    with pytest.raises(TypeError, match="ActivationSpec"):
        activation_index(Q88, 0, (3, 10))
