"""Per-step trace of one sample through one layer: the raw material of hardware vectors.

Why: a hardware test vector for the three sparse kernels needs, per time step, the
sparse delta vector and its fired index list (MxV_SP input), the per-step product
(MxV_SP expected output), the memory gradient ``G_t`` (MTxV_SP/VXV_SP input), the
masked transposed product ``D_t`` (MTxV_SP expected output) and the weight
gradient ``Σ_t G_t Δ_tᵀ`` (VXV_SP expected output). ``trace_layer`` produces all of
them from the very code that trains (the sparse forward/backward of
``sparse_bptt.py``, or the hardware-numerics forward), so the vectors describe the
trainer, not a re-implementation of it.

Conventions:

* ``Δ_t = [Δx_t; Δh_t]`` (length F + H), ``W = [W_ih | W_hh]`` (R × (F + H)) with
  R = 4H (LSTM) or 3H (GRU); fired indices are ascending, those of Δh offset by F in
  ``fired``;
* LSTM: one memory M (gate order i, f, g, o); ``G_t = ∂L/∂M_t`` (accumulated,
  reference doc §2.1); ``G_x = G_h = G``;
* GRU: four memories ``M_r, M_z`` (both products), ``M_nx`` (input product only),
  ``M_nh`` (hidden product only); ``G_t = [G_r; G_z; G_nx; G_nh]`` (4H rows) is the
  gradient of those four memories. The rows ``W_ih`` feeds are ``G_x = [G_r; G_z; G_nx]``
  and those ``W_hh`` feeds are ``G_h = [G_r; G_z; G_nh]`` (3H each), so a GRU is two
  kernel runs per step: ``(W_ih, Δx, G_x)`` and ``(W_hh, Δh, G_h)``. ``product`` =
  ``W·Δ_t`` is still given (its r/z rows are what the r/z memories receive), but the
  memories use ``product_x`` and ``product_h``;
* ``D_x = (W_ihᵀ G_x) ⊙ fired_x``, ``D_h = (W_hhᵀ G_h) ⊙ fired_h``, ``D = [D_x; D_h]``;
* ``dW_ih = Σ_t G_x,t Δx_tᵀ``, ``dW_hh = Σ_t G_h,t Δh_tᵀ``, ``dW = [dW_ih | dW_hh]``:
  the gradients of the loss ``Σ_t ⟨grad_output_t, h_t⟩`` w.r.t. the weights;
* in hardware-numerics mode every float field holds the *decoded* values the forward
  used (quantized weights and deltas), and ``words`` holds the raw word patterns
  (weights, deltas and the MxV_SP results: ``product`` for an LSTM, ``product_x`` and
  ``product_h`` for a GRU); ``G``, ``D`` and ``dW`` are float (straight-through backward).
  Without numerics ``words`` is None.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from .delta import check_lengths
from .layers import DeltaGRU, DeltaLSTM
from . import sparse_bptt
from .sparse_bptt import LayerConfig, gru_backward, lstm_backward


@dataclass
class LayerTrace:
    """Everything one (layer, sample) needs for MxV_SP / MTxV_SP / VXV_SP vectors.

    Arrays are float64 numpy arrays; T steps, F inputs, H hidden units, R gate rows.
    """

    kind: str                       # "lstm" or "gru"
    layer_index: int
    sample: int
    theta_x: float
    theta_h: float
    x: np.ndarray                   # (T, F) the layer's input for this sample
    h: np.ndarray                   # (T, H) the layer's output
    dx: np.ndarray                  # (T, F)
    dh: np.ndarray                  # (T, H)
    delta: np.ndarray               # (T, F+H)
    fired_x: list                   # T arrays of ascending indices into Δx
    fired_h: list                   # T arrays of ascending indices into Δh
    fired: list                     # T arrays of ascending indices into Δ (h part offset by F)
    W_ih: np.ndarray                # (R, F)
    W_hh: np.ndarray                # (R, H)
    W: np.ndarray                   # (R, F+H)
    product_x: np.ndarray           # (T, R) W_ih·Δx_t
    product_h: np.ndarray           # (T, R) W_hh·Δh_t
    product: np.ndarray             # (T, R) W·Δ_t
    grad_output: np.ndarray         # (T, H) ∂L/∂h_t used
    G: np.ndarray                   # (T, 4H) memory gradient (see module docstring)
    G_x: np.ndarray                 # (T, R) rows fed by W_ih
    G_h: np.ndarray                 # (T, R) rows fed by W_hh
    D_x: np.ndarray                 # (T, F)
    D_h: np.ndarray                 # (T, H)
    D: np.ndarray                   # (T, F+H)
    dW_ih: np.ndarray               # (R, F)
    dW_hh: np.ndarray               # (R, H)
    dW: np.ndarray                  # (R, F+H)
    words: dict | None = None       # raw word patterns in hardware-numerics mode

    @property
    def steps(self) -> int:
        return self.delta.shape[0]

    @property
    def nnz(self) -> np.ndarray:
        """Number of fired entries of Δ_t per step (may be 0)."""
        return np.array([len(f) for f in self.fired], dtype=np.int64)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy()


def trace_layer(layer, x, layer_index: int = 0, sample: int = 0, grad_output=None,
                lengths=None, seed: int = 0) -> LayerTrace:
    """Trace one sample through layer ``layer_index`` of a DeltaLSTM/DeltaGRU.

    Args:
        layer: a ``DeltaLSTM`` or ``DeltaGRU`` (its θ, numerics and weights are used).
        x: the module's input, as its ``forward`` takes it ((T, B, F), (B, T, F) with
            ``batch_first``, or (T, F) for one sample). Lower layers run first (no grad)
            to produce the traced layer's input. The initial state is zero.
        layer_index: which layer to trace.
        sample: which sequence of the batch.
        grad_output: ∂L/∂h_t of the traced layer's output, (T, H) (or (T_len, H));
            default: standard normal values from ``torch.Generator().manual_seed(seed)``.
        lengths: optional valid lengths of the batch; the trace then covers the
            sample's valid steps only.

    Returns:
        a ``LayerTrace``.
    """
    if not isinstance(layer, (DeltaLSTM, DeltaGRU)):
        raise ValueError(f"trace_layer: layer must be a DeltaLSTM or DeltaGRU, got {type(layer).__name__}")
    if isinstance(layer_index, bool) or not isinstance(layer_index, int) \
            or not 0 <= layer_index < layer.num_layers:
        raise ValueError(f"trace_layer: layer_index must be in [0, {layer.num_layers}), got {layer_index!r}")
    if not torch.is_tensor(x):
        raise ValueError(f"trace_layer: x must be a tensor, got {type(x).__name__}")
    if x.dim() == 2:
        x = x.unsqueeze(1)
    elif x.dim() == 3:
        x = x.transpose(0, 1) if layer.batch_first else x
    else:
        raise ValueError(f"trace_layer: x must be 2-D or 3-D, got shape {tuple(x.shape)}")
    layer._check_input(x)
    T, B, _ = x.shape
    if isinstance(sample, bool) or not isinstance(sample, int) or not 0 <= sample < B:
        raise ValueError(f"trace_layer: sample must be in [0, {B}), got {sample!r}")
    lengths = check_lengths(lengths, T, B)
    steps = T if lengths is None else int(lengths[sample])
    if steps == 0:
        raise ValueError(f"trace_layer: sample {sample} has length 0")
    inp = x[:steps, sample:sample + 1].detach()

    kind = layer._kind
    H = layer.hidden_size
    valid = torch.ones(steps, 1, dtype=torch.bool, device=x.device)
    sinks = layer._sinks
    was_enabled = [sk.enabled for sk in sinks]
    try:
        for sk in sinks:            # tracing must not count in the layer's statistics
            sk.enabled = False
        with torch.no_grad():
            for lower in range(layer_index):
                inp, _ = layer._run_layer(lower, inp, valid, _zero_state(layer, inp))
    finally:
        for sk, e in zip(sinks, was_enabled):
            sk.enabled = e
    with torch.no_grad():
        h0 = inp.new_zeros(1, H)
        w_ih, w_hh, b_ih, b_hh = (p.detach() if p is not None else None
                                  for p in layer.layer_parameters(layer_index))
        cfg = LayerConfig(kind=kind, theta_x=layer.theta_x, theta_h=layer.theta_h,
                          strategy="union", sink=None, numerics=layer.numerics)
        impl = layer.numerics if layer.numerics is not None else sparse_bptt
        rec = defaultdict(list)
        if kind == "lstm":
            out, _, _, s = impl.lstm_forward(inp, valid, h0, h0, w_ih, w_hh, b_ih, b_hh, cfg,
                                             record=rec)
        else:
            out, _, s = impl.gru_forward(inp, valid, h0, w_ih, w_hh, b_ih, b_hh, cfg, record=rec)

        if grad_output is None:
            gen = torch.Generator().manual_seed(seed)
            g_out = torch.randn(steps, H, generator=gen, dtype=torch.float64)
        else:
            g_out = torch.as_tensor(grad_output, dtype=torch.float64)
            if g_out.shape == (T, H) and steps < T:
                g_out = g_out[:steps]
            if tuple(g_out.shape) != (steps, H):
                raise ValueError(f"trace_layer: grad_output must have shape ({steps}, {H}), "
                                 f"got {tuple(g_out.shape)}")
        g_out = g_out.to(dtype=inp.dtype, device=inp.device)
        bwd_rec = defaultdict(list)
        if kind == "lstm":
            lstm_backward(s, g_out.unsqueeze(1), None, None, False, False, record=bwd_rec)
        else:
            gru_backward(s, g_out.unsqueeze(1), None, False, False, record=bwd_rec)

    # backward records run t = T-1 .. 0
    Gx = np.stack([_np(g[0]) for g in reversed(bwd_rec["Gx"])])
    Gh = np.stack([_np(g[0]) for g in reversed(bwd_rec["Gh"])])
    F = inp.shape[2]
    if kind == "lstm":
        G = Gx
    else:
        G = np.concatenate([Gx, Gh[:, 2 * H:]], 1)     # [G_r; G_z; G_nx; G_nh]
    W_ih, W_hh = _np(s.wt_ih.t()), _np(s.wt_hh.t())
    dx, dh = _np(s.dx[:, 0]), _np(s.dh[:, 0])
    fx, fh = _np(s.fx[:, 0]).astype(bool), _np(s.fh[:, 0]).astype(bool)
    D_x = (Gx @ W_ih) * fx
    D_h = (Gh @ W_hh) * fh
    dW_ih = Gx.T @ dx
    dW_hh = Gh.T @ dh
    px = np.stack([_np(p[0]) for p in rec["px"]])
    ph = np.stack([_np(p[0]) for p in rec["ph"]])
    words = None
    if "words" in rec:
        words = {k: (v[:, 0] if v.ndim == 3 else v) for k, v in rec["words"].items()}
        words["W"] = np.concatenate([words["W_ih"], words["W_hh"]], 1)
        words["delta"] = np.concatenate([words["dx"], words["dh"]], 1)
    if words is not None and kind == "lstm":
        product = layer.numerics.fmt.decode(words["product"])
    else:
        product = px + ph
    fired_x = [np.flatnonzero(m) for m in fx]
    fired_h = [np.flatnonzero(m) for m in fh]
    return LayerTrace(
        kind=kind, layer_index=layer_index, sample=sample,
        theta_x=layer.theta_x, theta_h=layer.theta_h,
        x=_np(inp[:, 0]), h=_np(out[:, 0]), dx=dx, dh=dh,
        delta=np.concatenate([dx, dh], 1),
        fired_x=fired_x, fired_h=fired_h,
        fired=[np.concatenate([a, b + F]) for a, b in zip(fired_x, fired_h)],
        W_ih=W_ih, W_hh=W_hh, W=np.concatenate([W_ih, W_hh], 1),
        product_x=px, product_h=ph, product=product,
        grad_output=_np(g_out), G=G, G_x=Gx, G_h=Gh,
        D_x=D_x, D_h=D_h, D=np.concatenate([D_x, D_h], 1),
        dW_ih=dW_ih, dW_hh=dW_hh, dW=np.concatenate([dW_ih, dW_hh], 1),
        words=words,
    )


def _zero_state(layer, inp):
    z = inp.new_zeros(1, layer.hidden_size)
    return [z, z] if layer._kind == "lstm" else [z]
