# amaranth: UnusedElaboratable=no
"""AxiWriteMaster against the AXI4 DRAM model."""

import random

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Fragment, Module
from hypothesis import HealthCheck, given, settings, strategies as st

from reneta_hw.bus.axi import BOUNDARY, crosses_boundary
from reneta_hw.bus.axi_read import AxiReadMaster
from reneta_hw.bus.axi_write import AxiWriteMaster
from reneta_hw.config import AcceleratorConfig
from sim.axi_memory import AxiMemory
from sim.streams import collect, feed, simulate

MEM_SIZE = 1 << 15


def make_rows(dut, reqs, rng, mem_image):
    """Random rows (and strobes) for ``reqs``; applies them to ``mem_image`` (the expectation)."""
    rb, gran = dut.row_bytes, dut.strobe_granularity
    items = []
    for addr, rows in reqs:
        for i in range(rows):
            raw = rng.integers(0, 256, rb, dtype=np.uint8)
            item = {"data": int.from_bytes(raw.tobytes(), "little")}
            base = addr + i * rb
            if gran:
                nb = dut.strb_bits
                strb = int(rng.integers(0, 1 << nb))
                if rng.random() < 0.3:                 # a single-lane write
                    strb = 1 << int(rng.integers(0, nb))
                item["strb"] = strb
                g = gran // 8
                for q in range(nb):
                    if strb >> q & 1:
                        mem_image[base + q * g:base + (q + 1) * g] = raw[q * g:(q + 1) * g]
            else:
                mem_image[base:base + rb] = raw
            items.append(item)
    return items


def check_bursts(log, dut):
    bb = dut.data_width // 8
    inflight = worst = 0
    for cycle, ev, addr, ln, _ in sorted(log, key=lambda e: (e[0], e[1] != "b")):
        if ev == "aw":
            assert ln + 1 <= dut.max_burst
            assert not crosses_boundary(addr, ln + 1, bb)
            inflight += 1
            worst = max(worst, inflight)
        elif ev == "b":
            inflight -= 1
    assert worst <= dut.max_outstanding
    return worst


def run_writes(dut, reqs, *, req_stall=0.0, data_stall=0.0, seed=0, deadline=6000, **mem_kw):
    mem_kw.setdefault("size", MEM_SIZE)
    mem = AxiMemory(dut.axi, seed=seed, trace=True, **mem_kw)
    rng = np.random.default_rng(seed)
    mem.data[:] = rng.integers(0, 256, mem.size, dtype=np.uint8)
    exp = mem.data.copy()
    items = make_rows(dut, reqs, rng, exp)

    async def producer(ctx):
        await feed(ctx, dut.req, [{"addr": a, "rows": n} for a, n in reqs], stall=req_stall,
                   rng=random.Random(seed))

    async def data_source(ctx):
        await feed(ctx, dut.data, items, stall=data_stall, rng=random.Random(seed + 1))
        while not ctx.get(dut.idle):               # the fence: wait for every B
            await ctx.tick()
        assert ctx.get(dut.outstanding) == 0

    simulate(dut, producer, data_source, processes=[mem.process], deadline_cycles=deadline)
    bad = np.nonzero(mem.data != exp)[0]
    assert bad.size == 0, f"{bad.size} bytes differ, first at {bad[:8]}"
    mem.check_quiescent()
    return mem


GEOMETRIES = [(32, 4), (64, 8), (32, 8), (64, 24), (64, 4), (64, 2)]


def align_of(dw, row_bytes):
    return dw // 8 if row_bytes * 8 >= dw else row_bytes


@st.composite
def write_case(draw):
    dw, rb = draw(st.sampled_from(GEOMETRIES))
    align = align_of(dw, rb)
    reqs = []
    for _ in range(draw(st.integers(1, 4))):
        page = draw(st.integers(1, 4))
        # mostly just below a 4 KiB boundary, so that requests cross it
        off = draw(st.one_of(st.integers(-8, -1), st.integers(-24, 4))) * align
        reqs.append((page * BOUNDARY + off, draw(st.integers(0, 10))))
    gran = draw(st.sampled_from([None, 8, 16]))
    if gran and gran > rb * 8:
        gran = None
    return dict(dw=dw, rb=rb, reqs=reqs, gran=gran,
                max_burst=draw(st.sampled_from([1, 2, 4, 16])),
                outstanding=draw(st.integers(1, 4)),
                latency=draw(st.integers(1, 6)),
                req_stall=draw(st.sampled_from([0.0, 0.3, 0.6])),
                data_stall=draw(st.sampled_from([0.0, 0.3, 0.6])),
                mem_stall=draw(st.sampled_from([0.0, 0.3, 0.5])),
                seed=draw(st.integers(0, 1000)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(write_case())
def test_random_writes_under_stalls(case):
    dut = AxiWriteMaster(case["dw"], 16, 2, row_bytes=case["rb"], max_burst=case["max_burst"],
                         max_outstanding=case["outstanding"], max_rows=16,
                         strobe_granularity=case["gran"], axi_id=2)
    mem = run_writes(dut, case["reqs"], req_stall=case["req_stall"],
                     data_stall=case["data_stall"], seed=case["seed"],
                     write_latency=case["latency"], stall=case["mem_stall"])
    check_bursts(mem.log, dut)
    assert all(e[4] == 2 for e in mem.log if e[1] in ("aw", "b"))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=write_case(), rows=st.lists(st.integers(0, 1), min_size=1, max_size=12))
def test_single_beat_writes_under_stalls(case, rows):
    """max_rows = 1 and rows no wider than a beat: the skid register replaces the splitter."""
    dw = case["dw"]
    rb = min(case["rb"], dw // 8)
    gran = case["gran"] if case["gran"] and case["gran"] <= rb * 8 else None
    reqs = [((a // rb) * rb, n) for (a, _), n in zip(case["reqs"] * len(rows), rows)]
    dut = AxiWriteMaster(dw, 16, 2, row_bytes=rb, max_burst=case["max_burst"],
                         max_outstanding=case["outstanding"], max_rows=1,
                         strobe_granularity=gran, axi_id=2)
    assert dut.geom.max_beats == 1
    mem = run_writes(dut, reqs, req_stall=case["req_stall"], data_stall=case["data_stall"],
                     seed=case["seed"], write_latency=case["latency"], stall=case["mem_stall"])
    check_bursts(mem.log, dut)


@pytest.mark.parametrize("dw, rb", GEOMETRIES)
@pytest.mark.parametrize("gran", [None, 8])
def test_each_geometry_crossing_pages(dw, rb, gran):
    align = align_of(dw, rb)
    reqs = [(BOUNDARY - 3 * align, 9), (2 * BOUNDARY + align, 1), (0, 0),
            (3 * BOUNDARY - align, 2), (BOUNDARY + 5 * align, 12)]
    dut = AxiWriteMaster(dw, 16, 1, row_bytes=rb, max_burst=4, max_outstanding=2, max_rows=12,
                         strobe_granularity=gran)
    mem = run_writes(dut, reqs, req_stall=0.3, data_stall=0.3, seed=dw + rb, stall=0.3)
    check_bursts(mem.log, dut)


def test_outstanding_limit_used_and_respected():
    dut = AxiWriteMaster(32, 16, 1, max_burst=2, max_outstanding=3, max_rows=64)
    mem = run_writes(dut, [(0, 40)], write_latency=10)
    assert check_bursts(mem.log, dut) == 3


# --- throughput -------------------------------------------------------------------------------

def handshake_cycles(dut, reqs, n_rows, **mem_kw):
    """Cycles of the data-in and W handshakes with a producer that never stalls."""
    mem = AxiMemory(dut.axi, size=MEM_SIZE, **mem_kw)
    rng = np.random.default_rng(1)
    exp = mem.data.copy()
    items = make_rows(dut, reqs, rng, exp)
    seen = {"data": [], "w": []}

    async def producer(ctx):
        await feed(ctx, dut.req, [{"addr": a, "rows": r} for a, r in reqs])

    async def source(ctx):
        await feed(ctx, dut.data, items)
        while not ctx.get(dut.idle):
            await ctx.tick()

    async def monitor(ctx):
        cyc = 0
        async for _, _, dv, dr, wv, wr in ctx.tick().sample(dut.data.valid, dut.data.ready,
                                                            dut.axi.w.wvalid, dut.axi.w.wready):
            if dv and dr:
                seen["data"].append(cyc)
            if wv and wr:
                seen["w"].append(cyc)
            cyc += 1

    simulate(dut, producer, source, processes=[mem.process, monitor], deadline_cycles=3000)
    assert np.array_equal(mem.data, exp)
    assert len(seen["data"]) == n_rows
    return seen, mem


def test_one_beat_per_cycle_long_request():
    dut = AxiWriteMaster(64, 32, 1, max_burst=16, max_outstanding=4, max_rows=256)
    seen, mem = handshake_cycles(dut, [(BOUNDARY - 64, 200)], 200, write_latency=20)
    assert np.all(np.diff(seen["data"]) == 1)
    assert np.all(np.diff(seen["w"]) == 1)
    assert seen["w"][0] - seen["data"][0] == 1           # a row is on W the next cycle
    assert mem.stats["write_bursts"] == 13


def test_back_to_back_and_single_row_requests_have_no_bubbles():
    reqs = [(0x1000 + 0x300 * i, 5 + i) for i in range(6)]
    dut = AxiWriteMaster(32, 32, 1, max_burst=4, max_outstanding=8, max_rows=16)
    seen, _ = handshake_cycles(dut, reqs, sum(r for _, r in reqs), write_latency=4)
    assert np.all(np.diff(seen["w"]) == 1)
    rng = random.Random(5)
    reqs = [(rng.randrange(0, MEM_SIZE // 8) * 8, 1) for _ in range(30)]
    dut = AxiWriteMaster(64, 32, 1, max_burst=16, max_outstanding=8, max_rows=16)
    seen, _ = handshake_cycles(dut, reqs, 30, write_latency=3)
    assert np.all(np.diff(seen["w"]) == 1)


def test_single_beat_requests_one_per_cycle():
    """The core's pattern (max_rows = 1, a row within a beat): one W beat per cycle."""
    rng = random.Random(6)
    reqs = [(rng.randrange(0, MEM_SIZE // 8) * 8, 1) for _ in range(30)]
    dut = AxiWriteMaster(64, 32, 1, max_burst=1, max_outstanding=8, max_rows=1)
    seen, _ = handshake_cycles(dut, reqs, 30, write_latency=3)
    assert np.all(np.diff(seen["w"]) == 1)
    assert seen["w"][0] - seen["data"][0] == 1


def test_multi_beat_rows_and_packed_rows_rates():
    dut = AxiWriteMaster(32, 32, 1, row_bytes=8, max_burst=16, max_rows=64)
    seen, _ = handshake_cycles(dut, [(0, 30)], 30)
    assert np.all(np.diff(seen["w"]) == 1) and np.all(np.diff(seen["data"]) == 2)
    dut = AxiWriteMaster(64, 32, 1, row_bytes=2, max_burst=16, max_rows=64,
                         strobe_granularity=8)
    seen, mem = handshake_cycles(dut, [(6, 50)], 50)
    assert np.all(np.diff(seen["data"]) == 1)           # one row per cycle in
    assert len(seen["w"]) == 14 == mem.stats["w_beats"]


# --- errors, structure --------------------------------------------------------------------------

def test_error_flag_and_address():
    dut = AxiWriteMaster(32, 16, 1, max_burst=4, max_outstanding=2, max_rows=16)
    mem = AxiMemory(dut.axi, size=MEM_SIZE, write_latency=2, errors=[(0x118, 0x11C)])
    seen = {}

    async def producer(ctx):
        await feed(ctx, dut.req, [{"addr": 0x100, "rows": 12}])

    async def source(ctx):
        assert not ctx.get(dut.error)
        await feed(ctx, dut.data, [{"data": i} for i in range(12)])
        while not ctx.get(dut.idle):
            await ctx.tick()
        seen["e"] = (ctx.get(dut.error), ctx.get(dut.error_addr), ctx.get(dut.error_resp))
        ctx.set(dut.error_clear, 1)
        await ctx.tick()
        ctx.set(dut.error_clear, 0)
        seen["cleared"] = ctx.get(dut.error)

    simulate(dut, producer, source, processes=[mem.process], deadline_cycles=500)
    assert seen == {"e": (1, 0x110, 2), "cleared": 0}      # the burst 0x110..0x11F failed
    assert mem.read_words(0x100, 4, 4) == [0, 1, 2, 3]
    assert mem.read_words(0x110, 4, 4) == [0, 0, 0, 0]     # not written
    assert mem.read_words(0x120, 4, 4) == [8, 9, 10, 11]


def test_from_config_and_validation():
    cfg = AcceleratorConfig(num_pe=4, max_n=16, max_m=8, axi_data_width=32)
    dut = AxiWriteMaster.from_config(cfg)
    Fragment.get(dut, None)
    assert dut.row_bytes == 8 and dut.strobe_granularity == 16 and dut.strb_bits == 4
    with pytest.raises(ValueError, match="strobe_granularity"):
        AxiWriteMaster(64, row_bytes=8, strobe_granularity=12)
    with pytest.raises(ValueError, match="strobe_granularity"):
        AxiWriteMaster(32, row_bytes=8, strobe_granularity=64)
    with pytest.raises(ValueError, match="row_bytes"):
        AxiWriteMaster(64, row_bytes=12)
    with pytest.raises(ValueError, match="max_burst"):
        AxiWriteMaster(64, max_burst=0)
    with pytest.raises(ValueError, match="power of two"):
        AxiWriteMaster(64, max_burst=6)
    with pytest.raises(ValueError, match="max_outstanding"):
        AxiWriteMaster(64, max_outstanding=0)


@pytest.mark.parametrize("dw, rb, gran", [(64, 8, 16), (32, 8, None), (64, 2, 8)])
def test_verilog_is_reproducible(dw, rb, gran):
    def conv():
        dut = AxiWriteMaster(dw, 32, 2, row_bytes=rb, max_burst=8, max_outstanding=2,
                             strobe_granularity=gran)
        return verilog.convert(dut, name="axi_write", emit_src=False)
    a, b = conv(), conv()
    assert a == b
    for port in ("axi__aw__awaddr", "axi__w__wdata", "axi__w__wlast", "axi__b__bresp"):
        assert port in a


def test_synthesizes_for_ecp5():
    from platforms.synth import synth_ecp5
    rep = synth_ecp5(AxiWriteMaster(32, 32, 1, max_burst=4, max_outstanding=2,
                                    strobe_granularity=8), name="wr", pnr=False)
    assert 50 < rep.luts < 2000 and rep.ffs > 50


def test_write_then_read_back_through_one_memory():
    """Both masters on one DRAM model (the accelerator's arrangement): rows written with
    single-lane strobes are read back by AxiReadMaster."""
    wr = AxiWriteMaster(64, 16, 1, row_bytes=16, max_burst=4, strobe_granularity=16)
    rd = AxiReadMaster(64, 16, 1, row_bytes=16, max_burst=4)
    mem = AxiMemory(wr.axi, rd.axi, size=MEM_SIZE, read_latency=5, write_latency=3, stall=0.2,
                    seed=4)
    rng = np.random.default_rng(4)
    image = mem.data.copy()
    reqs = [(0xFE0, 6), (0x2000, 3)]
    items = make_rows(wr, reqs, rng, image)
    got = []

    async def writer(ctx):
        await feed(ctx, wr.req, [{"addr": a, "rows": n} for a, n in reqs])

    async def source_then_read(ctx):
        await feed(ctx, wr.data, items, stall=0.2, rng=random.Random(1))
        while not ctx.get(wr.idle):
            await ctx.tick()
        await feed(ctx, rd.req, [{"addr": a, "rows": n} for a, n in reqs])

    async def reader(ctx):
        got.extend(await collect(ctx, rd.data, 9, stall=0.2))

    top = Module()
    top.submodules.wr = wr
    top.submodules.rd = rd
    simulate(top, writer, source_then_read, reader, processes=[mem.process],
             deadline_cycles=2000)
    exp = []
    for a, n in reqs:
        for i in range(n):
            exp.append(int.from_bytes(image[a + 16 * i:a + 16 * (i + 1)].tobytes(), "little"))
    assert [g.data for g in got] == exp
    mem.check_quiescent()


@pytest.mark.slow
def test_default_config_long_random_run():
    """AcceleratorConfig() defaults (256-bit rows and bus, 16-bit word strobes)."""
    cfg = AcceleratorConfig()
    dut = AxiWriteMaster.from_config(cfg)
    rng = random.Random(12)
    top = ((1 << 18) - 40 * 32) // 32
    reqs = [(rng.randrange(0, top) * 32, rng.choice([0, 1, 1, 2, 7, 16, 40]))
            for _ in range(400)]
    mem = run_writes(dut, reqs, req_stall=0.3, data_stall=0.3, seed=12, size=1 << 18,
                     write_latency=20, stall=0.2, deadline=200000)
    check_bursts(mem.log, dut)
