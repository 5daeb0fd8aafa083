# amaranth: UnusedElaboratable=no
"""AxiReadMaster (DRAM request generator) against the AXI4 DRAM model."""

import random

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Fragment
from hypothesis import HealthCheck, given, settings, strategies as st

from reneta_hw.bus.axi import BOUNDARY, crosses_boundary
from reneta_hw.bus.axi_read import AxiReadMaster, BurstSplitter
from reneta_hw.config import AcceleratorConfig
from sim.axi_memory import AxiMemory
from sim.streams import collect, feed, simulate

MEM_SIZE = 1 << 15


def expected_rows(mem, reqs, row_bytes):
    out = []
    for addr, rows in reqs:
        for i in range(rows):
            raw = mem.read(addr + i * row_bytes, row_bytes)
            out.append((int.from_bytes(raw, "little"), int(i == rows - 1)))
    return out


def check_bursts(log, dut):
    """Every AR: INCR within max_burst, no 4 KiB crossing; outstanding within the limit."""
    bb = dut.data_width // 8
    inflight = 0
    worst = 0
    for cycle, ev, addr, ln, _ in sorted(log, key=lambda e: (e[0], e[1] != "rlast")):
        if ev == "ar":
            assert ln + 1 <= dut.max_burst
            assert not crosses_boundary(addr, ln + 1, bb)
            inflight += 1
            worst = max(worst, inflight)
        elif ev == "rlast":
            inflight -= 1
    assert worst <= dut.max_outstanding
    return worst


def run_reads(dut, reqs, *, req_stall=0.0, out_stall=0.0, seed=0, deadline=6000, **mem_kw):
    mem_kw.setdefault("size", MEM_SIZE)
    mem = AxiMemory(dut.axi, seed=seed, trace=True, **mem_kw)
    rng = np.random.default_rng(seed)
    mem.data[:] = rng.integers(0, 256, mem.size, dtype=np.uint8)
    exp = expected_rows(mem, reqs, dut.row_bytes)
    got = []

    async def producer(ctx):
        await feed(ctx, dut.req, [{"addr": a, "rows": n} for a, n in reqs], stall=req_stall,
                   rng=random.Random(seed))

    async def consumer(ctx):
        out = await collect(ctx, dut.data, len(exp), stall=out_stall,
                            rng=random.Random(seed + 1))
        got.extend((o.data, o.last) for o in out)
        for _ in range(4):                       # nothing more may come
            await ctx.tick()
            assert not ctx.get(dut.data.valid)
        assert ctx.get(dut.idle)

    simulate(dut, producer, consumer, processes=[mem.process], deadline_cycles=deadline)
    assert got == exp
    mem.check_quiescent()
    return mem


# (data_width, row_bytes): one beat per row, several beats per row, several rows per beat
GEOMETRIES = [(32, 4), (64, 8), (32, 8), (64, 24), (64, 4), (64, 2)]


def align_of(dw, row_bytes):
    return dw // 8 if row_bytes * 8 >= dw else row_bytes


@st.composite
def read_case(draw):
    dw, rb = draw(st.sampled_from(GEOMETRIES))
    align = align_of(dw, rb)
    reqs = []
    for _ in range(draw(st.integers(1, 4))):
        page = draw(st.integers(1, 4))
        # mostly just below a 4 KiB boundary, so that requests cross it
        off = draw(st.one_of(st.integers(-8, -1), st.integers(-24, 4))) * align
        reqs.append((page * BOUNDARY + off, draw(st.integers(0, 10))))
    return dict(dw=dw, rb=rb, reqs=reqs,
                max_burst=draw(st.sampled_from([1, 2, 4, 16])),
                outstanding=draw(st.integers(1, 4)),
                latency=draw(st.integers(1, 8)),
                req_stall=draw(st.sampled_from([0.0, 0.3, 0.6])),
                out_stall=draw(st.sampled_from([0.0, 0.3, 0.6])),
                mem_stall=draw(st.sampled_from([0.0, 0.3, 0.5])),
                seed=draw(st.integers(0, 1000)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(read_case())
def test_random_requests_under_stalls(case):
    dut = AxiReadMaster(case["dw"], 16, 2, row_bytes=case["rb"], max_burst=case["max_burst"],
                        max_outstanding=case["outstanding"], max_rows=16, axi_id=1)
    mem = run_reads(dut, case["reqs"], req_stall=case["req_stall"], out_stall=case["out_stall"],
                    seed=case["seed"], read_latency=case["latency"], stall=case["mem_stall"])
    check_bursts(mem.log, dut)
    assert all(e[4] == 1 for e in mem.log if e[1] == "ar")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=read_case(), rows=st.lists(st.integers(0, 1), min_size=1, max_size=12))
def test_single_beat_requests_under_stalls(case, rows):
    """max_rows = 1 and rows no wider than a beat: the skid register replaces the splitter."""
    dw = case["dw"]
    rb = min(case["rb"], dw // 8)
    reqs = [((a // rb) * rb, n) for (a, _), n in zip(case["reqs"] * len(rows), rows)]
    dut = AxiReadMaster(dw, 16, 2, row_bytes=rb, max_burst=case["max_burst"],
                        max_outstanding=case["outstanding"], max_rows=1, axi_id=1)
    assert dut.geom.max_beats == 1
    mem = run_reads(dut, reqs, req_stall=case["req_stall"], out_stall=case["out_stall"],
                    seed=case["seed"], read_latency=case["latency"], stall=case["mem_stall"])
    check_bursts(mem.log, dut)


@pytest.mark.parametrize("dw, rb", GEOMETRIES)
def test_each_geometry_crossing_pages(dw, rb):
    align = align_of(dw, rb)
    reqs = [(BOUNDARY - 3 * align, 9), (2 * BOUNDARY + align, 1), (0, 0),
            (3 * BOUNDARY - align, 2), (BOUNDARY + 5 * align, 12)]
    dut = AxiReadMaster(dw, 16, 1, row_bytes=rb, max_burst=4, max_outstanding=3, max_rows=12)
    mem = run_reads(dut, reqs, req_stall=0.3, out_stall=0.3, seed=dw + rb, read_latency=3,
                    stall=0.3)
    check_bursts(mem.log, dut)


def test_max_outstanding_is_used_and_respected():
    dut = AxiReadMaster(32, 16, 1, max_burst=2, max_outstanding=3, max_rows=64)
    mem = run_reads(dut, [(0, 40)], read_latency=12)
    assert check_bursts(mem.log, dut) == 3


# --- throughput -------------------------------------------------------------------------------

def out_cycles(dut, reqs, n, **mem_kw):
    """Cycles of the output handshakes with a consumer that is always ready."""
    mem = AxiMemory(dut.axi, size=MEM_SIZE, trace=True, **mem_kw)
    mem.data[:] = np.random.default_rng(5).integers(0, 256, mem.size, dtype=np.uint8)
    exp = expected_rows(mem, reqs, dut.row_bytes)
    cycles, got = [], []

    async def producer(ctx):
        await feed(ctx, dut.req, [{"addr": a, "rows": r} for a, r in reqs])

    async def consumer(ctx):
        ctx.set(dut.data.ready, 1)
        cyc = 0
        while len(got) < n:
            _, _, v, p = await ctx.tick().sample(dut.data.valid, dut.data.payload)
            if v:
                cycles.append(cyc)
                got.append((p.data, p.last))
            cyc += 1

    simulate(dut, producer, consumer, processes=[mem.process], deadline_cycles=3000)
    assert got == exp
    return cycles, mem


def test_one_row_per_cycle_long_request():
    dut = AxiReadMaster(64, 32, 1, max_burst=16, max_outstanding=4, max_rows=256)
    cycles, mem = out_cycles(dut, [(BOUNDARY - 64, 200)], 200, read_latency=20)
    assert np.all(np.diff(cycles) == 1)               # sustained, across bursts and a 4 KiB page
    # request handshake in cycle 0, ARVALID in cycle 2, R beat 20 cycles later, row 4 later
    # (register slice, FIFO, output buffer)
    assert cycles[0] == 2 + 20 + 4
    assert mem.stats["read_bursts"] == 13              # 8 beats to the page end, then 12 x 16


def test_back_to_back_requests_have_no_bubbles():
    reqs = [(0x1000 + 0x300 * i, 5 + i) for i in range(8)]
    n = sum(r for _, r in reqs)
    dut = AxiReadMaster(32, 32, 1, max_burst=4, max_outstanding=8, max_rows=16)
    cycles, _ = out_cycles(dut, reqs, n, read_latency=10)
    assert np.all(np.diff(cycles) == 1)


def test_single_row_requests_one_per_cycle():
    """The sparse (MxV_SP) pattern: one row per request at scattered addresses."""
    rng = random.Random(3)
    reqs = [(rng.randrange(0, MEM_SIZE // 8) * 8, 1) for _ in range(40)]
    dut = AxiReadMaster(64, 32, 1, max_burst=16, max_outstanding=8, max_rows=16,
                        buffer_beats=16)
    cycles, _ = out_cycles(dut, reqs, 40, read_latency=6)
    assert np.all(np.diff(cycles) == 1)


def test_single_beat_requests_one_per_cycle_and_a_cycle_sooner():
    """The core's pattern (max_rows = 1, a row within a beat): ARVALID in the cycle after
    the request handshake, one row per cycle."""
    rng = random.Random(5)
    reqs = [(rng.randrange(0, MEM_SIZE // 8) * 8, 1) for _ in range(40)]
    dut = AxiReadMaster(64, 32, 1, max_burst=1, max_outstanding=12, max_rows=1)
    cycles, _ = out_cycles(dut, reqs, 40, read_latency=6)
    assert np.all(np.diff(cycles) == 1)
    assert cycles[0] == 1 + 6 + 4


def test_multi_beat_rows_at_bus_rate_and_split_rows_one_per_cycle():
    dut = AxiReadMaster(32, 32, 1, row_bytes=8, max_burst=16, max_rows=64)
    cycles, _ = out_cycles(dut, [(0, 40)], 40, read_latency=4)
    assert np.all(np.diff(cycles) == 2)                # 2 beats per row: the bus is the limit
    dut = AxiReadMaster(64, 32, 1, row_bytes=2, max_burst=16, max_rows=64)
    cycles, mem = out_cycles(dut, [(6, 50)], 50, read_latency=4)
    assert np.all(np.diff(cycles) == 1)                # 4 rows per beat, one row per cycle out
    assert mem.stats["r_beats"] == 14                  # rows 3..52 of the 4-row beats


# --- errors, idle, outstanding -------------------------------------------------------------------

def test_error_is_sticky_with_failing_beat_address():
    dut = AxiReadMaster(32, 16, 1, max_burst=4, max_outstanding=2, max_rows=16)
    mem = AxiMemory(dut.axi, size=MEM_SIZE, read_latency=2, errors=[(0x108, 0x10C), (0x200, 0x204)])
    seen = {}

    async def producer(ctx):
        assert ctx.get(dut.idle) and not ctx.get(dut.error)
        await feed(ctx, dut.req, [{"addr": 0x100, "rows": 6}, {"addr": 0x200, "rows": 1}])

    async def consumer(ctx):
        out = await collect(ctx, dut.data, 7)
        assert [o.last for o in out] == [0, 0, 0, 0, 0, 1, 1]
        seen["error"] = ctx.get(dut.error)
        seen["addr"] = ctx.get(dut.error_addr)
        seen["resp"] = ctx.get(dut.error_resp)
        ctx.set(dut.error_clear, 1)
        await ctx.tick()
        ctx.set(dut.error_clear, 0)
        seen["cleared"] = ctx.get(dut.error)

    simulate(dut, producer, consumer, processes=[mem.process], deadline_cycles=500)
    # the first burst 0x100..0x10F fails (SLVERR on every beat): the first beat's address
    assert seen == dict(error=1, addr=0x100, resp=2, cleared=0)


def test_error_address_is_the_beat_address():
    dut = AxiReadMaster(32, 16, 1, max_burst=16, max_rows=16)
    mem = AxiMemory(dut.axi, size=0x118, read_latency=2)
    seen = {}

    async def producer(ctx):
        await feed(ctx, dut.req, [{"addr": 0x110, "rows": 4}])

    async def consumer(ctx):
        await collect(ctx, dut.data, 4)
        seen["e"] = (ctx.get(dut.error), ctx.get(dut.error_addr), ctx.get(dut.error_resp))

    simulate(dut, producer, consumer, processes=[mem.process], deadline_cycles=300)
    assert seen["e"] == (1, 0x110, 3)             # the burst runs past the memory: DECERR


def test_idle_and_outstanding_track_the_bursts():
    dut = AxiReadMaster(32, 16, 1, max_burst=2, max_outstanding=3, max_rows=16)
    mem = AxiMemory(dut.axi, size=MEM_SIZE, read_latency=8)
    trace = []

    async def producer(ctx):
        await feed(ctx, dut.req, [{"addr": 0x40, "rows": 10}])

    async def consumer(ctx):
        await ctx.tick().repeat(30)        # let the buffer fill first
        await collect(ctx, dut.data, 10)
        await ctx.tick().repeat(3)

    async def monitor(ctx):
        async for _, _, idle, o in ctx.tick().sample(dut.idle, dut.outstanding):
            trace.append((idle, o))

    simulate(dut, producer, consumer, processes=[mem.process, monitor], deadline_cycles=500)
    idle = [t[0] for t in trace]
    outs = [t[1] for t in trace]
    assert idle[0] == 1 and idle[-1] == 1 and 0 in idle
    assert max(outs) == 3 and outs[-1] == 0


# --- structure ------------------------------------------------------------------------------

@pytest.mark.parametrize("max_burst", [1, 4, 16, 256])
def test_burst_splitter_cuts_aligned_bursts(max_burst):
    """BurstSplitter alone vs a Python model: bursts aligned to max_burst, none crossing 4 KiB."""
    bb = 8
    dut = BurstSplitter(13, 10, bb, max_burst=max_burst)
    xfers = [(0x1F0, 40), (0x1FF, 1), (0, 16), (0x3FE, 3), (5, 100), (0x7F0, 600)]
    exp = []
    for a, n in xfers:
        while n:
            ln = min(n, max_burst - a % max_burst)
            assert not crosses_boundary(a * bb, ln, bb)
            exp.append((a, ln - 1))
            a, n = a + ln, n - ln
    got = []

    async def producer(ctx):
        await feed(ctx, dut.i, [{"addr": a, "beats": n} for a, n in xfers], stall=0.3,
                   rng=random.Random(4))

    async def consumer(ctx):
        got.extend((o.addr, o.len) for o in await collect(ctx, dut.o, len(exp), stall=0.3))

    simulate(dut, producer, consumer, deadline_cycles=4 * len(exp) + 200)
    assert got == exp


def test_from_config_and_validation():
    cfg = AcceleratorConfig(num_pe=4, max_n=16, max_m=8, axi_data_width=64)
    dut = AxiReadMaster.from_config(cfg)
    Fragment.get(dut, None)
    assert dut.row_bytes == 8 and dut.max_rows == 4 * 8 and dut.data.payload.shape().size == 65
    with pytest.raises(ValueError, match="data_width"):
        AxiReadMaster(48)
    with pytest.raises(ValueError, match="row_bytes"):
        AxiReadMaster(64, row_bytes=12)
    with pytest.raises(ValueError, match="row_bytes"):
        AxiReadMaster(64, row_bytes=3)
    with pytest.raises(ValueError, match="max_burst"):
        AxiReadMaster(64, max_burst=257)
    with pytest.raises(ValueError, match="max_burst: must be a power of two"):
        AxiReadMaster(64, max_burst=12)
    with pytest.raises(ValueError, match="max_burst"):
        BurstSplitter(10, 10, 8, max_burst=3)
    with pytest.raises(ValueError, match="max_burst"):
        AxiReadMaster(1024, max_burst=64)             # 64 x 128 B > 4 KiB
    with pytest.raises(ValueError, match="buffer_beats"):
        AxiReadMaster(64, max_burst=16, buffer_beats=8)
    with pytest.raises(ValueError, match="axi_id"):
        AxiReadMaster(64, id_width=2, axi_id=4)
    with pytest.raises(ValueError, match="addr_width"):
        AxiReadMaster(64, addr_width=8)
    with pytest.raises(TypeError, match="max_outstanding"):
        AxiReadMaster(64, max_outstanding=2.0)


@pytest.mark.parametrize("dw, rb", [(64, 8), (32, 8), (64, 2)])
def test_verilog_is_reproducible(dw, rb):
    def conv():
        dut = AxiReadMaster(dw, 32, 2, row_bytes=rb, max_burst=8, max_outstanding=2)
        return verilog.convert(dut, name="axi_read", emit_src=False)
    a, b = conv(), conv()
    assert a == b
    for port in ("axi__ar__araddr", "axi__r__rdata", "axi__ar__arvalid", "data__payload"):
        assert port in a


def test_synthesizes_for_ecp5():
    from platforms.synth import synth_ecp5
    rep = synth_ecp5(AxiReadMaster(32, 32, 1, max_burst=4, max_outstanding=2), name="rd",
                     pnr=False)
    assert 50 < rep.luts < 2000 and rep.ffs > 50


@pytest.mark.slow
def test_default_config_long_random_run():
    """AcceleratorConfig() defaults (256-bit rows and bus): many requests, stalls everywhere."""
    cfg = AcceleratorConfig()
    dut = AxiReadMaster.from_config(cfg)
    rng = random.Random(11)
    top = ((1 << 18) - 40 * 32) // 32
    reqs = [(rng.randrange(0, top) * 32, rng.choice([0, 1, 1, 2, 7, 16, 40]))
            for _ in range(400)]
    mem = run_reads(dut, reqs, req_stall=0.3, out_stall=0.3, seed=11, size=1 << 18,
                    read_latency=20, stall=0.2, deadline=200000)
    check_bursts(mem.log, dut)
