"""ActivationCore / ActivationUnit: bit-exact with `apply_func`, streams under random stalls."""

import random

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator
from hypothesis import given, settings, strategies as st

from platforms.synth import synth_ecp5
from reneta_hw.ccm.activation_unit import ActivationCore, ActivationUnit, activation_rom_init
from reneta_hw.numeric import BFloat16, FixedPoint, Func, apply_func
from reneta_hw.numeric.activation import ActivationSpec, activation_index, activation_spec
from sim.streams import collect, feed, simulate

Q88 = FixedPoint()
BF = BFloat16()
I16 = FixedPoint.int16_reference()
ALL = np.arange(1 << 16, dtype=np.int64)


def run_core(fmt, words, funcs, lanes=32, stages=2, spec=None):
    """Push ``words`` (a multiple of lanes) through an ActivationCore with en=1; one func per
    row of ``lanes`` words. Returns the output words."""
    dut = ActivationCore(fmt, lanes, stages, spec=spec)
    rows = np.asarray(words, dtype=np.int64).reshape(-1, lanes)
    funcs = list(funcs)
    assert len(funcs) == rows.shape[0]
    out = np.zeros_like(rows)

    async def tb(ctx):
        ctx.set(dut.en, 1)
        for k in range(len(funcs) + dut.latency):
            if k < len(funcs):
                ctx.set(dut.func, int(funcs[k]))
                ctx.set(dut.a, [int(v) for v in rows[k]])
            await ctx.tick()
            j = k + 1 - dut.latency
            if 0 <= j < len(funcs):
                out[j] = ctx.get(dut.o)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return out.ravel()


def expected(fmt, words, funcs, lanes, spec=None):
    rows = np.asarray(words, dtype=np.int64).reshape(-1, lanes)
    return np.concatenate([apply_func(fmt, f, r, spec) for f, r in zip(funcs, rows)])


def test_sigmoid_every_q88_word():
    """Every Q8.8 word through the sigmoid ROM: covers the whole index computation."""
    lanes = 64
    funcs = [Func.SIGMOID] * (len(ALL) // lanes)
    assert np.array_equal(run_core(Q88, ALL, funcs, lanes), expected(Q88, ALL, funcs, lanes))


def _bf16_words(rng, n):
    """Random bf16 patterns plus every exponent near the table range and the specials."""
    special = [0x0000, 0x8000, 0x0001, 0x807F, 0x7F80, 0xFF80, 0x7FC0, 0xFFFF, 0x3F80,
               0xBF80, 0x7F7F, 0xFF7F]
    near = [(s << 15) | (e << 7) | f for s in (0, 1) for e in range(110, 140)
            for f in (0, 1, 0x3F, 0x40, 0x41, 0x7F)]
    w = np.concatenate([special, near, rng.integers(0, 1 << 16, n)]).astype(np.int64)
    return w


@pytest.mark.parametrize("fmt", [BF, I16, FixedPoint(4, 4, acc_bits=16),
                                 FixedPoint(1, 7, acc_bits=16)], ids=str)
def test_random_words_all_funcs(fmt):
    rng = np.random.default_rng(7)
    lanes = 32
    if isinstance(fmt, BFloat16):
        words = _bf16_words(rng, 1600)
    else:
        words = rng.integers(0, 1 << fmt.word_bits, 1600)
    words = words[:len(words) // lanes * lanes]
    funcs = [Func(k % 4) for k in range(len(words) // lanes)]
    assert np.array_equal(run_core(fmt, words, funcs, lanes),
                          expected(fmt, words, funcs, lanes))


@pytest.mark.parametrize("fmt,spec", [
    (BF, ActivationSpec(0, 4)), (BF, ActivationSpec(5, 12)), (BF, ActivationSpec(-3, 6)),
    (BF, ActivationSpec(2, 9)),
    (Q88, ActivationSpec(2, 5)), (Q88, ActivationSpec(3, 12)), (Q88, ActivationSpec(7, 9)),
    (I16, ActivationSpec(15, 10)),
], ids=str)
def test_other_table_geometries(fmt, spec):
    rng = np.random.default_rng(3)
    lanes = 8
    words = _bf16_words(rng, 100) if isinstance(fmt, BFloat16) else rng.integers(0, 1 << 16, 400)
    words = words[:len(words) // lanes * lanes]
    funcs = [Func.SIGMOID if k % 2 else Func.TANH for k in range(len(words) // lanes)]
    assert np.array_equal(run_core(fmt, words, funcs, lanes, spec=spec),
                          expected(fmt, words, funcs, lanes, spec))


@settings(max_examples=6, deadline=None)
@given(st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8),
       st.sampled_from([Func.SIGMOID, Func.TANH, Func.RELU, Func.NONE]),
       st.sampled_from([1, 2, 3, 4, 5]))
def test_hypothesis_bf16_words(words, func, stages):
    funcs = [func]
    assert np.array_equal(run_core(BF, words, funcs, 8, stages),
                          expected(BF, words, funcs, 8))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", [Q88, BF, I16], ids=str)
def test_every_word_every_func(fmt):
    lanes = 64
    n = len(ALL) // lanes
    funcs = [Func(k // n) for k in range(4 * n)]
    words = np.tile(ALL, 4)
    assert np.array_equal(run_core(fmt, words, funcs, lanes), expected(fmt, words, funcs, lanes))


def test_index_matches_reference_geometry():
    """The ROM address is the reference's: the ROM word at it is the table entry."""
    init = activation_rom_init(BF)
    n = activation_spec(BF).entries
    idx = activation_index(BF, ALL)
    assert np.array_equal(np.asarray(init[:n])[idx], apply_func(BF, Func.SIGMOID, ALL))
    assert np.array_equal(np.asarray(init[n:])[idx], apply_func(BF, Func.TANH, ALL))


# --- the stream unit -----------------------------------------------------------------
def _stream_run(fmt, lanes, stages, beats, stall_in, stall_out, seed):
    dut = ActivationUnit(fmt, lanes, stages)
    got = []

    async def producer(ctx):
        await feed(ctx, dut.i, [{"data": list(w), "func": int(f)} for w, f in beats],
                   stall_in, random.Random(seed))

    async def consumer(ctx):
        got.extend(await collect(ctx, dut.o, len(beats), stall_out, random.Random(seed + 1)))

    simulate(dut, producer, consumer, deadline_cycles=20 * len(beats) + 100)
    return [[int(v) for v in g.data] for g in got]


@pytest.mark.parametrize("fmt", [Q88, BF], ids=str)
@pytest.mark.parametrize("stages", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_stream_random_stalls(fmt, stages, stall):
    rng = np.random.default_rng(stages)
    lanes = 3                                 # odd: one lane alone on its ROM
    beats = [(fmt.encode(rng.normal(scale=4, size=lanes)), rng.integers(0, 4))
             for _ in range(60)]
    got = _stream_run(fmt, lanes, stages, beats, stall, stall, seed=stages)
    exp = [[int(v) for v in apply_func(fmt, f, w)] for w, f in beats]
    assert got == exp


def test_one_beat_per_cycle():
    """Without stalls: inputs accepted on consecutive cycles, outputs `latency` later."""
    fmt, lanes = Q88, 4
    for stages in (1, 2, 3, 4, 5):
        dut = ActivationUnit(fmt, lanes, stages)
        rng = np.random.default_rng(0)
        beats = [{"data": [int(v) for v in rng.integers(0, 1 << 16, lanes)],
                  "func": int(rng.integers(0, 4))} for _ in range(40)]
        ins, outs, data = [], [], []

        async def tb(ctx):
            ctx.set(dut.o.ready, 1)
            k = 0
            for cyc in range(len(beats) + stages + 2):
                if k < len(beats):
                    ctx.set(dut.i.valid, 1)
                    ctx.set(dut.i.payload, beats[k])
                else:
                    ctx.set(dut.i.valid, 0)
                if k < len(beats) and ctx.get(dut.i.ready):
                    ins.append(cyc)
                    k += 1
                if ctx.get(dut.o.valid):
                    outs.append(cyc)
                    data.append([int(v) for v in ctx.get(dut.o.payload.data)])
                await ctx.tick()

        simulate(dut, tb)
        n = len(beats)
        assert ins == list(range(n))
        assert outs == list(range(stages, stages + n))
        assert data == [[int(v) for v in apply_func(fmt, b["func"], b["data"])] for b in beats]


def test_verilog_is_reproducible():
    a = verilog.convert(ActivationUnit(I16, 3), name="act", emit_src=False)
    b = verilog.convert(ActivationUnit(I16, 3), name="act", emit_src=False)
    assert a == b and "module act" in a


def test_synth_shares_roms():
    """Two lanes per ROM: the 2048 x 16 sigmoid+tanh ROM of Q8.8 is 2 DP16KD for 2 lanes."""
    r = synth_ecp5(ActivationUnit(Q88, 2, 3), name="act", pnr=False)
    assert r.brams == 2            # lanes_per_rom=1: 4 (measured once; one synthesis here)


def test_parameter_errors():
    with pytest.raises(ValueError, match="lanes"):
        ActivationUnit(Q88, 0)
    with pytest.raises(ValueError, match="stages"):
        ActivationUnit(Q88, 2, stages=6)
    with pytest.raises(ValueError, match="lanes_per_rom"):
        ActivationCore(Q88, 2, lanes_per_rom=3)
    with pytest.raises(ValueError, match="spec"):
        ActivationUnit(Q88, 2, spec=ActivationSpec(9, 10))
    with pytest.raises(TypeError, match="fmt"):
        ActivationUnit("Q8.8", 2)
