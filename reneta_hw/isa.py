"""The instruction set: layouts, encode/decode, checks, an assembler and a disassembler.

One instruction is one packed record whose layout (`instruction_layout`) is an
`amaranth.lib.data.StructLayout` built from an `AcceleratorConfig`, so the gateware
decodes the very same bits Python encodes. Fields, from the LSB:

==========  ==================  ==============================================================
field       width               meaning
==========  ==================  ==============================================================
proc        4                   `Proc`
func        2                   `Func` applied to every result word
pause       1                   stop after this instruction (the host resumes the machine)
src0        1                   operand 0 from 0 = DRAM (``dram_op0``), 1 = SMEM (``smem_op0``)
src1        1                   operand 1 from SMEM (``smem_op1``); must be 1 for compute procs
dst0        1                   write results to SMEM at ``smem_dst``
dst1        1                   write results to DRAM at ``dram_dst``
nt          bits(max_m)         timesteps of the sample: row stride of time-series layouts
t           bits(max_m-1)       current timestep (MxV_SP, MTxV_SP)
cnt0..cnt2  bits(max(N,M)-1)    loop bounds, inclusive (iterations - 1), as the reference
n1          bits(max_n)         previous-layer size: weight rows per block (can be max_n)
spm_addr    bits(spm_depth-1)   SPM address of timestep 0's descriptor
smem_nzl    bits(smem_depth-1)  SMEM row of the non-zero index list
smem_op0    bits(smem_depth-1)  SMEM row of operand 0 (when src0 = 1)
smem_op1    bits(smem_depth-1)  SMEM row of operand 1 (NZ value list or time series)
smem_dst    bits(smem_depth-1)  SMEM row of the results (when dst0 = 1)
dram_op0    axi_addr_width      DRAM byte address of operand 0 (when src0 = 0), row aligned
dram_dst    axi_addr_width      DRAM byte address of the results (when dst1 = 1), row aligned
==========  ==================  ==============================================================

Memory layouts (Np = ``num_pe``; "row" = Np words; DRAM rows are ``row_bytes`` apart):

* weights W (``blocks*Np`` x n1) and weight gradients: row ``base + b*n1 + i`` holds
  ``W[b*Np + p][i]`` on lane p;
* time series V (N x nt): row ``base + (n // Np)*nt + t`` holds ``V[n][t]`` on lane ``n % Np``;
* sparse lists: timestep t's descriptor at SPM ``spm_addr + t`` is (head_row, head_lane,
  count); its element g sits at row ``base + head_row + (head_lane + g) // Np``, lane
  ``(head_lane + g) % Np``, with ``base = smem_nzl`` for the indices and ``smem_op1`` for
  the values. A count of 0 is legal.

What each procedure computes is written down, with its summation order, in `sim.golden`.

``DELTA`` (delta encoding on the machine) reuses the fields: the source time series (``n1``
elements, row stride ``nt``) at ``smem_op0`` (``src0 = 1``) or ``dram_op0`` (``src0 = 0``);
timesteps ``t .. t + cnt0`` are encoded; θ is the low ``word_bits`` of ``dram_dst`` (a
field, not a register, so one program can encode x and h, or several layers, with their own
thresholds and run unattended from DRAM; DELTA writes no DRAM result, ``dst0 = dst1 = 0``);
``cnt2`` picks one of `DELTA_XHAT_REGIONS` x̂ regions in the encoder's memory (e.g. x and h
of a layer). The index list goes to ``smem_nzl``, the value (Δ) list to ``smem_op1``,
timestep t's descriptor to SPM ``spm_addr + t``: exactly the operands a later ``MxV_SP`` /
``MTxV_SP`` / ``VXV_SP`` with the same ``smem_nzl``/``smem_op1``/``spm_addr`` reads. With
``t = 0`` the sequence starts: x̂ is taken as +0 words and the lists start at row 0, lane 0
(relative to the bases); with ``t > 0`` x̂ is the region's state left by the previous
DELTA on it and the lists continue after the list of timestep ``t - 1`` (its SPM descriptor).
"""

from __future__ import annotations

import dataclasses
import enum as py_enum
from dataclasses import dataclass

from amaranth import unsigned
from amaranth.lib import data, enum

from .config import AcceleratorConfig
from .numeric.activation import Func

__all__ = [
    "Proc", "Func", "Instruction", "IllegalInstruction", "instruction_layout",
    "descriptor_layout", "encode", "decode", "to_words", "from_words", "words_per_instruction",
    "pack_descriptor", "unpack_descriptor", "check", "Assembler", "disassemble",
    "DELTA_XHAT_REGIONS", "delta_theta", "delta_blocks",
]


class Proc(enum.Enum, shape=4):
    IDLE = 0
    MxV = 1
    MTxV = 2
    VXV = 3
    MxV_SP = 4
    MTxV_SP = 5
    VXV_SP = 6
    DELTA = 7


#: x̂ regions of the machine's delta encoder (each ``max_n`` words): DELTA's ``cnt2``
DELTA_XHAT_REGIONS = 4
SPARSE_PROCS = (Proc.MxV_SP, Proc.MTxV_SP, Proc.VXV_SP)
COMPUTE_PROCS = (Proc.MxV, Proc.MTxV, Proc.VXV) + SPARSE_PROCS


class IllegalInstruction(ValueError):
    """An instruction the machine refuses: the message names the field and the rule."""


def instruction_layout(cfg: AcceleratorConfig) -> data.StructLayout:
    """The packed instruction record for ``cfg`` (fields LSB first)."""
    a = cfg.smem_addr_bits
    return data.StructLayout({
        "proc": Proc,
        "func": unsigned(2),
        "pause": unsigned(1),
        "src0": unsigned(1),
        "src1": unsigned(1),
        "dst0": unsigned(1),
        "dst1": unsigned(1),
        "nt": unsigned(cfg.nt_bits),
        "t": unsigned(cfg.t_bits),
        "cnt0": unsigned(cfg.cnt_bits),
        "cnt1": unsigned(cfg.cnt_bits),
        "cnt2": unsigned(cfg.cnt_bits),
        "n1": unsigned(cfg.n_bits),
        "spm_addr": unsigned(cfg.spm_addr_bits),
        "smem_nzl": unsigned(a),
        "smem_op0": unsigned(a),
        "smem_op1": unsigned(a),
        "smem_dst": unsigned(a),
        "dram_op0": unsigned(cfg.dram_addr_bits),
        "dram_dst": unsigned(cfg.dram_addr_bits),
    })


def descriptor_layout(cfg: AcceleratorConfig) -> data.StructLayout:
    """One SPM entry: the sparse descriptor of one timestep (fields LSB first)."""
    return data.StructLayout({
        "count": unsigned(cfg.count_bits),
        "head_lane": unsigned(cfg.lane_bits),
        "head_row": unsigned(cfg.smem_addr_bits),
    })


def _pack(layout: data.StructLayout, values: dict, what: str) -> int:
    word = 0
    for name, fld in layout:
        v = values[name]
        v = int(v.value if isinstance(v, py_enum.Enum) else v)
        if not 0 <= v < (1 << fld.width):
            raise IllegalInstruction(
                f"{what}.{name} = {v} does not fit its {fld.width}-bit field "
                f"(0 .. {(1 << fld.width) - 1})")
        word |= v << fld.offset
    return word


def _unpack(layout: data.StructLayout, word: int) -> dict:
    return {name: (int(word) >> fld.offset) & ((1 << fld.width) - 1) for name, fld in layout}


def pack_descriptor(cfg: AcceleratorConfig, head_row: int, head_lane: int, count: int) -> int:
    return _pack(descriptor_layout(cfg),
                 {"head_row": head_row, "head_lane": head_lane, "count": count}, "descriptor")


def unpack_descriptor(cfg: AcceleratorConfig, word: int) -> tuple[int, int, int]:
    """(head_row, head_lane, count) of an SPM word."""
    d = _unpack(descriptor_layout(cfg), word)
    return d["head_row"], d["head_lane"], d["count"]


@dataclass(frozen=True)
class Instruction:
    proc: Proc = Proc.IDLE
    func: Func = Func.NONE
    pause: int = 0
    src0: int = 0
    src1: int = 0
    dst0: int = 0
    dst1: int = 0
    nt: int = 0
    t: int = 0
    cnt0: int = 0
    cnt1: int = 0
    cnt2: int = 0
    n1: int = 0
    spm_addr: int = 0
    smem_nzl: int = 0
    smem_op0: int = 0
    smem_op1: int = 0
    smem_dst: int = 0
    dram_op0: int = 0
    dram_dst: int = 0

    def __post_init__(self):
        object.__setattr__(self, "proc", Proc(self.proc))
        object.__setattr__(self, "func", Func(self.func))

    def replace(self, **kw) -> "Instruction":
        return dataclasses.replace(self, **kw)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["proc"] = self.proc.name
        d["func"] = self.func.name
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Instruction":
        d = dict(d)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise IllegalInstruction(f"instruction: unknown field(s) {', '.join(sorted(unknown))}")
        if isinstance(d.get("proc"), str):
            try:
                d["proc"] = Proc[d["proc"]]
            except KeyError:
                raise IllegalInstruction(f"instruction: unknown proc {d['proc']!r}") from None
        if isinstance(d.get("func"), str):
            try:
                d["func"] = Func[d["func"].upper()]
            except KeyError:
                raise IllegalInstruction(f"instruction: unknown func {d['func']!r}") from None
        return cls(**d)


def encode(cfg: AcceleratorConfig, ins: Instruction) -> int:
    """The instruction as one integer laid out by `instruction_layout`."""
    return _pack(instruction_layout(cfg), dataclasses.asdict(ins) | {"proc": ins.proc},
                 "instruction")


def decode(cfg: AcceleratorConfig, word: int) -> Instruction:
    d = _unpack(instruction_layout(cfg), word)
    try:
        d["proc"] = Proc(d["proc"])
    except ValueError:
        raise IllegalInstruction(f"instruction: proc field {d['proc']} is no procedure") from None
    return Instruction(**d)


def words_per_instruction(cfg: AcceleratorConfig) -> int:
    """32-bit words one instruction takes (the AXI4-Lite queue is written in words)."""
    return -(-instruction_layout(cfg).size // 32)


def to_words(cfg: AcceleratorConfig, ins: Instruction) -> list[int]:
    """32-bit words, least significant first."""
    v = encode(cfg, ins)
    return [(v >> (32 * k)) & 0xFFFF_FFFF for k in range(words_per_instruction(cfg))]


def from_words(cfg: AcceleratorConfig, words) -> Instruction:
    words = [int(w) for w in words]
    if len(words) != words_per_instruction(cfg):
        raise IllegalInstruction(
            f"instruction: expected {words_per_instruction(cfg)} 32-bit words, got {len(words)}")
    return decode(cfg, sum(w << (32 * k) for k, w in enumerate(words)))


# --- static checks -----------------------------------------------------------------------

def loop_sizes(ins: Instruction) -> dict:
    """Natural sizes of a compute instruction (iterations of each loop)."""
    p = ins.proc
    if p == Proc.MxV_SP:
        return {"blocks": ins.cnt2 + 1}
    if p == Proc.MTxV_SP:
        return {"blocks": ins.cnt1 + 1}
    if p == Proc.VXV_SP:
        return {"blocks": ins.cnt2 + 1, "steps": ins.cnt1 + 1}
    if p == Proc.MxV:
        return {"blocks": ins.cnt2 + 1, "n_in": ins.cnt1 + 1, "steps": ins.cnt0 + 1}
    if p == Proc.MTxV:
        return {"blocks": ins.cnt1 + 1, "n_in": ins.cnt2 + 1, "steps": ins.cnt0 + 1}
    if p == Proc.VXV:
        return {"blocks": ins.cnt2 + 1, "n_in": ins.cnt0 + 1, "steps": ins.cnt1 + 1}
    if p == Proc.DELTA:
        return {"steps": ins.cnt0 + 1}
    return {}


def delta_theta(cfg: AcceleratorConfig, ins: Instruction) -> int:
    """DELTA's threshold word θ (the low ``word_bits`` of ``dram_dst``)."""
    return ins.dram_dst & cfg.fmt.word_mask


def delta_blocks(cfg: AcceleratorConfig, ins: Instruction) -> int:
    """Rows (beats of ``num_pe`` words) of one DELTA source vector of ``n1`` elements."""
    return -(-ins.n1 // cfg.num_pe)


def _check_delta(cfg: AcceleratorConfig, ins: Instruction, need) -> None:
    """DELTA's rules, in the order of `reneta_hw.ctrl.checker.python_rule`."""
    steps = ins.cnt0 + 1
    need(ins.src1 == 1, "src1 must be 1: the value list goes to SMEM")
    need(1 <= ins.nt <= cfg.max_m, f"nt={ins.nt} must be 1 .. max_m={cfg.max_m}")
    need(1 <= ins.n1 <= cfg.max_n, f"n1={ins.n1} must be 1 .. max_n={cfg.max_n}")
    need(ins.t < ins.nt, f"t={ins.t} must be < nt={ins.nt}")
    need(ins.t + steps <= ins.nt, f"timesteps t={ins.t} .. {ins.t + steps - 1} exceed nt={ins.nt}")
    need(ins.spm_addr + ins.t + steps <= cfg.spm_depth,
         f"SPM entries spm_addr={ins.spm_addr} + t up to {ins.t + steps - 1} exceed spm_depth="
         f"{cfg.spm_depth}")
    if ins.src0 == 0:
        need(ins.dram_op0 % cfg.row_bytes == 0,
             f"dram_op0={ins.dram_op0:#x} must be a multiple of the row size {cfg.row_bytes}")
    for name, (lo, hi) in region_rows(cfg, ins).items():
        if name.startswith("smem_"):
            need(hi <= cfg.smem_depth,
                 f"{name} rows {lo} .. {hi - 1} exceed smem_depth={cfg.smem_depth}")
    need(ins.cnt2 < DELTA_XHAT_REGIONS,
         f"x̂ region cnt2={ins.cnt2} must be < {DELTA_XHAT_REGIONS}")
    need(ins.dst0 == 0 and ins.dst1 == 0, "dst0 and dst1 must be 0 (DELTA writes lists only)")
    need(ins.dram_dst <= cfg.fmt.word_mask,
         f"θ (dram_dst={ins.dram_dst:#x}) must be one {cfg.word_bits}-bit word")


def check(cfg: AcceleratorConfig, ins: Instruction, where: str = "instruction") -> None:
    """Raise `IllegalInstruction` unless ``ins`` is legal for ``cfg`` (memory sizes aside:
    SMEM bounds are checked here, DRAM bounds by whoever knows the DRAM's size)."""
    encode(cfg, ins)  # every field fits

    def need(ok, msg):
        if not ok:
            raise IllegalInstruction(f"{where} ({ins.proc.name}): {msg}")

    if ins.proc == Proc.IDLE:
        return
    if ins.proc == Proc.DELTA:       # always elaborated: not one of cfg.procedures
        return _check_delta(cfg, ins, need)
    need(ins.proc.name in cfg.procedures,
         f"procedure not included in this accelerator (procedures={list(cfg.procedures)})")
    s = loop_sizes(ins)
    need(ins.src1 == 1, "src1 must be 1: operand 1 comes from SMEM")
    need(1 <= ins.nt <= cfg.max_m, f"nt={ins.nt} must be 1 .. max_m={cfg.max_m}")
    need(1 <= ins.n1 <= cfg.max_n, f"n1={ins.n1} must be 1 .. max_n={cfg.max_n}")
    need(s["blocks"] * cfg.num_pe <= cfg.max_n,
         f"{s['blocks']} blocks of {cfg.num_pe} rows exceed max_n={cfg.max_n}")
    if ins.proc in (Proc.MxV_SP, Proc.MTxV_SP):
        need(ins.t < ins.nt, f"t={ins.t} must be < nt={ins.nt}")
    if "steps" in s:
        need(s["steps"] <= ins.nt, f"{s['steps']} timesteps exceed nt={ins.nt}")
    if "n_in" in s:
        need(s["n_in"] <= ins.n1, f"{s['n_in']} inputs exceed n1={ins.n1}")
    if ins.proc in SPARSE_PROCS:
        last_t = s["steps"] - 1 if ins.proc == Proc.VXV_SP else ins.t
        need(ins.spm_addr + last_t < cfg.spm_depth,
             f"SPM entries spm_addr={ins.spm_addr} + t up to {last_t} exceed spm_depth="
             f"{cfg.spm_depth}")
    if ins.src0 == 0:
        need(ins.dram_op0 % cfg.row_bytes == 0,
             f"dram_op0={ins.dram_op0:#x} must be a multiple of the row size {cfg.row_bytes}")
    if ins.dst1:
        need(ins.dram_dst % cfg.row_bytes == 0,
             f"dram_dst={ins.dram_dst:#x} must be a multiple of the row size {cfg.row_bytes}")
    for name, rows in region_rows(cfg, ins).items():
        if name.startswith("smem_") and rows is not None:
            lo, hi = rows
            need(hi <= cfg.smem_depth,
                 f"{name} rows {lo} .. {hi - 1} exceed smem_depth={cfg.smem_depth}")


def region_rows(cfg: AcceleratorConfig, ins: Instruction) -> dict:
    """Row ranges [lo, hi) an instruction may touch outside the sparse lists, per region.

    Keys: ``smem_op0``/``dram_op0`` (operand 0), ``smem_op1`` (dense operand 1),
    ``smem_dst``/``dram_dst`` (results); DRAM ranges are in rows from the base address.
    """
    s = loop_sizes(ins)
    p, Np = ins.proc, cfg.num_pe
    if p == Proc.DELTA:               # the source time series; the lists: per element
        rows = delta_blocks(cfg, ins) * ins.nt
        return {"smem_op0": (ins.smem_op0, ins.smem_op0 + rows)} if ins.src0 else \
            {"dram_op0": (0, rows)}
    b = s.get("blocks", 0)
    if p in (Proc.MxV_SP, Proc.MTxV_SP, Proc.MxV, Proc.MTxV):
        op0 = b * ins.n1                                  # weights
    else:
        op0 = b * ins.nt                                  # gradient time series
    if p == Proc.MTxV_SP or p == Proc.MTxV:
        op1 = b * ins.nt                                  # gradient time series
    elif p in (Proc.MxV, Proc.VXV):
        op1 = -(-s["n_in"] // Np) * ins.nt                # activation time series
    else:
        op1 = None                                        # value list: checked per element
    if p in (Proc.MxV_SP, Proc.MxV):
        dst = b * ins.nt
    elif p in (Proc.MTxV_SP, Proc.MTxV):
        dst = -(-ins.n1 // Np) * ins.nt
    else:
        dst = b * ins.n1
    out = {}
    if ins.src0:
        out["smem_op0"] = (ins.smem_op0, ins.smem_op0 + op0)
    else:
        out["dram_op0"] = (0, op0)
    if op1 is not None:
        out["smem_op1"] = (ins.smem_op1, ins.smem_op1 + op1)
    if ins.dst0:
        out["smem_dst"] = (ins.smem_dst, ins.smem_dst + dst)
    if ins.dst1:
        out["dram_dst"] = (0, dst)
    return out


# --- assembler ---------------------------------------------------------------------------

class Assembler:
    """Builds programs from natural sizes; every instruction is checked as it is added.

    Destinations: pass ``dst_smem=ROW`` and/or ``dst_dram=BYTE_ADDRESS``; operand 0 comes
    from ``w_dram=`` (DRAM byte address) or ``w_smem=`` (SMEM row).
    """

    def __init__(self, cfg: AcceleratorConfig):
        self.cfg = cfg
        self.instructions: list[Instruction] = []

    def _emit(self, **kw) -> Instruction:
        op0_dram, op0_smem = kw.pop("op0_dram"), kw.pop("op0_smem")
        dst_smem, dst_dram = kw.pop("dst_smem"), kw.pop("dst_dram")
        if (op0_dram is None) == (op0_smem is None):
            raise IllegalInstruction("assembler: give operand 0 either in DRAM or in SMEM")
        ins = Instruction(
            src0=int(op0_smem is not None), src1=1,
            dram_op0=op0_dram or 0, smem_op0=op0_smem or 0,
            dst0=int(dst_smem is not None), smem_dst=dst_smem or 0,
            dst1=int(dst_dram is not None), dram_dst=dst_dram or 0, **kw)
        check(self.cfg, ins, where=f"instruction {len(self.instructions)}")
        self.instructions.append(ins)
        return ins

    def mxv_sp(self, *, t, nt, blocks, n1, spm_addr, nzl, values, w_dram=None, w_smem=None,
               dst_smem=None, dst_dram=None, func=Func.NONE, pause=0):
        """``y[b*Np+p] = sum_k W[b*Np+p][nzi_k] * nzv_k`` for timestep t (forward W·Δ_t)."""
        return self._emit(proc=Proc.MxV_SP, t=t, nt=nt, cnt2=blocks - 1, n1=n1,
                          spm_addr=spm_addr, smem_nzl=nzl, smem_op1=values,
                          op0_dram=w_dram, op0_smem=w_smem, dst_smem=dst_smem,
                          dst_dram=dst_dram, func=func, pause=pause)

    def mtxv_sp(self, *, t, nt, blocks, n1, spm_addr, nzl, grad, w_dram=None, w_smem=None,
                dst_smem=None, dst_dram=None, func=Func.NONE, pause=0):
        """``z_k = sum_b sum_p W[b*Np+p][nzi_k] * G_t[b*Np+p]`` per non-zero k (Wᵀ·G_t)."""
        return self._emit(proc=Proc.MTxV_SP, t=t, nt=nt, cnt1=blocks - 1, n1=n1,
                          spm_addr=spm_addr, smem_nzl=nzl, smem_op1=grad,
                          op0_dram=w_dram, op0_smem=w_smem, dst_smem=dst_smem,
                          dst_dram=dst_dram, func=func, pause=pause)

    def vxv_sp(self, *, steps, nt, blocks, n1, spm_addr, nzl, values, g_dram=None, g_smem=None,
               dst_smem=None, dst_dram=None, func=Func.NONE, pause=0):
        """``dW[b*Np+p][i] = sum_t G_t[b*Np+p] * Δ_t[i]``: the full weight gradient."""
        return self._emit(proc=Proc.VXV_SP, nt=nt, cnt1=steps - 1, cnt2=blocks - 1, n1=n1,
                          spm_addr=spm_addr, smem_nzl=nzl, smem_op1=values,
                          op0_dram=g_dram, op0_smem=g_smem, dst_smem=dst_smem,
                          dst_dram=dst_dram, func=func, pause=pause)

    def mxv(self, *, steps, nt, blocks, n_in, n1, act, w_dram=None, w_smem=None,
            dst_smem=None, dst_dram=None, func=Func.NONE, pause=0):
        """``Z[:, t] = W · A[:, t]`` for t < steps (dense)."""
        return self._emit(proc=Proc.MxV, nt=nt, cnt0=steps - 1, cnt1=n_in - 1,
                          cnt2=blocks - 1, n1=n1, smem_op1=act, op0_dram=w_dram,
                          op0_smem=w_smem, dst_smem=dst_smem, dst_dram=dst_dram,
                          func=func, pause=pause)

    def mtxv(self, *, steps, nt, blocks, n_in, n1, grad, w_dram=None, w_smem=None,
             dst_smem=None, dst_dram=None, func=Func.NONE, pause=0):
        """``dA[:, t] = Wᵀ · G[:, t]`` for t < steps (dense)."""
        return self._emit(proc=Proc.MTxV, nt=nt, cnt0=steps - 1, cnt1=blocks - 1,
                          cnt2=n_in - 1, n1=n1, smem_op1=grad, op0_dram=w_dram,
                          op0_smem=w_smem, dst_smem=dst_smem, dst_dram=dst_dram,
                          func=func, pause=pause)

    def vxv(self, *, steps, nt, blocks, n_in, n1, act, g_dram=None, g_smem=None,
            dst_smem=None, dst_dram=None, func=Func.NONE, pause=0):
        """``dW = sum_t G[:, t] · A[:, t]ᵀ`` (dense)."""
        return self._emit(proc=Proc.VXV, nt=nt, cnt0=n_in - 1, cnt1=steps - 1,
                          cnt2=blocks - 1, n1=n1, smem_op1=act, op0_dram=g_dram,
                          op0_smem=g_smem, dst_smem=dst_smem, dst_dram=dst_dram,
                          func=func, pause=pause)

    def delta(self, *, steps, nt, n, theta, nzl, values, spm_addr, t=0, region=0,
              x_smem=None, x_dram=None, pause=0):
        """Delta-encode timesteps ``t .. t+steps-1`` of the time series x (``n`` elements,
        row stride ``nt``; ``x_smem=ROW`` or ``x_dram=BYTE_ADDRESS``) with threshold word
        ``theta`` and x̂ region ``region``: lists to ``nzl``/``values``, descriptors to SPM
        ``spm_addr + t``. ``t = 0`` starts a sequence (x̂ = +0, lists at their bases)."""
        if (x_dram is None) == (x_smem is None):
            raise IllegalInstruction("assembler: give the DELTA source either in DRAM or in SMEM")
        ins = Instruction(proc=Proc.DELTA, src0=int(x_smem is not None), src1=1,
                          smem_op0=x_smem or 0, dram_op0=x_dram or 0, nt=nt, t=t,
                          cnt0=steps - 1, cnt2=region, n1=n, spm_addr=spm_addr,
                          smem_nzl=nzl, smem_op1=values, dram_dst=int(theta), pause=pause)
        check(self.cfg, ins, where=f"instruction {len(self.instructions)}")
        self.instructions.append(ins)
        return ins

    def words(self) -> list[list[int]]:
        return [to_words(self.cfg, i) for i in self.instructions]

    def disassemble(self) -> str:
        return disassemble(self.instructions)


# --- disassembler --------------------------------------------------------------------------

def _fmt_instruction(ins: Instruction) -> str:
    p = ins.proc
    if p == Proc.IDLE:
        return "IDLE" + (" pause" if ins.pause else "")
    if p == Proc.DELTA:
        src = f"smem[{ins.smem_op0:#x}]" if ins.src0 else f"dram[{ins.dram_op0:#x}]"
        return (f"{'DELTA':<8} t={ins.t} steps={ins.cnt0 + 1} nt={ins.nt} n={ins.n1} "
                f"theta={ins.dram_dst:#x} region={ins.cnt2} x={src} -> nzl=smem[{ins.smem_nzl:#x}]"
                f" values=smem[{ins.smem_op1:#x}] spm={ins.spm_addr}"
                + (" pause" if ins.pause else ""))
    s = loop_sizes(ins)
    parts = [f"{p.name:<8}"]
    if p in (Proc.MxV_SP, Proc.MTxV_SP):
        parts.append(f"t={ins.t}")
    if "steps" in s:
        parts.append(f"steps={s['steps']}")
    parts += [f"nt={ins.nt}", f"blocks={s['blocks']}"]
    if "n_in" in s:
        parts.append(f"n_in={s['n_in']}")
    parts.append(f"n1={ins.n1}")
    if p in SPARSE_PROCS:
        parts += [f"spm={ins.spm_addr}", f"nzl=smem[{ins.smem_nzl:#x}]"]
    parts.append("op0=" + (f"smem[{ins.smem_op0:#x}]" if ins.src0 else f"dram[{ins.dram_op0:#x}]"))
    parts.append(f"op1=smem[{ins.smem_op1:#x}]")
    dst = []
    if ins.dst0:
        dst.append(f"smem[{ins.smem_dst:#x}]")
    if ins.dst1:
        dst.append(f"dram[{ins.dram_dst:#x}]")
    parts.append("-> " + (",".join(dst) if dst else "stream"))
    if ins.func != Func.NONE:
        parts.append(f"func={ins.func.name.lower()}")
    if ins.pause:
        parts.append("pause")
    return " ".join(parts)


def disassemble(instructions) -> str:
    """One readable line per instruction, numbered."""
    return "\n".join(f"{k:4d}: {_fmt_instruction(i)}" for k, i in enumerate(instructions))
