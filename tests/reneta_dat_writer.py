"""An independent writer of the reference testbench's .dat files, for tests.

Written from the format description only (delta-rnn-training-reference.md §6): it shares
no code with `sim.reneta_dat` and computes the expected results with numpy integer
matrix products, as the reference generator does.
"""

from pathlib import Path

import numpy as np


def _blocked(m, lanes=16):
    """(outer, inner) -> file order (outer/16, inner, 16), big-endian int16 bytes."""
    outer, inner = m.shape
    return m.reshape(outer // lanes, lanes, inner).transpose(0, 2, 1).astype(">i2").tobytes()


def write_sample(directory, nx=32, nh=48, nt=8, sparsity=0.7, seed=0, sample=0, layer=1,
                 empty_steps=(), write_weights=True):
    rng = np.random.default_rng(seed)
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    W = rng.integers(-8, 7, (nh, nx))
    if write_weights:
        (d / f"Wx_l{layer}.dat").write_bytes(_blocked(W))
    else:
        W = _read_back_weights(d / f"Wx_l{layer}.dat", nh, nx)
    vals = rng.integers(-8, 7, (nt, nx))
    vals[vals >= 0] += 1
    mask = rng.random((nt, nx)) >= sparsity
    for t in empty_steps:
        mask[t] = False
    X = np.where(mask, vals, 0)
    G = rng.integers(-8, 7, (nt, nh))
    counts = mask.sum(axis=1)
    head = np.concatenate([[0], np.cumsum(counts)[:-1]])
    words = ((head // 16) << 12) | ((head % 16) << 8) | (counts & 0xFF)
    tag = f"l{layer}_s{sample}"
    (d / f"x_del_nzp_{tag}.dat").write_bytes(np.array([nt], ">u2").tobytes()
                                             + words.astype(">i4").tobytes())
    t_idx, i_idx = np.nonzero(mask)
    (d / f"x_del_nzl_{tag}.dat").write_bytes(i_idx.astype(">i2").tobytes()
                                             + X[t_idx, i_idx].astype(">i2").tobytes())
    (d / f"Mx_{tag}.dat").write_bytes(_blocked((X @ W.T).T))
    (d / f"dL_dMx_{tag}.dat").write_bytes(_blocked(G.T))
    (d / f"dL_ddx_{tag}.dat").write_bytes(_blocked(((G @ W) * mask).T))
    (d / f"dL_dWx_{tag}.dat").write_bytes(_blocked(G.T @ X))
    return {"W": W, "X": X, "G": G, "mask": mask}


def _read_back_weights(path, nh, nx):
    a = np.frombuffer(path.read_bytes(), ">i2").astype(np.int64)
    return a.reshape(nh // 16, nx, 16).transpose(0, 2, 1).reshape(nh, nx)
