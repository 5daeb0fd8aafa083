import pytest
from amaranth.lib import data
from hypothesis import given, settings, strategies as st

from reneta_hw.config import AcceleratorConfig
from reneta_hw.isa import (Assembler, Func, IllegalInstruction, Instruction, Proc, check,
                           decode, descriptor_layout, disassemble, encode, from_words,
                           instruction_layout, pack_descriptor, to_words, unpack_descriptor,
                           words_per_instruction)

CFG = AcceleratorConfig()


def instructions(cfg):
    lay = instruction_layout(cfg)
    fields = {}
    for name, f in lay:
        if name == "proc":
            fields[name] = st.sampled_from(list(Proc))
        elif name == "func":
            fields[name] = st.sampled_from(list(Func))
        else:
            fields[name] = st.integers(0, (1 << f.width) - 1)
    return st.builds(Instruction, **fields)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_encode_decode_round_trip(d):
    cfg = d.draw(st.sampled_from([CFG, AcceleratorConfig(num_pe=4, max_n=64, max_m=32,
                                                         smem_depth=1024, spm_depth=64)]))
    ins = d.draw(instructions(cfg))
    assert decode(cfg, encode(cfg, ins)) == ins
    assert from_words(cfg, to_words(cfg, ins)) == ins
    assert Instruction.from_json(ins.to_json()) == ins


def test_layout_is_the_gateware_layout():
    lay = instruction_layout(CFG)
    ins = Instruction(proc=Proc.VXV_SP, func=Func.TANH, nt=256, t=255, n1=256, cnt2=15,
                      smem_dst=0x1FFF, dram_dst=0xDEAD_BEE0, pause=1)
    word = encode(CFG, ins)
    # the amaranth view of the same bits decodes the same fields
    c = data.Const(lay, word)
    assert c.proc == Proc.VXV_SP and c.func == Func.TANH
    assert c.nt == 256 and c.n1 == 256 and c.t == 255 and c.pause == 1
    assert c.smem_dst == 0x1FFF and c.dram_dst == 0xDEAD_BEE0
    assert words_per_instruction(CFG) * 32 >= lay.size


def test_n1_and_count_can_express_max_n_and_zero():
    ins = Instruction(n1=CFG.max_n)
    assert decode(CFG, encode(CFG, ins)).n1 == 256
    for count in (0, 256):
        w = pack_descriptor(CFG, head_row=4095, head_lane=15, count=count)
        assert unpack_descriptor(CFG, w) == (4095, 15, count)
    assert descriptor_layout(CFG).size == CFG.count_bits + CFG.lane_bits + CFG.smem_addr_bits


def test_field_overflow_is_named():
    with pytest.raises(IllegalInstruction, match=r"instruction\.nt = 512 does not fit"):
        encode(CFG, Instruction(nt=512))
    with pytest.raises(IllegalInstruction, match=r"descriptor\.count"):
        pack_descriptor(CFG, 0, 0, 1024)


def test_check_rejects_with_reasons():
    a = Assembler(CFG)
    with pytest.raises(IllegalInstruction, match="t=5 must be < nt=5"):
        a.mxv_sp(t=5, nt=5, blocks=1, n1=16, spm_addr=0, nzl=0, values=0, w_dram=0,
                 dst_smem=0)
    with pytest.raises(IllegalInstruction, match="exceed max_n"):
        a.mxv_sp(t=0, nt=5, blocks=17, n1=16, spm_addr=0, nzl=0, values=0, w_dram=0)
    with pytest.raises(IllegalInstruction, match="multiple of the row size"):
        a.mxv_sp(t=0, nt=5, blocks=1, n1=16, spm_addr=0, nzl=0, values=0, w_dram=6)
    with pytest.raises(IllegalInstruction, match="exceed smem_depth"):
        a.mxv_sp(t=0, nt=8, blocks=4, n1=16, spm_addr=0, nzl=0, values=0, w_dram=0,
                 dst_smem=8190)
    with pytest.raises(IllegalInstruction, match="spm_depth"):
        a.vxv_sp(steps=8, nt=8, blocks=1, n1=16, spm_addr=510, nzl=0, values=0, g_dram=0)
    with pytest.raises(IllegalInstruction, match="inputs exceed n1"):
        a.mxv(steps=2, nt=2, blocks=1, n_in=17, n1=16, act=0, w_dram=0)
    with pytest.raises(IllegalInstruction, match="either in DRAM or in SMEM"):
        a.mxv_sp(t=0, nt=5, blocks=1, n1=16, spm_addr=0, nzl=0, values=0)
    small = AcceleratorConfig(procedures=("MxV_SP",))
    with pytest.raises(IllegalInstruction, match="not included"):
        check(small, Instruction(proc=Proc.VXV_SP, src1=1, nt=1, n1=1))
    with pytest.raises(IllegalInstruction, match="src1 must be 1"):
        check(CFG, Instruction(proc=Proc.MxV_SP, nt=1, n1=1))
    assert a.instructions == []


def test_assembler_and_disassembly():
    a = Assembler(CFG)
    a.mxv_sp(t=3, nt=64, blocks=4, n1=64, spm_addr=0, nzl=0, values=0x1000, w_dram=0,
             dst_smem=0x1800)
    a.mtxv_sp(t=3, nt=64, blocks=4, n1=64, spm_addr=0, nzl=0, grad=0x1100, w_dram=0,
              dst_dram=0x10000, func=Func.RELU)
    a.vxv_sp(steps=64, nt=64, blocks=4, n1=64, spm_addr=0, nzl=0, values=0x1000,
             g_smem=0x1100, dst_dram=0x20000, pause=1)
    text = a.disassemble()
    lines = text.splitlines()
    assert len(lines) == 3
    assert "MxV_SP" in lines[0] and "t=3" in lines[0] and "blocks=4" in lines[0]
    assert "-> smem[0x1800]" in lines[0] and "op0=dram[0x0]" in lines[0]
    assert "func=relu" in lines[1] and "-> dram[0x10000]" in lines[1]
    assert "steps=64" in lines[2] and "op0=smem[0x1100]" in lines[2] and "pause" in lines[2]
    assert disassemble(a.instructions) == text
    words = a.words()
    assert all(len(w) == words_per_instruction(CFG) for w in words)
    assert [from_words(CFG, w) for w in words] == a.instructions
