"""PEArray: bit-exact with `sim.pe_ref` (and through it the golden model's summation orders),
random stalls on both streams, hazards, mode changes, one beat per cycle."""

import random

import numpy as np
import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import Fragment
from hypothesis import given, settings, strategies as st

from platforms.synth import rtlil_no_rw_check, synth_ecp5
from reneta_hw.ccm.pe_array import PEArray, PEMode
from reneta_hw.config import AcceleratorConfig
from reneta_hw.numeric import BFloat16, FixedPoint, Func
from sim.pe_ref import (
    CHAIN, PARALLEL, PEArrayRef, beat, beats_mtxv_sp, beats_mxv_sp, beats_vxv_sp,
    mtxv_sp_expected, mxv_sp_expected, vxv_sp_expected,
)
from sim.streams import collect, feed, simulate

Q88 = FixedPoint()
I16 = FixedPoint.int16_reference()
BF32 = BFloat16("fp32")
BF16 = BFloat16("bf16")


def words(fmt, rng, n, scale=1.0):
    if isinstance(fmt, FixedPoint) and fmt.frac_bits == 0:
        return rng.integers(0, 1 << fmt.word_bits, n)       # integers wrap: any pattern
    return fmt.encode(rng.normal(scale=scale, size=n), on_overflow="saturate")


def _payload(b):
    d = dict(b)
    d["mode"] = PEMode(b["mode"])
    return d


def _result(g):
    return {"mode": PEMode(g.mode).value, "addr": int(g.addr),
            "data": tuple(int(v) for v in g.data)}


def run_pe(dut, beats, stall_in=0.0, stall_out=0.0, seed=0):
    """Feed ``beats`` to the gateware; returns (results, expected results of pe_ref)."""
    exp = PEArrayRef(dut.fmt, dut.num_pe, dut.lmem_depth).run(beats)
    got = []

    async def producer(ctx):
        await feed(ctx, dut.i, [_payload(b) for b in beats], stall_in, random.Random(seed))

    async def consumer(ctx):
        got.extend(await collect(ctx, dut.o, len(exp), stall_out, random.Random(seed + 1)))

    limit = (len(beats) + 2) * (dut.latency_chain + 4) * (3 if stall_in or stall_out else 1)
    simulate(dut, producer, consumer, deadline_cycles=limit)
    return [_result(g) for g in got], exp


def random_beats(fmt, rng, num_pe, n, n_addr=4, modes=(PARALLEL, CHAIN), p_last=0.4):
    """Random beats with consistent accumulations (an address starts with first=1 and a
    PARALLEL accumulation does not continue across CHAIN beats), runs of each mode."""
    out = []
    open_par, open_ch = set(), set()
    mode = modes[0]
    for _ in range(n):
        if rng.random() < 0.1:
            mode = modes[int(rng.integers(0, len(modes)))]
        a = int(rng.integers(0, n_addr))
        if mode == CHAIN:
            open_par = set()
            opened = open_ch
        else:
            opened = open_par
        first = a not in opened or rng.random() < 0.15
        opened.add(a)
        out.append(beat(words(fmt, rng, num_pe), words(fmt, rng, num_pe), mode, a, first,
                        rng.random() < p_last, rng.random() < 0.1, int(rng.integers(0, 4))))
    return out


# --- the reference model against the golden model's orders ------------------------------
@pytest.mark.parametrize("fmt", [Q88, I16, BF32, BF16], ids=str)
def test_pe_ref_matches_golden_orders(fmt):
    rng = np.random.default_rng(5)
    Np, rows, n = 4, 8, 12
    W = words(fmt, rng, rows * n).reshape(rows, n)
    nzi = [3, 0, 7, 11]
    nzv = words(fmt, rng, 4)
    ref = PEArrayRef(fmt, Np, 16)
    got = np.array([r["data"] for r in ref.run(beats_mxv_sp(W, nzi, nzv, Np, Func.TANH))])
    assert np.array_equal(got, mxv_sp_expected(fmt, W, nzi, nzv, Np, Func.TANH))
    got = np.array([r["data"] for r in ref.run(beats_mxv_sp(W, [], [], Np, Func.SIGMOID))])
    assert np.array_equal(got, mxv_sp_expected(fmt, W, [], [], Np, Func.SIGMOID))
    G = words(fmt, rng, 3 * rows).reshape(3, rows)
    lists = [[(2, nzv[0]), (0, nzv[1])], [], [(2, nzv[2]), (5, nzv[3])]]
    got = np.array([r["data"] for r in ref.run(beats_vxv_sp(G, lists, 6, Np))])
    assert np.array_equal(got, vxv_sp_expected(fmt, G, lists, 6, Np))
    g = words(fmt, rng, rows)
    got = [r["data"][0] for r in ref.run(beats_mtxv_sp(W, g, nzi, Np, Func.RELU))]
    assert got == list(mtxv_sp_expected(fmt, W, g, nzi, Np, Func.RELU))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([Q88, I16, BF32, BF16, FixedPoint(8, 8, overflow="wrap")]),
       st.integers(0, (1 << 32) - 1))
def test_negative_zero_is_the_additive_identity(fmt, a):
    """The gateware's ``zero`` beats add ``neg_acc(+0)``: it must leave unchanged every
    accumulator the arithmetic produces (bfloat16: never a subnormal or NaN pattern)."""
    a = a & fmt.acc_mask
    specials = [0, fmt.acc_mask, 1 << (fmt.acc_bits - 1), (1 << (fmt.acc_bits - 1)) - 1]
    if isinstance(fmt, BFloat16):
        frac = 7 if fmt.accumulate == "bf16" else 23
        exp_mask = 0xFF << frac

        def canonical(v):
            return v & ~((1 << frac) - 1) if v & exp_mask in (0, exp_mask) else v
        a = canonical(a)
        specials = [canonical(v) for v in specials] + [exp_mask, exp_mask | (1 << (frac + 8))]
    nz = int(fmt.neg_acc(fmt.zero_acc))
    assert int(fmt.add(a, nz)) == a
    for special in specials:
        assert int(fmt.add(special, nz)) == special


def test_pe_ref_rejects_undefined_partial_sums():
    ref = PEArrayRef(Q88, 2, 4)
    with pytest.raises(ValueError, match="never written"):
        ref.beat(beat([0, 0], 0, PARALLEL, 1, first=False))
    ref.beat(beat([0, 0], 0, PARALLEL, 1, first=True))
    ref.beat(beat([0, 0], [0, 0], CHAIN, 0, first=True))
    with pytest.raises(ValueError, match="destroyed by CHAIN"):
        ref.beat(beat([0, 0], 0, PARALLEL, 1, first=False))
    with pytest.raises(ValueError, match="addr"):
        ref.beat(beat([0, 0], 0, PARALLEL, 4, first=True))


# --- gateware against the reference --------------------------------------------------------
@pytest.mark.parametrize("fmt,num_pe", [(I16, 2), (I16, 4), (Q88, 4), (Q88, 3)], ids=str)
@pytest.mark.parametrize("stall", [0.0, 0.35])
def test_random_beats_fixed(fmt, num_pe, stall):
    rng = np.random.default_rng(num_pe + 10 * int(stall * 100))
    dut = PEArray(fmt, num_pe, 8)
    beats = random_beats(fmt, rng, num_pe, 150)
    got, exp = run_pe(dut, beats, stall, stall, seed=3)
    assert got == exp


@pytest.mark.parametrize("mul_stages,add_stages,to_word_stages,act_stages",
                         [(0, 0, 0, 1), (1, 2, 2, 2), (3, 2, 1, 3)])
def test_stage_variants(mul_stages, add_stages, to_word_stages, act_stages):
    """Other pipeline depths (a combinational adder: no forwarding window at all; a
    two-stage adder: hazards and forwarding at 2 and 3) stay bit-exact."""
    rng = np.random.default_rng(add_stages)
    dut = PEArray(Q88, 3, 8, mul_stages=mul_stages, add_stages=add_stages,
                  to_word_stages=to_word_stages, act_stages=act_stages)
    beats = random_beats(Q88, rng, 3, 100, n_addr=3)
    got, exp = run_pe(dut, beats, 0.25, 0.25, seed=add_stages)
    assert got == exp


@pytest.mark.parametrize("fmt", [BF32, BF16], ids=str)
def test_random_beats_bfloat16(fmt):
    rng = np.random.default_rng(2)
    dut = PEArray(fmt, 2, 8)
    beats = random_beats(fmt, rng, 2, 60, n_addr=3)
    got, exp = run_pe(dut, beats, 0.3, 0.3, seed=4)
    assert got == exp


@pytest.mark.parametrize("fmt,num_pe", [(Q88, 4), (BF32, 2)], ids=str)
def test_procedure_sequences(fmt, num_pe):
    """MxV_SP (addr 0, first/last per block, an empty timestep), VXV_SP (addresses =
    columns repeated over timesteps: read-after-write hazards; flush beats with zero),
    MTxV_SP (CHAIN), one after the other; results equal the golden-order formulas."""
    rng = np.random.default_rng(11)
    rows, n = 2 * num_pe, 6
    W = words(fmt, rng, rows * n).reshape(rows, n)
    nzi, nzv = [4, 1, 5], words(fmt, rng, 3)
    G = words(fmt, rng, 3 * rows).reshape(3, rows)
    v = words(fmt, rng, 5)
    lists = [[(1, v[0]), (3, v[1])], [(1, v[2])], [(0, v[3]), (1, v[4])]]
    g = words(fmt, rng, rows)
    beats = (beats_mxv_sp(W, nzi, nzv, num_pe, Func.SIGMOID) +
             beats_mxv_sp(W, [], [], num_pe, Func.SIGMOID) +
             beats_vxv_sp(G, lists, 4, num_pe, Func.NONE) +
             beats_mtxv_sp(W, g, nzi, num_pe, Func.TANH))
    dut = PEArray(fmt, num_pe, 8)
    got, exp = run_pe(dut, beats, 0.2, 0.2, seed=7)
    assert got == exp
    data = np.array([r["data"] for r in got])
    k = rows // num_pe
    assert np.array_equal(data[:k], mxv_sp_expected(fmt, W, nzi, nzv, num_pe, Func.SIGMOID))
    assert np.array_equal(data[k:2 * k], mxv_sp_expected(fmt, W, [], [], num_pe, Func.SIGMOID))
    assert np.array_equal(data[2 * k:6 * k], vxv_sp_expected(fmt, G, lists, 4, num_pe))
    assert list(data[6 * k:, 0]) == list(mtxv_sp_expected(fmt, W, g, nzi, num_pe, Func.TANH))
    assert (data[6 * k:, 1:] == data[6 * k:, :1]).all()          # CHAIN: in every lane


def drain_beats(fmt, rng, num_pe, n, n_addr=6, p_drain=0.5):
    """PARALLEL beats, about half carrying a drain of a random address (of one with a
    partial sum, or ``dzero``), some draining an address accumulated just before."""
    out, opened = [], set()
    for _ in range(n):
        a = int(rng.integers(0, n_addr))
        first = a not in opened or rng.random() < 0.15
        last = rng.random() < 0.2
        kw = {}
        if not last and rng.random() < p_drain:       # reads before this beat's own write
            d = int(rng.integers(0, n_addr))
            kw = dict(drain=True, daddr=d, dzero=d not in opened or rng.random() < 0.2)
        opened.add(a)
        out.append(beat(words(fmt, rng, num_pe), words(fmt, rng, num_pe), PARALLEL, a, first,
                        last, rng.random() < 0.1, int(rng.integers(0, 4)), **kw))
    return out


@pytest.mark.parametrize("fmt,stall", [(Q88, 0.0), (I16, 0.3), (BF32, 0.3)], ids=str)
def test_drain_beats(fmt, stall):
    """Drains ride on PARALLEL beats (results in beat order, drains of addresses the beats
    just before accumulate onto wait for their writes), bit-exact with `sim.pe_ref`."""
    rng = np.random.default_rng(21)
    dut = PEArray(fmt, 2, 8)
    beats = drain_beats(fmt, rng, 2, 120)
    got, exp = run_pe(dut, beats, stall, stall, seed=5)
    assert sum(b["drain"] for b in beats) > 30
    assert got == exp


def test_drains_take_no_input_slot():
    """A drain on every beat of a block on the other half of the memory: one beat per
    cycle, one result per cycle."""
    fmt = Q88
    rng = np.random.default_rng(2)
    dut = PEArray(fmt, 2, 8)
    fill = [beat(words(fmt, rng, 2), words(fmt, rng, 2), PARALLEL, 4 + k, True, False)
            for k in range(4)]
    beats = fill + [beat(words(fmt, rng, 2), words(fmt, rng, 2), PARALLEL, k % 4, k < 4,
                         False, drain=k < 4, daddr=4 + k % 4) for k in range(12)]
    beats[-1]["last"] = True
    ins, outs, res = _timed(dut, beats, n_out=5)
    assert ins == list(range(16))
    assert outs[:4] == [c + dut.latency_parallel for c in ins[4:8]]
    assert res == PEArrayRef(fmt, 2, 8).run(beats)


def test_hazards_back_to_back_bfloat16():
    """Every beat accumulates onto the address of the beat before (gap 1 < La): the array
    must stall, not read a stale partial sum; also gaps 2 and 3."""
    fmt = BF32
    rng = np.random.default_rng(9)
    dut = PEArray(fmt, 2, 8)
    assert dut.La >= 2
    beats = []
    for gap in (1, 2, 3):
        for k in range(8):
            a = k % gap
            beats.append(beat(words(fmt, rng, 2), words(fmt, rng, 2), PARALLEL, a, k < gap,
                              k >= 8 - gap))
    for k in range(6):
        beats.append(beat(words(fmt, rng, 2), words(fmt, rng, 2), CHAIN, 5, k == 0, k == 5))
    got, exp = run_pe(dut, beats)
    assert got == exp


# --- throughput ----------------------------------------------------------------------------
def _timed(dut, beats, n_out=None):
    """No stalls: (cycles of input handshakes, cycles of output handshakes, results)."""
    n_out = sum(b["last"] for b in beats) if n_out is None else n_out
    ins, outs, res = [], [], []

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        k = 0
        cyc = 0
        while len(outs) < n_out:
            if k < len(beats):
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, _payload(beats[k]))
            else:
                ctx.set(dut.i.valid, 0)
            if k < len(beats) and ctx.get(dut.i.ready):
                ins.append(cyc)
                k += 1
            if ctx.get(dut.o.valid):
                outs.append(cyc)
                res.append(_result(ctx.get(dut.o.payload)))
            await ctx.tick()
            cyc += 1
            assert cyc < 10 * (len(beats) + dut.latency_chain)

    simulate(dut, tb)
    return ins, outs, res


@pytest.mark.parametrize("fmt", [Q88, BF16], ids=str)
def test_one_beat_per_cycle(fmt):
    """Sustained one beat per cycle without hazards: PARALLEL beats on distinct addresses
    (or back to back on one address when La = 1), every beat `last`; then CHAIN beats."""
    rng = np.random.default_rng(1)
    dut = PEArray(fmt, 2, 8)
    par = [beat(words(fmt, rng, 2), words(fmt, rng, 2), PARALLEL, k % 8, k < 8, True)
           for k in range(24)]
    ins, outs, res = _timed(dut, par)
    assert ins == list(range(24))
    assert outs == [c + dut.latency_parallel for c in ins]
    assert res == PEArrayRef(fmt, 2, 8).run(par)
    ch = [beat(words(fmt, rng, 2), words(fmt, rng, 2), CHAIN, k % 8, k < 8, True)
          for k in range(24)]
    ins, outs, res = _timed(dut, ch)
    assert ins == list(range(24))
    assert outs == [c + dut.latency_chain for c in ins]
    assert res == PEArrayRef(fmt, 2, 8).run(ch)
    if dut.La == 1:           # one long accumulation (MxV_SP) also runs at full rate
        acc = [beat(words(fmt, rng, 2), words(fmt, rng, 2), PARALLEL, 0, k == 0, k == 19)
               for k in range(20)]
        ins, outs, res = _timed(dut, acc)
        assert ins == list(range(20))
        assert res == PEArrayRef(fmt, 2, 8).run(acc)


def test_hazard_and_mode_change_cost():
    """The documented costs: same-address accumulations one per La cycles; a mode change
    waits for the array to drain."""
    fmt = BF32
    rng = np.random.default_rng(4)
    dut = PEArray(fmt, 2, 8)
    La = dut.La
    acc = [beat(words(fmt, rng, 2), words(fmt, rng, 2), PARALLEL, 0, k == 0, k == 5)
           for k in range(6)]
    ins, _, res = _timed(dut, acc)
    assert ins == [k * La for k in range(6)]
    assert res == PEArrayRef(fmt, 2, 8).run(acc)
    mixed = [beat(words(fmt, rng, 2), words(fmt, rng, 2), PARALLEL, 0, True, True),
             beat(words(fmt, rng, 2), words(fmt, rng, 2), CHAIN, 0, True, True),
             beat(words(fmt, rng, 2), words(fmt, rng, 2), PARALLEL, 0, True, True)]
    ins, outs, res = _timed(dut, mixed)
    assert ins == [0, dut.latency_parallel, dut.latency_parallel + dut.latency_chain]
    assert res == PEArrayRef(fmt, 2, 8).run(mixed)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", [Q88, I16, BF32, BF16], ids=str)
@pytest.mark.parametrize("num_pe", [4, 8])
def test_random_beats_long(fmt, num_pe):
    rng = np.random.default_rng(num_pe)
    dut = PEArray(fmt, num_pe, 64)
    beats = random_beats(fmt, rng, num_pe, 400, n_addr=6)
    got, exp = run_pe(dut, beats, 0.3, 0.3, seed=num_pe)
    assert got == exp


# --- structure --------------------------------------------------------------------------------
def test_verilog_is_reproducible():
    a = verilog.convert(PEArray(I16, 2, 8), name="pe", emit_src=False)
    b = verilog.convert(PEArray(I16, 2, 8), name="pe", emit_src=False)
    assert a == b and "module pe" in a


def test_local_memories_collisions_are_dont_care():
    """The lane and reduction memories are marked ``no_rw_check`` and the synthesis flow
    turns that into don't-care collisions (no read-first emulation behind the RAMs)."""
    text = rtlil_no_rw_check(rtlil.convert(PEArray(I16, 2, 8), name="pe", emit_src=False))
    # per read port: 2 lanes + the reduction lane + the drain store (one for all lanes)
    assert text.count("COLLISION_X_MASK 1'1") == 4
    assert "COLLISION_X_MASK 1'0" not in text


def test_synth_smoke():
    r = synth_ecp5(PEArray(I16, 2, 16), name="pe", pnr=False)
    assert r.dsps == 2 and r.luts > 0


def test_config_and_parameter_errors():
    cfg = AcceleratorConfig(num_pe=4, max_n=16, max_m=16, smem_depth=64, spm_depth=16)
    dut = PEArray(cfg)
    assert (dut.num_pe, dut.lmem_depth, dut.fmt) == (4, 16, cfg.fmt)
    Fragment.get(dut, None)
    with pytest.raises(ValueError, match="not both"):
        PEArray(cfg, 4)
    with pytest.raises(ValueError, match="num_pe"):
        PEArray(Q88, 0, 8)
    with pytest.raises(ValueError, match="lmem_depth"):
        PEArray(BF32, 16, 16)          # the CHAIN skew needs 15 * La entries
    with pytest.raises(ValueError, match="act_stages"):
        PEArray(Q88, 2, 8, act_stages=6)
    with pytest.raises(TypeError, match="NumberFormat"):
        PEArray("Q8.8", 2, 8)
