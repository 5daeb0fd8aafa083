"""Top level with a stub core: register map, queue back-pressure, errors, windows, Verilog."""

import pytest
from amaranth.back import verilog

from reneta_hw.config import AcceleratorConfig
from reneta_hw.ctrl.stub_core import StubCore
from reneta_hw.isa import Assembler, to_words, words_per_instruction
from reneta_hw.top import CTRL_BITS, ID_VALUE, REG, VERSION, Reneta, register_map
from sim.axi_memory import axil_read, axil_write
from sim.golden import Memories
from sim.harness import HarnessError, run_pysim
from sim.streams import simulate
from sim.vectors import VectorSet

CFG = AcceleratorConfig(num_pe=4, max_n=32, max_m=16, smem_depth=128, spm_depth=16,
                        axi_data_width=64, axi_addr_width=16, instr_queue_depth=4)
W = words_per_instruction(CFG)


def prog(n, **kw):
    a = Assembler(CFG)
    for k in range(n):
        a.mxv(steps=4, nt=4, blocks=2, n_in=8, n1=8, act=0, w_smem=20, dst_smem=60 + k,
              **{key: (v(k) if callable(v) else v) for key, v in kw.items()})
    return a.instructions


def _top(**kw):
    return Reneta(CFG, core=StubCore(CFG, **kw))


def test_ids_caps_and_unmapped():
    dut = _top()
    got = {}

    async def tb(ctx):
        for name in ("ID", "VERSION", "CONFIG_HASH", "CAPS", "STATUS", "INSTR_COUNT"):
            got[name] = await axil_read(ctx, dut.ctrl, REG[name])
        got["unmapped"] = await axil_read(ctx, dut.ctrl, 0x300)
        got["w_ro"] = await axil_write(ctx, dut.ctrl, REG["STATUS"], 1)
        got["w_unmapped"] = await axil_write(ctx, dut.ctrl, 0x304, 1)
        got["w_rw"] = await axil_write(ctx, dut.ctrl, REG["INSTR_COUNT"], 0x1234)
        got["rw"] = await axil_read(ctx, dut.ctrl, REG["INSTR_COUNT"])

    simulate(dut, tb, deadline_cycles=500)
    assert got["ID"] == (ID_VALUE, 0)
    assert got["VERSION"] == (VERSION, 0)
    assert got["CONFIG_HASH"] == (int(CFG.content_hash()[:8], 16), 0)
    caps = got["CAPS"][0]
    assert caps & 0xFF == 4 and (caps >> 8) & 0xFF == 16 and (caps >> 16) & 0xF == W
    assert caps >> 20 == 4
    assert got["STATUS"][0] & 0b10000          # core idle
    assert got["unmapped"] == (0, 2)
    assert got["w_ro"] == 2 and got["w_unmapped"] == 2 and got["w_rw"] == 0
    assert got["rw"] == (0x1234, 0)


def test_register_map_fits():
    names = {r.name for r in register_map(CFG)}
    assert {"instr", "ctrl", "status", "cycles", "smem_wdata", "smem_rdata"} <= names
    big = AcceleratorConfig(num_pe=64, max_n=256, axi_data_width=1024)
    from reneta_hw.bus.axi_lite import AxiLiteRegisters
    AxiLiteRegisters(register_map(big), addr_width=12)._MustUse__used = True  # 2048-bit row fits


def test_queue_full_holds_the_write_back():
    # the stub core holds one instruction 200 cycles; the checker holds 3, the queue 4 and
    # the register file's push buffer 2: the 11th instruction's last word waits (B held back)
    # until the core takes the next one
    dut = _top(latency=200)
    words = [to_words(CFG, i) for i in prog(12)]
    log = {}

    async def push(ctx, w):
        for k, x in enumerate(w):
            assert await axil_write(ctx, dut.ctrl, REG["INSTR"] + 4 * k, x) == 0

    async def tb(ctx):
        bus = dut.ctrl
        await axil_write(ctx, bus, REG["INSTR_COUNT"], 12)
        await axil_write(ctx, bus, REG["CTRL"], 1 << CTRL_BITS["start"])
        while True:                       # push until the queue reports full
            await push(ctx, words.pop(0))
            for _ in range(4):
                await ctx.tick()
            st, _ = await axil_read(ctx, bus, REG["STATUS"])
            if (st >> 5) & 1:
                break
        log["level"], log["full"] = (st >> 8) & 0xFFFF, (st >> 5) & 1
        log["pushed"] = 12 - len(words)
        before = ctx.get(dut.controller.retired)
        for _ in range(2):           # into the push buffer, answered at once
            await push(ctx, words.pop(0))
        log["buffered"] = ctx.get(dut.controller.retired) == before
        held = words.pop(0)
        await push(ctx, held)        # its last word is only answered once there is room
        log["held"] = ctx.get(dut.controller.retired) > before
        for w in words:
            await push(ctx, w)
        await ctx.tick().until(dut.controller.done)
        log["retired"] = ctx.get(dut.controller.retired)

    simulate(dut, tb, deadline_cycles=4000)
    assert log["pushed"] < 12          # the queue filled up before the program was pushed
    del log["pushed"]
    assert log == {"level": 4, "full": 1, "buffered": True, "held": True, "retired": 12}


def _vs(program, mem=None):
    return VectorSet(CFG, program, mem or Memories.empty(CFG, 64))


def test_program_with_pause_counters_and_windows():
    mem = Memories.empty(CFG, 64)
    mem.smem[3] = [1, 2, 3, 4]
    mem.smem[100] = [5, 6, 7, 0xFFFF]
    mem.spm[2] = 77
    p = prog(7, pause=lambda k: int(k in (2, 5)))
    r = run_pysim(_vs(p, mem), core=StubCore(CFG, latency=10), load="axi")
    assert r.pauses == 2
    assert r.counters["retired"] == 7
    assert r.counters["busy"] == 70 and r.counters["mac_beats"] == 35
    assert r.counters["stall_dram"] == 35
    assert len(r.instructions) == 7
    assert r.cycles_per_proc["MxV"] == 7 * 11          # issue to retire pulse
    assert (r.memories.smem == mem.smem).all() and (r.memories.spm == mem.spm).all()
    # the CYCLES counter: from START to done, pauses excluded
    first_issue, last_retire = r.instructions[0][2], r.instructions[-1][3]
    assert r.cycles_total <= last_retire - first_issue + 20


def test_smem_window_read_back():
    dut = _top()
    got = []

    async def tb(ctx):
        bus = dut.ctrl
        await axil_write(ctx, bus, REG["SMEM_ADDR"], 70)
        for k, v in enumerate((0x0002_0001, 0x0004_0003)):
            await axil_write(ctx, bus, REG["SMEM_WDATA"] + 4 * k, v)
        await axil_write(ctx, bus, REG["SMEM_MASK"], 0b0101)      # lanes 0 and 2 only
        for k, v in enumerate((0x00BB_00AA, 0x00DD_00CC)):
            await axil_write(ctx, bus, REG["SMEM_WDATA"] + 4 * k, v)
        await axil_write(ctx, bus, REG["SMEM_ADDR"], 70)      # (re)select the row to read
        for k in range(2):
            got.append((await axil_read(ctx, bus, REG["SMEM_RDATA"] + 4 * k))[0])
        await axil_write(ctx, bus, REG["SPM_ADDR"], 9)
        await axil_write(ctx, bus, REG["SPM_WDATA"], 0x2ABC)
        await axil_write(ctx, bus, REG["SPM_WDATA"] + 4, 0)
        await axil_write(ctx, bus, REG["SPM_ADDR"], 8)
        got.append((await axil_read(ctx, bus, REG["SPM_RDATA"]))[0])
        await axil_write(ctx, bus, REG["SPM_ADDR"], 9)
        got.append((await axil_read(ctx, bus, REG["SPM_RDATA"]))[0])

    simulate(dut, tb, deadline_cycles=1000)
    assert got == [0x0002_00AA, 0x0004_00CC, 0, 0x2ABC]


def test_illegal_instruction_reported_by_harness():
    p = prog(4)
    p[2] = p[2].replace(nt=0)            # rule 3 (the assembler would refuse it)
    with pytest.raises(HarnessError, match=r"instruction 2 \(MxV\) is illegal: rule 3 \(nt\)"):
        run_pysim(_vs(p), core=StubCore(CFG, latency=3))


def test_core_error_reported_by_harness():
    p = prog(3)
    p[1] = p[1].replace(dst1=1, dram_dst=0x40)
    with pytest.raises(HarnessError, match="core reported error code 5 at instruction 1"):
        run_pysim(_vs(p), core=StubCore(CFG, latency=3, error_on_dst=0x40))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # abandoned tb
def test_timeout_is_clear():
    from sim.harness import HarnessTimeout
    with pytest.raises(HarnessTimeout, match="did not finish within 150 cycles"):
        run_pysim(_vs(prog(3)), core=StubCore(CFG, latency=100), max_cycles=150)
    import gc
    gc.collect()          # the abandoned testbench coroutines are closed here, not later


def test_irq_and_error_clear():
    dut = _top(latency=3)
    bad = to_words(CFG, prog(1)[0].replace(src1=0))
    log = {}

    async def tb(ctx):
        bus = dut.ctrl
        for k, x in enumerate(bad):
            await axil_write(ctx, bus, REG["INSTR"] + 4 * k, x)
        await axil_write(ctx, bus, REG["IRQ_ENABLE"], 0b100)
        await axil_write(ctx, bus, REG["CTRL"], 1 << CTRL_BITS["start"])
        await ctx.tick().until(dut.irq)
        log["error"] = (await axil_read(ctx, bus, REG["ERROR"]))[0]
        log["index"] = (await axil_read(ctx, bus, REG["ERROR_INDEX"]))[0]
        log["status"] = (await axil_read(ctx, bus, REG["STATUS"]))[0] & 0b1111
        await axil_write(ctx, bus, REG["IRQ_STATUS"], 0b100)
        log["irq_after_w1c"] = ctx.get(dut.irq)
        await axil_write(ctx, bus, REG["CTRL"], 1 << CTRL_BITS["clear_error"])
        for _ in range(10):
            await ctx.tick()
        log["status2"] = (await axil_read(ctx, bus, REG["STATUS"]))[0] & 0xFF0F

    simulate(dut, tb, deadline_cycles=1000)
    assert log == {"error": 2, "index": 0, "status": 0b1001, "irq_after_w1c": 0,
                   "status2": 0}


def test_verilog_reproducible():
    a = verilog.convert(_top(), name="reneta", emit_src=False)
    b = verilog.convert(_top(), name="reneta", emit_src=False)
    assert a == b and "module reneta" in a


def test_bad_cfg():
    with pytest.raises(ValueError, match="Reneta.cfg"):
        Reneta("nope")
