"""Reader of the reference testbench's ``.dat`` vector files, and their program.

The files (written by the reference's ``gen_rnd_data_rnn.py``; big-endian int16 unless
said; 16 lanes; per layer L and sample s):

``x_del_nzp_lL_sS.dat``   uint16 Nt, then Nt int32 descriptors ``LHA<<12 | LHP<<8 | NZN``
``x_del_nzl_lL_sS.dat``   all non-zero indices (time order), then all non-zero values
``Wx_lL.dat``             W (Nh x Nx) as (Nh/16, Nx, 16)
``Mx_lL_sS.dat``          per-step products W·Δx_t (expected MxV_SP), (Nh/16, Nt, 16)
``dL_dMx_lL_sS.dat``      ∂C/∂M_t, (Nh/16, Nt, 16): operand of MTxV_SP and VXV_SP
``dL_ddx_lL_sS.dat``      (G·W) masked to fired inputs (expected MTxV_SP), (Nx/16, Nt, 16)
``dL_dWx_lL_sS.dat``      Σ_t G_tᵀ Δx_t (expected VXV_SP), (Nh/16, Nx, 16)

``NZN`` is 8 bits and so cannot hold a count of 256; the reader takes the counts from
the heads (``LHA*16 + LHP`` is the exclusive running sum of the counts) and checks that
``NZN`` agrees modulo 256. A count of 0 is legal here (the reference testbench cannot run
it; this project can).

`sample_to_vectors` turns a sample into a `VectorSet`: forward ``MxV_SP`` for every t,
backward ``MTxV_SP`` for t descending, then one ``VXV_SP``, all in the reference's integer
arithmetic (`FixedPoint.int16_reference`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reneta_hw.config import AcceleratorConfig
from reneta_hw.isa import Assembler, pack_descriptor
from reneta_hw.numeric.fixed_point import FixedPoint

from .golden import Memories
from .layout import timeseries_to_rows, weights_to_rows
from .vectors import Expected, VectorFileError, VectorSet

LANES = 16


@dataclass
class RenetaSample:
    layer: int
    sample: int
    nt: int
    nx: int           # inputs (columns of W), as padded in the files
    nh: int           # outputs (rows of W), as padded in the files
    count: np.ndarray      # (nt,) non-zeros per timestep
    nzi: np.ndarray        # (K,) indices, time order
    nzv: np.ndarray        # (K,) values (int16)
    w: np.ndarray          # (nh, nx)
    mx: np.ndarray         # (nt, nh) expected per-step products
    dl_dm: np.ndarray      # (nt, nh)
    dl_ddx: np.ndarray     # (nt, nx) expected
    dl_dw: np.ndarray      # (nh, nx) expected

    def delta(self) -> np.ndarray:
        """Δx as a dense (nt, nx) matrix."""
        d = np.zeros((self.nt, self.nx), dtype=np.int64)
        t = np.repeat(np.arange(self.nt), self.count)
        d[t, self.nzi] = self.nzv
        return d


def _read(path: Path, dtype: str) -> np.ndarray:
    if not path.is_file():
        raise VectorFileError(f"{path}: file missing")
    raw = path.read_bytes()
    size = np.dtype(dtype).itemsize
    if len(raw) % size:
        raise VectorFileError(f"{path}: {len(raw)} bytes is not a whole number of "
                              f"{size}-byte values (truncated?)")
    return np.frombuffer(raw, dtype=dtype).astype(np.int64)


def _blocked(a: np.ndarray, outer: int, inner: int, path: Path, what: str) -> np.ndarray:
    """(outer/16, inner, 16) file layout -> (outer, inner) matrix."""
    if a.size != outer * inner:
        raise VectorFileError(f"{path}: {a.size} values, expected {outer}x{inner} for {what} "
                              f"(truncated or sizes mismatched?)")
    return a.reshape(outer // LANES, inner, LANES).transpose(0, 2, 1).reshape(outer, inner)


def _size_from(path: Path, nt: int, what: str) -> int:
    if not path.is_file():
        raise VectorFileError(f"{path}: file missing")
    n, rem = divmod(path.stat().st_size, 2 * nt)
    if rem or n == 0 or n % LANES:
        raise VectorFileError(f"{path}: {path.stat().st_size} bytes is not Nt={nt} x a multiple "
                              f"of {LANES} int16 values; cannot infer {what}")
    return n


def read_sample(directory, layer: int, sample: int, nx: int | None = None,
                nh: int | None = None, nt: int | None = None) -> RenetaSample:
    """Read one sample; sizes come from the files unless given."""
    d = Path(directory)
    tag = f"l{layer}_s{sample}"
    nzp_path = d / f"x_del_nzp_{tag}.dat"
    nzp = _read(nzp_path, ">u2")
    if nzp.size < 1:
        raise VectorFileError(f"{nzp_path}: empty file")
    nt_file = int(nzp[0])
    if nt is not None and nt != nt_file:
        raise VectorFileError(f"{nzp_path}: the header says Nt={nt_file}, but Nt={nt} was given")
    nt = nt_file
    raw = nzp_path.read_bytes()
    if len(raw) != 2 + 4 * nt:
        raise VectorFileError(f"{nzp_path}: {len(raw)} bytes, expected 2 + 4*Nt = {2 + 4 * nt} "
                              f"for Nt={nt} (truncated?)")
    desc = np.frombuffer(raw[2:], dtype=">u4").astype(np.int64)
    heads = (desc >> 12) * LANES + ((desc >> 8) & 0xF)
    nzn = desc & 0xFF

    nzl_path = d / f"x_del_nzl_{tag}.dat"
    nzl = _read(nzl_path, ">i2")
    if nzl.size % 2:
        raise VectorFileError(f"{nzl_path}: odd number of int16 values ({nzl.size}); expected "
                              f"K indices followed by K values")
    k = nzl.size // 2
    nzi, nzv = nzl[:k], nzl[k:]
    count = np.diff(np.append(heads, k))
    if heads[0] != 0 or (count < 0).any():
        raise VectorFileError(f"{nzp_path}: list heads are not the running sum of the counts "
                              f"(or {nzl_path.name} holds {k} non-zeros, too few)")
    bad = np.nonzero(count % 256 != nzn)[0]
    if len(bad):
        t = int(bad[0])
        raise VectorFileError(f"{nzp_path}: timestep {t}: count field {int(nzn[t])} disagrees "
                              f"with the heads (count {int(count[t])})")

    nh = nh or _size_from(d / f"Mx_{tag}.dat", nt, "Nh")
    nx = nx or _size_from(d / f"dL_ddx_{tag}.dat", nt, "Nx")
    if (nzi < 0).any() or (nzi >= nx).any():
        g = int(np.argmax((nzi < 0) | (nzi >= nx)))
        raise VectorFileError(f"{nzl_path}: non-zero {g} has index {int(nzi[g])}, outside "
                              f"0..{nx - 1}")
    wx_path = d / f"Wx_l{layer}.dat"
    w = _blocked(_read(wx_path, ">i2"), nh, nx, wx_path, "W (Nh x Nx)")
    mx_path = d / f"Mx_{tag}.dat"
    mx = _blocked(_read(mx_path, ">i2"), nh, nt, mx_path, "Mx (Nh x Nt)").T
    g_path = d / f"dL_dMx_{tag}.dat"
    dl_dm = _blocked(_read(g_path, ">i2"), nh, nt, g_path, "dL/dM (Nh x Nt)").T
    dx_path = d / f"dL_ddx_{tag}.dat"
    dl_ddx = _blocked(_read(dx_path, ">i2"), nx, nt, dx_path, "dL/dΔx (Nx x Nt)").T
    dw_path = d / f"dL_dWx_{tag}.dat"
    dl_dw = _blocked(_read(dw_path, ">i2"), nh, nx, dw_path, "dL/dW (Nh x Nx)")
    return RenetaSample(layer, sample, nt, nx, nh, count, nzi, nzv, w, mx, dl_dm, dl_ddx, dl_dw)


def find_samples(directory) -> list[tuple[int, int]]:
    """(layer, sample) pairs present in a directory, sorted."""
    d = Path(directory)
    if not d.is_dir():
        raise VectorFileError(f"{d}: no such directory")
    found = []
    for p in d.glob("x_del_nzp_l*_s*.dat"):
        m = re.fullmatch(r"x_del_nzp_l(\d+)_s(\d+)\.dat", p.name)
        if m:
            found.append((int(m.group(1)), int(m.group(2))))
    if not found:
        raise VectorFileError(f"{d}: no x_del_nzp_l*_s*.dat files (not a reference vector "
                              f"directory?)")
    return sorted(found)


def _pow2_at_least(n: int, floor: int) -> int:
    p = floor
    while p < n:
        p *= 2
    return p


def sample_to_vectors(s: RenetaSample, num_pe: int = LANES) -> VectorSet:
    """The reference testbench's three procedures on this sample, as a `VectorSet`."""
    fmt = FixedPoint.int16_reference()
    to_word = lambda a: np.asarray(a, dtype=np.int64) & 0xFFFF   # noqa: E731
    K = int(s.count.sum())
    heads = np.concatenate([[0], np.cumsum(s.count)[:-1]])
    list_rows = max(1, -(-K // num_pe))
    bh, bx = -(-s.nh // num_pe), -(-s.nx // num_pe)
    g_rows = bh * s.nt
    smem_rows = 2 * list_rows + g_rows
    max_n = -(-max(s.nh, s.nx, 256) // num_pe) * num_pe
    cfg = AcceleratorConfig(num_pe=num_pe, max_n=max_n, max_m=max(256, s.nt), fmt=fmt,
                            smem_depth=_pow2_at_least(smem_rows, 8192),
                            spm_depth=_pow2_at_least(s.nt, 512))
    rb = cfg.row_bytes
    # SMEM: index list, value list, gradient time series
    nzl, nzv_row, g_row = 0, list_rows, 2 * list_rows
    mem = Memories.empty(cfg)
    flat_i = np.zeros(list_rows * num_pe, dtype=np.int64)
    flat_v = np.zeros(list_rows * num_pe, dtype=np.int64)
    flat_i[:K], flat_v[:K] = s.nzi, to_word(s.nzv)
    mem.smem[nzl:nzl + list_rows] = flat_i.reshape(-1, num_pe)
    mem.smem[nzv_row:nzv_row + list_rows] = flat_v.reshape(-1, num_pe)
    g_ts = timeseries_to_rows(to_word(s.dl_dm.T), num_pe)
    mem.smem[g_row:g_row + g_rows] = g_ts
    for t in range(s.nt):
        mem.spm[t] = pack_descriptor(cfg, int(heads[t]) // num_pe, int(heads[t]) % num_pe,
                                     int(s.count[t]))
    # DRAM: weights, gradient time series (VXV_SP's operand), then the three results
    w_rows = weights_to_rows(to_word(s.w), num_pe)
    regions = {"w": w_rows.shape[0], "g": g_rows, "mx": bh * s.nt, "ddx": bx * s.nt,
               "dw": bh * s.nx}
    base, addr = 0, {}
    for name, rows in regions.items():
        addr[name] = base
        base += rows * rb
    mem.dram = np.zeros(base // cfg.word_bytes, dtype=np.int64)
    dram_rows = mem.dram.reshape(-1, num_pe)
    dram_rows[addr["w"] // rb: addr["w"] // rb + regions["w"]] = w_rows
    dram_rows[addr["g"] // rb: addr["g"] // rb + g_rows] = g_ts

    asm = Assembler(cfg)
    common = dict(nt=s.nt, blocks=bh, n1=s.nx, spm_addr=0, nzl=nzl)
    for t in range(s.nt):
        asm.mxv_sp(t=t, values=nzv_row, w_dram=addr["w"], dst_dram=addr["mx"], **common)
    for t in reversed(range(s.nt)):
        asm.mtxv_sp(t=t, grad=g_row, w_dram=addr["w"], dst_dram=addr["ddx"], **common)
    asm.vxv_sp(steps=s.nt, values=nzv_row, g_dram=addr["g"], dst_dram=addr["dw"], **common)

    expected = [
        Expected("Mx", "MxV_SP", "dram", addr["mx"], timeseries_to_rows(to_word(s.mx.T), num_pe)),
        Expected("dL_ddx", "MTxV_SP", "dram", addr["ddx"],
                 timeseries_to_rows(to_word(s.dl_ddx.T), num_pe)),
        Expected("dL_dWx", "VXV_SP", "dram", addr["dw"], weights_to_rows(to_word(s.dl_dw),
                                                                         num_pe)),
    ]
    meta = {"source": "reneta .dat", "layer": s.layer, "sample": s.sample, "nt": s.nt,
            "nx": s.nx, "nh": s.nh, "nonzeros": K,
            "sparsity": 1.0 - K / float(s.nt * s.nx)}
    return VectorSet(cfg, asm.instructions, mem, expected, meta)
