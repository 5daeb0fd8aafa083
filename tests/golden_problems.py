"""Random sparse-training problems laid out in memory images, for golden-model tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reneta_hw.config import AcceleratorConfig
from reneta_hw.isa import Assembler, pack_descriptor
from sim.golden import Memories
from sim.layout import sparse_lists, timeseries_to_rows, weights_to_rows


@dataclass
class Problem:
    cfg: AcceleratorConfig
    w: np.ndarray        # (n_out, n_in) words
    delta: np.ndarray    # (nt, n_in) words, zero = not fired
    fired: np.ndarray    # (nt, n_in) bool
    g: np.ndarray        # (n_out, nt) words
    act: np.ndarray      # (n_in, nt) words (dense operand)
    mem: Memories
    addr: dict           # region -> SMEM row or DRAM byte address

    @property
    def n_out(self):
        return self.w.shape[0]

    @property
    def n_in(self):
        return self.w.shape[1]

    @property
    def nt(self):
        return self.delta.shape[0]

    @property
    def blocks(self):
        return self.n_out // self.cfg.num_pe

    def asm(self) -> Assembler:
        return Assembler(self.cfg)


def random_words(rng, fmt, shape, scale=1.0):
    return fmt.encode(rng.standard_normal(shape) * scale, on_overflow="saturate")


def make_problem(cfg: AcceleratorConfig, n_out: int, n_in: int, nt: int, sparsity: float,
                 seed: int = 0, empty_steps=(), weights_in_smem: bool = False,
                 ints: bool = False) -> Problem:
    """Weights, Δ lists, gradients and dense activations at fixed places in memory.

    ``ints``: small integer values (exact in every format: for int16 checks by matmul).
    """
    rng = np.random.default_rng(seed)
    fmt, Np = cfg.fmt, cfg.num_pe
    if ints:
        enc = lambda shape: fmt.encode(rng.integers(-8, 8, shape).astype(float))  # noqa: E731
    else:
        enc = lambda shape: random_words(rng, fmt, shape, 0.5)                     # noqa: E731
    w, g, act = enc((n_out, n_in)), enc((n_out, nt)), enc((n_in, nt))
    fired = rng.random((nt, n_in)) >= sparsity
    for t in empty_steps:
        fired[t] = False
    if ints:
        vals = rng.integers(1, 8, (nt, n_in)) * rng.choice([-1, 1], (nt, n_in))
        delta = np.where(fired, fmt.encode(vals.astype(float)), 0)
    else:
        delta = np.where(fired, enc((nt, n_in)), 0)
    lists = sparse_lists(delta, Np, fired=fired)

    mem = Memories.empty(cfg)
    addr, row = {}, 0

    def put_smem(name, rows):
        nonlocal row
        addr[name] = row
        mem.smem[row:row + rows.shape[0]] = rows
        row += rows.shape[0]

    put_smem("nzl", lists.index_rows)
    put_smem("nzv", lists.value_rows)
    put_smem("g", timeseries_to_rows(g, Np))
    put_smem("act", timeseries_to_rows(act, Np))
    w_rows = weights_to_rows(w, Np)
    if weights_in_smem:
        put_smem("w", w_rows)
    addr["smem_out"] = row
    for t in range(nt):
        mem.spm[t] = pack_descriptor(cfg, int(lists.head_row[t]), int(lists.head_lane[t]),
                                     int(lists.count[t]))
    rb = cfg.row_bytes
    g_rows = timeseries_to_rows(g, Np)
    dram_rows = [("w", w_rows), ("g", g_rows)]
    base, chunks = 0, []
    for name, rows in dram_rows:
        addr["dram_" + name] = base
        chunks.append(rows)
        base += rows.shape[0] * rb
    addr["dram_out"] = base
    blocks, bx = -(-n_out // Np), -(-n_in // Np)
    out_rows = blocks * nt + bx * nt + blocks * n_in      # Mx, dL/dΔx, dW regions
    chunks.append(np.zeros((out_rows, Np), dtype=np.int64))
    mem.dram = np.concatenate(chunks).reshape(-1)
    return Problem(cfg, w, delta, fired, g, act, mem, addr)
