"""Hardware test vectors from a trained layer: the trainer's side of the bit-exact contract.

`export_vectors` turns a `LayerTrace` (one sample through one layer) into a
`sim.vectors.VectorSet`: the Δ non-zero lists and SPM descriptors, the weights, ∂C/∂M_t,
a program (forward ``MxV_SP`` for every t, backward ``MTxV_SP`` for t descending, one
``VXV_SP``) and the expected results. The expected results are computed here at the
matrix level with the number format's reference functions (`fmt.dot`, `fmt.sum`,
`fmt.to_word`) in the documented order, with no use of the memory layouts, descriptors or
the instruction machinery: running the vectors on a backend checks that machinery.

With ``deltas="machine"`` the Δ lists are not exported: the layer's raw input time series
(``x_t``, and ``h_{t-1}`` with ``h_{-1} = 0``) go to SMEM and the program starts with one
``DELTA`` per kernel, so the forward pass runs from raw inputs and the machine's delta
encoder must reproduce the trainer's Δ words and fired sets bit-exactly (the lists are
checked as expected results too). That needs a hardware-numerics trace (the trainer's Δ is
then `sim.delta_ref.sub_word` of words; `machine_delta_inputs` verifies it) and, for an
LSTM, ``theta_x == theta_h`` (one DELTA encodes ``[x; h]`` with one θ).

An LSTM layer is one kernel ``W = [W_ih | W_hh]`` (4H rows) on ``Δ_t = [Δx_t; Δh_t]``; a
GRU layer is two (``W_ih`` on Δx with ``G_x``, ``W_hh`` on Δh with ``G_h``, 3H rows each),
because its candidate memories take the input and hidden products separately.

`export_reneta_dat` writes the same kernel in the reference testbench's ``.dat`` format
where that format's limits allow: 16 lanes and int16 integer arithmetic, so the values
are scaled by ``2**scale_bits`` and rounded to integers, and every expected value must fit
in int16 (a clear error says otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reneta_hw.config import AcceleratorConfig
from reneta_hw.isa import Assembler, pack_descriptor
from sim.golden import Memories
from sim.layout import timeseries_to_rows, weights_to_rows
from sim.vectors import Expected, VectorSet


class ExportError(ValueError):
    """The layer or sample does not fit the accelerator or the file format."""


@dataclass
class Kernel:
    """One sparse matrix product of a layer: rows of W, the Δ it multiplies, and G."""
    name: str
    w: np.ndarray          # (R, N) words
    delta: np.ndarray      # (T, N) words (zero where not fired)
    fired: list            # T ascending index arrays
    g: np.ndarray          # (T, R) words


def machine_delta_inputs(trace, fmt, kernels: list) -> list[tuple[np.ndarray, int]]:
    """Per kernel: the raw source words (T, N) and θ word a DELTA needs to reproduce the
    kernel's Δ words and fired sets; `ExportError` if it cannot (says why)."""
    from sim.delta_ref import delta_steps
    if trace.words is None:
        raise ExportError("export: deltas='machine' needs a hardware-numerics trace (the "
                          "trainer's Δ must be word arithmetic, sim.delta_ref.sub_word)")
    x = _encode(fmt, trace.x, "the input x", "error")
    h = _encode(fmt, trace.h, "the output h", "error")
    h_prev = np.concatenate([np.zeros((1, h.shape[1]), dtype=np.int64), h[:-1]])
    th_x = int(_encode(fmt, np.float64(trace.theta_x), "theta_x", "error"))
    th_h = int(_encode(fmt, np.float64(trace.theta_h), "theta_h", "error"))
    if trace.kind == "lstm":
        if th_x != th_h:
            raise ExportError(f"export: deltas='machine' encodes an LSTM's [x; h] with one "
                              f"DELTA, so theta_x ({trace.theta_x}) must equal theta_h "
                              f"({trace.theta_h}) as words")
        sources = [(np.concatenate([x, h_prev], 1), th_x)]
    else:
        sources = [(x, th_x), (h_prev, th_h)]
    for k, (src, th) in zip(kernels, sources):
        delta, fired, _ = delta_steps(fmt, src, th)
        want = np.zeros_like(fired)
        for t, idx in enumerate(k.fired):
            want[t, idx] = True
        if not (np.array_equal(fired, want) and np.array_equal(delta, k.delta)):
            t = int(np.argmax((fired != want).any(1) | (delta != k.delta).any(1)))
            raise ExportError(f"export: {k.name}: the delta encoder on the raw inputs does not "
                              f"reproduce the trainer's Δ at timestep {t}")
    return sources


def _encode(fmt, x, what: str, on_overflow: str):
    try:
        return fmt.encode(np.asarray(x, dtype=np.float64), on_overflow=on_overflow)
    except ValueError as e:
        raise ExportError(f"export: {what} does not fit the number format: {e}") from None


def kernels_of(trace, fmt, on_overflow: str = "error") -> list[Kernel]:
    """The layer's kernels in words (the trace's own words in hardware-numerics mode)."""
    words = trace.words
    if words is not None:
        w_all, d_all = words["W"], words["delta"]
    else:
        w_all = _encode(fmt, trace.W, "the weights", on_overflow)
        d_all = _encode(fmt, trace.delta, "the deltas", on_overflow)
    F = trace.W_ih.shape[1]
    mask = np.zeros(d_all.shape, dtype=bool)
    for t, idx in enumerate(trace.fired):
        mask[t, idx] = True
    d_all = np.where(mask, d_all, 0)
    if trace.kind == "lstm":
        g = _encode(fmt, trace.G, "the memory gradient G", on_overflow)
        return [Kernel("W", w_all, d_all, list(trace.fired), g)]
    gx = _encode(fmt, trace.G_x, "the memory gradient G_x", on_overflow)
    gh = _encode(fmt, trace.G_h, "the memory gradient G_h", on_overflow)
    return [Kernel("W_ih", w_all[:, :F], d_all[:, :F], list(trace.fired_x), gx),
            Kernel("W_hh", w_all[:, F:], d_all[:, F:], list(trace.fired_h), gh)]


# --- expected results, matrix level ------------------------------------------------------

def expected_products(fmt, k: Kernel) -> np.ndarray:
    """MxV_SP: (T, R) words, row r at t = to_word(Σ over fired i ascending W[r,i]·Δ_t[i])."""
    out = []
    for t, idx in enumerate(k.fired):
        acc = fmt.dot(k.w[:, idx], k.delta[t, idx][None, :], axis=-1)
        out.append(fmt.to_word(acc))
    return np.array(out, dtype=np.int64).reshape(len(k.fired), k.w.shape[0])


def expected_transposed(fmt, k: Kernel, num_pe: int) -> np.ndarray:
    """MTxV_SP: (T, N) words, at fired i: blocks of num_pe lanes chained, then summed."""
    R, N = k.w.shape
    out = np.zeros((len(k.fired), N), dtype=np.int64)
    blocks = -(-R // num_pe)
    w = np.zeros((blocks * num_pe, N), dtype=np.int64)
    w[:R] = k.w
    for t, idx in enumerate(k.fired):
        if not len(idx):
            continue
        g = np.zeros(blocks * num_pe, dtype=np.int64)
        g[:R] = k.g[t]
        wb = w[:, idx].T.reshape(len(idx), blocks, num_pe)
        chains = fmt.dot(wb, g.reshape(blocks, num_pe)[None], axis=-1)     # (k, blocks)
        out[t, idx] = fmt.to_word(fmt.sum(chains, axis=-1))
    return out


def expected_weight_gradient(fmt, k: Kernel) -> np.ndarray:
    """VXV_SP: (R, N) words, dW[r,i] = to_word(Σ over t where i fired of G_t[r]·Δ_t[i])."""
    R, N = k.w.shape
    acc = np.full((R, N), fmt.zero_acc, dtype=np.int64)
    for t, idx in enumerate(k.fired):
        if len(idx):
            acc[:, idx] = fmt.mac(acc[:, idx], k.g[t][:, None], k.delta[t, idx][None, :])
    return fmt.to_word(acc)


# --- vector set -----------------------------------------------------------------------------

def export_vectors(trace, cfg: AcceleratorConfig | None = None, on_overflow: str = "error",
                   meta: dict | None = None, deltas: str = "host") -> VectorSet:
    """The layer's MxV_SP / MTxV_SP / VXV_SP vectors for the accelerator ``cfg``;
    ``deltas="machine"``: DELTA instructions compute the lists from raw inputs (module doc)."""
    if deltas not in ("host", "machine"):
        raise ExportError(f"export: deltas must be 'host' or 'machine', got {deltas!r}")
    cfg = cfg or AcceleratorConfig()
    fmt, Np = cfg.fmt, cfg.num_pe
    kernels = kernels_of(trace, fmt, on_overflow)
    T = trace.steps
    on_machine = deltas == "machine"
    sources = machine_delta_inputs(trace, fmt, kernels) if on_machine else [None] * len(kernels)

    def need(ok, msg):
        if not ok:
            raise ExportError(f"export: {msg}")

    need(T <= cfg.max_m, f"{T} timesteps exceed max_m={cfg.max_m}")
    need(len(kernels) * T <= cfg.spm_depth,
         f"{len(kernels)} descriptor tables of {T} steps exceed spm_depth={cfg.spm_depth}")
    plan, smem_row, dram = [], 0, []
    dram_bytes = 0

    def dram_region(rows):
        nonlocal dram_bytes
        a = dram_bytes
        dram_bytes += rows * cfg.row_bytes
        return a

    mem = Memories.empty(cfg)
    for kn, (k, source) in enumerate(zip(kernels, sources)):
        R, N = k.w.shape
        blocks, bx = -(-R // Np), -(-N // Np)
        need(blocks * Np <= cfg.max_n, f"{k.name}: {R} gate rows exceed max_n={cfg.max_n}")
        need(N <= cfg.max_n, f"{k.name}: {N} inputs exceed max_n={cfg.max_n}")
        counts = np.array([len(i) for i in k.fired], dtype=np.int64)
        heads = np.concatenate([[0], np.cumsum(counts)[:-1]])
        total = int(counts.sum())
        list_rows = max(1, -(-total // Np))
        g_rows = timeseries_to_rows(k.g.T, Np)
        x_rows = timeseries_to_rows(source[0].T, Np) if on_machine else g_rows[:0]
        used = smem_row + 2 * list_rows + g_rows.shape[0] + x_rows.shape[0]
        need(used <= cfg.smem_depth,
             f"the lists, gradients and inputs need {used} SMEM rows, more than "
             f"smem_depth={cfg.smem_depth}")
        flat_i = np.zeros(list_rows * Np, dtype=np.int64)
        flat_v = np.zeros(list_rows * Np, dtype=np.int64)
        if total:
            t_of = np.repeat(np.arange(T), counts)
            idx = np.concatenate([i for i in k.fired if len(i)])
            flat_i[:total], flat_v[:total] = idx, k.delta[t_of, idx]
        nzl, nzv, g_smem = smem_row, smem_row + list_rows, smem_row + 2 * list_rows
        x_smem = g_smem + g_rows.shape[0]
        mem.smem[g_smem:g_smem + g_rows.shape[0]] = g_rows
        mem.smem[x_smem:x_smem + x_rows.shape[0]] = x_rows
        smem_row = x_smem + x_rows.shape[0]
        spm = kn * T
        if not on_machine:
            mem.smem[nzl:nzl + list_rows] = flat_i.reshape(-1, Np)
            mem.smem[nzv:nzv + list_rows] = flat_v.reshape(-1, Np)
            for t in range(T):
                mem.spm[spm + t] = pack_descriptor(cfg, int(heads[t]) // Np,
                                                   int(heads[t]) % Np, int(counts[t]))
        w_rows = weights_to_rows(k.w, Np)
        a_w = dram_region(w_rows.shape[0])
        a_g = dram_region(g_rows.shape[0])
        dram += [w_rows, g_rows]
        a_mx, a_dx, a_dw = (dram_region(blocks * T), dram_region(bx * T),
                            dram_region(blocks * N))
        dram += [np.zeros((blocks * T + bx * T + blocks * N, Np), dtype=np.int64)]
        plan.append(dict(k=k, blocks=blocks, n1=N, spm=spm, nzl=nzl, nzv=nzv, g_smem=g_smem,
                         a_w=a_w, a_g=a_g, a_mx=a_mx, a_dx=a_dx, a_dw=a_dw, x_smem=x_smem,
                         source=source, lists=(flat_i.reshape(-1, Np), flat_v.reshape(-1, Np))))
    mem.dram = np.concatenate(dram).reshape(-1)

    asm = Assembler(cfg)
    expected = []
    for region, p in enumerate(plan):
        if on_machine:
            asm.delta(steps=T, nt=T, n=p["n1"], theta=p["source"][1], nzl=p["nzl"],
                      values=p["nzv"], spm_addr=p["spm"], x_smem=p["x_smem"], region=region)
            k = p["k"]
            expected += [Expected(f"{k.name}.nz_index", "DELTA", "smem", p["nzl"], p["lists"][0]),
                         Expected(f"{k.name}.nz_value", "DELTA", "smem", p["nzv"], p["lists"][1])]
    for p in plan:
        common = dict(nt=T, blocks=p["blocks"], n1=p["n1"], spm_addr=p["spm"], nzl=p["nzl"])
        for t in range(T):
            asm.mxv_sp(t=t, values=p["nzv"], w_dram=p["a_w"], dst_dram=p["a_mx"], **common)
    for p in plan:
        common = dict(nt=T, blocks=p["blocks"], n1=p["n1"], spm_addr=p["spm"], nzl=p["nzl"])
        for t in reversed(range(T)):
            asm.mtxv_sp(t=t, grad=p["g_smem"], w_dram=p["a_w"], dst_dram=p["a_dx"], **common)
    for p in plan:
        common = dict(nt=T, blocks=p["blocks"], n1=p["n1"], spm_addr=p["spm"], nzl=p["nzl"])
        asm.vxv_sp(steps=T, values=p["nzv"], g_dram=p["a_g"], dst_dram=p["a_dw"], **common)
        k = p["k"]
        expected += [
            Expected(f"{k.name}.product", "MxV_SP", "dram", p["a_mx"],
                     timeseries_to_rows(expected_products(fmt, k).T, Np)),
            Expected(f"{k.name}.dL_dDelta", "MTxV_SP", "dram", p["a_dx"],
                     timeseries_to_rows(expected_transposed(fmt, k, Np).T, Np)),
            Expected(f"{k.name}.dL_dW", "VXV_SP", "dram", p["a_dw"],
                     weights_to_rows(expected_weight_gradient(fmt, k), Np)),
        ]
    nnz = sum(int(sum(len(i) for i in p["k"].fired)) for p in plan)
    dense = sum(T * p["k"].w.shape[1] for p in plan)
    info = {"source": "reneta_train.export", "cell": trace.kind, "layer": trace.layer_index,
            "sample": trace.sample, "steps": T, "theta_x": trace.theta_x,
            "theta_h": trace.theta_h, "kernels": [p["k"].name for p in plan],
            "nonzeros": nnz, "sparsity": 1.0 - nnz / dense if dense else 0.0,
            "deltas": deltas}
    info.update(meta or {})
    return VectorSet(cfg, asm.instructions, mem, expected, info)


# --- reference .dat files --------------------------------------------------------------------

LANES = 16


def _blocked_bytes(m: np.ndarray) -> bytes:
    """(outer, inner) -> the files' (outer/16, inner, 16) order, big-endian int16."""
    outer, inner = m.shape
    return m.reshape(outer // LANES, LANES, inner).transpose(0, 2, 1).astype(">i2").tobytes()


def export_reneta_dat(trace, directory, sample: int = 0, layer: int = 1,
                      scale_bits: int = 4, kernel: int = 0) -> Path:
    """Write one kernel of the trace as the reference testbench's .dat files.

    Values are ``round(x * 2**scale_bits)`` integers; rows and columns are zero-padded to
    multiples of 16 (padding columns never fire). Expected results are exact integer
    products, which the format requires to fit in int16.
    """
    d = Path(directory)
    kernels = [(trace.W, trace.delta, trace.G, trace.fired)] if trace.kind == "lstm" else [
        (trace.W_ih, trace.dx, trace.G_x, trace.fired_x),
        (trace.W_hh, trace.dh, trace.G_h, trace.fired_h)]
    if not 0 <= kernel < len(kernels):
        raise ExportError(f"export: kernel {kernel} does not exist ({len(kernels)} kernels)")
    W, Dl, G, fired = kernels[kernel]
    scale = 2.0 ** scale_bits
    T = trace.steps
    R, N = W.shape
    Rp, Np_ = -(-R // LANES) * LANES, -(-N // LANES) * LANES

    def ints(x, what):
        v = np.rint(np.asarray(x) * scale).astype(np.int64)
        if np.abs(v).max(initial=0) > 32767:
            raise ExportError(f"export: {what} scaled by 2**{scale_bits} overflows int16; use "
                              f"a smaller scale_bits")
        return v

    w = np.zeros((Rp, Np_), dtype=np.int64)
    w[:R, :N] = ints(W, "W")
    mask = np.zeros((T, Np_), dtype=bool)
    for t, idx in enumerate(fired):
        mask[t, idx] = True
    x = np.zeros((T, Np_), dtype=np.int64)
    x[:, :N] = ints(Dl, "Δ")
    x = np.where(mask, x, 0)
    g = np.zeros((T, Rp), dtype=np.int64)
    g[:, :R] = ints(G, "G")
    mx, ddx, dw = x @ w.T, (g @ w) * mask, g.T @ x
    for name, v in (("Mx", mx), ("dL_ddx", ddx), ("dL_dWx", dw)):
        if np.abs(v).max(initial=0) > 32767:
            raise ExportError(f"export: expected {name} overflows int16 (max |{name}| = "
                              f"{int(np.abs(v).max())}); use a smaller scale_bits")
    if N > 255 * 16 or T > 65535:
        raise ExportError("export: the .dat format holds at most 65535 steps and 4080 columns")
    counts = mask.sum(axis=1)
    head = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if head.max(initial=0) // LANES >= 4096:
        raise ExportError("export: the non-zero list exceeds the .dat format's 12-bit rows")
    d.mkdir(parents=True, exist_ok=True)
    tag = f"l{layer}_s{sample}"
    desc = ((head // LANES) << 12) | ((head % LANES) << 8) | (counts & 0xFF)
    (d / f"x_del_nzp_{tag}.dat").write_bytes(np.array([T], ">u2").tobytes()
                                             + desc.astype(">u4").tobytes())
    t_idx, i_idx = np.nonzero(mask)
    (d / f"x_del_nzl_{tag}.dat").write_bytes(i_idx.astype(">i2").tobytes()
                                             + x[t_idx, i_idx].astype(">i2").tobytes())
    (d / f"Wx_l{layer}.dat").write_bytes(_blocked_bytes(w))
    (d / f"Mx_{tag}.dat").write_bytes(_blocked_bytes(mx.T))
    (d / f"dL_dMx_{tag}.dat").write_bytes(_blocked_bytes(g.T))
    (d / f"dL_ddx_{tag}.dat").write_bytes(_blocked_bytes(ddx.T))
    (d / f"dL_dWx_{tag}.dat").write_bytes(_blocked_bytes(dw))
    return d
