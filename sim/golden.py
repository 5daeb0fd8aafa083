"""The bit-exact, instruction-level golden model of the accelerator (numpy).

It executes a program (`reneta_hw.isa.Instruction` list) over memory images and is the
oracle every other backend is compared with. All arithmetic goes through the number
format's reference functions (`mul`, `add`, `to_word`, `apply_func`), in the order the
hardware performs it - that order is part of the contract:

Np = ``num_pe``; lane p of block b is output row ``b*Np + p``; ``+0`` is the accumulator's
zero; ``acc ⊕= w ⊗ x`` means ``acc = add(acc, mul(w, x))``; every result is
``apply_func(to_word(acc))`` unless said otherwise.

``MxV_SP`` (forward ``W·Δ_t`` for one t)
    per block b, lane p: ``acc = +0``; for each non-zero k of timestep t in list order:
    ``acc ⊕= W[b*Np+p][nzi_k] ⊗ nzv_k``. A timestep with no non-zero gives ``func(+0)``.
    Output: one row per block, written to ``dst + b*nt + t``.
``MTxV_SP`` (backward ``Wᵀ·G_t`` at the fired columns)
    per non-zero k in list order: per block b, the lane chain
    ``s_b = (((+0 ⊕ w0⊗g0) ⊕ w1⊗g1) ... ⊕ w(Np-1)⊗g(Np-1))`` with ``w_p = W[b*Np+p][nzi_k]``
    and ``g_p = G_t[b*Np+p]`` (row ``op1 + b*nt + t``); then ``z = ((+0 ⊕ s_0) ⊕ s_1) ...``
    over blocks in order (``⊕`` alone = ``add``). Output: one word per non-zero, written to
    row ``dst + (nzi//Np)*nt + t``, lane ``nzi % Np`` (other lanes untouched).
``VXV_SP`` (full weight gradient ``Σ_t G_t Δ_tᵀ``)
    per block b, lane p, column i: ``acc = +0``; for t = 0 .. steps-1 in order, if i is a
    non-zero of timestep t with value v: ``acc ⊕= G_t[b*Np+p] ⊗ v`` (G_t at row
    ``op0 + b*nt + t``). Every column 0 .. n1-1 is output (untouched ones are ``func(+0)``):
    row ``dst + b*n1 + i``.
``MxV`` (dense)
    per block b, timestep t, lane p: ``acc = +0``; for n = 0 .. n_in-1:
    ``acc ⊕= W[b*Np+p][n] ⊗ A[n][t]``. Output row ``dst + b*nt + t``.
``MTxV`` (dense)
    per input n, timestep t: lane chain per block as in MTxV_SP with ``w_p = W[b*Np+p][n]``,
    ``g_p = G_t[b*Np+p]``, then the blocks in order. Output row ``dst + (n//Np)*nt + t``,
    lane ``n % Np``.
``VXV`` (dense)
    per block b, input n, lane p: ``acc = +0``; for t in order: ``acc ⊕= G_t[b*Np+p] ⊗ A[n][t]``.
    Output row ``dst + b*n1 + n``.

``DELTA`` (delta encoding, `sim.delta_ref` semantics)
    for each timestep ``t' = t .. t+steps-1`` in order: ``x`` = the n1 words of timestep t'
    of the source time series; ``(Δ, fired, x̂) = delta_step(x, x̂, θ)`` with x̂ the x̂
    region ``cnt2`` (+0 words when ``t' = 0``); the fired elements, ascending, are appended
    to the lists (index and Δ word) at list slot ``pos`` (row ``pos // Np``, lane
    ``pos % Np`` relative to ``smem_nzl`` / ``smem_op1``) and SPM ``spm_addr + t'`` gets
    ``(pos // Np, pos % Np, count)``. ``pos`` starts at 0 when ``t = 0``, else after the
    list of timestep ``t - 1`` as its descriptor says. The x̂ regions are machine state
    (`GoldenModel.xhat`, +0 words in a new model), not part of `Memories`. Lanes of list
    rows outside the list are untouched. ``output``: the Δ words of the lists, in order.

Non-zero lists must hold distinct indices below ``n1`` per timestep; anything else, an
address outside a memory, or an illegal field raises `IllegalInstruction` naming the
instruction, the timestep and the element.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reneta_hw.config import AcceleratorConfig
from reneta_hw.isa import DELTA_XHAT_REGIONS, IllegalInstruction, Instruction, Proc, check, \
    delta_blocks, delta_theta, loop_sizes, pack_descriptor, unpack_descriptor
from reneta_hw.numeric.activation import apply_func


@dataclass
class Memories:
    """Memory images of raw words: DRAM (flat, word-addressed), SMEM (rows x lanes), SPM."""
    dram: np.ndarray
    smem: np.ndarray
    spm: np.ndarray

    @classmethod
    def empty(cls, cfg: AcceleratorConfig, dram_words: int = 0) -> "Memories":
        return cls(dram=np.zeros(dram_words, dtype=np.int64),
                   smem=np.zeros((cfg.smem_depth, cfg.num_pe), dtype=np.int64),
                   spm=np.zeros(cfg.spm_depth, dtype=np.int64))

    def copy(self) -> "Memories":
        return Memories(self.dram.copy(), self.smem.copy(), self.spm.copy())

    def validate(self, cfg: AcceleratorConfig, where: str = "memories") -> None:
        if self.smem.shape != (cfg.smem_depth, cfg.num_pe):
            raise ValueError(f"{where}: SMEM image has shape {self.smem.shape}, the config "
                             f"needs {(cfg.smem_depth, cfg.num_pe)}")
        if self.spm.shape != (cfg.spm_depth,):
            raise ValueError(f"{where}: SPM image has shape {self.spm.shape}, the config "
                             f"needs {(cfg.spm_depth,)}")
        if self.dram.ndim != 1:
            raise ValueError(f"{where}: DRAM image must be flat (words), got {self.dram.shape}")
        for name, a in (("DRAM", self.dram), ("SMEM", self.smem)):
            bad = (a < 0) | (a > cfg.fmt.word_mask)
            if bad.any():
                pos = np.argwhere(bad)[0]
                raise ValueError(f"{where}: {name} word at {tuple(int(x) for x in pos)} = "
                                 f"{int(a[tuple(pos)])} is not a {cfg.word_bits}-bit word")


@dataclass
class InstructionResult:
    index: int
    proc: Proc
    beats: int        # multiply-accumulate beats of num_pe lanes
    output: np.ndarray  # the result words in output-stream order


@dataclass
class RunResult:
    memories: Memories
    results: list = field(default_factory=list)
    pc: int = 0          # index of the next instruction
    paused: bool = False

    def beats(self, proc: Proc | None = None) -> int:
        return sum(r.beats for r in self.results if proc is None or r.proc == proc)


class GoldenModel:
    """Executes instructions on a copy-free `Memories` (it mutates the images it is given)."""

    def __init__(self, cfg: AcceleratorConfig, memories: Memories):
        memories.validate(cfg)
        self.cfg = cfg
        self.fmt = cfg.fmt
        self.mem = memories
        #: the delta encoder's x̂ regions (DELTA), ``max_n`` words each
        self.xhat = np.zeros((DELTA_XHAT_REGIONS, cfg.max_n), dtype=np.int64)

    # --- program ------------------------------------------------------------------------
    def run(self, program, start: int = 0) -> RunResult:
        """Run from ``start`` to the end or to the first instruction with ``pause``."""
        res = RunResult(self.mem, pc=start)
        for k in range(start, len(program)):
            r = self.execute(program[k], k)
            res.results.append(r)
            res.pc = k + 1
            if program[k].pause:
                res.paused = True
                break
        return res

    def execute(self, ins: Instruction, index: int = 0) -> InstructionResult:
        where = f"instruction {index}"
        check(self.cfg, ins, where)
        handler = {
            Proc.IDLE: self._idle, Proc.MxV_SP: self._mxv_sp, Proc.MTxV_SP: self._mtxv_sp,
            Proc.VXV_SP: self._vxv_sp, Proc.MxV: self._mxv, Proc.MTxV: self._mtxv,
            Proc.VXV: self._vxv, Proc.DELTA: self._delta,
        }[ins.proc]
        beats, out = handler(ins, where)
        return InstructionResult(index, ins.proc, beats, out)

    # --- memory access ----------------------------------------------------------------------
    def _dram_rows(self, base: int, rows: np.ndarray, where: str, what: str) -> np.ndarray:
        """Word indices (rows.shape + (Np,)) of DRAM rows ``rows`` after byte address base."""
        Np = self.cfg.num_pe
        first = base // self.cfg.word_bytes
        idx = first + np.asarray(rows, dtype=np.int64)[..., None] * Np + np.arange(Np)
        if idx.size and idx.max() >= self.mem.dram.shape[0]:
            bad = int(idx.max()) * self.cfg.word_bytes
            raise IllegalInstruction(
                f"{where}: {what} reaches DRAM byte address {bad:#x}, beyond the "
                f"{self.mem.dram.shape[0] * self.cfg.word_bytes:#x}-byte DRAM image")
        return idx

    def _smem_rows(self, rows: np.ndarray, where: str, what: str) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and rows.max() >= self.cfg.smem_depth:
            raise IllegalInstruction(f"{where}: {what} reaches SMEM row {int(rows.max())}, "
                                     f"beyond smem_depth={self.cfg.smem_depth}")
        return rows

    def _read_op0(self, ins, rows, where) -> np.ndarray:
        """Operand-0 rows (weights or gradient time series), shape rows.shape + (Np,)."""
        if ins.src0:
            return self.mem.smem[self._smem_rows(ins.smem_op0 + rows, where, "operand 0")]
        return self.mem.dram[self._dram_rows(ins.dram_op0, rows, where, "operand 0")]

    def _read_op1(self, ins, rows, where) -> np.ndarray:
        return self.mem.smem[self._smem_rows(ins.smem_op1 + rows, where, "operand 1")]

    def _write_rows(self, ins, rows, words, where):
        """Whole-row results (rows relative to the destination bases)."""
        if ins.dst0:
            self.mem.smem[self._smem_rows(ins.smem_dst + rows, where, "result")] = words
        if ins.dst1:
            self.mem.dram[self._dram_rows(ins.dram_dst, rows, where, "result")] = words

    def _write_lanes(self, ins, rows, lanes, words, where):
        """Single-lane results."""
        if ins.dst0:
            r = self._smem_rows(ins.smem_dst + rows, where, "result")
            self.mem.smem[r, lanes] = words
        if ins.dst1:
            idx = self._dram_rows(ins.dram_dst, rows, where, "result")
            self.mem.dram[idx[np.arange(len(rows)), lanes]] = words

    def nonzeros(self, ins: Instruction, t: int, where: str) -> tuple[np.ndarray, np.ndarray]:
        """(indices, values) of timestep t's non-zero list, in list order."""
        Np = self.cfg.num_pe
        head_row, head_lane, count = unpack_descriptor(self.cfg, self.mem.spm[ins.spm_addr + t])
        if count > self.cfg.max_n:
            raise IllegalInstruction(f"{where}: timestep {t} has count {count} > max_n="
                                     f"{self.cfg.max_n}")
        pos = head_lane + np.arange(count)
        rows = head_row + pos // Np
        lanes = pos % Np
        nzi = self.mem.smem[self._smem_rows(ins.smem_nzl + rows, where,
                                            f"the index list of timestep {t}"), lanes]
        nzv = self.mem.smem[self._smem_rows(ins.smem_op1 + rows, where,
                                            f"the value list of timestep {t}"), lanes]
        if count:
            if nzi.max() >= ins.n1:
                g = int(np.argmax(nzi >= ins.n1))
                raise IllegalInstruction(f"{where}: timestep {t}, element {g}: non-zero index "
                                         f"{int(nzi[g])} is not below n1={ins.n1}")
            if len(np.unique(nzi)) != count:
                raise IllegalInstruction(f"{where}: timestep {t}: non-zero indices repeat "
                                         f"(each index may appear once per timestep)")
        return nzi, nzv

    def _finish(self, ins, acc) -> np.ndarray:
        return apply_func(self.fmt, ins.func, self.fmt.to_word(acc))

    def _lane_chain(self, w, g) -> np.ndarray:
        """Sum over lanes (last axis) left to right of products, then over blocks (axis -2)."""
        fmt = self.fmt
        acc_b = fmt.dot(w, g, axis=-1)           # lanes, in order, from +0
        return fmt.sum(acc_b, axis=-1)           # blocks, in order, from +0

    # --- procedures ------------------------------------------------------------------------
    def _idle(self, ins, where):
        return 0, np.zeros((0,), dtype=np.int64)

    def _mxv_sp(self, ins, where):
        Np, blocks = self.cfg.num_pe, loop_sizes(ins)["blocks"]
        nzi, nzv = self.nonzeros(ins, ins.t, where)
        acc = np.full((blocks, Np), self.fmt.zero_acc, dtype=np.int64)
        b = np.arange(blocks)
        for k in range(len(nzi)):
            w = self._read_op0(ins, b * ins.n1 + nzi[k], where)       # (blocks, Np)
            acc = self.fmt.mac(acc, w, nzv[k])
        out = self._finish(ins, acc)
        self._write_rows(ins, b * ins.nt + ins.t, out, where)
        return blocks * len(nzi), out

    def _mtxv_sp(self, ins, where):
        Np, blocks = self.cfg.num_pe, loop_sizes(ins)["blocks"]
        nzi, _ = self.nonzeros(ins, ins.t, where)
        b = np.arange(blocks)
        g = self._read_op1(ins, b * ins.nt + ins.t, where)            # (blocks, Np)
        w = self._read_op0(ins, b[None, :] * ins.n1 + nzi[:, None], where)  # (k, blocks, Np)
        out = self._finish(ins, self._lane_chain(w, g[None]))         # (k,)
        self._write_lanes(ins, (nzi // Np) * ins.nt + ins.t, nzi % Np, out, where)
        return blocks * len(nzi), out

    def _vxv_sp(self, ins, where):
        Np, s = self.cfg.num_pe, loop_sizes(ins)
        blocks, steps = s["blocks"], s["steps"]
        b = np.arange(blocks)
        acc = np.full((blocks, ins.n1, Np), self.fmt.zero_acc, dtype=np.int64)
        beats = 0
        for t in range(steps):
            nzi, nzv = self.nonzeros(ins, t, where)
            if not len(nzi):
                continue
            g = self._read_op0(ins, b * ins.nt + t, where)            # (blocks, Np)
            acc[:, nzi, :] = self.fmt.mac(acc[:, nzi, :], g[:, None, :], nzv[None, :, None])
            beats += blocks * len(nzi)
        out = self._finish(ins, acc)
        self._write_rows(ins, (b[:, None] * ins.n1 + np.arange(ins.n1)).reshape(-1),
                         out.reshape(-1, Np), where)
        return beats, out

    def _delta(self, ins, where):
        from sim.delta_ref import delta_step
        cfg, Np, n = self.cfg, self.cfg.num_pe, ins.n1
        blocks = delta_blocks(cfg, ins)
        theta = delta_theta(cfg, ins)
        steps = loop_sizes(ins)["steps"]
        if ins.t == 0:
            pos = 0
        else:
            h, lane, c = unpack_descriptor(cfg, self.mem.spm[ins.spm_addr + ins.t - 1])
            pos = h * Np + lane + c
        out = []
        b = np.arange(blocks)
        for t in range(ins.t, ins.t + steps):
            x = self._read_op0(ins, b * ins.nt + t, where).reshape(-1)[:n]
            xhat = np.zeros(n, dtype=np.int64) if t == 0 else self.xhat[ins.cnt2, :n]
            d, fired, new = delta_step(self.fmt, x, xhat, theta)
            self.xhat[ins.cnt2, :n] = new
            idx = np.flatnonzero(fired)
            slots = pos + np.arange(len(idx))
            rows, lanes = slots // Np, slots % Np
            if len(idx):
                self.mem.smem[self._smem_rows(ins.smem_nzl + rows, where,
                                              f"the index list of timestep {t}"), lanes] = idx
                self.mem.smem[self._smem_rows(ins.smem_op1 + rows, where,
                                              f"the value list of timestep {t}"), lanes] = d[idx]
            if pos // Np >= cfg.smem_depth:
                raise IllegalInstruction(f"{where}: the list of timestep {t} starts at row "
                                         f"{pos // Np}, beyond smem_depth={cfg.smem_depth}")
            self.mem.spm[ins.spm_addr + t] = pack_descriptor(cfg, pos // Np, pos % Np, len(idx))
            pos += len(idx)
            out.append(d[idx])
        return steps * blocks, np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def _act(self, ins, n, t, where) -> np.ndarray:
        """Dense operand A[n][t] from the time-series layout at ``smem_op1``."""
        Np = self.cfg.num_pe
        rows = self._smem_rows(ins.smem_op1 + (n // Np)[:, None] * ins.nt + t[None, :],
                               where, "operand 1")
        return self.mem.smem[rows, (n % Np)[:, None]]                 # (n, t)

    def _mxv(self, ins, where):
        s = loop_sizes(ins)
        blocks, n_in, steps = s["blocks"], s["n_in"], s["steps"]
        Np = self.cfg.num_pe
        b, t = np.arange(blocks), np.arange(steps)
        a = self._act(ins, np.arange(n_in), t, where)                  # (n_in, steps)
        acc = np.full((blocks, steps, Np), self.fmt.zero_acc, dtype=np.int64)
        for n in range(n_in):
            w = self._read_op0(ins, b * ins.n1 + n, where)            # (blocks, Np)
            acc = self.fmt.mac(acc, w[:, None, :], a[n][None, :, None])
        out = self._finish(ins, acc)
        self._write_rows(ins, (b[:, None] * ins.nt + t).reshape(-1), out.reshape(-1, Np), where)
        return blocks * n_in * steps, out

    def _mtxv(self, ins, where):
        s = loop_sizes(ins)
        blocks, n_in, steps = s["blocks"], s["n_in"], s["steps"]
        Np = self.cfg.num_pe
        b, t, n = np.arange(blocks), np.arange(steps), np.arange(n_in)
        g = self._read_op1(ins, b[None, :] * ins.nt + t[:, None], where)   # (steps, blocks, Np)
        w = self._read_op0(ins, b[None, :] * ins.n1 + n[:, None], where)   # (n_in, blocks, Np)
        out = self._finish(ins, self._lane_chain(w[:, None], g[None]))     # (n_in, steps)
        rows = ((n // Np)[:, None] * ins.nt + t[None, :]).reshape(-1)
        lanes = np.repeat(n % Np, steps)
        self._write_lanes(ins, rows, lanes, out.reshape(-1), where)
        return blocks * n_in * steps, out

    def _vxv(self, ins, where):
        s = loop_sizes(ins)
        blocks, n_in, steps = s["blocks"], s["n_in"], s["steps"]
        Np = self.cfg.num_pe
        b, t, n = np.arange(blocks), np.arange(steps), np.arange(n_in)
        a = self._act(ins, n, t, where)                                # (n_in, steps)
        acc = np.full((blocks, n_in, Np), self.fmt.zero_acc, dtype=np.int64)
        for k in range(steps):
            g = self._read_op0(ins, b * ins.nt + k, where)            # (blocks, Np)
            acc = self.fmt.mac(acc, g[:, None, :], a[:, k][None, :, None])
        out = self._finish(ins, acc)
        self._write_rows(ins, (b[:, None] * ins.n1 + n).reshape(-1), out.reshape(-1, Np), where)
        return blocks * n_in * steps, out


def run_program(cfg: AcceleratorConfig, program, memories: Memories, start: int = 0
                ) -> RunResult:
    """Run ``program`` on (a copy of) ``memories``; returns the final images and results."""
    return GoldenModel(cfg, memories.copy()).run(program, start)
