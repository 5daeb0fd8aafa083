"""ECP5 block RAMs with their output register: the SMEM's and the activation ROMs' ECP5
elaborations are cycle-exact with their generic ones (under Verilator, through a
behavioural DP16KD model whose reads of a row written at the same edge return garbage),
and Yosys keeps the blocks as placed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Fragment, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from platforms.synth import synth_ecp5
from reneta_hw.config import AcceleratorConfig
from reneta_hw.ccm.activation_unit import ActivationUnit
from reneta_hw.mem.ecp5_bram import (ECP5_DP16KD_MODEL, dp16kd_initvals, ecp5_fifo_ram,
                                     ecp5_fifo_ram_blocks, ecp5_lane_ram,
                                     ecp5_lane_ram_blocks, ecp5_rom, ecp5_rom_blocks,
                                     uses_ecp5_bram)
from reneta_hw.mem.fifo import PrefetchFIFO, StreamFIFO
from reneta_hw.mem.smem import SharedMemory
from reneta_hw.numeric.bfloat16 import BFloat16
from reneta_hw.numeric.ecp5_dsp import Ecp5SynthHints
from reneta_hw.numeric.fixed_point import FixedPoint
from sim import verilator_eval


def _cfg(bank_rows, word_bits=16, num_pe=4, banks=2):
    fmt = FixedPoint(int_bits=word_bits // 2, frac_bits=word_bits - word_bits // 2)
    return AcceleratorConfig(num_pe=num_pe, max_n=32, max_m=16, fmt=fmt, spm_depth=16,
                             smem_depth=bank_rows * banks, smem_banks=banks,
                             axi_data_width=64)


class _SmemWithoutBypass(SharedMemory):
    """The control: the ECP5 banks written at the generic edge, without the bypass, so a
    read of a row written at the same edge gets the block's undefined data."""

    def _ecp5_banks(self, m, row, rd_addr, rd_bank2, w_addr, w_mask, w_data, w_en):
        cfg = self.cfg
        lb = (cfg.smem_bank_rows - 1).bit_length()
        for k, mem in enumerate(self.smem_memories):
            m.submodules[f"bank{k}"] = mem
            q = ecp5_lane_ram(m, depth=cfg.smem_bank_rows, lanes=cfg.num_pe,
                              lane_bits=cfg.word_bits, waddr=w_addr[:lb], wdata=w_data,
                              wlanes=Mux(w_en & (w_addr[lb:] == k), w_mask, 0),
                              raddr=rd_addr[:lb], name=f"bank{k}_q")
            with m.If(rd_bank2 == k):
                m.d.comb += row.eq(q)


def _stimulus(cfg, cycles, seed):
    """Random inputs for every SMEM input port, on a handful of rows (both banks, first
    and last rows) so that reads and writes of one row meet often."""
    rng = np.random.default_rng(seed)
    rows = np.array([0, 1, 2, cfg.smem_bank_rows - 1, cfg.smem_bank_rows,
                     cfg.smem_bank_rows + 1, cfg.smem_depth - 1], dtype=np.uint64)

    def bits(p):
        return (rng.random(cycles) < p).astype(np.uint64)

    def some(values):
        return rng.choice(values, cycles).astype(np.uint64)

    masks = np.arange(1 << cfg.num_pe, dtype=np.uint64)
    datas = rng.integers(0, 1 << cfg.row_bits, 64, dtype=np.uint64)
    ab = np.uint64(cfg.smem_addr_bits)
    s = {"wreq__valid": bits(0.6),
         # smem_write_layout: addr, then mask, then data
         "wreq__payload": some(rows) | (some(masks) << ab)
         | (some(datas) << (ab + np.uint64(cfg.num_pe))),
         "host__addr": some(rows), "host__lane_mask": some(masks), "host__wdata": some(datas),
         "host__we": bits(0.03), "host__re": bits(0.03)}
    for i in range(2):
        s[f"rreq__{i}__valid"] = bits(0.7)
        s[f"rreq__{i}__payload"] = some(rows)
        s[f"rresp__{i}__ready"] = bits(0.8)
    return s


def _run(dut, platform, stim, cycles):
    text = verilog.convert(dut, name="smem", platform=platform, emit_src=False)
    model = verilator_eval.VerilatorModel(text + (ECP5_DP16KD_MODEL if platform else ""),
                                          name="smem")
    given = {k: v for k, v in stim.items() if k in model.inputs}
    return model.run(cycles, **given), text


def _needs_verilator():
    reason = verilator_eval.unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.mark.parametrize("bank_rows,word_bits,block_width", [
    (512, 16, 18), (1024, 12, 18), (2048, 16, 9), (4096, 12, 4)])
def test_smem_ecp5_banks_cycle_exact(bank_rows, word_bits, block_width):
    """Every output of the SMEM, every cycle, equals the generic elaboration's, on random
    traffic full of same-row reads and writes; without the bypass (the control) it does
    not."""
    _needs_verilator()
    cfg = _cfg(bank_rows, word_bits, num_pe=2)
    cycles = 6000
    stim = _stimulus(cfg, cycles, seed=bank_rows + word_bits)
    generic, gtext = _run(SharedMemory(cfg, read_ports=2, resp_depth=4), None, stim, cycles)
    ecp5, etext = _run(SharedMemory(cfg, read_ports=2, resp_depth=4), Ecp5SynthHints(),
                       stim, cycles)
    assert "DP16KD" not in gtext
    assert etext.count(f".DATA_WIDTH_B(32'd{block_width})") == \
        ecp5_lane_ram_blocks(bank_rows, 2, word_bits) * 2
    for port, values in generic.items():
        np.testing.assert_array_equal(ecp5[port], values, err_msg=port)
    got = sum(int(v.sum()) for p, v in generic.items() if p.endswith("__valid")
              and p.startswith("rresp"))
    assert got > cycles // 4        # rows did come back
    control, _ = _run(_SmemWithoutBypass(cfg, read_ports=2, resp_depth=4), Ecp5SynthHints(),
                      stim, cycles)
    assert any((control[p] != generic[p]).any() for p in generic if "payload" in p
               or "rdata" in p)


def test_block_counts_and_fallback():
    assert ecp5_lane_ram_blocks(4096, 16, 16) == 64       # 4 bits per block
    assert ecp5_lane_ram_blocks(1024, 16, 16) == 16       # 18 bits per block
    assert ecp5_lane_ram_blocks(2048, 16, 12) == 32       # 9 + 3 bits
    assert ecp5_lane_ram_blocks(16384, 2, 16) == 32
    assert ecp5_lane_ram_blocks(16385, 2, 16) is None
    # too deep for one block per column: the SMEM keeps the generic memory
    cfg = _cfg(32768, banks=1)
    text = verilog.convert(SharedMemory(cfg), name="smem", platform=Ecp5SynthHints(),
                           emit_src=False)
    assert "DP16KD" not in text


def test_platform_choice():
    assert uses_ecp5_bram(Ecp5SynthHints())
    assert not uses_ecp5_bram(None)

    class Other:
        pass
    assert not uses_ecp5_bram(Other())


def test_lane_ram_bad_arguments():
    m = Module()
    a, d, w = Signal(10), Signal(32), Signal(2)
    with pytest.raises(ValueError, match="16385 rows do not fit"):
        ecp5_lane_ram(m, depth=16385, lanes=2, lane_bits=16, waddr=a, wdata=d, wlanes=w,
                      raddr=a, name="x")
    with pytest.raises(ValueError, match="wdata has 32 bits and wlanes 2; expected 48"):
        ecp5_lane_ram(m, depth=1024, lanes=2, lane_bits=24, waddr=a, wdata=d, wlanes=w,
                      raddr=a, name="x")
    with pytest.raises(ValueError, match="waddr has 12 bits; a 18-bit DP16KD has 10"):
        ecp5_lane_ram(m, depth=1024, lanes=2, lane_bits=16, waddr=Signal(12), wdata=d,
                      wlanes=w, raddr=a, name="x")
    Fragment.get(m, None)           # nothing was added; elaborated, so no unused warning


def test_yosys_keeps_the_output_registered_blocks():
    """Synthesis for ECP5: the SMEM's banks are DP16KD with REGMODE_B = OUTREG (2 banks of
    512 rows x 4 lanes of 16 bits: 8 blocks), and the fabric carries no bank register."""
    cfg = _cfg(512)
    rep = synth_ecp5(SharedMemory(cfg, read_ports=2, resp_depth=4), name="smem", pnr=False)
    assert rep.brams == 8


# --- read-ahead FIFOs ---------------------------------------------------------------------------
@pytest.mark.parametrize("depth,width,block_width", [(56, 64, 36), (700, 40, 18),
                                                     (1500, 20, 9)])
def test_prefetch_fifo_ecp5_cycle_exact(depth, width, block_width):
    """A `PrefetchFIFO` elaborated for ECP5 (its memory on DP16KD blocks whose output
    register is the stage register; at 36 bits the pseudo dual port mode) gives every
    output of the generic one, every cycle, under random stalls on both sides. Its block
    RAM is read every cycle, also at the row being written when the FIFO is empty: the
    model's garbage for those reads never reaches the output."""
    _needs_verilator()
    cycles = 5000
    rng = np.random.default_rng(depth)
    # bursts: long stretches where the consumer stalls fill the FIFO past the ring
    out_ready = np.repeat(rng.random(cycles // 50) < 0.5, 50) & (rng.random(cycles) < 0.8)
    stim = {"i__valid": (rng.random(cycles) < 0.6).astype(np.uint64),
            "i__payload": rng.integers(0, 1 << min(width, 63), cycles, dtype=np.uint64),
            "o__ready": out_ready.astype(np.uint64)}

    def run(platform):
        text = verilog.convert(StreamFIFO(width, depth, prefetch=True), name="fifo",
                               platform=platform, emit_src=False)
        model = verilator_eval.VerilatorModel(
            text + (ECP5_DP16KD_MODEL if platform else ""), name="fifo")
        return model.run(cycles, **stim), text

    generic, gtext = run(None)
    ecp5, etext = run(Ecp5SynthHints())
    assert "DP16KD" not in gtext
    blocks = ecp5_fifo_ram_blocks(depth - PrefetchFIFO.RING, width)
    assert etext.count(f".DATA_WIDTH_B(32'd{block_width})") == blocks
    assert etext.count('.REGMODE_B("OUTREG")') == blocks
    for port, values in generic.items():
        np.testing.assert_array_equal(ecp5[port], values, err_msg=port)
    taken = generic["o__valid"].astype(bool) & out_ready
    assert taken.sum() > cycles // 4
    assert generic["level"].max() > depth // 2      # it did fill up (order: test_mem_fifo)


def test_fifo_ram_bad_arguments():
    m = Module()
    a, d = Signal(9), Signal(36)
    with pytest.raises(ValueError, match="16385 rows do not fit"):
        ecp5_fifo_ram(m, depth=16385, width=36, waddr=a, wdata=d, wen=1, raddr=a, name="x")
    with pytest.raises(ValueError, match="wdata has 36 bits, not 40"):
        ecp5_fifo_ram(m, depth=512, width=40, waddr=a, wdata=d, wen=1, raddr=a, name="x")
    with pytest.raises(ValueError, match="raddr has 10 bits; a 36-bit DP16KD has 9"):
        ecp5_fifo_ram(m, depth=512, width=36, waddr=a, wdata=d, wen=1, raddr=Signal(10),
                      name="x")
    assert ecp5_fifo_ram_blocks(512, 256) == 8 and ecp5_fifo_ram_blocks(513, 36) == 2
    assert ecp5_fifo_ram_blocks(16385, 8) is None
    Fragment.get(m, None)


# --- read-only tables (the activation ROMs) ----------------------------------------------------
class _Rom(wiring.Component):
    """A generic ROM read through one synchronous port: Yosys maps it to one DP16KD."""

    def __init__(self, init, width):
        self.init, self.width = init, width
        super().__init__({"addr": In((len(init) - 1).bit_length()), "data": Out(width)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=unsigned(self.width), depth=len(self.init),
                                        init=self.init)
        port = mem.read_port(domain="sync")
        m.d.comb += [port.addr.eq(self.addr), self.data.eq(port.data)]
        return m


@pytest.mark.parametrize("depth,width", [(1024, 18), (2048, 9)])
def test_rom_initvals_equal_yosys(tmp_path, depth, width):
    """`dp16kd_initvals` lays a table out in the INITVAL parameters exactly as Yosys's own
    block RAM mapping does for the same contents."""
    rng = np.random.default_rng(depth)
    init = [int(v) for v in rng.integers(0, 1 << width, depth)]
    synth_ecp5(_Rom(init, width), name="rom", pnr=False, workdir=tmp_path)
    cells = json.loads((tmp_path / "top.json").read_text())["modules"]["rom"]["cells"]
    blocks = [c for c in cells.values() if c["type"] == "DP16KD"]
    assert len(blocks) == 1
    params = blocks[0]["parameters"]
    assert int(params["DATA_WIDTH_B"], 2) == width or int(params["DATA_WIDTH_A"], 2) == width
    mine = dp16kd_initvals(init, width)
    for k, v in mine.items():
        assert int(params[k], 2) == v, k


def _activation_stimulus(fmt, lanes, cycles, seed):
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 1 << fmt.word_bits, (cycles, lanes), dtype=np.uint64)
    data = np.zeros(cycles, dtype=object)
    for i in range(lanes):
        data = data + (words[:, i].astype(object) << (i * fmt.word_bits))
    func = rng.integers(0, 4, cycles).astype(object)
    payload = data + (func << (lanes * fmt.word_bits))
    return {"i__valid": (rng.random(cycles) < 0.7).astype(np.uint64),
            "i__payload": payload.astype(np.uint64),
            "o__ready": (rng.random(cycles) < 0.6).astype(np.uint64)}


def _run_unit(dut, platform, stim, cycles):
    text = verilog.convert(dut, name="act", platform=platform, emit_src=False)
    model = verilator_eval.VerilatorModel(text + (ECP5_DP16KD_MODEL if platform else ""),
                                          name="act")
    return model.run(cycles, **stim), text


@pytest.mark.parametrize("fmt", [FixedPoint(), BFloat16()], ids=["q8.8", "bf16"])
def test_activation_ecp5_roms_cycle_exact(fmt):
    """The activation unit elaborated for ECP5 (its tables in DP16KD blocks whose output
    register is the stage behind the ROM) gives every output of the generic one, every
    cycle, on random beats (all four functions) under random stalls."""
    _needs_verilator()
    lanes, cycles = 2, 4000          # one table, read through both ports of its blocks
    stim = _activation_stimulus(fmt, lanes, cycles, seed=fmt.word_bits)
    generic, gtext = _run_unit(ActivationUnit(fmt, lanes, stages=5), None, stim, cycles)
    ecp5, etext = _run_unit(ActivationUnit(fmt, lanes, stages=5), Ecp5SynthHints(), stim,
                            cycles)
    assert "DP16KD" not in gtext
    blocks = ecp5_rom_blocks(2048, fmt.word_bits) * lanes // 2
    assert etext.count('.REGMODE_B("OUTREG")') == blocks
    for port, values in generic.items():
        np.testing.assert_array_equal(ecp5[port], values, err_msg=port)
    taken = generic["o__valid"].astype(bool) & stim["o__ready"].astype(bool)
    assert taken.sum() > cycles // 4
    # stages below 5 have no register behind the ROM to move: generic tables
    text = verilog.convert(ActivationUnit(fmt, lanes, stages=4), name="act",
                           platform=Ecp5SynthHints(), emit_src=False)
    assert "DP16KD" not in text


def test_rom_bad_arguments():
    m = Module()
    a = Signal(11)
    with pytest.raises(ValueError, match="4096 rows do not fit"):
        ecp5_rom(m, init=[0] * 4096, width=4, addrs=[a], en=1, name="x")
    with pytest.raises(ValueError, match="1 or 2 read ports"):
        ecp5_rom(m, init=[0] * 16, width=4, addrs=[a, a, a], en=1, name="x")
    with pytest.raises(ValueError, match="an entry does not fit 4 bits"):
        ecp5_rom(m, init=[16], width=4, addrs=[a], en=1, name="x")
    with pytest.raises(ValueError, match="an address has 12 bits; a 9-bit DP16KD has 11"):
        ecp5_rom(m, init=[0] * 2048, width=9, addrs=[Signal(12)], en=1, name="x")
    assert ecp5_rom_blocks(2048, 16) == 2 and ecp5_rom_blocks(1024, 16) == 1
    assert ecp5_rom_blocks(2049, 16) is None
    Fragment.get(m, None)
