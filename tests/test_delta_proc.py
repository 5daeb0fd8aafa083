"""DELTA (delta encoding on the machine): golden semantics = `sim.delta_ref`, the whole top
in pysim bit-exact with the golden model (SMEM and DRAM sources, both formats, DRAM
back-pressure), DELTA followed by MxV_SP from raw inputs, and the errors it can raise."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reneta_hw.config import AcceleratorConfig
from reneta_hw.core import ErrorCode
from reneta_hw.isa import Assembler, IllegalInstruction, Instruction, Proc, check, \
    disassemble, unpack_descriptor
from reneta_hw.numeric import BFloat16, FixedPoint
from sim.delta_ref import delta_encode
from sim.golden import GoldenModel, Memories
from sim.harness import HarnessError, run_pysim
from sim.layout import timeseries_to_rows
from sim.vectors import VectorSet

CFG = AcceleratorConfig(num_pe=4, max_n=16, max_m=16, smem_depth=256, spm_depth=16,
                        axi_data_width=64, axi_addr_width=16, instr_queue_depth=4)
FMTS = [FixedPoint(), BFloat16()]


def _words(fmt, rng, n, nt, scale=1.0):
    """A slowly varying series (n, nt) of words: some elements fire, some do not."""
    v = np.cumsum(rng.normal(0, scale, size=(n, nt)), axis=1)
    return fmt.encode(v, on_overflow="saturate")


def _memories(cfg, x, dram=False):
    mem = Memories.empty(cfg, 512)
    rows = timeseries_to_rows(x, cfg.num_pe)
    if dram:
        mem.dram[:rows.size] = rows.reshape(-1)
    else:
        mem.smem[:rows.shape[0]] = rows
    return mem


def _lists_of(cfg, mem, nzl, values, spm_addr, nt):
    """(index, value) per timestep as the descriptors say."""
    out = []
    for t in range(nt):
        h, lane, c = unpack_descriptor(cfg, mem.spm[spm_addr + t])
        pos = h * cfg.num_pe + lane + np.arange(c)
        r, ln = pos // cfg.num_pe, pos % cfg.num_pe
        out.append((mem.smem[nzl + r, ln].tolist(), mem.smem[values + r, ln].tolist()))
    return out


# --- golden model = sim.delta_ref ------------------------------------------------------------

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FMTS), st.integers(1, 16), st.integers(1, 8), st.integers(0, 2**32 - 1),
       st.floats(0.0, 2.0), st.data())
def test_golden_delta_is_delta_ref(fmt, n, nt, seed, theta, data):
    cfg = CFG.replace(fmt=fmt)
    rng = np.random.default_rng(seed)
    x = _words(fmt, rng, n, nt)
    th = int(fmt.encode(np.float64(theta)))
    # split the timesteps over several instructions (t > 0 continues the lists and x̂)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, nt - 1), max_size=3)) if nt > 1 else []))
    bounds = [0] + cuts + [nt]
    mem = _memories(cfg, x)
    a = Assembler(cfg)
    for lo, hi in zip(bounds, bounds[1:]):
        a.delta(t=lo, steps=hi - lo, nt=nt, n=n, theta=th, nzl=100, values=150, spm_addr=1,
                x_smem=0, region=2)
    gm = GoldenModel(cfg, mem)
    gm.run(a.instructions)
    lists, desc, xhat = delta_encode(fmt, x.T, th, num_pe=cfg.num_pe)
    rows = lists.rows
    assert (mem.smem[100:100 + rows] == lists.index_rows).all()
    assert (mem.smem[150:150 + rows] == lists.value_rows).all()
    got = np.array([unpack_descriptor(cfg, int(w)) for w in mem.spm[1:1 + nt]])
    assert (got == desc).all()
    assert (gm.xhat[2, :n] == xhat).all()


def test_assembler_checks_and_disassembles():
    a = Assembler(CFG)
    ins = a.delta(t=1, steps=3, nt=4, n=10, theta=0x80, nzl=8, values=16, spm_addr=0,
                  x_dram=0x40, region=3)
    assert "DELTA" in disassemble([ins]) and "theta=0x80" in disassemble([ins])
    with pytest.raises(IllegalInstruction, match="exceed nt"):
        a.delta(t=2, steps=3, nt=4, n=10, theta=1, nzl=8, values=16, spm_addr=0, x_smem=0)
    with pytest.raises(IllegalInstruction, match="x̂ region"):
        a.delta(steps=1, nt=4, n=10, theta=1, nzl=8, values=16, spm_addr=0, x_smem=0, region=4)
    with pytest.raises(IllegalInstruction, match="exceed smem_depth"):
        a.delta(steps=1, nt=16, n=16, theta=1, nzl=8, values=16, spm_addr=0, x_smem=250)
    with pytest.raises(IllegalInstruction, match="θ"):
        check(CFG.replace(axi_addr_width=32), ins.replace(dram_dst=0x10000))


# --- the whole machine -----------------------------------------------------------------------

def _run_both(cfg, program, mem, **kw):
    gold = mem.copy()
    GoldenModel(cfg, gold).run(program)
    h = run_pysim(VectorSet(cfg, program, mem), max_cycles=20000, **kw)
    assert (h.memories.smem == gold.smem).all()
    assert (h.memories.spm == gold.spm).all()
    assert (h.memories.dram == gold.dram).all()
    return h, gold


@pytest.mark.parametrize("fmt,src", [
    (FMTS[0], "smem"), (FMTS[1], "dram"),
    pytest.param(FMTS[1], "smem", marks=pytest.mark.slow),
    pytest.param(FMTS[0], "dram", marks=pytest.mark.slow)], ids=["q8.8-smem", "bf16-dram",
                                                                  "bf16-smem", "q8.8-dram"])
def test_delta_on_top_bit_exact(fmt, src):
    cfg = CFG.replace(fmt=fmt)
    rng = np.random.default_rng(7)
    n, nt = 14, 6
    x = _words(fmt, rng, n, nt)
    th = int(fmt.encode(np.float64(0.7)))
    mem = _memories(cfg, x, dram=src == "dram")
    a = Assembler(cfg)
    where = {"x_smem": 0} if src == "smem" else {"x_dram": 0}
    # two instructions: the second continues x̂ and the lists; a second sequence in region 1
    a.delta(steps=4, nt=nt, n=n, theta=th, nzl=100, values=150, spm_addr=0, **where)
    a.delta(t=4, steps=2, nt=nt, n=n, theta=th, nzl=100, values=150, spm_addr=0, **where)
    a.delta(steps=nt, nt=nt, n=n, theta=0, nzl=200, values=220, spm_addr=8, region=1, **where)
    h, gold = _run_both(cfg, a.instructions, mem, dram_latency=9,
                        dram_stall=0.3 if src == "dram" else 0.0, seed=5)
    assert h.counters["retired"] == 3
    lists, desc, _ = delta_encode(fmt, x.T, th, num_pe=4)
    assert (gold.smem[100:100 + lists.rows] == lists.index_rows).all()
    assert 0 < int(desc[:, 2].sum()) < n * nt        # some fired, some did not


def test_delta_then_mxv_sp_from_raw_inputs():
    """A layer's forward products from its raw input: DELTA, then MxV_SP for every t."""
    fmt = CFG.fmt
    rng = np.random.default_rng(3)
    n, nt, rows_out = 12, 5, 8
    x = _words(fmt, rng, n, nt)
    w = fmt.encode(rng.normal(0, 0.5, size=(rows_out, n)))
    mem = _memories(CFG, x)
    from sim.layout import weights_to_rows
    wr = weights_to_rows(w, 4)
    mem.dram[:wr.size] = wr.reshape(-1)
    th = int(fmt.encode(np.float64(0.5)))
    a = Assembler(CFG)
    a.delta(steps=nt, nt=nt, n=n, theta=th, nzl=100, values=150, spm_addr=0, x_smem=0)
    for t in range(nt):
        a.mxv_sp(t=t, nt=nt, blocks=2, n1=n, spm_addr=0, nzl=100, values=150, w_dram=0,
                 dst_smem=60)
    h, gold = _run_both(CFG, a.instructions, mem)
    # the products equal W·Δ_t with Δ from sim.delta_ref, summed in ascending index order
    from sim.delta_ref import delta_steps
    delta, fired, _ = delta_steps(fmt, x.T, th)
    for t in range(nt):
        idx = np.flatnonzero(fired[t])
        want = fmt.to_word(fmt.dot(w[:, idx], delta[t, idx][None, :], axis=-1))
        got = np.concatenate([gold.smem[60 + b * nt + t] for b in range(2)])
        assert (got == want).all()
        assert (h.memories.smem[60 + t] == want[:4]).all()


def test_delta_list_past_smem_raises_range():
    """Lists that run past the end of SMEM: the golden model refuses, the core reports
    ErrorCode.RANGE (readable in ERROR[7:4])."""
    fmt = CFG.fmt
    x = fmt.encode(np.arange(1, 17, dtype=np.float64).reshape(16, 1) * np.ones((1, 4)))
    x = x * 0 + fmt.encode(np.float64(3.0))
    x[:, 1::2] = 0
    mem = _memories(CFG, x)
    a = Assembler(CFG)
    a.delta(steps=4, nt=4, n=16, theta=0, nzl=100, values=250, spm_addr=0, x_smem=0)
    with pytest.raises(IllegalInstruction, match="beyond smem_depth"):
        GoldenModel(CFG, mem.copy()).run(a.instructions)
    with pytest.raises(HarnessError, match=f"error code {ErrorCode.RANGE}"):
        run_pysim(VectorSet(CFG, a.instructions, mem), max_cycles=5000)


@pytest.mark.slow          # the rule itself: tests/test_ctrl_checker.py (gateware = python)
def test_delta_illegal_region_stops_with_rule_15():
    bad = Instruction(proc=Proc.DELTA, src0=1, src1=1, nt=2, n1=4, cnt2=7, smem_nzl=10,
                      smem_op1=20)
    with pytest.raises(IllegalInstruction):
        check(CFG, bad)
    with pytest.raises(HarnessError, match=r"rule 15 \(delta\)"):
        run_pysim(VectorSet(CFG, [bad], Memories.empty(CFG, 64)), max_cycles=3000)
