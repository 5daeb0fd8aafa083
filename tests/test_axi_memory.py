# amaranth: UnusedElaboratable=no
"""The behavioural AXI4 DRAM model: timing, data, responses, counters and the protocol checker."""

import numpy as np
import pytest

from amaranth.hdl import ClockDomain, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from reneta_hw.bus.axi import (Axi4Signature, AxiLiteSignature, beats_to_boundary,
                               crosses_boundary, size_code)
from sim.axi_memory import AxiMemory, AxiProtocolError
from sim.streams import simulate


class RawMaster(wiring.Component):
    """No logic: the testbench drives the master side of the bus by hand."""

    def __init__(self, data_width=32, addr_width=16, id_width=2):
        super().__init__({"axi": Out(Axi4Signature(data_width, addr_width, id_width))})

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain()
        return m


def set_ar(ctx, ar, addr, ln, size=2, burst=1, id_=0, ch="ar"):
    ctx.set(getattr(ar, f"{ch}addr"), addr)
    ctx.set(getattr(ar, f"{ch}len"), ln)
    ctx.set(getattr(ar, f"{ch}size"), size)
    ctx.set(getattr(ar, f"{ch}burst"), burst)
    ctx.set(getattr(ar, f"{ch}id"), id_)
    ctx.set(getattr(ar, f"{ch}valid"), 1)


async def send_addr(ctx, port, ch, addr, ln, **kw):
    """Offer one AR/AW beat and wait for its handshake; returns the handshake cycle count."""
    set_ar(ctx, port, addr, ln, ch=ch, **kw)
    n = 0
    while True:
        _, _, rdy = await ctx.tick().sample(getattr(port, f"{ch}ready"))
        n += 1
        if rdy:
            break
    ctx.set(getattr(port, f"{ch}valid"), 0)
    return n


async def send_w(ctx, w, beats):
    """beats: list of (data, strb, last)."""
    for d, s, l in beats:
        ctx.set(w.wdata, d)
        ctx.set(w.wstrb, s)
        ctx.set(w.wlast, l)
        ctx.set(w.wvalid, 1)
        while True:
            _, _, rdy = await ctx.tick().sample(w.wready)
            if rdy:
                break
    ctx.set(w.wvalid, 0)


async def recv_r(ctx, r, n):
    """Take n R beats with RREADY held high; returns [(cycle, data, resp, last, id)]."""
    ctx.set(r.rready, 1)
    out = []
    cyc = 0
    while len(out) < n:
        _, _, v, d, rs, l, i = await ctx.tick().sample(r.rvalid, r.rdata, r.rresp, r.rlast, r.rid)
        if v:
            out.append((cyc, d, rs, l, i))
        cyc += 1
    ctx.set(r.rready, 0)
    return out


async def recv_b(ctx, b):
    ctx.set(b.bready, 1)
    while True:
        _, _, v, rs, i = await ctx.tick().sample(b.bvalid, b.bresp, b.bid)
        if v:
            break
    ctx.set(b.bready, 0)
    return rs, i


def words(mem, addr, n, nb=4):
    return mem.read_words(addr, n, nb)


# --- behaviour --------------------------------------------------------------------------------

@pytest.mark.parametrize("latency", [1, 5, 20])
def test_read_latency_data_and_back_to_back_bursts(latency):
    dut = RawMaster()
    mem = AxiMemory(dut.axi, size=1 << 14, read_latency=latency)
    rng = np.random.default_rng(latency)
    mem.data[:] = rng.integers(0, 256, mem.size, dtype=np.uint8)
    got = []

    async def tb(ctx):
        await send_addr(ctx, dut.axi.ar, "ar", 0x100, 3, id_=1)     # handshake in cycle 0
        await send_addr(ctx, dut.axi.ar, "ar", 0x200, 1, id_=2)     # cycle 1

    async def rx(ctx):
        got.extend(await recv_r(ctx, dut.axi.r, 6))

    simulate(dut, tb, rx, processes=[mem.process], deadline_cycles=200)
    cycles = [g[0] for g in got]
    assert cycles[0] == latency
    assert cycles == list(range(latency, latency + 6))       # no bubble between the bursts
    assert [g[1] for g in got] == words(mem, 0x100, 4) + words(mem, 0x200, 2)
    assert [g[3] for g in got] == [0, 0, 0, 1, 0, 1]
    assert [g[4] for g in got] == [1, 1, 1, 1, 2, 2]
    assert mem.stats["read_bursts"] == 2 and mem.stats["r_beats"] == 6
    assert mem.stats["bytes_read"] == 24
    mem.check_quiescent()


def test_write_strobes_w_before_aw_and_response():
    dut = RawMaster()
    mem = AxiMemory(dut.axi, size=1 << 12, write_latency=3)
    mem.data[:] = 0xEE
    res = []

    async def tb(ctx):
        # W data first (allowed), then the address
        await send_w(ctx, dut.axi.w, [(0x11223344, 0b1111, 0), (0xAABBCCDD, 0b0101, 1)])
        await send_addr(ctx, dut.axi.aw, "aw", 0x40, 1, id_=3)
        res.append(await recv_b(ctx, dut.axi.b))

    simulate(dut, tb, processes=[mem.process], deadline_cycles=100)
    assert res == [(0, 3)]
    assert mem.read(0x40, 8) == bytes([0x44, 0x33, 0x22, 0x11, 0xDD, 0xEE, 0xBB, 0xEE])
    assert mem.stats["bytes_written"] == 6 and mem.stats["w_beats"] == 2
    mem.check_quiescent()


def test_bandwidth_limits_beat_rate():
    dut = RawMaster()
    mem = AxiMemory(dut.axi, size=1 << 12, read_latency=2, bandwidth=0.5)
    got = []

    async def tb(ctx):
        await send_addr(ctx, dut.axi.ar, "ar", 0, 15)
        got.extend(await recv_r(ctx, dut.axi.r, 16))

    simulate(dut, tb, processes=[mem.process], deadline_cycles=200)
    span = got[-1][0] - got[0][0]
    assert 29 <= span <= 31          # one beat every 2 cycles


def test_decerr_outside_and_slverr_ranges():
    dut = RawMaster()
    mem = AxiMemory(dut.axi, size=1 << 12, read_latency=2, errors=[(0x800, 0x900)])
    mem.data[:] = 7
    res = {}

    async def tb(ctx):
        await send_addr(ctx, dut.axi.ar, "ar", 0x1000, 0)         # outside: DECERR
        res["r_out"] = await recv_r(ctx, dut.axi.r, 1)
        await send_addr(ctx, dut.axi.ar, "ar", 0x8F8, 1)          # touches the SLVERR range
        res["r_err"] = await recv_r(ctx, dut.axi.r, 2)
        await send_addr(ctx, dut.axi.aw, "aw", 0x900, 0)
        await send_w(ctx, dut.axi.w, [(0, 0xF, 1)])
        res["b_ok"] = await recv_b(ctx, dut.axi.b)
        await send_addr(ctx, dut.axi.aw, "aw", 0x8FC, 0)
        await send_w(ctx, dut.axi.w, [(0, 0xF, 1)])
        res["b_err"] = await recv_b(ctx, dut.axi.b)

    simulate(dut, tb, processes=[mem.process], deadline_cycles=300)
    assert res["r_out"][0][2] == 3
    assert [x[2] for x in res["r_err"]] == [2, 2] and res["r_err"][0][1] == 0
    assert res["b_ok"][0] == 0 and res["b_err"][0] == 2
    assert mem.read(0x8FC, 4) == bytes([7] * 4)            # the failing write wrote nothing
    assert mem.read(0x900, 4) == bytes(4)


def test_random_stalls_keep_order_and_data():
    dut = RawMaster()
    mem = AxiMemory(dut.axi, size=1 << 12, read_latency=3, stall=0.5, seed=9)
    rng = np.random.default_rng(2)
    mem.data[:] = rng.integers(0, 256, mem.size, dtype=np.uint8)
    got = []

    async def tb(ctx):
        for a in (0, 0x40, 0x80):
            await send_addr(ctx, dut.axi.ar, "ar", a, 3)
        got.extend(await recv_r(ctx, dut.axi.r, 12))

    simulate(dut, tb, processes=[mem.process], deadline_cycles=500)
    assert [g[1] for g in got] == words(mem, 0, 4) + words(mem, 0x40, 4) + words(mem, 0x80, 4)
    assert mem.stats["busy_cycles"] >= 12


def test_constructor_validation():
    dut = RawMaster()
    with pytest.raises(ValueError, match="at least one"):
        AxiMemory()
    with pytest.raises(ValueError, match="read_latency"):
        AxiMemory(dut.axi, read_latency=0)
    with pytest.raises(ValueError, match="bandwidth"):
        AxiMemory(dut.axi, bandwidth=1.5)
    with pytest.raises(ValueError, match=r"stall\['w'\]"):
        AxiMemory(dut.axi, stall={"w": 1.0})
    with pytest.raises(ValueError, match="unknown channel"):
        AxiMemory(dut.axi, stall={"x": 0.1})
    with pytest.raises(ValueError, match="two buses"):
        AxiMemory(dut.axi, dut.axi)
    with pytest.raises(ValueError, match="SLVERR"):
        AxiMemory(dut.axi, errors=[(0, 16, 0)])
    mem = AxiMemory(dut.axi, size=64)
    with pytest.raises(IndexError, match="outside"):
        mem.write(60, bytes(8))


# --- the protocol checker ---------------------------------------------------------------------

def _expect_violation(tb, channel, rule, **mem_kw):
    dut = RawMaster()
    mem = AxiMemory(dut.axi, size=1 << 14, read_latency=2, **mem_kw)

    async def run(ctx):
        await tb(ctx, dut.axi)
        for _ in range(8):
            await ctx.tick()

    with pytest.raises(AxiProtocolError, match=rule) as e:
        simulate(dut, run, processes=[mem.process], deadline_cycles=200)
        mem.check_quiescent()
    assert e.value.channel == channel
    assert f"{channel.upper()} channel at cycle" in str(e.value)
    return e.value


def test_rejects_fixed_and_wrap_bursts():
    async def fixed(ctx, axi):
        await send_addr(ctx, axi.ar, "ar", 0, 3, burst=0)

    async def wrap(ctx, axi):
        await send_addr(ctx, axi.aw, "aw", 0, 3, burst=2)

    err = _expect_violation(fixed, "ar", "only INCR")
    assert err.cycle == 0
    _expect_violation(wrap, "aw", "WRAP")


def test_rejects_narrow_and_unaligned():
    async def narrow(ctx, axi):
        await send_addr(ctx, axi.ar, "ar", 0, 0, size=1)

    async def unaligned(ctx, axi):
        await send_addr(ctx, axi.aw, "aw", 2, 0)

    _expect_violation(narrow, "ar", "full bus width")
    _expect_violation(unaligned, "aw", "not aligned")


def test_rejects_4k_crossing():
    async def cross(ctx, axi):
        await ctx.tick().repeat(3)
        await send_addr(ctx, axi.ar, "ar", 0x1000 - 8, 2)      # 3 beats of 4 bytes from 0xFF8

    async def edge_ok_then_cross(ctx, axi):
        await send_addr(ctx, axi.aw, "aw", 0x2000 - 16, 3)     # ends exactly at the boundary
        await send_w(ctx, axi.w, [(0, 0xF, 0)] * 3 + [(0, 0xF, 1)])
        await send_addr(ctx, axi.aw, "aw", 0x3000 - 4, 1)

    err = _expect_violation(cross, "ar", "crosses a 4 KiB boundary")
    assert err.cycle == 3
    _expect_violation(edge_ok_then_cross, "aw", "crosses")


def test_rejects_valid_dropped_or_payload_changed_while_waiting():
    async def drop(ctx, axi):
        set_ar(ctx, axi.ar, 0, 0)
        await ctx.tick()
        ctx.set(axi.ar.arvalid, 0)

    async def change(ctx, axi):
        set_ar(ctx, axi.aw, 0x10, 0, ch="aw")
        await ctx.tick()
        ctx.set(axi.aw.awaddr, 0x20)

    async def w_change(ctx, axi):
        ctx.set(axi.w.wvalid, 1)
        ctx.set(axi.w.wdata, 1)
        await ctx.tick()
        ctx.set(axi.w.wdata, 2)

    # a memory that never accepts: every valid waits
    never = dict(stall={"ar": 0.999999, "aw": 0.999999, "w": 0.999999}, seed=1)
    _expect_violation(drop, "ar", "ARVALID dropped", **never)
    _expect_violation(change, "aw", "payload changed", **never)
    _expect_violation(w_change, "w", "payload changed", **never)


def test_rejects_wrong_wlast():
    async def early(ctx, axi):
        await send_addr(ctx, axi.aw, "aw", 0, 3)
        await send_w(ctx, axi.w, [(0, 0xF, 0), (0, 0xF, 1)])

    async def missing(ctx, axi):
        await send_addr(ctx, axi.aw, "aw", 0, 1)
        await send_w(ctx, axi.w, [(0, 0xF, 0), (0, 0xF, 0)])

    async def early_before_aw(ctx, axi):
        await send_w(ctx, axi.w, [(0, 0xF, 1)])
        await send_addr(ctx, axi.aw, "aw", 0, 1)

    _expect_violation(early, "w", "WLAST on beat 1 of a 4-beat burst")
    _expect_violation(missing, "w", "WLAST missing")
    _expect_violation(early_before_aw, "w", "WLAST on beat 0")


def test_check_quiescent_finds_stray_w_and_open_bursts():
    async def stray(ctx, axi):
        await send_w(ctx, axi.w, [(0, 0xF, 1)])

    async def unread(ctx, axi):
        await send_addr(ctx, axi.ar, "ar", 0, 3)

    _expect_violation(stray, "w", "without an AW")
    _expect_violation(unread, "r", "not taken")


def test_check_false_accepts_bad_traffic():
    dut = RawMaster()
    mem = AxiMemory(dut.axi, size=1 << 12, read_latency=1, check=False)
    got = []

    async def tb(ctx):
        await send_addr(ctx, dut.axi.ar, "ar", 0x0, 0, burst=0)
        got.extend(await recv_r(ctx, dut.axi.r, 1))

    simulate(dut, tb, processes=[mem.process], deadline_cycles=50)
    assert got[0][2] == 0


# --- the signatures ---------------------------------------------------------------------------

def test_signatures_names_directions_and_connect():
    sig = Axi4Signature(64, 32, 4)
    assert set(sig.members) == {"ar", "r", "aw", "w", "b"}
    ar = sig.members["ar"].signature.members
    assert {"araddr", "arid", "arlen", "arsize", "arburst", "arvalid", "arready"} <= set(ar)
    assert ar["arvalid"].flow.name == "Out" and ar["arready"].flow.name == "In"
    r = sig.members["r"].signature.members
    assert r["rdata"].flow.name == "In" and r["rready"].flow.name == "Out"
    assert sig.members["w"].signature.members["wstrb"].shape.width == 8
    assert set(Axi4Signature(64, 32, write=False).members) == {"ar", "r"}
    assert set(Axi4Signature(64, 32, read=False).members) == {"aw", "w", "b"}
    assert Axi4Signature(64, 32, 4) == sig and Axi4Signature(32, 32, 4) != sig
    lite = AxiLiteSignature(12, 32)
    assert "awlen" not in lite.members["aw"].signature.members
    with pytest.raises(ValueError, match="data_width"):
        Axi4Signature(48, 32)
    with pytest.raises(ValueError, match="addr_width"):
        Axi4Signature(64, 8)
    with pytest.raises(ValueError, match="read=True or write=True"):
        Axi4Signature(64, 32, read=False, write=False)
    with pytest.raises(ValueError, match="data_width"):
        AxiLiteSignature(12, 128)

    class Slave(wiring.Component):
        axi: wiring.In(Axi4Signature(64, 32, 4))

        def elaborate(self, platform):
            return Module()

    m = Module()
    m.submodules.master = master = RawMaster(64, 32, 4)
    m.submodules.slave = slave = Slave()
    wiring.connect(m, master.axi, slave.axi)


def test_boundary_helpers():
    assert size_code(32) == 2 and size_code(256) == 5
    assert crosses_boundary(0xFF8, 3, 4) and not crosses_boundary(0xFF0, 4, 4)
    assert beats_to_boundary(0xFF0, 4) == 4 and beats_to_boundary(0x1000, 32) == 128
