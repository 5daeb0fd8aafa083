"""The gateware legality checker against `reneta_hw.isa.check` and `python_rule`."""

import random

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Cat, Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from hypothesis import HealthCheck, given, settings, strategies as st

from reneta_hw.config import AcceleratorConfig
from reneta_hw.ctrl.checker import InstructionChecker, python_rule, raw_rule, rule_name
from reneta_hw.isa import IllegalInstruction, Instruction, Proc, check, decode, \
    instruction_layout
from sim.streams import collect, feed, simulate

CFG = AcceleratorConfig(num_pe=4, max_n=32, max_m=16, smem_depth=128, smem_banks=2,
                        spm_depth=16, axi_data_width=64, axi_addr_width=16,
                        procedures=("MxV", "MTxV", "VXV", "MxV_SP", "VXV_SP"))
LAY = instruction_layout(CFG)


#: field values near the rules' boundaries (for CFG)
_NEAR = {"nt": [0, 1, 2, 8, 15, 16, 17], "n1": [0, 1, 4, 16, 31, 32, 33],
         "t": [0, 1, 7, 15], "cnt0": [0, 1, 3, 7, 15, 16, 31], "cnt1": [0, 1, 3, 7, 15],
         "cnt2": [0, 1, 3, 7, 8], "spm_addr": [0, 1, 8, 15],
         "smem_op0": [0, 1, 64, 100, 127], "smem_op1": [0, 64, 120, 127],
         "smem_dst": [0, 32, 100, 127], "dram_op0": [0, 8, 16, 3, 0x100],
         "dram_dst": [0, 8, 5, 0x200], "src1": [1, 1, 1, 0]}


def _field(name, width):
    vals = [v for v in _NEAR.get(name, []) if v < (1 << width)]
    full = st.integers(0, (1 << width) - 1)
    return st.one_of(st.sampled_from(vals), full) if vals else full


_raw = st.fixed_dictionaries({name: _field(name, f.width) for name, f in LAY}).map(
    lambda d: sum(v << LAY[n].offset for n, v in d.items()))


def _verdict(word):
    try:
        check(CFG, decode(CFG, word))
        return 0
    except IllegalInstruction:
        return 1


@settings(max_examples=300, deadline=None)
@given(_raw)
def test_python_rule_matches_isa_check(word):
    assert (raw_rule(CFG, word) == 0) == (_verdict(word) == 0)


def _run(words, stall_in=0.0, stall_out=0.0, seed=0):
    dut = InstructionChecker(CFG)
    got = []
    rng = random.Random(seed)

    async def prod(ctx):
        await feed(ctx, dut.i, [data.Const(LAY, w) for w in words], stall_in, rng)

    async def cons(ctx):
        got.extend(await collect(ctx, dut.o, len(words), stall_out, random.Random(seed + 1)))

    simulate(dut, prod, cons, deadline_cycles=20 * len(words) + 100)
    return [(g.ins.as_bits(), int(g.rule)) for g in got]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_raw, min_size=1, max_size=40), st.sampled_from([0.0, 0.3, 0.6]),
       st.sampled_from([0.0, 0.3, 0.6]), st.integers(0, 99))
def test_gateware_matches_python(words, si, so, seed):
    got = _run(words, si, so, seed)
    assert [w for w, _ in got] == words              # nothing lost, duplicated, reordered
    assert [r for _, r in got] == [raw_rule(CFG, w) for w in words]


def test_legal_programs_pass():
    ins = [Instruction(proc=Proc.MxV, src1=1, nt=4, cnt0=3, cnt1=7, cnt2=1, n1=8,
                       smem_op1=0, dst0=1, smem_dst=40),
           Instruction(proc=Proc.VXV_SP, src0=1, src1=1, nt=16, cnt1=15, cnt2=7, n1=32,
                       spm_addr=0, smem_op0=0, dst1=1, dram_dst=64),
           Instruction(proc=Proc.IDLE, pause=1)]
    for i in ins:
        check(CFG, i)
    from reneta_hw.isa import encode
    got = _run([encode(CFG, i) for i in ins])
    assert [r for _, r in got] == [0, 0, 0]


def test_one_per_cycle():
    words = [0] * 20          # IDLE instructions
    dut = InstructionChecker(CFG)
    stamps = []

    async def prod(ctx):
        ctx.set(dut.i.valid, 1)
        for w in words:
            ctx.set(dut.i.payload, data.Const(LAY, w))
            await ctx.tick()
        ctx.set(dut.i.valid, 0)

    async def cons(ctx):
        ctx.set(dut.o.ready, 1)
        cyc = 0
        while len(stamps) < len(words):
            _, _, v = await ctx.tick().sample(dut.o.valid)
            cyc += 1
            if v:
                stamps.append(cyc)

    simulate(dut, prod, cons, deadline_cycles=200)
    assert stamps == list(range(stamps[0], stamps[0] + len(words)))
    assert stamps[0] == 5       # valid after 4 edges (sampled at the 5th)


def test_verilog_reproducible():
    a = verilog.convert(InstructionChecker(CFG), name="chk", emit_src=False)
    b = verilog.convert(InstructionChecker(CFG), name="chk", emit_src=False)
    assert a == b and "module chk" in a


def test_bad_cfg():
    with pytest.raises(ValueError, match="cfg"):
        InstructionChecker(None)


def test_synthesizes_for_ecp5():
    from platforms.synth import synth_ecp5
    rep = synth_ecp5(InstructionChecker(CFG), name="chk", pnr=False)
    assert 0 < rep.luts < 2000 and rep.ffs > 0 and rep.brams == 0


# DELTA (always included, rule 15 for its own fields): python rule = isa.check = gateware
_delta_raw = st.fixed_dictionaries(
    {name: (st.just(Proc.DELTA.value) if name == "proc" else _field(name, f.width))
     for name, f in LAY}).map(lambda d: sum(v << LAY[n].offset for n, v in d.items()))


@settings(max_examples=300, deadline=None)
@given(_delta_raw)
def test_delta_python_rule_matches_isa_check(word):
    assert (raw_rule(CFG, word) == 0) == (_verdict(word) == 0)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_delta_raw, min_size=1, max_size=40), st.integers(0, 99))
def test_delta_gateware_matches_python(words, seed):
    got = _run(words, 0.3, 0.3, seed)
    assert [r for _, r in got] == [raw_rule(CFG, w) for w in words]
    assert {raw_rule(CFG, w) for w in words} - {0}    # some are illegal


def test_delta_rule_15():
    ok = Instruction(proc=Proc.DELTA, src0=1, src1=1, nt=4, cnt0=3, n1=8, smem_nzl=8,
                     smem_op1=16, dram_dst=0x80)
    assert python_rule(CFG, ok) == 0
    for bad in (ok.replace(cnt2=4), ok.replace(dst0=1), ok.replace(dst1=1)):
        assert python_rule(CFG, bad) == 15 and rule_name(15) == "delta"
    assert python_rule(CFG, ok.replace(t=1)) == 7          # t + steps > nt


# --- the ECP5 elaboration (products in MULT18X18D blocks) under Verilator ----------------

_CHUNKS = [min(64, LAY.size - lo) for lo in range(0, LAY.size, 64)]


class _ChunkedChecker(wiring.Component):
    """The checker behind ports of at most 64 bits (what `VerilatorModel` carries), with
    each cycle's handshakes registered: ``took_in``/``took_out`` say that an instruction
    entered/left at that clock edge, ``rule`` and ``out{k}`` what left."""

    def __init__(self, cfg):
        self.cfg = cfg
        members = {"i_valid": In(1), "o_ready": In(1), "took_in": Out(1), "took_out": Out(1),
                   "rule": Out(4)}
        for k, w in enumerate(_CHUNKS):
            members[f"in{k}"] = In(w)
            members[f"out{k}"] = Out(w)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.chk = chk = InstructionChecker(self.cfg)
        ins_out = chk.o.payload.ins.as_value()
        m.d.comb += [chk.i.valid.eq(self.i_valid), chk.o.ready.eq(self.o_ready),
                     chk.i.payload.eq(Cat(*(getattr(self, f"in{k}")
                                                 for k in range(len(_CHUNKS)))))]
        m.d.sync += [self.took_in.eq(chk.i.valid & chk.i.ready),
                     self.took_out.eq(chk.o.valid & chk.o.ready),
                     self.rule.eq(chk.o.payload.rule)]
        m.d.sync += [getattr(self, f"out{k}").eq(ins_out[64 * k:64 * k + w])
                     for k, w in enumerate(_CHUNKS)]
        return m


def _random_words(rng, n):
    """Raw instruction words, each field near a rule's boundary or uniform (as `_field`),
    the procedure mostly one with a code below 8."""
    near = {**_NEAR, "proc": list(range(8))}
    words = []
    for _ in range(n):
        w = 0
        for name, f in LAY:
            vals = [v for v in near.get(name, []) if v < (1 << f.width)]
            v = rng.choice(vals) if vals and rng.random() < 0.7 else rng.randrange(1 << f.width)
            w |= v << f.offset
        words.append(w)
    return words


def test_verilator_ecp5_products():
    """Elaborated for ECP5 (each region size a MULT18X18D with its input and output
    registers), the checker gives the rules of `raw_rule` for every instruction, in
    order, under random stalls on both sides, cycle for cycle as the generic form."""
    from sim import verilator_eval
    from reneta_hw.numeric.ecp5_dsp import ECP5_MULT18X18D_MODEL, Ecp5SynthHints
    reason = verilator_eval.unavailable_reason()
    if reason:
        pytest.skip(reason)
    rng = random.Random(5)
    n = 4000
    words = _random_words(rng, n)
    inputs = {"i_valid": np.array([rng.random() < 0.7 for _ in range(n)], dtype=np.uint8),
              "o_ready": np.array([rng.random() < 0.6 for _ in range(n)], dtype=np.uint8)}
    for k in range(len(_CHUNKS)):
        inputs[f"in{k}"] = np.array([(w >> 64 * k) & ((1 << 64) - 1) for w in words],
                                    dtype=np.uint64)
    runs = {}
    for form, platform in (("generic", None), ("ecp5", Ecp5SynthHints())):
        text = verilog.convert(_ChunkedChecker(CFG), name="chunked", platform=platform,
                               emit_src=False)
        assert ("MULT18X18D" in text) == (platform is not None)
        model = verilator_eval.VerilatorModel(text + (ECP5_MULT18X18D_MODEL if platform
                                                      else ""), name="chunked")
        runs[form] = model.run(**inputs)
    for port in runs["generic"]:
        assert np.array_equal(runs["generic"][port], runs["ecp5"][port]), port
    got = runs["ecp5"]
    # row c: what happened at clock edge c, which saw the inputs of row c
    accepted = [words[c] for c in np.flatnonzero(got["took_in"])]
    left = [(int(got["rule"][c]), sum(int(got[f"out{k}"][c]) << 64 * k
                                      for k in range(len(_CHUNKS))))
            for c in np.flatnonzero(got["took_out"])]
    assert len(accepted) > n // 3 and len(accepted) - 4 <= len(left) <= len(accepted)
    assert [w for _, w in left] == accepted[:len(left)]
    want = [raw_rule(CFG, w) for w in accepted[:len(left)]]
    assert [r for r, _ in left] == want
    assert len(set(want)) >= 8          # the words reach many rules, legal ones included
