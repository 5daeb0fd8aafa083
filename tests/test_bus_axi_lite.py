# amaranth: UnusedElaboratable=no
"""AxiLiteRegisters: random register traffic against a Python model of the register map."""

import random

import pytest
from amaranth.back import verilog
from hypothesis import HealthCheck, given, settings, strategies as st

from reneta_hw.bus.axi_lite import Access, AxiLiteRegisters, Register
from sim.axi_memory import axil_read, axil_write
from sim.streams import collect, simulate

OKAY, SLVERR = 0, 2

REGS = [
    Register("ctrl", 0x00, "rw", 8, init=0x5),
    Register("status", 0x04, "ro", 32),
    Register("irq", 0x08, "w1c", 6),
    Register("go", 0x0C, "pulse", 3),
    Register("instr", 0x10, "push", 70),          # words 0x10, 0x14, 0x18 (the push)
    Register("base", 0x20, "rw", 40),             # words 0x20, 0x24
    Register("cnt", 0x28, "ro", 48),              # words 0x28, 0x2C
]
UNMAPPED = [0x1C, 0x30, 0x44, 0xFC]


class Model:
    """What the register file must do, word by word."""

    def __init__(self, regs, dw=32):
        self.dw = dw
        self.regs = {r.name: r for r in regs}
        self.word = {}
        for r in regs:
            for i in range(r.words(dw)):
                self.word[r.offset + 4 * i] = (r, i)
        self.val = {r.name: r.init for r in regs}
        self.pushes, self.pulses = [], []

    def _merge(self, name, i, data, strb):
        r = self.regs[name]
        old = self.val[name]
        for b in range(self.dw // 8):
            if strb >> b & 1:
                sh = i * self.dw + 8 * b
                old = (old & ~(0xFF << sh)) | (((data >> (8 * b)) & 0xFF) << sh)
        return old & ((1 << r.width) - 1)

    def write(self, addr, data, strb):
        if addr not in self.word:
            return SLVERR
        r, i = self.word[addr]
        top = i == r.words(self.dw) - 1
        if r.access is Access.RO:
            return SLVERR
        if r.access is Access.W1C:
            clr = 0
            for b in range(self.dw // 8):
                if strb >> b & 1:
                    clr |= data & (0xFF << 8 * b)
            self.val[r.name] &= ~(clr << i * self.dw)
            return OKAY
        self.val[r.name] = self._merge(r.name, i, data, strb)
        if top and r.access is Access.PUSH:
            self.pushes.append(self.val[r.name])
        if top and r.access is Access.PULSE:
            self.pulses.append(self.val[r.name])
        return OKAY

    def read(self, addr):
        if addr not in self.word:
            return 0, SLVERR
        r, i = self.word[addr]
        return (self.val[r.name] >> (i * self.dw)) & ((1 << self.dw) - 1), OKAY


def gen_ops(rng, n):
    addrs = sorted(Model(REGS).word) + UNMAPPED
    ops = []
    for _ in range(n):
        k = rng.random()
        if k < 0.45:
            strb = 0xF if rng.random() < 0.6 else rng.randrange(16)
            ops.append(("w", rng.choice(addrs), rng.getrandbits(32), strb,
                        rng.choice(["together", "aw_first", "w_first"]), rng.randrange(4),
                        rng.randrange(3)))
        elif k < 0.85:
            ops.append(("r", rng.choice(addrs), rng.randrange(3)))
        elif k < 0.93:
            ops.append(("ro", rng.getrandbits(32), rng.getrandbits(48)))
        else:
            ops.append(("set", rng.getrandbits(6)))
    return ops


def run_traffic(ops, push_stall, seed):
    dut = AxiLiteRegisters(REGS, addr_width=8)
    model = Model(REGS)
    expected = []          # (op index, value, resp)
    for k, op in enumerate(ops):
        if op[0] == "w":
            expected.append((k, None, model.write(op[1], op[2], op[3])))
        elif op[0] == "r":
            v, resp = model.read(op[1])
            expected.append((k, v, resp))
        elif op[0] == "ro":
            model.val["status"], model.val["cnt"] = op[1], op[2]
        else:
            model.val["irq"] |= op[1]
    got, pushes, pulses = [], [], []

    async def host(ctx):
        bus = dut.bus
        for k, op in enumerate(ops):
            if op[0] == "w":
                _, addr, data, strb, order, gap, bdel = op
                resp = await axil_write(ctx, bus, addr, data, strb, order=order, gap=gap,
                                        bready_delay=bdel)
                got.append((k, None, resp))
            elif op[0] == "r":
                data, resp = await axil_read(ctx, bus, op[1], rready_delay=op[2])
                got.append((k, data, resp))
            elif op[0] == "ro":
                ctx.set(dut.status, op[1])
                ctx.set(dut.cnt, op[2])
            else:
                ctx.set(dut.irq_set, op[1])
                await ctx.tick()
                ctx.set(dut.irq_set, 0)
        await ctx.tick().repeat(2)
        for name in ("ctrl", "base", "irq"):
            assert ctx.get(getattr(dut, name)) == model.val[name], name

    async def queue(ctx):
        out = await collect(ctx, dut.instr, len(model.pushes), stall=push_stall,
                            rng=random.Random(seed))
        pushes.extend(out)

    async def pulse_monitor(ctx):
        async for _, _, stb, val in ctx.tick().sample(dut.go_stb, dut.go):
            if stb:
                pulses.append(val)

    simulate(dut, host, queue, processes=[pulse_monitor], deadline_cycles=20000)
    assert got == expected
    assert pushes == model.pushes
    assert pulses == model.pulses


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**20), push_stall=st.sampled_from([0.0, 0.5, 0.9]))
def test_random_register_traffic(seed, push_stall):
    run_traffic(gen_ops(random.Random(seed), 60), push_stall, seed)


@pytest.mark.parametrize("regs", [
    [Register("only", 0x00, "rw", 32, init=0x1234)],                       # one slot
    [Register(f"r{i}", 8 * i, "rw", 32, init=0x100 + i) for i in range(20)],  # 5 groups
], ids=["one_slot", "sparse_40_slots"])
def test_read_path_sizes(regs):
    """The read sample works for a map of one slot (one group, no group select) and for
    a sparse map of many groups, some of them unmapped only."""
    dut = AxiLiteRegisters(regs, addr_width=10)
    model = Model(regs)
    addrs = sorted(model.word) + [4, 8 * len(regs) + 4, 0x3FC]
    got = []

    async def host(ctx):
        for a in addrs:
            got.append(await axil_read(ctx, dut.bus, a))

    simulate(dut, host, deadline_cycles=2000)
    assert got == [model.read(a) for a in addrs]


def test_reset_values_and_wide_push():
    ops = [("r", 0x00, 0), ("r", 0x20, 0), ("r", 0x1C, 0),
           ("w", 0x10, 0x11111111, 0xF, "together", 0, 0),
           ("w", 0x14, 0x22222222, 0xF, "w_first", 2, 0),
           ("w", 0x18, 0x3F, 0xF, "aw_first", 3, 1),           # push 0x3F_22222222_11111111
           ("w", 0x18, 0x01, 0x1, "together", 0, 0),           # push again, lower words kept
           ("w", 0x0C, 0x5, 0xF, "together", 0, 0),            # pulse
           ("w", 0x04, 0x5, 0xF, "together", 0, 0),            # RO: SLVERR
           ("r", 0x18, 0)]
    run_traffic(ops, 0.0, 1)


def test_full_queue_holds_the_write_response_but_not_reads():
    """The push buffer takes two values; the third push's B waits for the consumer."""
    dut = AxiLiteRegisters(REGS, addr_width=8)
    t = {"write_done": []}

    async def writer(ctx):
        for v in (0x7, 0x8, 0x9):
            resp = await axil_write(ctx, dut.bus, 0x18, v)
            t["write_done"].append(t["now"])
            assert resp == OKAY

    async def reader(ctx):
        await ctx.tick().repeat(5)
        ctx.set(dut.status, 0xABCD)
        v, resp = await axil_read(ctx, dut.bus, 0x04)
        t["read_done"] = t["now"]
        assert (v, resp) == (0xABCD, OKAY)

    async def queue(ctx):
        await ctx.tick().repeat(40)
        assert ctx.get(dut.instr.valid)
        t["item"] = await collect(ctx, dut.instr, 3)

    async def clock(ctx):
        t["now"] = 0
        async for _ in ctx.tick():
            t["now"] += 1

    simulate(dut, writer, reader, queue, processes=[clock], deadline_cycles=200)
    assert t["read_done"] < 20
    assert t["write_done"][1] < 20 and t["write_done"][2] >= 40
    assert t["item"] == [v << 64 for v in (0x7, 0x8, 0x9)]


def test_one_transaction_per_cycle_when_nothing_stalls():
    """AW/W/AR held valid, BREADY/RREADY high: one write and one read complete per cycle."""
    dut = AxiLiteRegisters(REGS, addr_width=8)
    n = 24
    seen = {"b": [], "r": []}

    async def drive(ctx):
        bus = dut.bus
        ctx.set(bus.b.bready, 1)
        ctx.set(bus.r.rready, 1)
        ctx.set(bus.aw.awvalid, 1); ctx.set(bus.w.wvalid, 1); ctx.set(bus.ar.arvalid, 1)
        ctx.set(bus.w.wstrb, 0xF)
        aw = w = ar = 0
        cyc = 0
        while len(seen["b"]) < n or len(seen["r"]) < n:
            ctx.set(bus.aw.awaddr, 0x20 + 4 * (aw % 2))
            ctx.set(bus.w.wdata, w)
            ctx.set(bus.ar.araddr, 0x20 + 4 * (ar % 2))
            _, _, awr, wr, arr, bv, rv, rd = await ctx.tick().sample(
                bus.aw.awready, bus.w.wready, bus.ar.arready, bus.b.bvalid, bus.r.rvalid,
                bus.r.rdata)
            aw += awr; w += wr; ar += arr
            ctx.set(bus.aw.awvalid, aw < n); ctx.set(bus.w.wvalid, w < n)
            ctx.set(bus.ar.arvalid, ar < n)
            if bv:
                seen["b"].append(cyc)
            if rv:
                seen["r"].append(cyc)
            cyc += 1

    simulate(dut, drive, deadline_cycles=200)
    assert seen["b"] == list(range(2, 2 + n))
    assert seen["r"] == list(range(3, 3 + n))          # address, sample, R register


def test_port_directions_and_register_map():
    dut = AxiLiteRegisters(REGS, addr_width=8)
    sig = dut.signature.members
    assert sig["ctrl"].flow.name == "Out" and sig["status"].flow.name == "In"
    assert sig["irq_set"].flow.name == "In" and sig["go_stb"].flow.name == "Out"
    assert sig["instr"].is_signature
    assert dut.register_map["instr"] == (0x10, "push", 70)
    assert dut.offset_of("base") == 0x20
    with pytest.raises(KeyError):
        dut.offset_of("nope")


@pytest.mark.parametrize("regs, match", [
    ([Register("a", 2)], "not aligned"),
    ([Register("a", 0), Register("b", 0)], "overlaps"),
    ([Register("a", 0, width=64), Register("b", 4)], "overlaps"),
    ([Register("a", 0), Register("a", 4)], "used twice"),
    ([Register("a_set", 0), Register("a", 4, "w1c")], "used twice"),
    ([Register("bus", 0)], "reserved"),
    ([Register("a", 0x100)], "outside"),
    ([], "at least one"),
])
def test_validation(regs, match):
    with pytest.raises(ValueError, match=match):
        AxiLiteRegisters(regs, addr_width=8)


def test_register_validation():
    with pytest.raises(ValueError, match="access"):
        Register("a", 0, "rwx")
    with pytest.raises(ValueError, match="identifier"):
        Register("a b", 0)
    with pytest.raises(ValueError, match="init"):
        Register("a", 0, "rw", 4, init=16)
    with pytest.raises(ValueError, match="only for rw"):
        Register("a", 0, "ro", 4, init=1)
    with pytest.raises(TypeError, match="registers"):
        AxiLiteRegisters([("a", 0)])
    with pytest.raises(ValueError, match="data_width"):
        AxiLiteRegisters([Register("a", 0)], data_width=16)


def test_verilog_is_reproducible():
    def conv():
        return verilog.convert(AxiLiteRegisters(REGS, addr_width=8), name="regs",
                               emit_src=False)
    a, b = conv(), conv()
    assert a == b
    for port in ("bus__aw__awaddr", "bus__r__rdata", "instr__payload", "irq_set", "go_stb"):
        assert port in a


def test_synthesizes_for_ecp5():
    from platforms.synth import synth_ecp5
    rep = synth_ecp5(AxiLiteRegisters(REGS, addr_width=8), name="regs", pnr=False)
    assert 30 < rep.luts < 2000 and rep.ffs > 100
