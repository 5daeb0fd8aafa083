"""BFloat16 reference functions against an independent float64 computation and torch."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reneta_hw.numeric import BFloat16, FormatOverflowError, format_from_json

N_RANDOM = 10**6
BF = BFloat16("bf16")
F32 = BFloat16("fp32")


# --- the independent model: float64 arithmetic + a separately written rounding ---------
def ref_value(p, frac_bits):
    """Pattern -> float64 through the fields and ldexp (subnormal -> +-0, NaN -> +-inf)."""
    p = np.asarray(p, dtype=np.int64)
    nbits = 9 + frac_bits
    s = (p >> (nbits - 1)) & 1
    e = (p >> frac_bits) & 0xFF
    f = p & ((1 << frac_bits) - 1)
    v = np.ldexp((f + (1 << frac_bits)).astype(np.float64), (e - 127 - frac_bits).astype(np.int32))
    v = np.where(e == 0, 0.0, np.where(e == 255, np.inf, v))
    return np.where(s == 1, -v, v)


def ref_round(v, p):
    """float64 -> nearest-even with p significant bits, unbounded exponent, then flush
    (|r| < 2**-126 -> zero of v's sign) and overflow (|r| >= 2**128 -> inf); NaN -> +inf."""
    v = np.asarray(v, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        m, e = np.frexp(v)
        r = np.ldexp(np.rint(np.ldexp(m, p)), e - p)
        r = np.where(np.abs(r) < 2.0 ** -126, np.copysign(0.0, v), r)
        r = np.where(np.abs(r) >= 2.0 ** 128, np.copysign(np.inf, v), r)
    return np.where(np.isnan(v), np.inf, r)


def ref_pattern(r, frac_bits):
    """float64 value exactly representable in the target -> its pattern."""
    bits = np.asarray(r, dtype=np.float64).astype(np.float32).view(np.uint32).astype(np.int64)
    return bits >> (23 - frac_bits)


def ref_mul(a, b, acc_frac):
    with np.errstate(invalid="ignore"):                 # inf * 0 -> NaN -> +inf
        prod = ref_value(a, 7) * ref_value(b, 7)
    return ref_pattern(ref_round(prod, acc_frac + 1), acc_frac)


def ref_add(a, b, frac):
    with np.errstate(invalid="ignore"):
        s = ref_value(a, frac) + ref_value(b, frac)
    return ref_pattern(ref_round(s, frac + 1), frac)


def hexs(x):
    return [hex(int(v)) for v in np.atleast_1d(x)]


def assert_same(got, want, a, b):
    got, want = np.asarray(got), np.asarray(want)
    bad = got != want
    if bad.any():
        i = np.flatnonzero(bad)[:5]
        raise AssertionError(f"{bad.sum()} mismatches, e.g. a={hexs(a[i])} b={hexs(b[i])} "
                             f"got={hexs(got[i])} want={hexs(want[i])}")


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def near_cancellation(rng, n, bits, frac):
    """Pairs b ~ -a: opposite sign, exponent within +-1, a few low fraction bits changed."""
    a = rng.integers(0, 1 << bits, n)
    flip = rng.integers(0, 1 << min(frac, 4), n)
    de = rng.integers(-1, 2, n) << frac
    b = ((a ^ flip) + de) & ((1 << bits) - 1)
    return a, b ^ (1 << (bits - 1))


def close_exponents(rng, n, frac, spread):
    """Random patterns whose exponents differ by at most ``spread``."""
    nbits = 9 + frac
    ea = rng.integers(0, 256, n)
    eb = np.clip(ea + rng.integers(-spread, spread + 1, n), 0, 255)
    mk = lambda e: ((rng.integers(0, 2, n) << (nbits - 1)) | (e << frac)
                    | rng.integers(0, 1 << frac, n))
    return mk(ea), mk(eb)


# --- random agreement with the independent model ---------------------------------------
@pytest.mark.parametrize("fmt", [BF, F32], ids=["bf16acc", "fp32acc"])
def test_mul_random(fmt, rng):
    a = rng.integers(0, 1 << 16, N_RANDOM)
    b = rng.integers(0, 1 << 16, N_RANDOM)
    frac = 7 if fmt.accumulate == "bf16" else 23
    assert_same(fmt.mul(a, b), ref_mul(a, b, frac), a, b)
    # operands around 1 (products of every magnitude near 1, many ties)
    a = (rng.integers(0, 2, N_RANDOM) << 15) | rng.integers(0x3E00, 0x4100, N_RANDOM)
    b = (rng.integers(0, 2, N_RANDOM) << 15) | rng.integers(0x3E00, 0x4100, N_RANDOM)
    assert_same(fmt.mul(a, b), ref_mul(a, b, frac), a, b)
    # products around the flush and overflow thresholds
    for lo, hi in ((0x0000, 0x0100), (0x1F00, 0x2100), (0x5F00, 0x6100), (0x7E00, 0x7F80)):
        a = rng.integers(lo, hi, N_RANDOM // 8)
        b = rng.integers(0x1E00, 0x6200, N_RANDOM // 8) if lo < 0x7E00 else rng.integers(
            0x3E00, 0x4100, N_RANDOM // 8)
        assert_same(fmt.mul(a, b), ref_mul(a, b, frac), a, b)


@pytest.mark.parametrize("fmt", [BF, F32], ids=["bf16acc", "fp32acc"])
def test_add_random(fmt, rng):
    bits, frac = (16, 7) if fmt.accumulate == "bf16" else (32, 23)
    a = rng.integers(0, 1 << bits, N_RANDOM)
    b = rng.integers(0, 1 << bits, N_RANDOM)
    assert_same(fmt.add(a, b), ref_add(a, b, frac), a, b)
    a, b = close_exponents(rng, N_RANDOM, frac, frac + 4)
    assert_same(fmt.add(a, b), ref_add(a, b, frac), a, b)
    a, b = near_cancellation(rng, N_RANDOM, bits, frac)
    assert_same(fmt.add(a, b), ref_add(a, b, frac), a, b)


def test_to_word_random(rng):
    a = rng.integers(0, 1 << 32, N_RANDOM)
    want = ref_pattern(ref_round(ref_value(a, 23), 8), 7)
    assert_same(F32.to_word(a), want, a, a)
    # ties: the 16 dropped bits are exactly 0x8000
    a = (rng.integers(0, 1 << 16, N_RANDOM) << 16) | 0x8000
    want = ref_pattern(ref_round(ref_value(a, 23), 8), 7)
    assert_same(F32.to_word(a), want, a, a)
    assert_same(BF.to_word(a >> 16), a >> 16, a, a)


def test_encode_random(rng):
    x = rng.standard_normal(N_RANDOM) * np.exp2(rng.integers(-140, 130, N_RANDOM))
    x = x[np.abs(x) < 2.0 ** 127]
    want = ref_pattern(ref_round(x, 8), 7)
    assert_same(BF.encode(x), want, x, x)
    want32 = ref_pattern(ref_round(x, 24), 23)
    assert_same(F32.encode_acc(x), want32, x, x)
    assert np.array_equal(BF.encode_acc(x), want)


# --- independent agreement with torch.bfloat16 and numpy float32 --------------------------
def normal_bf16(rng, n, lo, hi):
    return ((rng.integers(0, 2, n) << 15) | (rng.integers(lo, hi + 1, n) << 7)
            | rng.integers(0, 128, n))


def test_agrees_with_torch(rng):
    torch = pytest.importorskip("torch")
    n = 200_000
    a = normal_bf16(rng, n, 70, 185)
    b = normal_bf16(rng, n, 70, 185)
    ta, tb = BF.to_torch(a).to(torch.bfloat16), BF.to_torch(b).to(torch.bfloat16)
    tbits = lambda t: t.view(torch.int16).numpy().astype(np.int64) & 0xFFFF
    assert_same(BF.mul(a, b), tbits(ta * tb), a, b)
    # sums: every exponent; compare where torch's result is normal, zero or infinite
    a = normal_bf16(rng, n, 1, 254)
    b = np.where(rng.random(n) < 0.5, normal_bf16(rng, n, 1, 254),
                 (a ^ 0x8000) ^ rng.integers(0, 4, n))
    ta, tb = BF.to_torch(a).to(torch.bfloat16), BF.to_torch(b).to(torch.bfloat16)
    t = tbits(ta + tb)
    e = (t >> 7) & 0xFF
    ok = (e != 0) | ((t & 0x7F) == 0)
    assert ok.mean() > 0.9
    assert_same(BF.add(a, b)[ok], t[ok], a[ok], b[ok])
    # conversion from float32 agrees with torch's float32 -> bfloat16 (RNE)
    x = rng.standard_normal(n).astype(np.float32) * np.float32(1e3)
    want = tbits(torch.from_numpy(x).to(torch.bfloat16))
    assert_same(BF.from_float32(x), want, x, x)
    assert_same(BF.from_torch(torch.from_numpy(x)), want, x, x)
    assert torch.equal(BF.to_torch(want), torch.from_numpy(x).to(torch.bfloat16).float())


def test_fp32_agrees_with_numpy_float32(rng):
    n = 200_000
    a = normal_bf16(rng, n, 64, 190)
    b = normal_bf16(rng, n, 64, 190)
    f = lambda w: (np.asarray(w, dtype=np.int64) << 16).astype(np.uint32).view(np.float32)
    want = (f(a) * f(b)).view(np.uint32).astype(np.int64)
    assert_same(F32.mul(a, b), want, a, b)
    a32 = ((rng.integers(0, 2, n) << 31) | (rng.integers(2, 253, n) << 23)
           | rng.integers(0, 1 << 23, n))
    b32 = ((rng.integers(0, 2, n) << 31) | (rng.integers(2, 253, n) << 23)
           | rng.integers(0, 1 << 23, n))
    g = lambda w: np.asarray(w, dtype=np.int64).astype(np.uint32).view(np.float32)
    s = g(a32) + g(b32)
    want = s.view(np.uint32).astype(np.int64)
    ok = (np.abs(s) >= np.float32(2.0 ** -126)) | (s == 0)
    assert_same(F32.add(a32, b32)[ok], want[ok], a32[ok], b32[ok])


# --- edge cases ----------------------------------------------------------------------
ONE, TWO, HALF = 0x3F80, 0x4000, 0x3F00
PINF, NINF, MAXF, MINN = 0x7F80, 0xFF80, 0x7F7F, 0x0080


@pytest.mark.parametrize("a,b,want", [
    (0x0000, 0x0000, 0x0000), (0x8000, 0x0000, 0x8000), (0x8000, 0x8000, 0x0000),
    (0x8000, ONE, 0x8000), (0x0000, 0xBF80, 0x8000),
    (MAXF, ONE, MAXF), (MAXF, TWO, PINF), (MAXF | 0x8000, TWO, NINF),
    (MINN, ONE, MINN), (MINN, HALF, 0x0000), (MINN, HALF | 0x8000, 0x8000),
    (0x0001, ONE, 0x0000), (0x8001, ONE, 0x8000), (0x007F, 0x7F00, 0x0000),
    (PINF, 0x0000, PINF), (NINF, 0x0000, PINF), (PINF, 0x8000, PINF), (0x0001, NINF, PINF),
    (PINF, 0xBF80, NINF), (NINF, NINF, PINF), (PINF, 0x0080, PINF),
    (0x7FC0, ONE, PINF), (0xFFC0, ONE, NINF), (0x7FC1, 0x0000, PINF), (0xFF81, 0x3F00, NINF),
    # 1.5 * (1 + 2**-7) = 1.5 + 1.5 ulp: a tie, to even (up)
    (0x3FC0, 0x3F81, 0x3FC2),
    # (1 + 2**-7)**2 = 1 + 2**-6 + 2**-14: rounds down
    (0x3F81, 0x3F81, 0x3F82),
    # 181/128 * 181/128 * 2**-127 = 2**-126 * (1 - 7/32768): rounds up to the smallest normal
    (0x2035, 0x1FB5, 0x0080),
    # (2 - 2**-7)**2 = 4 - 2**-5 + 2**-14: rounds to 4 - 2**-5
    (0x3FFF, 0x3FFF, 0x407E),
    # (181/128)**2 = 2 - 7/16384: carry into the exponent -> 2
    (0x3FB5, 0x3FB5, 0x4000),
])
def test_mul_edges_bf16(a, b, want):
    assert int(BF.mul(a, b)) == want
    assert int(BF.mul(b, a)) == want
    assert int(ref_mul(np.array([a]), np.array([b]), 7)[0]) == want


def test_mul_edges_fp32():
    assert int(F32.mul(0x2035, 0x1FB5)) == 0           # exact 2**-126*(1-7/32768): flushed
    assert int(F32.mul(0xA035, 0x1FB5)) == 0x80000000  # keeps the exact result's sign
    assert int(F32.mul(0x3FFF, 0x3FFF)) == 0x407E0100  # 4 - 2**-5 + 2**-14, exact in fp32
    assert int(F32.mul(MAXF, MAXF)) == 0x7F800000
    assert int(F32.mul(PINF, 0x0000)) == 0x7F800000
    assert int(F32.mul(0x8000, 0x0000)) == 0x80000000
    assert int(F32.mul(0x7FC0, 0x8001)) == 0x7F800000  # NaN (inf) * subnormal (0)


@pytest.mark.parametrize("a,b,want", [
    (0x0000, 0x8000, 0x0000), (0x8000, 0x0000, 0x0000), (0x8000, 0x8000, 0x8000),
    (0x0000, 0x0000, 0x0000), (ONE, 0xBF80, 0x0000), (0xBF80, ONE, 0x0000),
    (ONE, 0x0000, ONE), (0x8000, 0xBF80, 0xBF80), (ONE, 0x8001, ONE), (0x0040, 0x0040, 0x0000),
    (0x8040, 0x8040, 0x8000), (MINN, MINN, 0x0100),
    # 2**-126 * (1 + 2**-7) - 2**-126 = 2**-133: flushed, sign of the exact result
    (0x0081, 0x8080, 0x0000), (0x8081, 0x0080, 0x8000),
    (ONE, 0x3B80, ONE),            # 1 + 2**-8: tie, to even (down)
    (0x3F81, 0x3B80, 0x3F82),      # 1 + 2**-7 + 2**-8: tie, to even (up)
    (0x3F81, 0x3B81, 0x3F82),      # just above the tie
    (0x3FFF, 0x3B80, TWO),         # carry into the exponent
    (MAXF, 0x7B00, PINF),          # max + half an ulp (2**119): tie to even = infinity
    (MAXF, 0x7AFF, MAXF),          # just below the tie
    (MAXF, MAXF, PINF), (MAXF | 0x8000, MAXF | 0x8000, NINF),
    (PINF, NINF, PINF), (NINF, PINF, PINF), (NINF, NINF, NINF), (PINF, 0xFF7F, PINF),
    (NINF, 0x0000, NINF), (0x7FC0, NINF, PINF), (0xFFC0, ONE, NINF),
    (ONE, 0x2F80, ONE),            # 1 + 2**-32: far below the sticky range
    (0x4000, 0xBF81, 0x3F7E),      # 2 - (1 + 2**-7) = 1 - 2**-7 (normalization left)
    (0x3F80, 0xBF7F, 0x3B80),      # 1 - (1 - 2**-8) = 2**-8 (massive cancellation)
    # 1 - (2**-9 + 2**-16): just below the midpoint 1 - 2**-9, rounds down to 1 - 2**-8
    (0x3F80, 0xBB01, 0x3F7F),
])
def test_add_edges_bf16(a, b, want):
    assert int(BF.add(a, b)) == want
    assert int(ref_add(np.array([a]), np.array([b]), 7)[0]) == want


def test_add_edges_fp32():
    add = lambda a, b: int(F32.add(a, b))
    assert add(0x00000000, 0x80000000) == 0
    assert add(0x80000000, 0x80000000) == 0x80000000
    assert add(0x3F800000, 0xBF800000) == 0
    assert add(0x3F800000, 0x33800000) == 0x3F800000      # 1 + 2**-24: tie, even
    assert add(0x3F800001, 0x33800000) == 0x3F800002      # tie, up to even
    assert add(0x7F7FFFFF, 0x73000000) == 0x7F800000      # max + half ulp -> inf
    assert add(0x00800001, 0x80800000) == 0               # 2**-149: flushed
    assert add(0x00000001, 0x3F800000) == 0x3F800000      # subnormal input = 0
    assert add(0x7FC00000, 0xFF800000) == 0x7F800000      # NaN (+inf) + -inf


def test_to_word_edges():
    tw = lambda a: int(F32.to_word(a))
    assert tw(0x3F808000) == 0x3F80     # tie, even (down)
    assert tw(0x3F818000) == 0x3F82     # tie, even (up)
    assert tw(0x3F808001) == 0x3F81
    assert tw(0x3FFF8000) == 0x4000     # carry into the exponent
    assert tw(0x7F7F8000) == PINF       # rounds to 2**128
    assert tw(0x7F7F7FFF) == MAXF
    assert tw(0x00800000) == MINN
    assert tw(0x007FFFFF) == 0          # subnormal input: zero, even though it would round up
    assert tw(0x807FFFFF) == 0x8000
    assert tw(0x7FC00000) == PINF and tw(0xFFC00001) == NINF and tw(0xFF800000) == NINF
    assert tw(0x80000000) == 0x8000
    assert np.array_equal(BF.to_word([ONE, 0x8000]), [ONE, 0x8000])


def test_encode_decode_edges():
    enc = lambda x, **k: int(BF.encode(x, **k))
    assert enc(0.0) == 0 and enc(-0.0) == 0x8000
    assert enc(1e-40) == 0 and enc(-1e-40) == 0x8000 and enc(5e-324) == 0
    assert enc(2.0 ** -126) == MINN
    assert enc(2.0 ** -126 * (1 - 2.0 ** -9)) == MINN      # rounds up to the smallest normal
    assert enc(2.0 ** -126 * (1 - 2.0 ** -8)) == 0         # rounds to itself: below, flushed
    assert enc(1 + 2.0 ** -8) == ONE and enc(1 + 3 * 2.0 ** -8) == 0x3F82
    assert enc(np.inf) == PINF and enc(-np.inf) == NINF
    assert enc(np.float32(3.0)) == 0x4040
    big = 2.0 ** 128 * (1 - 2.0 ** -9)                     # the first value rounding to inf
    assert enc(np.nextafter(big, 0)) == MAXF
    with pytest.raises(FormatOverflowError, match=r"round to infinity.*first: .* at index \(1,\)"):
        BF.encode([1.0, big, -big])
    assert hexs(BF.encode([1.0, big, -big], on_overflow="saturate")) == ["0x3f80", "0x7f7f", "0xff7f"]
    assert hexs(BF.encode([big, -big], on_overflow="inf")) == ["0x7f80", "0xff80"]
    assert enc(np.inf, on_overflow="saturate") == PINF      # infinities are values
    with pytest.raises(FormatOverflowError, match=r"NaN at index \(2,\)"):
        BF.encode([0.0, 1.0, np.nan])
    with pytest.raises(ValueError, match="on_overflow must be"):
        BF.encode(1.0, on_overflow="wrap")
    with pytest.raises(FormatOverflowError, match="round to infinity"):
        F32.encode_acc(3.5e38)
    assert int(F32.encode_acc(3.0e38)) == int(np.float32(3.0e38).view(np.uint32))
    dec = BF.decode([0x0000, 0x8000, ONE, 0x0001, 0x8001, 0x7FC0, 0xFFC0, NINF, MAXF])
    assert np.array_equal(dec, [0.0, -0.0, 1.0, 0.0, -0.0, np.inf, -np.inf, -np.inf,
                                (2 - 2.0 ** -7) * 2.0 ** 127])
    assert np.array_equal(np.signbit(dec), [0, 1, 0, 0, 1, 0, 1, 1, 0])
    assert F32.decode_acc(0x3F800001) == 1 + 2.0 ** -23
    assert BF.decode_acc(ONE) == 1.0
    assert BF.encode(2.0).shape == () and BF.mul(ONE, ONE).shape == ()


def test_conversions():
    torch = pytest.importorskip("torch")
    x = np.array([1.0, -2.5, 1e-39, 3.4e38, np.inf], dtype=np.float32)
    w = BF.from_float32(x)
    assert hexs(w) == ["0x3f80", "0xc020", "0x0", "0x7f80", "0x7f80"]
    with pytest.raises(FormatOverflowError):
        BF.from_float32(x, on_overflow="error")
    with pytest.raises(TypeError, match="use encode"):
        BF.from_float32(np.array([1.0]))
    with pytest.raises(FormatOverflowError, match="NaN"):
        BF.from_float32(np.array([np.nan], dtype=np.float32))
    assert BF.to_float32([0x3F80, 0xC020]).dtype == np.float32
    t = BF.to_torch([0x3F80, 0xC020])
    assert t.dtype == torch.float32 and t.tolist() == [1.0, -2.5]
    tb = torch.tensor([1.0, 3.0], dtype=torch.bfloat16)
    assert hexs(BF.from_torch(tb)) == ["0x3f80", "0x4040"]
    assert hexs(BF.from_torch(torch.tensor([1 + 2.0 ** -8 + 2.0 ** -30], dtype=torch.float64))) \
        == ["0x3f81"]                                    # float64: one rounding


def test_neg_sub_word_to_acc():
    assert int(BF.neg_acc(ONE)) == 0xBF80 and int(BF.neg_acc(0)) == 0x8000
    assert int(F32.neg_acc(0x7F800000)) == 0xFF800000
    assert int(BF.sub(ONE, ONE)) == 0 and int(F32.sub(0x80000000, 0)) == 0x80000000
    assert int(F32.word_to_acc(0xBF80)) == 0xBF800000 and int(BF.word_to_acc(0xBF80)) == 0xBF80
    assert int(F32.mac(F32.word_to_acc(ONE), TWO, 0xC000)) == 0xC0400000   # 1 + 2*-2 = -3


def test_validation_and_json():
    with pytest.raises(ValueError, match=r"BFloat16.accumulate: must be 'bf16' or 'fp32', got 'fp16'"):
        BFloat16("fp16")
    assert BF.word_bits == 16 and BF.acc_bits == 16 and F32.acc_bits == 32
    assert BFloat16() == F32 and hash(BFloat16()) == hash(F32)
    for f in (BF, F32):
        assert format_from_json(f.to_json()) == f
    assert F32.to_json() == {"kind": "bfloat16", "accumulate": "fp32"}
    with pytest.raises(ValueError, match=r"BFloat16.mul: a: pattern 65536 at index \(1,\)"):
        BF.mul([1, 65536], [1, 1])
    with pytest.raises(ValueError, match="pattern -1"):
        F32.add(-1, 0)
    with pytest.raises(TypeError, match="integer array"):
        BF.mul(1.0, 1)
    assert int(F32.add(0xFFFFFFFF, 0)) == 0xFF800000       # 32-bit patterns are accepted
    assert int(F32.add(np.uint64(0x3F800000), np.uint32(0))) == 0x3F800000


# --- properties ----------------------------------------------------------------------
words = st.integers(0, 0xFFFF)


@settings(max_examples=300, deadline=None)
@given(words, words)
def test_commutative(a, b):
    for f in (BF, F32):
        assert int(f.mul(a, b)) == int(f.mul(b, a))
    assert int(BF.add(a, b)) == int(BF.add(b, a))


@settings(max_examples=300, deadline=None)
@given(words)
def test_decode_encode_round_trip(w):
    e, frac = (w >> 7) & 0xFF, w & 0x7F
    v = BF.decode(w)
    if e == 0:
        assert int(BF.encode(v)) == (w & 0x8000)               # subnormals are zeros
    elif e == 255:
        assert int(BF.encode(v)) == (w & 0x8000) | PINF        # NaNs are infinities
    else:
        assert int(BF.encode(v)) == w
        assert int(F32.to_word(F32.encode_acc(v))) == w
        assert int(F32.word_to_acc(w)) == int(F32.encode_acc(v))


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-3e38, max_value=3e38))
def test_encode_is_nearest(x):
    """The encoded value is a nearest bf16 value (or a flushed zero)."""
    w = int(BF.encode(x))
    v = float(BF.decode(w))
    if abs(v) > 0:
        up, dn = float(BF.decode(min(w + 1, 0xFFFF))), float(BF.decode(max(w - 1, 0)))
        assert abs(v - x) <= abs(up - x) or not np.isfinite(up)
        assert abs(v - x) <= abs(dn - x)
    else:
        assert abs(x) < 2.0 ** -126
