"""Numpy reference model of the PE array (`reneta_hw.ccm.pe_array.PEArray`), beat by beat.

Why: the PE array's gateware is tested against this model, and the model is built ONLY
from the number format's reference functions (`mul`, `add`, `to_word`, `neg_acc`) and
`apply_func`, folded in exactly the orders of `sim.golden`'s module docstring. So a
sequencer that turns an instruction into PE-array beats as described below gets, from
the gateware, the golden model's words bit for bit.

A beat is a dict (the same keys as the gateware's input payload)::

    {"w": num_pe words, "x": num_pe words, "mode": PARALLEL | CHAIN, "addr": int,
     "first": bool, "last": bool, "zero": bool, "func": Func}

``⊕`` is ``fmt.add``, ``⊗`` is ``fmt.mul``, ``+0`` is the accumulator zero.

* ``PARALLEL``: lane p: ``acc[addr][p] = (first ? +0 : acc[addr][p]) ⊕ (w_p ⊗ x_p)``;
  with ``zero`` no product is added: ``acc[addr][p] = first ? +0 : acc[addr][p]``.
  On ``last`` the result is ``apply_func(func, to_word(acc[addr]))`` on all lanes.
* ``CHAIN``: ``s = (((+0 ⊕ w0⊗x0) ⊕ w1⊗x1) ... ⊕ w(Np-1)⊗x(Np-1))``, then
  ``racc[addr] = (first ? +0 : racc[addr]) ⊕ s`` (with ``zero``: ``first ? +0 :
  racc[addr]``, no ``s``). On ``last`` the result is ``apply_func(func,
  to_word(racc[addr]))`` in every lane.

Optional keys ``drain``, ``daddr``, ``dzero`` (a PARALLEL beat without ``last``): before
the beat's own accumulation, ``acc[daddr]`` (``+0`` with ``dzero``) is read out as a
result ``apply_func(func, to_word(acc[daddr]))`` on all lanes, with ``addr = daddr``.

A result is ``{"mode", "addr", "data": tuple of num_pe words}``, in the order of the
``last`` (or drain) beats.

Reading a partial sum that was never written (``first = 0`` on a fresh address) raises
`ValueError`, and so does a ``PARALLEL`` accumulation that continues after ``CHAIN``
beats (the gateware's lane memories are the CHAIN skew buffers, so CHAIN beats destroy
the PARALLEL partial sums): both are sequencer bugs.

How the golden model's procedures map onto beats (`beats_mxv_sp`, `beats_vxv_sp`,
`beats_mtxv_sp` build these simple orders; any interleaving that keeps each partial
sum's own order gives the same words, e.g. the sequencer's MxV_SP with non-zero k outer,
block b inner and ``addr = b``, which avoids back-to-back accumulations on one address):

* ``MxV_SP`` (per block b): one PARALLEL beat per non-zero k of the timestep, in list
  order, ``w = W[b*Np:(b+1)*Np, nzi_k]``, ``x = nzv_k`` on every lane, ``addr = 0``,
  ``first`` on k = 0, ``last`` on the last k; no non-zero: one ``zero`` beat with
  ``first`` and ``last``.
* ``VXV_SP`` (per block b): for t in order, one PARALLEL beat per non-zero (i, v) of t:
  ``w = G_t[b*Np:(b+1)*Np]``, ``x = v``, ``addr = i``, ``first`` on the first contribution
  to column i; then one flush beat per column i = 0 .. n1-1 in order: ``zero``, ``last``,
  ``first`` if column i got no contribution.
* ``MTxV_SP``: per non-zero k in list order, per block b in order: one CHAIN beat with
  ``w = W[b*Np:(b+1)*Np, nzi_k]``, ``x = G_t[b*Np:(b+1)*Np]``, ``addr = 0``, ``first`` on
  b = 0, ``last`` on the last block.
"""

from __future__ import annotations

import numpy as np

from reneta_hw.numeric.activation import Func, apply_func
from reneta_hw.numeric.format import NumberFormat

__all__ = ["PARALLEL", "CHAIN", "PEArrayRef", "beat", "beats_mxv_sp", "beats_vxv_sp",
           "beats_mtxv_sp", "mxv_sp_expected", "vxv_sp_expected", "mtxv_sp_expected"]

#: beat modes (the values of the gateware's `PEMode`)
PARALLEL = 0
CHAIN = 1


def beat(w, x, mode=PARALLEL, addr=0, first=False, last=False, zero=False,
         func=Func.NONE, drain=False, daddr=0, dzero=False) -> dict:
    """A beat dict with every key (``x`` may be a scalar: broadcast to every lane)."""
    w = [int(v) for v in np.asarray(w).ravel()]
    x = np.asarray(x).ravel()
    x = [int(x[0])] * len(w) if x.size == 1 else [int(v) for v in x]
    return {"w": w, "x": x, "mode": int(mode), "addr": int(addr), "first": bool(first),
            "last": bool(last), "zero": bool(zero), "func": int(func), "drain": bool(drain),
            "daddr": int(daddr), "dzero": bool(dzero)}


class PEArrayRef:
    """State: per-lane partial sums ``acc[lmem_depth][num_pe]`` and ``racc[lmem_depth]``."""

    def __init__(self, fmt: NumberFormat, num_pe: int, lmem_depth: int):
        self.fmt = fmt
        self.num_pe = num_pe
        self.lmem_depth = lmem_depth
        self.acc = [None] * lmem_depth        # None = never written (or destroyed)
        self.racc = [None] * lmem_depth

    def _check(self, b: dict, where: str):
        Np = self.num_pe
        if len(b["w"]) != Np or len(b["x"]) != Np:
            raise ValueError(f"{where}: w and x must have num_pe={Np} words")
        if not 0 <= b["addr"] < self.lmem_depth:
            raise ValueError(f"{where}: addr {b['addr']} outside 0..{self.lmem_depth - 1}")
        if b["mode"] not in (PARALLEL, CHAIN):
            raise ValueError(f"{where}: mode must be PARALLEL (0) or CHAIN (1), "
                             f"got {b['mode']!r}")

    def beat(self, b: dict, where: str = "beat"):
        """Apply one beat; returns its result dict on ``last``, else None."""
        self._check(b, where)
        f = self.fmt
        w = np.asarray(b["w"], dtype=np.int64)
        x = np.asarray(b["x"], dtype=np.int64)
        a = b["addr"]
        zero_acc = np.int64(f.zero_acc)
        if b["mode"] == PARALLEL:
            drained = None
            if b.get("drain") and not b["last"]:
                d = b["daddr"]
                if not 0 <= d < self.lmem_depth:
                    raise ValueError(f"{where}: daddr {d} outside 0..{self.lmem_depth - 1}")
                if b.get("dzero"):
                    val = np.full(self.num_pe, zero_acc, dtype=np.int64)
                elif self.acc[d] is None:
                    raise ValueError(f"{where}: drain of addr {d} reads a partial sum that "
                                     f"was never written (or was destroyed by CHAIN beats)")
                else:
                    val = self.acc[d]
                out = apply_func(f, b["func"], f.to_word(val))
                drained = {"mode": PARALLEL, "addr": d, "data": tuple(int(v) for v in out)}
            if b["first"]:
                base = np.full(self.num_pe, zero_acc, dtype=np.int64)
            else:
                if self.acc[a] is None:
                    raise ValueError(f"{where}: PARALLEL accumulation at addr {a} reads a "
                                     f"partial sum that was never written (or was "
                                     f"destroyed by CHAIN beats)")
                base = self.acc[a]
            new = base if b["zero"] else f.add(base, f.mul(w, x))
            self.acc[a] = np.asarray(new, dtype=np.int64)
            if not b["last"]:
                return drained
            out = apply_func(f, b["func"], f.to_word(self.acc[a]))
            return {"mode": PARALLEL, "addr": a, "data": tuple(int(v) for v in out)}
        # CHAIN: the lane memories become skew buffers
        self.acc = [None] * self.lmem_depth
        s = zero_acc
        for p in range(self.num_pe):
            s = f.add(s, f.mul(w[p], x[p]))
        if b["first"]:
            base = zero_acc
        else:
            if self.racc[a] is None:
                raise ValueError(f"{where}: CHAIN accumulation at addr {a} reads a partial "
                                 f"sum that was never written")
            base = self.racc[a]
        self.racc[a] = np.int64(base if b["zero"] else f.add(base, s))
        if not b["last"]:
            return None
        out = int(apply_func(f, b["func"], f.to_word(self.racc[a])))
        return {"mode": CHAIN, "addr": a, "data": (out,) * self.num_pe}

    def run(self, beats) -> list:
        """Results of a beat sequence, in order."""
        out = []
        for k, b in enumerate(beats):
            r = self.beat(b, f"beat {k}")
            if r is not None:
                out.append(r)
        return out


# --- beat sequences of the sparse procedures (the sequencer's mapping) -------------------
def beats_mxv_sp(W, nzi, nzv, num_pe: int, func=Func.NONE) -> list:
    """MxV_SP of one timestep: ``W`` (rows x n_in words), non-zero list (nzi, nzv)."""
    W = np.asarray(W)
    out = []
    for b in range(W.shape[0] // num_pe):
        rows = W[b * num_pe:(b + 1) * num_pe]
        if len(nzi) == 0:
            out.append(beat([0] * num_pe, 0, PARALLEL, 0, True, True, True, func))
        for k, (i, v) in enumerate(zip(nzi, nzv)):
            out.append(beat(rows[:, i], v, PARALLEL, 0, k == 0, k == len(nzi) - 1, False,
                            func))
    return out


def mxv_sp_expected(fmt, W, nzi, nzv, num_pe: int, func=Func.NONE) -> np.ndarray:
    """Golden-model order for MxV_SP (rows of words), written without the beat model."""
    W = np.asarray(W)
    acc = np.full(W.shape[0], fmt.zero_acc, dtype=np.int64)
    for i, v in zip(nzi, nzv):
        acc = fmt.add(acc, fmt.mul(W[:, i], np.full(W.shape[0], v, dtype=np.int64)))
    return apply_func(fmt, func, fmt.to_word(acc)).reshape(-1, num_pe)


def beats_vxv_sp(G, nz_lists, n1: int, num_pe: int, func=Func.NONE) -> list:
    """VXV_SP: ``G`` (steps x rows words), ``nz_lists[t]`` = list of (i, v); columns 0..n1-1."""
    G = np.asarray(G)
    out = []
    for b in range(G.shape[1] // num_pe):
        touched = set()
        for t, lst in enumerate(nz_lists):
            for i, v in lst:
                out.append(beat(G[t, b * num_pe:(b + 1) * num_pe], v, PARALLEL, i,
                                i not in touched, False, False, func))
                touched.add(i)
        for i in range(n1):
            out.append(beat([0] * num_pe, 0, PARALLEL, i, i not in touched, True, True, func))
    return out


def vxv_sp_expected(fmt, G, nz_lists, n1: int, num_pe: int, func=Func.NONE) -> np.ndarray:
    """Golden-model order for VXV_SP: rows ``b*n1 + i`` of num_pe words."""
    G = np.asarray(G)
    rows = G.shape[1]
    acc = np.full((n1, rows), fmt.zero_acc, dtype=np.int64)
    for t, lst in enumerate(nz_lists):
        for i, v in lst:
            acc[i] = fmt.add(acc[i], fmt.mul(G[t], np.full(rows, v, dtype=np.int64)))
    words = apply_func(fmt, func, fmt.to_word(acc))            # (n1, rows)
    return np.concatenate([words[:, b * num_pe:(b + 1) * num_pe]
                           for b in range(rows // num_pe)])


def beats_mtxv_sp(W, g, nzi, num_pe: int, func=Func.NONE) -> list:
    """MTxV_SP of one timestep: ``W`` (rows x n words), ``g`` (rows words), fired columns."""
    W = np.asarray(W)
    g = np.asarray(g)
    blocks = W.shape[0] // num_pe
    out = []
    for i in nzi:
        for b in range(blocks):
            sl = slice(b * num_pe, (b + 1) * num_pe)
            out.append(beat(W[sl, i], g[sl], CHAIN, 0, b == 0, b == blocks - 1, False, func))
    return out


def mtxv_sp_expected(fmt, W, g, nzi, num_pe: int, func=Func.NONE) -> np.ndarray:
    """Golden-model order for MTxV_SP: one word per fired column."""
    W = np.asarray(W)
    g = np.asarray(g)
    out = []
    for i in nzi:
        z = np.int64(fmt.zero_acc)
        for b in range(W.shape[0] // num_pe):
            s = np.int64(fmt.zero_acc)
            for p in range(num_pe):
                r = b * num_pe + p
                s = fmt.add(s, fmt.mul(W[r, i], g[r]))
            z = fmt.add(z, s)
        out.append(int(apply_func(fmt, func, fmt.to_word(z))))
    return np.asarray(out, dtype=np.int64)
