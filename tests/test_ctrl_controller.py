"""Controller: issue rate, pause/fence, illegal instructions, core errors, counters."""

import random

import pytest

from amaranth.back import verilog

from reneta_hw.config import AcceleratorConfig
from reneta_hw.ctrl.controller import Controller, State
from reneta_hw.isa import Instruction, Proc, encode, instruction_layout
from sim.streams import simulate, stream_put

CFG = AcceleratorConfig(num_pe=4, max_n=32, max_m=16, smem_depth=128, spm_depth=16,
                        axi_data_width=64, axi_addr_width=16, instr_queue_depth=8)
LAY = instruction_layout(CFG)


def mxv(**kw):
    base = dict(proc=Proc.MxV, src0=1, src1=1, nt=4, cnt0=3, cnt1=3, cnt2=0, n1=4,
                smem_op0=0, smem_op1=8, dst0=1, smem_dst=32)
    base.update(kw)
    return encode(CFG, Instruction(**base))


async def _strobe(ctx, sig):
    ctx.set(sig, 1)
    await ctx.tick()
    ctx.set(sig, 0)


class FakeCore:
    """Testbench model of the core: takes instructions (random ready), retires each after
    ``lat`` cycles, one at a time or overlapped."""

    def __init__(self, dut, lat=5, stall=0.0, seed=0):
        self.dut, self.lat, self.stall = dut, lat, stall
        self.rng = random.Random(seed)
        self.got = []
        self.accept_cycles = []

    async def run(self, ctx):
        dut = self.dut
        busy = []       # retire times
        cyc = 0
        ctx.set(dut.core_idle, 1)
        while True:
            ready = self.rng.random() >= self.stall
            ctx.set(dut.core_instr.ready, ready)
            _, _, v, pay = await ctx.tick().sample(dut.core_instr.valid, dut.core_instr.payload)
            cyc += 1
            ret = bool(busy) and busy[0] <= cyc
            if ret:
                busy.pop(0)
            if v and ready:
                self.got.append(pay.as_bits())
                self.accept_cycles.append(cyc)
                busy.append(cyc + self.lat)
            ctx.set(dut.core_retired, ret)
            ctx.set(dut.core_idle, not busy)
            ctx.set(dut.core_events.mac_beat, bool(busy))
            ctx.set(dut.core_events.busy, bool(busy))


def _run(words, *, lat=5, core_stall=0.0, push_stall=0.0, count=0, script=None, seed=0,
         deadline=3000):
    dut = Controller(CFG)
    core = FakeCore(dut, lat, core_stall, seed)
    log = {}

    async def host(ctx):
        rng = random.Random(seed + 7)
        ctx.set(dut.instr_count, count)
        await _strobe(ctx, dut.start)
        for w in words:
            while rng.random() < push_stall:
                await ctx.tick()
            await stream_put(ctx, dut.push, w)
        if script:
            await script(ctx, dut, log)
        else:
            await ctx.tick().until(dut.done)
        log["counters"] = {n: ctx.get(getattr(dut, n)) for n in ("cycles", "retired",
                                                                   "mac_beats", "busy")}

    simulate(dut, host, processes=[core.run], deadline_cycles=deadline)
    return core, log


def test_all_issued_in_order_under_stalls():
    words = [mxv(smem_dst=32 + k) for k in range(20)]
    for seed in range(3):
        core, log = _run(words, lat=3, core_stall=0.4, push_stall=0.4, seed=seed,
                         count=len(words))
        assert core.got == words
        assert log["counters"]["retired"] == len(words)


def test_one_instruction_per_cycle():
    words = [mxv(smem_dst=32 + k) for k in range(6)]
    dut = Controller(CFG)
    core = FakeCore(dut, lat=1)
    cycles = {}

    async def host(ctx):
        for w in words:                   # queue them while IDLE
            await stream_put(ctx, dut.push, w)
        for _ in range(6):
            await ctx.tick()
        await _strobe(ctx, dut.start)
        await ctx.tick().until(dut.done)

    simulate(dut, host, processes=[core.run], deadline_cycles=500)
    a = core.accept_cycles
    assert a == list(range(a[0], a[0] + len(words)))


def test_instruction_count_and_idle_instructions():
    idle = encode(CFG, Instruction(proc=Proc.IDLE))
    words = [mxv(), idle, mxv(smem_dst=40), idle]
    core, log = _run(words, count=4)
    assert core.got == [words[0], words[2]]
    assert log["counters"]["retired"] == 4


def test_pause_waits_for_idle_then_resume():
    words = [mxv(), mxv(pause=1, smem_dst=40), mxv(smem_dst=50)]

    async def script(ctx, dut, log):
        await ctx.tick().until(dut.paused)
        log["at_pause"] = len(core_ref[0].got)
        log["idle_at_pause"] = ctx.get(dut.core_idle)
        for _ in range(20):
            await ctx.tick()
        assert ctx.get(dut.paused) and len(core_ref[0].got) == 2
        await _strobe(ctx, dut.resume)
        await ctx.tick().until(dut.done)

    core_ref = []
    dut = Controller(CFG)
    core = FakeCore(dut, lat=10)
    core_ref.append(core)
    log = {}

    async def host(ctx):
        ctx.set(dut.instr_count, len(words))
        await _strobe(ctx, dut.start)
        for w in words:
            await stream_put(ctx, dut.push, w)
        await script(ctx, dut, log)

    simulate(dut, host, processes=[core.run], deadline_cycles=2000)
    assert log["at_pause"] == 2 and log["idle_at_pause"] == 1
    assert core.got == words


def test_illegal_instruction_stops_with_rule_and_index():
    bad = mxv(nt=0)                       # rule 3
    words = [mxv(), mxv(smem_dst=40), bad, mxv(smem_dst=50)]
    dut = Controller(CFG)
    core = FakeCore(dut, lat=4)
    log = {}

    async def host(ctx):
        for w in words:                   # queued before START (INSTR_COUNT = 0)
            await stream_put(ctx, dut.push, w)
        await _strobe(ctx, dut.start)
        await ctx.tick().until(dut.error)
        log["rule"] = ctx.get(dut.err_rule)
        log["index"] = ctx.get(dut.err_index)
        for _ in range(20):
            await ctx.tick()
        log["issued_core"] = len(core.got)
        await _strobe(ctx, dut.clear_error)
        await ctx.tick().until(dut.state == State.IDLE)
        for _ in range(5):
            await ctx.tick()
        log["level"] = ctx.get(dut.queue_level)

    simulate(dut, host, processes=[core.run], deadline_cycles=2000)
    assert log == {"rule": 3, "index": 2, "issued_core": 2, "level": 0}


def test_core_error():
    dut = Controller(CFG)
    log = {}

    async def host(ctx):
        ctx.set(dut.core_idle, 1)
        ctx.set(dut.core_instr.ready, 1)
        await stream_put(ctx, dut.push, mxv())
        await _strobe(ctx, dut.start)
        ctx.set(dut.core_error, 1)
        ctx.set(dut.core_error_code, 2)
        await ctx.tick().until(dut.error)
        log["core"] = ctx.get(dut.err_core)
        log["code"] = ctx.get(dut.err_code)
        ctx.set(dut.core_error, 0)
        await _strobe(ctx, dut.clear_error)
        log["clear"] = ctx.get(dut.core_error_clear)      # one-cycle pulse to the core

    simulate(dut, host, deadline_cycles=200)
    assert log == {"core": 1, "code": 2, "clear": 1}


def test_counters_match_observed_cycles_and_clear():
    words = [mxv(smem_dst=32 + k) for k in range(5)]
    dut = Controller(CFG)
    core = FakeCore(dut, lat=7)
    log = {}

    async def host(ctx):
        for w in words:
            await stream_put(ctx, dut.push, w)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        n = 0
        while not ctx.get(dut.done):
            await ctx.tick()
            n += 1
        log["observed"] = n
        log["cycles"] = ctx.get(dut.cycles)
        log["mac"] = ctx.get(dut.mac_beats)
        log["busy"] = ctx.get(dut.busy)
        await _strobe(ctx, dut.clear_counters)
        log["after_clear"] = ctx.get(dut.cycles)

    simulate(dut, host, processes=[core.run], deadline_cycles=2000)
    assert log["cycles"] == log["observed"]
    assert log["mac"] == log["busy"] > 7       # the fake core overlaps instructions
    assert log["after_clear"] == 0


def test_counter_carry_into_high_half():
    dut = Controller(CFG)
    log = {}

    async def host(ctx):
        ctx.set(dut.core_idle, 0)           # busy counts every cycle
        for _ in range(3):
            await ctx.tick()
        lo, _ = dut._counter_halves["busy"]
        ctx.set(lo, 0xFFFF_FFFE)
        for _ in range(4):
            await ctx.tick()
        log["busy"] = ctx.get(dut.busy)

    simulate(dut, host, deadline_cycles=100)
    assert log["busy"] == (1 << 32) + 2


def test_verilog_reproducible():
    a = verilog.convert(Controller(CFG), name="ctrl", emit_src=False)
    b = verilog.convert(Controller(CFG), name="ctrl", emit_src=False)
    assert a == b


@pytest.mark.slow
def test_synthesizes_for_ecp5():
    from platforms.synth import synth_ecp5
    rep = synth_ecp5(Controller(CFG), name="ctrl", pnr=False)
    assert 0 < rep.luts < 5000 and rep.ffs >= 8 * 64
