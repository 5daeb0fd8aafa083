"""Programs of one procedure over a `tests.golden_problems.Problem`, for the core tests."""

from __future__ import annotations

from reneta_hw.isa import Func

PROCS = ("MxV_SP", "MTxV_SP", "VXV_SP", "MxV", "MTxV", "VXV")


def build_program(pb, proc: str, dst: str = "smem", src: str = "dram", func=Func.NONE,
                  steps: int | None = None):
    """The instructions of ``proc`` over all timesteps of ``pb`` (results to ``dst``:
    "smem", "dram" or "both"; operand 0 from ``src``: "dram" or "smem")."""
    asm = pb.asm()
    a = pb.addr
    kw = {}
    if dst in ("smem", "both"):
        kw["dst_smem"] = a["smem_out"]
    if dst in ("dram", "both"):
        kw["dst_dram"] = a["dram_out"]
    steps = pb.nt if steps is None else steps
    common = dict(nt=pb.nt, blocks=pb.blocks, n1=pb.n_in, func=func, **kw)
    w = {"w_smem": a["w"]} if src == "smem" else {"w_dram": a["dram_w"]}
    g = {"g_smem": a["g"]} if src == "smem" else {"g_dram": a["dram_g"]}
    if proc == "MxV_SP":
        for t in range(steps):
            asm.mxv_sp(t=t, spm_addr=0, nzl=a["nzl"], values=a["nzv"], **w, **common)
    elif proc == "MTxV_SP":
        for t in range(steps):
            asm.mtxv_sp(t=t, spm_addr=0, nzl=a["nzl"], grad=a["g"], **w, **common)
    elif proc == "VXV_SP":
        asm.vxv_sp(steps=steps, spm_addr=0, nzl=a["nzl"], values=a["nzv"], **g, **common)
    elif proc == "MxV":
        asm.mxv(steps=steps, n_in=pb.n_in, act=a["act"], **w, **common)
    elif proc == "MTxV":
        asm.mtxv(steps=steps, n_in=pb.n_in, grad=a["g"], **w, **common)
    elif proc == "VXV":
        asm.vxv(steps=steps, n_in=pb.n_in, act=a["act"], **g, **common)
    else:
        raise ValueError(proc)
    return asm.instructions
