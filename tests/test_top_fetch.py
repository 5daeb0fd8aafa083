"""Programs fetched from DRAM (PROG_ADDR/PROG_COUNT, CTRL.FETCH) run exactly like programs
pushed over AXI4-Lite: same memories, same retired count, pauses included, under random
DRAM back-pressure (the fetcher's and the core's reads share the AXI4 read channels)."""

import numpy as np
import pytest

from reneta_hw.config import AcceleratorConfig
from reneta_hw.ctrl.fetch import program_image, program_slot_bytes
from reneta_hw.isa import Assembler, from_words, words_per_instruction
from reneta_hw.top import REG, register_map
from sim.golden import GoldenModel, Memories
from sim.harness import run_pysim
from sim.layout import timeseries_to_rows, weights_to_rows
from sim.vectors import VectorSet

CFG = AcceleratorConfig(num_pe=4, max_n=16, max_m=16, smem_depth=256, spm_depth=16,
                        axi_data_width=64, axi_addr_width=16, instr_queue_depth=4)


def _program():
    """DELTA over a raw input series, MxV_SP per timestep (one paused), a VXV_SP."""
    fmt = CFG.fmt
    rng = np.random.default_rng(11)
    n, nt = 8, 4
    x = fmt.encode(np.cumsum(rng.normal(0, 1, size=(n, nt)), axis=1))
    w = fmt.encode(rng.normal(0, 0.5, size=(8, n)))
    g = fmt.encode(rng.normal(0, 0.5, size=(8, nt)))
    mem = Memories.empty(CFG, 512)
    xr, gr = timeseries_to_rows(x, 4), timeseries_to_rows(g, 4)
    mem.smem[:xr.shape[0]] = xr
    mem.smem[20:20 + gr.shape[0]] = gr
    wr = weights_to_rows(w, 4)
    mem.dram[:wr.size] = wr.reshape(-1)
    a = Assembler(CFG)
    a.delta(steps=nt, nt=nt, n=n, theta=int(fmt.encode(np.float64(0.3))), nzl=100,
            values=150, spm_addr=0, x_smem=0)
    for t in range(nt):
        a.mxv_sp(t=t, nt=nt, blocks=2, n1=n, spm_addr=0, nzl=100, values=150, w_dram=0,
                 dst_dram=0x100, pause=int(t == 1))
    a.vxv_sp(steps=nt, nt=nt, blocks=2, n1=n, spm_addr=0, nzl=100, values=150, g_smem=20,
             dst_smem=60)
    return VectorSet(CFG, a.instructions, mem)


def test_program_image_round_trips():
    vs = _program()
    img = program_image(CFG, vs.program)
    slot = program_slot_bytes(CFG)
    W = words_per_instruction(CFG)
    assert slot >= 4 * W and slot & (slot - 1) == 0
    for k, ins in enumerate(vs.program):
        words = [int.from_bytes(bytes(img[k * slot + 4 * j:k * slot + 4 * j + 4]), "little")
                 for j in range(W)]
        assert from_words(CFG, words) == ins
    names = {r.name for r in register_map(CFG)}
    assert {"prog_addr", "prog_count"} <= names and REG["PROG_COUNT"] == 0x38


@pytest.mark.parametrize("stall", [0.4, pytest.param(0.0, marks=pytest.mark.slow)])
def test_dram_fetched_program_equals_axil_pushed(stall):
    vs = _program()
    gold = vs.memories.copy()
    gm = GoldenModel(CFG, gold)
    for k, ins in enumerate(vs.program):          # through the pause
        gm.execute(ins, k)
    runs = {src: run_pysim(vs, dram_latency=6, dram_stall=stall, seed=2, program_in=src,
                           max_cycles=20000)
            for src in ("axil", "dram")}
    for src, h in runs.items():
        assert (h.memories.smem == gold.smem).all(), src
        assert (h.memories.spm == gold.spm).all(), src
        assert (h.memories.dram == gold.dram).all(), src
        assert h.pauses == 1
        assert h.counters["retired"] == len(vs.program)
    assert runs["dram"].counters["mac_beats"] == runs["axil"].counters["mac_beats"]


def test_bad_program_source():
    with pytest.raises(ValueError, match="program_in"):
        run_pysim(_program(), program_in="flash")


def test_fetch_from_outside_dram_stops_with_bus_error():
    """A program pointer past the DRAM: DECERR on the fetch -> core error code 2 (BUS)."""
    from reneta_hw.core import ErrorCode
    from sim.harness import HarnessError
    vs = _program()
    vs.program = vs.program[:1]
    with pytest.raises(HarnessError, match=f"error code {ErrorCode.BUS}"):
        run_pysim(vs, program_in="dram", max_cycles=5000, program_addr=0xF000)
