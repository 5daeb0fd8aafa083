"""FixedPoint reference functions: edge cases, integer-arithmetic models, properties."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reneta_hw.numeric import FixedPoint, FormatOverflowError, format_from_json
from reneta_hw.numeric.fixed_point import from_signed, to_signed

Q88 = FixedPoint()


def py_fit(v, bits, overflow):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if overflow == "saturate":
        return min(max(v, lo), hi)
    return (v - lo) % (1 << bits) + lo


def py_mul(fmt, a, b):
    """Python-integer model of FixedPoint.mul on signed operands; returns a signed acc."""
    p = a * b
    if fmt.rounding == "truncate":
        q = p >> fmt.frac_bits                       # Python >> is floor
    else:
        q = round(Fraction(p, 1 << fmt.frac_bits))   # Fraction.__round__: half to even
    return py_fit(q, fmt.acc_bits, fmt.overflow)


@st.composite
def formats(draw):
    int_bits = draw(st.integers(1, 32))
    frac_bits = draw(st.integers(max(0, 2 - int_bits), 32 - int_bits))
    acc_bits = draw(st.integers(int_bits + frac_bits, 62))
    return FixedPoint(int_bits, frac_bits, draw(st.sampled_from(["truncate", "nearest_even"])),
                      draw(st.sampled_from(["wrap", "saturate"])), acc_bits)


def signed(draw, bits, n):
    return [draw(st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)) for _ in range(n)]


# --- edge cases ----------------------------------------------------------------------
def test_defaults_and_ranges():
    assert (Q88.int_bits, Q88.frac_bits, Q88.rounding, Q88.overflow, Q88.acc_bits) == \
        (8, 8, "nearest_even", "saturate", 32)
    assert Q88.word_bits == 16 and Q88.word_bytes == 2 and Q88.word_mask == 0xFFFF
    assert Q88.min_value == -128.0 and Q88.max_value == 128 - 2.0 ** -8 and Q88.lsb == 2.0 ** -8
    assert Q88.acc_min_value == -(2.0 ** 23) and Q88.acc_max_value == 2.0 ** 23 - 2.0 ** -8
    q = FixedPoint(1, 15)
    assert q.min_value == -1.0 and q.max_value == 1 - 2.0 ** -15


def test_signed_helpers():
    assert to_signed([0, 1, 0x7FFF, 0x8000, 0xFFFF], 16).tolist() == [0, 1, 32767, -32768, -1]
    assert from_signed([0, -1, -32768, 32767, 65536 + 5], 16).tolist() == [0, 0xFFFF, 0x8000,
                                                                           0x7FFF, 5]
    assert to_signed(from_signed(-(1 << 61), 62), 62) == -(1 << 61)
    assert to_signed(np.arange(-8, 8) & 0xF, 4).tolist() == list(range(-8, 8))


def test_mul_rounding():
    f = FixedPoint(8, 2, "nearest_even", "saturate", 16)       # LSB = 0.25
    sw = lambda v: int(f.encode(v))
    m = lambda a, b: f.decode_acc(f.mul(sw(a), sw(b)))
    # products with 4 fractional bits: 0.25*0.5 = 0.125 = half an LSB -> tie to even (0)
    assert m(0.25, 0.5) == 0.0
    assert m(0.75, 0.5) == 0.5          # 0.375 = 1.5 LSB -> 2 LSB (even)
    assert m(1.25, 0.5) == 0.5          # 0.625 = 2.5 LSB -> 2 LSB (even)
    assert m(-0.25, 0.5) == 0.0 and m(-0.75, 0.5) == -0.5 and m(-1.25, 0.5) == -0.5
    assert m(0.25, 0.75) == 0.25        # 0.1875 = 0.75 LSB -> 1
    t = FixedPoint(8, 2, "truncate", "saturate", 16)
    mt = lambda a, b: t.decode_acc(t.mul(int(t.encode(a)), int(t.encode(b))))
    assert mt(0.75, 0.5) == 0.25        # floor(1.5 LSB) = 1
    assert mt(-0.25, 0.5) == -0.25      # floor(-0.5 LSB) = -1 LSB: truncation is floor
    assert mt(-0.75, 0.5) == -0.5       # floor(-1.5) = -2
    assert mt(-0.25, 0.25) == -0.25     # -0.0625 -> -1 LSB


def test_saturate_and_wrap_both_ends():
    s = FixedPoint(4, 0, "truncate", "saturate", 6)    # words -8..7, acc -32..31
    w = FixedPoint(4, 0, "truncate", "wrap", 6)
    enc = lambda f, v: f.encode_acc(v)
    assert to_signed(s.mul(s.encode(-8), s.encode(-8)), 6) == 31      # 64 -> max
    assert to_signed(s.mul(s.encode(-8), s.encode(7)), 6) == -32      # -56 -> min
    assert to_signed(w.mul(w.encode(-8), w.encode(-8)), 6) == 0       # 64 mod 64
    assert to_signed(w.mul(w.encode(-8), w.encode(7)), 6) == 8        # -56 + 64
    assert to_signed(s.add(enc(s, 31), enc(s, 1)), 6) == 31
    assert to_signed(s.add(enc(s, -32), enc(s, -1)), 6) == -32
    assert to_signed(w.add(enc(w, 31), enc(w, 1)), 6) == -32
    assert to_signed(w.add(enc(w, -32), enc(w, -1)), 6) == 31
    assert to_signed(s.to_word(enc(s, 20)), 4) == 7 and to_signed(s.to_word(enc(s, -20)), 4) == -8
    assert to_signed(w.to_word(enc(w, 20)), 4) == 4 and to_signed(w.to_word(enc(w, -20)), 4) == -4
    assert to_signed(s.neg_acc(enc(s, -32)), 6) == 31 and to_signed(w.neg_acc(enc(w, -32)), 6) == -32
    assert to_signed(s.sub(enc(s, -30), enc(s, 5)), 6) == -32
    assert to_signed(s.word_to_acc(s.encode(-8)), 6) == -8


def test_int16_reference_reproduces_integer_arithmetic():
    f = FixedPoint.int16_reference()
    assert f == FixedPoint(16, 0, "truncate", "wrap", acc_bits=16)
    rng = np.random.default_rng(1)
    a = rng.integers(-32768, 32768, 100_000)
    b = rng.integers(-32768, 32768, 100_000)
    pa, pb = from_signed(a, 16), from_signed(b, 16)
    prod = f.mul(pa, pb)
    assert np.array_equal(prod, (a * b) & 0xFFFF)                  # low 16 bits of the product
    assert np.array_equal(f.add(pa, pb), (a + b) & 0xFFFF)          # wraps modulo 2**16
    assert np.array_equal(f.to_word(prod), prod)
    # a dot product as the testbench computes it: integers, wrapped at the end
    w = rng.integers(-300, 300, (64, 16))
    x = rng.integers(-300, 300, 16)
    got = f.dot(from_signed(w, 16), from_signed(x, 16)[None, :])
    assert np.array_equal(got, (w @ x) & 0xFFFF)
    assert f.encode(-5).tolist() == 0xFFFB and f.decode(0xFFFB) == -5.0


def test_mul_random_vs_python_ints():
    rng = np.random.default_rng(7)
    for fmt in (Q88, FixedPoint(8, 8, "truncate", "wrap", 16), FixedPoint(1, 15, acc_bits=18),
                FixedPoint(16, 16, acc_bits=62), FixedPoint(2, 30, "truncate", acc_bits=33)):
        n = 2000
        bits = fmt.word_bits
        a = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), n)
        b = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), n)
        got = to_signed(fmt.mul(from_signed(a, bits), from_signed(b, bits)), fmt.acc_bits)
        want = [py_mul(fmt, int(x), int(y)) for x, y in zip(a, b)]
        assert got.tolist() == want, fmt


def test_encode_decode():
    assert Q88.encode(1.0) == 0x0100 and Q88.encode(-1.0) == 0xFF00
    assert Q88.encode(-0.0) == 0 and Q88.encode(2.0 ** -9) == 0            # tie -> even (0)
    assert Q88.encode(3 * 2.0 ** -9) == 2 and Q88.encode(-3 * 2.0 ** -9) == 0xFFFE
    t = FixedPoint(8, 8, "truncate")
    assert t.encode(-2.0 ** -10) == 0xFFFF and t.encode(0.99 * 2.0 ** -8) == 0   # floor
    assert Q88.encode(127.998) == 0x7FFF and Q88.encode(-128) == 0x8000
    assert Q88.decode([0x7FFF, 0x8000, 0x0001]).tolist() == [128 - 2.0 ** -8, -128.0, 2.0 ** -8]
    with pytest.raises(FormatOverflowError, match=r"outside the representable range "
                       r"\[-128.0, 127.99609375\].*first: 128.0 at index \(1, 0\)"):
        Q88.encode([[1.0, 2.0], [128.0, -200.0]])
    with pytest.raises(FormatOverflowError, match="127.999"):    # rounds up out of range
        Q88.encode(127.999)
    with pytest.raises(FormatOverflowError, match=r"NaN at index \(1,\)"):
        Q88.encode([0.0, np.nan], on_overflow="saturate")
    assert Q88.encode([128.0, -200.0, np.inf, -np.inf], on_overflow="saturate").tolist() == \
        [0x7FFF, 0x8000, 0x7FFF, 0x8000]
    assert Q88.encode([128.0, -129.0, 300.5], on_overflow="wrap").tolist() == \
        [0x8000, 0x7F00, (300 * 256 + 128) & 0xFFFF]
    with pytest.raises(FormatOverflowError, match="cannot wrap the infinite"):
        Q88.encode(np.inf, on_overflow="wrap")
    with pytest.raises(ValueError, match="on_overflow must be"):
        Q88.encode(1.0, on_overflow="inf")
    assert Q88.encode_acc(1000.5) == 1000 * 256 + 128
    assert Q88.decode_acc(Q88.encode_acc(-8388608.0)) == -8388608.0
    with pytest.raises(FormatOverflowError, match="encode_acc"):
        Q88.encode_acc(2.0 ** 23)
    big = FixedPoint(30, 2, acc_bits=62)
    assert to_signed(big.encode_acc(-(2.0 ** 59)), 62) == -(1 << 61)
    assert big.encode_acc(2.0 ** 59 + 2 ** 7, on_overflow="wrap") == (1 << 61) + 512   # wraps
    assert Q88.encode(np.zeros((2, 3))).shape == (2, 3) and Q88.encode(1.0).shape == ()


def test_validation_messages():
    cases = [
        (dict(rounding="up"), r"FixedPoint.rounding: must be 'truncate' or 'nearest_even', got 'up'"),
        (dict(overflow="clip"), r"FixedPoint.overflow: must be 'wrap' or 'saturate', got 'clip'"),
        (dict(int_bits=0), r"FixedPoint.int_bits: must be >= 1"),
        (dict(frac_bits=-1), r"FixedPoint.frac_bits: must be >= 0"),
        (dict(int_bits=20, frac_bits=16), r"word_bits\) must be 2..32"),
        (dict(int_bits=1, frac_bits=0), r"word_bits\) must be 2..32"),
        (dict(acc_bits=8), r"FixedPoint.acc_bits: must be word_bits \(16\) .. 62, got 8"),
        (dict(acc_bits=63), r"FixedPoint.acc_bits: must be word_bits \(16\) .. 62, got 63"),
        (dict(int_bits=8.0), r"FixedPoint.int_bits: must be an integer"),
        (dict(frac_bits=True), r"FixedPoint.frac_bits: must be an integer"),
    ]
    for kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            FixedPoint(**kw)
    with pytest.raises(ValueError, match=r"FixedPoint.mul: a: pattern 65536"):
        Q88.mul(65536, 0)
    with pytest.raises(ValueError, match=r"FixedPoint.add: b: pattern -1 at index \(2,\)"):
        Q88.add([0, 0, 0], [0, 0, -1])
    with pytest.raises(TypeError, match="integer array"):
        Q88.to_word(np.array([1.5]))


def test_json_and_hash():
    f = FixedPoint(4, 12, "truncate", "wrap", 40)
    d = f.to_json()
    assert d == {"kind": "fixed", "int_bits": 4, "frac_bits": 12, "rounding": "truncate",
                 "overflow": "wrap", "acc_bits": 40}
    assert format_from_json(d) == f and hash(format_from_json(d)) == hash(f)
    assert FixedPoint(np.int64(8)) == Q88 and type(FixedPoint(np.int64(8)).int_bits) is int
    with pytest.raises(ValueError, match="unknown kind"):
        format_from_json({"kind": "posit"})


def test_mac_dot_sum():
    rng = np.random.default_rng(3)
    w = rng.uniform(-2, 2, (8, 10))
    x = rng.uniform(-2, 2, 10)
    pw, px = Q88.encode(w), Q88.encode(x)
    got = Q88.decode_acc(Q88.dot(pw, px[None, :]))
    # exact model: each product rounded to Q.8 (half even), summed exactly
    prods = [[round(Fraction(int(a) * int(b), 256)) for a, b in zip(r, to_signed(px, 16))]
             for r in to_signed(pw, 16)]
    assert got.tolist() == [sum(r) / 256 for r in prods]


# --- properties ----------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.data())
def test_property_mul_add_to_word(data):
    fmt = data.draw(formats())
    wb, ab = fmt.word_bits, fmt.acc_bits
    a, b = signed(data.draw, wb, 2)
    got = int(to_signed(fmt.mul(int(from_signed(a, wb)), int(from_signed(b, wb))), ab))
    assert got == py_mul(fmt, a, b)
    x, y = signed(data.draw, ab, 2)
    s = int(to_signed(fmt.add(int(from_signed(x, ab)), int(from_signed(y, ab))), ab))
    assert s == py_fit(x + y, ab, fmt.overflow)
    tw = int(to_signed(fmt.to_word(int(from_signed(x, ab))), wb))
    assert tw == py_fit(x, wb, fmt.overflow)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_property_encode_decode_round_trip(data):
    fmt = data.draw(formats())
    (s,) = signed(data.draw, fmt.word_bits, 1)
    w = int(from_signed(s, fmt.word_bits))
    v = float(fmt.decode(w))
    assert v == s * 2.0 ** -fmt.frac_bits
    assert int(fmt.encode(v)) == w
    assert int(fmt.to_word(fmt.encode_acc(v))) == w
    assert int(fmt.word_to_acc(w)) == int(fmt.encode_acc(v))
    # rounding: any x within the word range lands on a neighbour of x * 2**frac_bits
    x = data.draw(st.floats(fmt.min_value, fmt.max_value))
    e = int(to_signed(fmt.encode(x), fmt.word_bits))
    exact = Fraction(x) * (1 << fmt.frac_bits)
    if fmt.rounding == "truncate":
        assert e == int(exact.__floor__())
    else:
        assert e == round(exact)


@settings(max_examples=50, deadline=None)
@given(formats())
def test_property_json_round_trip(fmt):
    assert format_from_json(fmt.to_json()) == fmt
