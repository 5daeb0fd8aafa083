"""Matrices and vectors <-> the row layouts of the accelerator's memories.

These are the layouts of `reneta_hw.isa` (Np = ``num_pe``):

* weights: row ``b*n1 + i`` holds ``W[b*Np + p][i]`` on lane p (rows of W padded to Np);
* time series ``V`` (N x nt): row ``(n // Np)*nt + t`` holds ``V[n][t]`` on lane ``n % Np``;
* sparse lists: all timesteps' non-zeros concatenated in time order, Np per row; the
  descriptor of timestep t is ``(head_row, head_lane, count)`` with
  ``divmod(sum of earlier counts, Np) == (head_row, head_lane)``.

All functions work on raw words (np.int64) and never round: encode values first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def pack_row(words, word_bits: int) -> int:
    """One SMEM row as the hardware holds it: lane p in bits ``[p*word_bits, (p+1)*word_bits)``."""
    mask = (1 << word_bits) - 1
    v = 0
    for p, w in enumerate(words):
        v |= (int(w) & mask) << (p * word_bits)
    return v


def unpack_row(v: int, num_pe: int, word_bits: int) -> list:
    """The lanes of a packed SMEM row (`pack_row`'s inverse)."""
    mask = (1 << word_bits) - 1
    return [(v >> (p * word_bits)) & mask for p in range(num_pe)]


def _blocks(n: int, num_pe: int) -> int:
    return -(-n // num_pe)


def weights_to_rows(w, num_pe: int) -> np.ndarray:
    """(n_out, n_in) -> (blocks*n_in, num_pe) rows; n_out is zero-padded to blocks*num_pe."""
    w = np.asarray(w, dtype=np.int64)
    if w.ndim != 2:
        raise ValueError(f"weights_to_rows: expected a 2-D matrix, got shape {w.shape}")
    n_out, n_in = w.shape
    blocks = _blocks(n_out, num_pe)
    pad = np.zeros((blocks * num_pe, n_in), dtype=np.int64)
    pad[:n_out] = w
    return pad.reshape(blocks, num_pe, n_in).transpose(0, 2, 1).reshape(blocks * n_in, num_pe)


def rows_to_weights(rows, n_out: int, n_in: int, num_pe: int) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.int64)
    blocks = _blocks(n_out, num_pe)
    if rows.shape != (blocks * n_in, num_pe):
        raise ValueError(f"rows_to_weights: expected {(blocks * n_in, num_pe)} rows, "
                         f"got {rows.shape}")
    return rows.reshape(blocks, n_in, num_pe).transpose(0, 2, 1).reshape(-1, n_in)[:n_out]


def timeseries_to_rows(v, num_pe: int) -> np.ndarray:
    """(n, nt) -> (blocks*nt, num_pe); n is zero-padded to blocks*num_pe."""
    v = np.asarray(v, dtype=np.int64)
    if v.ndim != 2:
        raise ValueError(f"timeseries_to_rows: expected (n, nt), got shape {v.shape}")
    n, nt = v.shape
    blocks = _blocks(n, num_pe)
    pad = np.zeros((blocks * num_pe, nt), dtype=np.int64)
    pad[:n] = v
    return pad.reshape(blocks, num_pe, nt).transpose(0, 2, 1).reshape(blocks * nt, num_pe)


def rows_to_timeseries(rows, n: int, nt: int, num_pe: int) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.int64)
    blocks = _blocks(n, num_pe)
    if rows.shape != (blocks * nt, num_pe):
        raise ValueError(f"rows_to_timeseries: expected {(blocks * nt, num_pe)} rows, "
                         f"got {rows.shape}")
    return rows.reshape(blocks, nt, num_pe).transpose(0, 2, 1).reshape(-1, nt)[:n]


@dataclass
class SparseLists:
    """Non-zero index/value lists of a sequence and their per-timestep descriptors."""
    index_rows: np.ndarray   # (rows, num_pe) indices
    value_rows: np.ndarray   # (rows, num_pe) values (words)
    head_row: np.ndarray     # (nt,)
    head_lane: np.ndarray    # (nt,)
    count: np.ndarray        # (nt,)

    @property
    def rows(self) -> int:
        return self.index_rows.shape[0]


def sparse_lists(delta, num_pe: int, fired=None) -> SparseLists:
    """Lists of the fired elements of ``delta`` (nt, n) words, ascending index per step.

    ``fired`` (nt, n) bool selects the elements; by default the non-zero words.
    """
    delta = np.asarray(delta, dtype=np.int64)
    if delta.ndim != 2:
        raise ValueError(f"sparse_lists: expected (nt, n), got shape {delta.shape}")
    fired = delta != 0 if fired is None else np.asarray(fired, dtype=bool)
    t_idx, i_idx = np.nonzero(fired)          # row-major: time order, ascending index
    count = fired.sum(axis=1).astype(np.int64)
    heads = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    total = int(count.sum())
    rows = max(1, _blocks(total, num_pe))
    idx = np.zeros(rows * num_pe, dtype=np.int64)
    val = np.zeros(rows * num_pe, dtype=np.int64)
    idx[:total] = i_idx
    val[:total] = delta[t_idx, i_idx]
    return SparseLists(idx.reshape(rows, num_pe), val.reshape(rows, num_pe),
                       heads // num_pe, heads % num_pe, count)
