"""The Sequencer alone: its output streams do not depend on when its consumers are ready.

Why: the sequencer issues from registered "room" flags and keeps its own output queues (a
timing cut, see ``Sequencer._io_stages``). A mistake there (an item issued into a full
queue, a counter stepped without its item being taken) shows up as a lost, duplicated or
reordered item on some stream; here each procedure runs once with always-ready consumers
and once with randomly stalling ones and a randomly stalling element source. The row
requests and the compute beats must be the same items in the same order. VXV_SP's last
block chooses its drains by queue levels (which columns ride on which compute beat, how
many zero beats are left for its flush), so drain fields and zero beats may differ with
timing; their write-back descriptors must still be the same set.
"""

import random

import pytest
from amaranth.lib import data
from amaranth.sim import Simulator

from reneta_hw.config import AcceleratorConfig
from reneta_hw.ipm.list_reader import element_layout
from reneta_hw.ipm.sequencer import Sequencer, beat_layout
from reneta_hw.isa import Proc, instruction_layout

OUTPUTS = ("cmd", "dreq", "sreq", "xreq", "wb")


def small_cfg():
    return AcceleratorConfig(num_pe=4, max_n=32, max_m=16, smem_depth=256, spm_depth=16,
                             axi_data_width=64)


def _bits(value):
    return value.as_bits() if isinstance(value, data.Const) else int(value)


def _lists(rng, n1, count):
    """``count`` element lists (non-zero indices < n1; some empty)."""
    out = []
    for _ in range(count):
        k = rng.choice([0, 1, 2, 3, n1 // 2])
        idx = sorted(rng.sample(range(n1), k))
        if not idx:
            out.append([dict(nzi=0, nzv=0, first=1, last=1, empty=1, bad=0)])
            continue
        out.append([dict(nzi=v, nzv=rng.randrange(1 << 16), first=int(j == 0),
                         last=int(j == len(idx) - 1), empty=0, bad=0)
                    for j, v in enumerate(idx)])
    return out


def _program(rng):
    """Instructions of every procedure plus the element stream they consume, in order."""
    instrs, elements = [], []
    base = dict(func=0, pause=0, src1=0, dst0=1, dst1=1, nt=3, t=1, spm_addr=0,
                smem_nzl=0, smem_op0=5, smem_op1=40, smem_dst=100, dram_op0=0x1000,
                dram_dst=0x8000)
    for src0 in (0, 1):
        n1 = 8
        # MxV_SP: blocks = cnt2 + 1; one list, each element walks every block
        instrs.append(base | dict(proc=Proc.MxV_SP, src0=src0, cnt0=0, cnt1=0, cnt2=2, n1=n1))
        elements += _lists(rng, n1, 1)[0]
        # MTxV_SP: blocks = cnt1 + 1
        instrs.append(base | dict(proc=Proc.MTxV_SP, src0=src0, cnt0=0, cnt1=2, cnt2=0, n1=n1))
        elements += _lists(rng, 4 * 4, 1)[0]
        # VXV_SP: blocks = cnt2 + 1, timesteps = cnt1 + 1; every block walks the same lists
        for cnt2, cols in ((0, n1), (2, n1), (1, 24)):
            steps = _lists(rng, cols, 3)
            instrs.append(base | dict(proc=Proc.VXV_SP, src0=src0, cnt0=0, cnt1=2,
                                      cnt2=cnt2, n1=cols))
            for _ in range(cnt2 + 1):
                for lst in steps:
                    elements += lst
        # dense forms
        instrs.append(base | dict(proc=Proc.MxV, src0=src0, cnt0=2, cnt1=5, cnt2=1, n1=n1))
        instrs.append(base | dict(proc=Proc.MTxV, src0=src0, cnt0=2, cnt1=1, cnt2=5, n1=n1))
        instrs.append(base | dict(proc=Proc.VXV, src0=src0, cnt0=5, cnt1=2, cnt2=1, n1=n1))
    instrs.append(base | dict(proc=Proc.IDLE, src0=0, cnt0=0, cnt1=0, cnt2=0, n1=n1))
    return instrs, elements


def _run(instrs, elements, stall, seed):
    cfg = small_cfg()
    dut = Sequencer(cfg)
    ilay, elay = instruction_layout(cfg), element_layout(cfg)
    rng = random.Random(seed)
    got = {name: [] for name in OUTPUTS}
    done = []

    async def feed(ctx, port, layout, items):
        for item in items:
            while stall and rng.random() < stall:
                ctx.set(port.valid, 0)
                await ctx.tick()
            ctx.set(port.valid, 1)
            ctx.set(port.payload, layout.const(item))
            await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)

    async def feed_instrs(ctx):
        await feed(ctx, dut.instr, ilay, instrs)
        done.append(1)

    async def feed_elements(ctx):
        await feed(ctx, dut.el, elay, elements)

    def consumer(name):
        port = getattr(dut, name)

        async def take(ctx):
            while True:
                ready = not (stall and rng.random() < stall)
                ctx.set(port.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
                if ready and valid:
                    got[name].append(_bits(payload))
        return take

    async def main(ctx):
        while not done:
            await ctx.tick()
        idle = 0
        while idle < 40:      # until nothing moves for a while
            await ctx.tick()
            idle = 0 if ctx.get(dut.busy) else idle + 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(main)
    sim.add_testbench(feed_instrs, background=True)
    sim.add_testbench(feed_elements, background=True)
    for name in OUTPUTS:
        sim.add_testbench(consumer(name), background=True)
    sim.run()
    return got


def _compute_beats(cmds):
    """The beats with a MAC (``zero`` clear), their drain fields cleared."""
    lay = beat_layout(small_cfg())
    drain_mask = 0
    for name in ("drain", "daddr", "dzero"):
        f = lay[name]
        drain_mask |= ((1 << f.width) - 1) << f.offset
    zero = lay["zero"].offset
    return [c & ~drain_mask for c in cmds if not (c >> zero) & 1]


def _drains(cmds):
    """Every column drained, as (PE address, "untouched: write +0"), sorted: by a compute
    beat (``drain``) or by a zero beat (``first`` set: nothing accumulated)."""
    lay = beat_layout(small_cfg())
    field = lambda c, name: (c >> lay[name].offset) & ((1 << lay[name].width) - 1)
    out = []
    for c in cmds:
        if field(c, "drain"):
            out.append((field(c, "daddr"), field(c, "dzero")))
        if field(c, "zero"):
            out.append((field(c, "addr"), field(c, "first")))
    return sorted(out)


@pytest.mark.parametrize("seed", [1, 2])
def test_streams_independent_of_stalls(seed):
    instrs, elements = _program(random.Random(seed))
    free = _run(instrs, elements, stall=0.0, seed=seed)
    stalled = _run(instrs, elements, stall=0.4, seed=seed)
    assert len(free["cmd"]) > 100 and len(free["wb"]) > 20
    for name in ("dreq", "sreq", "xreq"):
        assert stalled[name] == free[name], name
    assert _compute_beats(stalled["cmd"]) == _compute_beats(free["cmd"])
    assert _drains(stalled["cmd"]) == _drains(free["cmd"])
    assert sorted(stalled["wb"]) == sorted(free["wb"])
