"""Error codes of the machine raised by crafted bad inputs, as the host reads them in
ERROR: a repeated index within one non-zero list (code 4, `ErrorCode.DUPLICATE`), while the
same index in the lists of different timesteps is legal."""

import numpy as np
import pytest

from reneta_hw.config import AcceleratorConfig
from reneta_hw.core import ErrorCode
from reneta_hw.isa import Assembler, IllegalInstruction, pack_descriptor
from sim.golden import GoldenModel, Memories
from sim.harness import HarnessError, run_pysim
from sim.vectors import VectorSet

CFG = AcceleratorConfig(num_pe=4, max_n=16, max_m=16, smem_depth=256, spm_depth=16,
                        axi_data_width=64, axi_addr_width=16, instr_queue_depth=4)


def _problem():
    """Lists: timestep 0 = (1, 3), timestep 1 = (3, 5) - index 3 again, in another list:
    legal -, timestep 2 = (5, 5): a repeat. VXV_SP over t = 0, 1, then MxV_SP at t = 2."""
    mem = Memories.empty(CFG, 256)
    mem.dram[:8 * 8 * 4] = np.arange(8 * 8 * 4) % 50 + 1
    mem.smem[100] = [1, 3, 3, 5]
    mem.smem[101] = [5, 5, 0, 0]
    mem.smem[110:112] = 256                          # values
    mem.smem[120:128] = 7                            # gradients (VXV_SP operand 0)
    for t in range(3):
        mem.spm[t] = pack_descriptor(CFG, (2 * t) // 4, (2 * t) % 4, 2)
    a = Assembler(CFG)
    a.vxv_sp(steps=2, nt=3, blocks=2, n1=8, spm_addr=0, nzl=100, values=110, g_smem=120,
             dst_smem=140)
    a.mxv_sp(t=2, nt=3, blocks=2, n1=8, spm_addr=0, nzl=100, values=110, w_dram=0,
             dst_smem=160)
    return VectorSet(CFG, a.instructions, mem)


def test_repeated_index_reports_duplicate():
    vs = _problem()
    gm = GoldenModel(CFG, vs.memories.copy())
    gm.execute(vs.program[0], 0)                    # the same index in two lists: fine
    with pytest.raises(IllegalInstruction, match="repeat"):
        gm.execute(vs.program[1], 1)
    with pytest.raises(HarnessError,
                       match=f"error code {ErrorCode.DUPLICATE} at instruction 1"):
        run_pysim(vs, max_cycles=5000)
