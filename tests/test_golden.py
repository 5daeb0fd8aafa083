"""The golden model against independent computations.

* int16 reference format: plain numpy integer matrix products (mod 2**16);
* every format: a naive scalar evaluation of the documented summation order, which
  shares no code with the golden model but the format's scalar `mul`/`add`.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from reneta_hw.config import AcceleratorConfig
from reneta_hw.isa import Func, IllegalInstruction, Instruction, Proc, pack_descriptor
from reneta_hw.numeric import BFloat16, FixedPoint, apply_func
from sim.golden import GoldenModel, Memories, run_program
from sim.layout import rows_to_timeseries, rows_to_weights

from golden_problems import make_problem

INT16 = FixedPoint.int16_reference()


def small_cfg(fmt, num_pe=4, **kw):
    return AcceleratorConfig(num_pe=num_pe, max_n=64, max_m=16, fmt=fmt, smem_depth=1024,
                             spm_depth=16, **kw)


def signed16(a):
    a = np.asarray(a, dtype=np.int64) & 0xFFFF
    return a - ((a >> 15) << 16)


def dram_rows(p, mem, rows):
    Np, rb = p.cfg.num_pe, p.cfg.row_bytes
    w0 = p.addr["dram_out"] // p.cfg.word_bytes
    return mem.dram[w0:w0 + rows * Np].reshape(rows, Np)


def sparse_program(p, func=Func.NONE, dst="dram"):
    """Forward for every t, backward for t descending, weight gradient; distinct outputs."""
    a = p.asm()
    nt, Np, n_in, blocks = p.nt, p.cfg.num_pe, p.n_in, p.blocks
    rb = p.cfg.row_bytes
    base = p.addr["dram_out"] if dst == "dram" else p.addr["smem_out"]
    step = rb if dst == "dram" else 1
    regions = {"mx": base, "ddx": base + blocks * nt * step,
               "dw": base + (blocks * nt + -(-n_in // Np) * nt) * step}
    key = "dst_dram" if dst == "dram" else "dst_smem"
    common = dict(nt=nt, blocks=blocks, n1=n_in, spm_addr=0, nzl=p.addr["nzl"], func=func)
    for t in range(nt):
        a.mxv_sp(t=t, values=p.addr["nzv"], w_dram=p.addr["dram_w"], **{key: regions["mx"]},
                 **common)
    for t in reversed(range(nt)):
        a.mtxv_sp(t=t, grad=p.addr["g"], w_dram=p.addr["dram_w"], **{key: regions["ddx"]},
                  **common)
    a.vxv_sp(steps=nt, values=p.addr["nzv"], g_dram=p.addr["dram_g"], **{key: regions["dw"]},
             **common)
    return a.instructions, regions


def read_results(p, mem, regions, dst="dram"):
    Np, nt, n_in, n_out = p.cfg.num_pe, p.nt, p.n_in, p.n_out
    blocks, bx = p.blocks, -(-n_in // Np)
    if dst == "dram":
        w0 = lambda a: a // p.cfg.word_bytes                                  # noqa: E731
        rows = lambda a, n: mem.dram[w0(a):w0(a) + n * Np].reshape(n, Np)    # noqa: E731
    else:
        rows = lambda a, n: mem.smem[a:a + n]                                 # noqa: E731
    mx = rows_to_timeseries(rows(regions["mx"], blocks * nt), n_out, nt, Np)      # (n_out, nt)
    ddx = rows_to_timeseries(rows(regions["ddx"], bx * nt), n_in, nt, Np)         # (n_in, nt)
    dw = rows_to_weights(rows(regions["dw"], blocks * n_in), n_out, n_in, Np)     # (n_out, n_in)
    return mx, ddx, dw


@pytest.mark.parametrize("num_pe", [2, 4, 16])
def test_int16_reference_matches_integer_matmul(num_pe):
    cfg = small_cfg(INT16, num_pe=num_pe)
    p = make_problem(cfg, n_out=2 * num_pe, n_in=12, nt=6, sparsity=0.6, seed=num_pe,
                     empty_steps=(0, 3), ints=True)
    prog, regions = sparse_program(p)
    res = run_program(cfg, prog, p.mem)
    mx, ddx, dw = read_results(p, res.memories, regions)
    W, D, G = signed16(p.w), signed16(p.delta), signed16(p.g)
    assert np.array_equal(signed16(mx), signed16(W @ D.T))                 # per-step products
    assert np.array_equal(signed16(ddx), signed16((G.T @ W) * p.fired).T)  # masked Wᵀ G_t
    assert np.array_equal(signed16(dw), signed16(G @ D))                   # full gradient
    # timesteps with no non-zero: zero products, no beats
    assert (mx[:, 0] == 0).all() and (mx[:, 3] == 0).all()
    nnz = int(p.fired.sum())
    assert res.beats(Proc.MxV_SP) == res.beats(Proc.MTxV_SP) == res.beats(Proc.VXV_SP) \
        == nnz * p.blocks
    # results of zero-count steps exist in the output stream
    assert res.results[0].output.shape == (p.blocks, num_pe)
    assert res.results[2 * p.nt - 1 - 0].output.shape == (0,)


def test_int16_wraps_like_the_reference():
    cfg = small_cfg(INT16, num_pe=2)
    p = make_problem(cfg, n_out=2, n_in=2, nt=1, sparsity=0.0, ints=True)
    p.mem.dram[:4] = [0x7FFF, 0x7FFF, 0x7FFF, 0x7FFF]        # W = all 32767
    p.mem.smem[p.addr["nzv"]][:2] = [0x7FFF, 0x0002]
    a = p.asm()
    a.mxv_sp(t=0, nt=1, blocks=1, n1=2, spm_addr=0, nzl=p.addr["nzl"], values=p.addr["nzv"],
             w_dram=0, dst_smem=p.addr["smem_out"])
    out = run_program(cfg, a.instructions, p.mem).memories.smem[p.addr["smem_out"]]
    expect = (32767 * 32767 + 32767 * 2) & 0xFFFF
    assert list(out) == [expect, expect]


# --- naive scalar evaluation of the documented order ------------------------------------

def naive(p, func):
    fmt, Np = p.cfg.fmt, p.cfg.num_pe
    mul = lambda a, b: int(fmt.mul(np.int64(a), np.int64(b)))     # noqa: E731
    add = lambda a, b: int(fmt.add(np.int64(a), np.int64(b)))     # noqa: E731
    fin = lambda acc: int(apply_func(fmt, func, fmt.to_word(np.int64(acc))))  # noqa: E731
    n_out, n_in, nt = p.n_out, p.n_in, p.nt
    mx = np.zeros((n_out, nt), dtype=np.int64)
    ddx = np.zeros((n_in, nt), dtype=np.int64)
    dw = np.zeros((n_out, n_in), dtype=np.int64)
    for t in range(nt):
        cols = [i for i in range(n_in) if p.fired[t, i]]
        for r in range(n_out):
            acc = 0
            for i in cols:
                acc = add(acc, mul(p.w[r, i], p.delta[t, i]))
            mx[r, t] = fin(acc)
        for i in cols:
            acc = 0
            for b in range(p.blocks):
                s = 0
                for q in range(Np):
                    s = add(s, mul(p.w[b * Np + q, i], p.g[b * Np + q, t]))
                acc = add(acc, s)
            ddx[i, t] = fin(acc)
    for r in range(n_out):
        for i in range(n_in):
            acc = 0
            for t in range(nt):
                if p.fired[t, i]:
                    acc = add(acc, mul(p.g[r, t], p.delta[t, i]))
            dw[r, i] = fin(acc)
    return mx, ddx, dw


FORMATS = [BFloat16("fp32"), BFloat16("bf16"), FixedPoint(), FixedPoint(6, 10, "truncate", "wrap", 20)]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: str(f.to_json()))
@pytest.mark.parametrize("func", [Func.NONE, Func.RELU, Func.SIGMOID, Func.TANH])
def test_sparse_procs_follow_documented_order(fmt, func):
    cfg = small_cfg(fmt, num_pe=4)
    p = make_problem(cfg, n_out=8, n_in=6, nt=4, sparsity=0.4, seed=int(func) + 7,
                     empty_steps=(1,))
    prog, regions = sparse_program(p, func=func, dst="smem")
    res = run_program(cfg, prog, p.mem)
    got = read_results(p, res.memories, regions, dst="smem")
    mx, ddx, dw = naive(p, func)
    assert np.array_equal(got[0], mx)
    assert np.array_equal(got[1], ddx)
    assert np.array_equal(got[2], dw)


@pytest.mark.parametrize("fmt", [INT16, BFloat16("fp32")], ids=["int16", "bf16"])
def test_dense_procs(fmt):
    cfg = small_cfg(fmt, num_pe=4)
    p = make_problem(cfg, n_out=8, n_in=5, nt=3, sparsity=0.0, ints=True, seed=3)
    a = p.asm()
    out = p.addr["smem_out"]
    a.mxv(steps=3, nt=3, blocks=2, n_in=5, n1=5, act=p.addr["act"], w_dram=p.addr["dram_w"],
          dst_smem=out)
    a.mtxv(steps=3, nt=3, blocks=2, n_in=5, n1=5, grad=p.addr["g"], w_dram=p.addr["dram_w"],
           dst_smem=out + 6)
    a.vxv(steps=3, nt=3, blocks=2, n_in=5, n1=5, act=p.addr["act"], g_dram=p.addr["dram_g"],
          dst_smem=out + 12)
    res = run_program(cfg, a.instructions, p.mem)
    sm = res.memories.smem
    z = rows_to_timeseries(sm[out:out + 6], 8, 3, 4)
    dA = rows_to_timeseries(sm[out + 6:out + 12], 5, 3, 4)
    dW = rows_to_weights(sm[out + 12:out + 22], 8, 5, 4)
    val = fmt.decode
    W, A, G = val(p.w), val(p.act), val(p.g)
    # small integers: exact in both formats
    assert np.array_equal(val(z), W @ A)
    assert np.array_equal(val(dA), W.T @ G)
    assert np.array_equal(val(dW), G @ A.T)
    assert [r.beats for r in res.results] == [2 * 5 * 3] * 3


def test_dense_equals_sparse_when_all_fire():
    cfg = small_cfg(BFloat16("bf16"), num_pe=4)
    p = make_problem(cfg, n_out=8, n_in=8, nt=3, sparsity=0.0, seed=5)
    # dense operand = the Δ values themselves
    from sim.layout import timeseries_to_rows
    p.mem.smem[p.addr["act"]:p.addr["act"] + 6] = timeseries_to_rows(p.delta.T, 4)
    prog, regions = sparse_program(p, dst="smem")
    sp = read_results(p, run_program(cfg, prog, p.mem).memories, regions, dst="smem")
    a = p.asm()
    out = regions["dw"] + 16
    a.mxv(steps=3, nt=3, blocks=2, n_in=8, n1=8, act=p.addr["act"], w_dram=p.addr["dram_w"],
          dst_smem=out)
    a.vxv(steps=3, nt=3, blocks=2, n_in=8, n1=8, act=p.addr["act"], g_dram=p.addr["dram_g"],
          dst_smem=out + 6)
    sm = run_program(cfg, a.instructions, p.mem).memories.smem
    assert np.array_equal(rows_to_timeseries(sm[out:out + 6], 8, 3, 4), sp[0])
    assert np.array_equal(rows_to_weights(sm[out + 6:out + 22], 8, 8, 4), sp[2])


@settings(max_examples=25, deadline=None)
@given(num_pe=st.sampled_from([2, 4, 8]), blocks=st.integers(1, 3), n_in=st.integers(1, 20),
       nt=st.integers(1, 6), sparsity=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_random_shapes_int16(num_pe, blocks, n_in, nt, sparsity, seed):
    cfg = small_cfg(INT16, num_pe=num_pe)
    p = make_problem(cfg, n_out=blocks * num_pe, n_in=n_in, nt=nt, sparsity=sparsity,
                     seed=seed, ints=True)
    prog, regions = sparse_program(p)
    mx, ddx, dw = read_results(p, run_program(cfg, prog, p.mem).memories, regions)
    W, D, G = signed16(p.w), signed16(p.delta), signed16(p.g)
    assert np.array_equal(signed16(mx), signed16(W @ D.T))
    assert np.array_equal(signed16(ddx), signed16((G.T @ W) * p.fired).T)
    assert np.array_equal(signed16(dw), signed16(G @ D))


def test_weights_from_smem_and_pause():
    cfg = small_cfg(INT16, num_pe=4)
    p = make_problem(cfg, n_out=4, n_in=4, nt=2, sparsity=0.3, ints=True, weights_in_smem=True)
    a = p.asm()
    for t in range(2):
        a.mxv_sp(t=t, nt=2, blocks=1, n1=4, spm_addr=0, nzl=p.addr["nzl"],
                 values=p.addr["nzv"], w_smem=p.addr["w"], dst_smem=p.addr["smem_out"],
                 pause=int(t == 0))
    g = GoldenModel(cfg, p.mem.copy())
    r1 = g.run(a.instructions)
    assert r1.paused and r1.pc == 1 and len(r1.results) == 1
    r2 = g.run(a.instructions, start=r1.pc)
    assert not r2.paused and r2.pc == 2
    mx = rows_to_timeseries(g.mem.smem[p.addr["smem_out"]:p.addr["smem_out"] + 2], 4, 2, 4)
    assert np.array_equal(signed16(mx), signed16(signed16(p.w) @ signed16(p.delta).T))


def test_bad_lists_and_addresses_are_named():
    cfg = small_cfg(INT16, num_pe=4)
    p = make_problem(cfg, n_out=4, n_in=4, nt=2, sparsity=0.0, ints=True)
    a = p.asm()
    a.mxv_sp(t=1, nt=2, blocks=1, n1=4, spm_addr=0, nzl=p.addr["nzl"], values=p.addr["nzv"],
             w_dram=0, dst_smem=p.addr["smem_out"])
    mem = p.mem.copy()
    mem.smem[p.addr["nzl"] + 1, 2] = 9           # timestep 1 starts at row 1: element 2
    with pytest.raises(IllegalInstruction, match=r"timestep 1, element 2: non-zero index 9"):
        run_program(cfg, a.instructions, mem)
    mem = p.mem.copy()
    mem.smem[p.addr["nzl"] + 1, 1] = mem.smem[p.addr["nzl"] + 1, 0]
    with pytest.raises(IllegalInstruction, match="repeat"):
        run_program(cfg, a.instructions, mem)
    mem = p.mem.copy()
    mem.dram = mem.dram[:8]
    with pytest.raises(IllegalInstruction, match="beyond the"):
        run_program(cfg, a.instructions, mem)
    mem = p.mem.copy()
    mem.spm[1] = pack_descriptor(cfg, 1020, 0, 16)
    with pytest.raises(IllegalInstruction, match="beyond smem_depth"):
        run_program(cfg, a.instructions, mem)
    with pytest.raises(ValueError, match="SMEM image has shape"):
        GoldenModel(cfg, Memories(p.mem.dram, p.mem.smem[:10], p.mem.spm))
    with pytest.raises(IllegalInstruction, match="src1"):
        run_program(cfg, [Instruction(proc=Proc.MxV_SP, nt=2, n1=4)], p.mem)
