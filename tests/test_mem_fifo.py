"""Stream FIFOs and pipeline stages: random stalls on both sides, order, level, throughput."""

import random

import pytest
from amaranth.back import verilog
from amaranth.hdl import Fragment, signed
from amaranth.lib import data
from hypothesis import given, settings, strategies as st

from platforms.synth import synth_ecp5

from reneta_hw.mem.fifo import _bits
from reneta_hw.mem import (PingPongBuffer, PipelineRegister, PrefetchFIFO, SkidBuffer,
                           SplitBuffer, StreamFIFO)
from sim.streams import collect, feed, simulate


def run_stream(dut, items, in_stall, out_stall, seed=0, depth=None):
    """Push ``items`` through ``dut`` with random stalls on both sides.

    A monitor samples every clock edge and records each transfer on ``i`` and ``o`` with its
    cycle number; for FIFOs it checks ``level`` against the count of items inside.
    Returns (received payloads, input transfer cycles, output transfer cycles).
    """
    got, t_in, t_out, bad = [], [], [], []
    has_level = hasattr(dut, "level")

    async def producer(ctx):
        await feed(ctx, dut.i, items, stall=in_stall, rng=random.Random(seed))

    async def consumer(ctx):
        got.extend(await collect(ctx, dut.o, len(items), stall=out_stall,
                                 rng=random.Random(seed + 1)))

    async def monitor(ctx):
        inside = 0
        cycle = 0
        sampled = [dut.i.valid, dut.i.ready, dut.o.valid, dut.o.ready]
        if has_level:
            sampled.append(dut.level)
        async for _clk, _rst, iv, ir, ov, ordy, *lvl in ctx.tick().sample(*sampled):
            if has_level:
                # the level seen at this edge counts every transfer of the earlier edges
                if lvl[0] != inside or not 0 <= lvl[0] <= depth:
                    bad.append((cycle, lvl[0], inside))
                if ir and lvl[0] >= depth:
                    bad.append((cycle, "ready while full"))
                if ov and lvl[0] == 0:
                    bad.append((cycle, "valid while empty"))
            if iv and ir:
                t_in.append(cycle)
                inside += 1
            if ov and ordy:
                t_out.append(cycle)
                inside -= 1
            cycle += 1

    stall_max = max(in_stall, out_stall)
    budget = int(len(items) * (4 + 20 * stall_max / max(1e-3, 1 - stall_max))) + 50
    simulate(dut, producer, consumer, processes=[monitor], deadline_cycles=budget)
    assert not bad, bad[:5]
    return got, t_in, t_out


def blocks(shape, depth):
    return [StreamFIFO(shape, depth), StreamFIFO(shape, depth, buffered=False)]


# --- order, loss, duplication, level under random stalls --------------------------------------

@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(["fifo", "fifo_unbuffered", "fifo_prefetch", "pipe", "skid",
                             "pingpong"]),
       depth=st.integers(1, 9), width=st.integers(1, 20),
       in_stall=st.sampled_from([0.0, 0.2, 0.5, 0.8]),
       out_stall=st.sampled_from([0.0, 0.2, 0.5, 0.8]),
       n=st.integers(0, 40), seed=st.integers(0, 2**16))
def test_random_stalls_keep_order(kind, depth, width, in_stall, out_stall, n, seed):
    dut = {"fifo": lambda: StreamFIFO(width, depth),
           "fifo_unbuffered": lambda: StreamFIFO(width, depth, buffered=False),
           "fifo_prefetch": lambda: StreamFIFO(width, depth + 4, prefetch=True),
           "pipe": lambda: PipelineRegister(width),
           "skid": lambda: SkidBuffer(width),
           "pingpong": lambda: PingPongBuffer(width)}[kind]()
    rng = random.Random(seed)
    items = [rng.getrandbits(width) for _ in range(n)]
    got, t_in, t_out = run_stream(dut, items, in_stall, out_stall, seed,
                                  getattr(dut, "depth", depth))
    assert got == items
    assert len(t_in) == len(t_out) == n          # each item crossed each side once


@pytest.mark.parametrize("depth", [2, 5, 16])
@pytest.mark.parametrize("kind", [dict(), dict(buffered=False), dict(prefetch=True)])
def test_fifo_long_random_run(depth, kind):
    depth = max(depth, 5) if kind.get("prefetch") else depth
    rng = random.Random(depth)
    items = [rng.getrandbits(16) for _ in range(150)]
    # a slow consumer first fills the FIFO, then a slow producer drains it
    got, _, _ = run_stream(StreamFIFO(16, depth, **kind), items, 0.1, 0.6, 3, depth)
    assert got == items
    got, _, _ = run_stream(StreamFIFO(16, depth, **kind), items, 0.6, 0.1, 4, depth)
    assert got == items


def test_struct_layout_payload():
    lay = data.StructLayout({"idx": 8, "val": signed(12), "last": 1})
    rng = random.Random(11)
    items = [{"idx": rng.randrange(256), "val": rng.randrange(-2048, 2048),
              "last": rng.randrange(2)} for _ in range(40)]
    for dut in [StreamFIFO(lay, 4), StreamFIFO(lay, 3, buffered=False),
                StreamFIFO(lay, 6, prefetch=True),
                PipelineRegister(lay), SkidBuffer(lay), PingPongBuffer(lay)]:
        got, _, _ = run_stream(dut, items, 0.3, 0.3, 5, getattr(dut, "depth", None))
        assert [{"idx": g.idx, "val": g.val, "last": g.last} for g in got] == items
        assert isinstance(dut.o.payload, data.View)


SPLIT = data.StructLayout({"w": data.ArrayLayout(8, 4), "tag": 3, "x": 16, "last": 1})


@settings(max_examples=20, deadline=None)
@given(in_stall=st.sampled_from([0.0, 0.3, 0.7]), out_stall=st.sampled_from([0.0, 0.3, 0.7]),
       n=st.integers(0, 40), seed=st.integers(0, 2**16))
def test_split_buffer_random_stalls(in_stall, out_stall, n, seed):
    """Order and values under random stalls; the two halves' flags agree every cycle."""
    dut = SplitBuffer(SPLIT, wide=("w", "x"))
    rng = random.Random(seed)
    items = [{"w": [rng.randrange(256) for _ in range(4)], "tag": rng.randrange(8),
              "x": rng.randrange(1 << 16), "last": rng.randrange(2)} for _ in range(n)]
    got, t_in, t_out = run_stream(dut, items, in_stall, out_stall, seed)
    assert [{"w": list(g.w), "tag": g.tag, "x": g.x, "last": g.last} for g in got] == items
    assert len(t_in) == len(t_out) == n
    # the halves push and pop together: their ready and valid flags never differ
    dut = SplitBuffer(SPLIT, wide=("w", "x"))
    apart = []

    async def tb(ctx):
        wide, narrow = dut._halves
        r = random.Random(seed + 1)
        for _ in range(120):
            ctx.set(dut.i.valid, r.random() >= in_stall)
            ctx.set(dut.o.ready, r.random() >= out_stall)
            apart.append((ctx.get(wide.i.ready), ctx.get(wide.o.valid))
                         != (ctx.get(narrow.i.ready), ctx.get(narrow.o.valid)))
            await ctx.tick()

    simulate(dut, tb, deadline_cycles=200)
    assert not any(apart)


def test_split_buffer_cuts_ready_and_checks_fields():
    dut = SplitBuffer(SPLIT, wide=("w",))
    assert dut.wide == ("w",) and dut.narrow == ("tag", "x", "last")
    Fragment.get(dut, None)
    for bad in [(), ("w", "tag", "x", "last"), ("nope",)]:
        with pytest.raises(ValueError, match=r"SplitBuffer\.wide: "):
            SplitBuffer(SPLIT, wide=bad)
    with pytest.raises(ValueError, match=r"SplitBuffer\.layout: "):
        SplitBuffer(16, wide=("w",))
    a = verilog.convert(SplitBuffer(SPLIT, wide=("w",)), name="s", emit_src=False)
    assert a == verilog.convert(SplitBuffer(SPLIT, wide=("w",)), name="s", emit_src=False)


def test_array_layout_payload_wide():
    lay = data.ArrayLayout(signed(16), 4)
    rng = random.Random(12)
    items = [[rng.randrange(-32768, 32768) for _ in range(4)] for _ in range(30)]
    got, _, _ = run_stream(SkidBuffer(lay), items, 0.4, 0.4, 6)
    assert [list(g) for g in got] == items


# --- throughput --------------------------------------------------------------------------------

@pytest.mark.parametrize("make, latency", [
    (lambda: StreamFIFO(16, 3), 2),
    (lambda: StreamFIFO(16, 16), 2),
    (lambda: StreamFIFO(16, 2, buffered=False), 1),
    (lambda: StreamFIFO(16, 16, buffered=False), 1),
    (lambda: StreamFIFO(16, 5, prefetch=True), 4),
    (lambda: StreamFIFO(16, 64, prefetch=True), 4),
    (lambda: PipelineRegister(16), 1),
    (lambda: SkidBuffer(16), 1),
    (lambda: PingPongBuffer(16), 1),
])
def test_one_item_per_cycle_without_stalls(make, latency):
    n = 40
    items = list(range(1000, 1000 + n))
    dut = make()
    got, t_in, t_out = run_stream(dut, items, 0.0, 0.0, 0, getattr(dut, "depth", None))
    assert got == items
    # one transfer per cycle on both sides, back to back
    assert t_in == list(range(t_in[0], t_in[0] + n))
    assert t_out == list(range(t_out[0], t_out[0] + n))
    assert t_out[0] - t_in[0] == latency


@pytest.mark.parametrize("make", [lambda: StreamFIFO(8, 1), lambda: StreamFIFO(8, 2),
                                  lambda: StreamFIFO(8, 1, buffered=False)])
def test_shallow_fifos_half_rate(make):
    """Documented: these depths alternate full/empty (one item every 2 cycles)."""
    items = list(range(20))
    dut = make()
    got, _, t_out = run_stream(dut, items, 0.0, 0.0, 0, dut.depth)
    assert got == items
    assert t_out[-1] - t_out[0] == 2 * (len(items) - 1)


# --- path cutting: no combinational path from o.ready to i.ready -------------------------------

@pytest.mark.parametrize("make, cut", [
    (lambda: StreamFIFO(8, 4), True),
    (lambda: StreamFIFO(8, 4, buffered=False), True),
    (lambda: StreamFIFO(8, 8, prefetch=True), True),
    (lambda: SkidBuffer(8), True),
    (lambda: PingPongBuffer(8), True),
    (lambda: SplitBuffer(data.StructLayout({"a": 4, "b": 4}), wide=("a",)), True),
    (lambda: PipelineRegister(8), False),
])
def test_ready_path(make, cut):
    dut = make()
    combinational = []

    async def tb(ctx):
        rng = random.Random(2)
        for _ in range(60):
            ctx.set(dut.i.valid, rng.random() < 0.7)
            ctx.set(_bits(dut.i.payload), rng.getrandbits(8))
            ctx.set(dut.o.ready, 0)
            r0 = ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, 1)
            r1 = ctx.get(dut.i.ready)
            combinational.append(r0 != r1)
            ctx.set(dut.o.ready, rng.random() < 0.4)
            await ctx.tick()

    simulate(dut, tb, deadline_cycles=100)
    assert any(combinational) != cut


# --- parameters, Verilog, mapping ------------------------------------------------------------

@pytest.mark.parametrize("make, msg", [
    (lambda: StreamFIFO(8, 0), r"StreamFIFO\.depth: "),
    (lambda: StreamFIFO(8, 2.0), r"StreamFIFO\.depth: "),
    (lambda: StreamFIFO("x", 2), r"StreamFIFO\.shape: "),
    (lambda: StreamFIFO(0, 2), r"StreamFIFO\.shape: "),
    (lambda: StreamFIFO(8, 2, buffered=1), r"StreamFIFO\.buffered: "),
    (lambda: StreamFIFO(8, 8, prefetch=1), r"StreamFIFO\.prefetch: "),
    (lambda: StreamFIFO(8, 8, buffered=False, prefetch=True), r"StreamFIFO\.prefetch: "),
    (lambda: StreamFIFO(8, 4, prefetch=True), r"StreamFIFO\.depth: .*at least 5"),
    (lambda: PrefetchFIFO(width=8, depth=4), r"PrefetchFIFO\.depth: "),
    (lambda: PrefetchFIFO(width=0, depth=8), r"PrefetchFIFO\.width: "),
    (lambda: SkidBuffer(0), r"SkidBuffer\.shape: "),
    (lambda: PingPongBuffer(0), r"PingPongBuffer\.shape: "),
    (lambda: PipelineRegister(None), r"PipelineRegister\.shape: "),
])
def test_bad_parameters(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()


def test_ports():
    f = StreamFIFO(data.StructLayout({"a": 3, "b": 5}), 12)
    assert len(f.level) == 4 and f.width == 8
    Fragment.get(f, None)


@pytest.mark.parametrize("make", [
    lambda: StreamFIFO(data.StructLayout({"a": 3, "b": 5}), 8),
    lambda: StreamFIFO(16, 4, buffered=False),
    lambda: SkidBuffer(16),
    lambda: PingPongBuffer(16),
    lambda: PipelineRegister(16),
])
def test_verilog_reproducible(make):
    a = verilog.convert(make(), name="stage", emit_src=False)
    b = verilog.convert(make(), name="stage", emit_src=False)
    assert a == b and "module stage" in a


def test_ecp5_deep_fifo_uses_block_ram():
    r = synth_ecp5(StreamFIFO(16, 256), name="fifo", pnr=False)
    assert r.brams == 1 and r.luts < 150


def test_ecp5_prefetch_fifo_uses_block_ram_and_its_registers():
    """On ECP5 the memory is two 36-bit DP16KD blocks (as many as `SyncFIFOBuffered`'s)
    whose output register is the stage register: the fabric holds the ring (3 x 64
    flip-flops) and a little control, and no collision bypass (64 more)."""
    r = synth_ecp5(StreamFIFO(64, 56, prefetch=True), name="fifo", pnr=False)
    assert r.brams == 2
    assert 3 * 64 <= r.ffs < 3 * 64 + 40


def test_report_blocks_elaborate():
    from reneta_hw.mem.report import blocks, format_table
    rows = []
    for name, make in blocks():
        Fragment.get(make(), None)
        rows.append(dict(block=name, luts=1, ffs=2, dsps=0, brams=0, lutrams=0,
                         fmax_mhz=None, fmax_io_mhz=123.4))
    assert len(rows) == 8
    table = format_table(rows)
    assert "SinglePortRAM(16x4096)" in table and "StreamFIFO(256 bit, 16)" in table
    assert "123.4" in table


def test_registered_synthesis_wraps_every_port():
    from platforms.synth import synth_ecp5, synth_ecp5_registered
    bare = synth_ecp5(SkidBuffer(8), name="skid", pnr=False)
    wrapped = synth_ecp5_registered(SkidBuffer(8), name="skid", pnr=False)
    assert bare.ffs == 2 * 8 + 2
    assert wrapped.ffs == bare.ffs + 2 * (8 + 2)      # i and o: payload, valid, ready
