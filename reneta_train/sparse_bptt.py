"""Symmetric temporally sparse BPTT: custom autograd Functions for one layer.

Why a custom backward: autograd through the masked delta forward computes every
transposed product ``Wᵀ·G_t`` and every outer product ``G_t·Δ_tᵀ`` densely, although
only the columns of ``W`` whose unit fired at step t contribute (reference doc §2.2).
Here the forward *and* the backward touch only the fired columns, with the same
index list per step ("symmetric").

Notation (one sample; ``v_t = [x_t; h_{t−1}]``, ``v̂`` the delta memories,
``m_t`` the fired mask, ``Δ_t = m_t ⊙ (v_t − v̂_{t−1})``, ``v̂_t = v̂_{t−1} + Δ_t``).

LSTM (one memory, 4H rows, gate order i, f, g, o)::

    M_t = M_{t−1} + W_ih Δx_t + W_hh Δh_t,   M_{−1} = b_ih + b_hh
    G_t = G_{t+1} + δZ_t                     (G_t = ∂L/∂M_t, δZ_t the local gate gradient)
    D_t = Wᵀ G_t   only at fired columns     (MTxV_SP)
    ∂L/∂v_t = m_t ⊙ (D_t + a_t),  a_{t−1} = ¬m_t ⊙ a_t − m_t ⊙ D_t   (a = ∂L/∂v̂)
    ∂L/∂W += G_t Δ_tᵀ  only at fired columns (VXV_SP),  ∂L/∂b_ih = ∂L/∂b_hh = G_0

GRU (the reset gate multiplies only the hidden part of the candidate, so the
memories are ``M_r, M_z`` (both products), ``M_nx`` (input product only) and
``M_nh`` (hidden product only); reference doc §1.3)::

    r = σ(M_r), z = σ(M_z), n = tanh(M_nx + r ⊙ M_nh), h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}
    dn = dh ⊙ (1 − z),  dp = dn ⊙ (1 − n²)
    δM_r = dp ⊙ M_nh ⊙ r(1 − r),  δM_z = dh ⊙ (h_{t−1} − n) ⊙ z(1 − z),
    δM_nx = dp,  δM_nh = dp ⊙ r
    Gx_t = Gx_{t+1} + [δM_r; δM_z; δM_nx]   (gradient of the memories W_ih feeds)
    Gh_t = Gh_{t+1} + [δM_r; δM_z; δM_nh]   (gradient of the memories W_hh feeds)
    Dx_t = W_ihᵀ Gx_t,  Dh_t = W_hhᵀ Gh_t   (only at fired columns)
    ∂L/∂W_ih += Gx_t Δx_tᵀ,  ∂L/∂W_hh += Gh_t Δh_tᵀ,  ∂L/∂b_ih = Gx_0,  ∂L/∂b_hh = Gh_0
    ∂L/∂h_{t−1} = dh ⊙ z + (h-part of ∂L/∂v_t)

Both cells are implemented with the same two-operand structure (x part with
``W_ih``, h part with ``W_hh``; for the LSTM ``Gx = Gh = G``).

Batching strategy (``strategy``):

* ``"union"`` (default): per step and operand, the columns fired by *any* sample of
  the batch are gathered once and one dense product over those columns is done for
  the whole batch. Cost per step ≈ ``B · R · |∪_b S_b|`` flops plus a gather of
  ``R · |∪_b S_b|`` weights, and a constant number of kernel launches. Exact,
  because non-fired entries are exactly zero (forward, weight gradient) or masked
  (transposed product).
* ``"per_sample"``: a Python loop over the samples, each with its own fired list:
  ``Σ_b R · |S_b|`` flops, the true sparse work, but ``O(B)`` small kernel calls per
  step.

On a CPU the per-call overhead (~5–20 µs) dominates the per-sample products for
the model sizes used here, so ``"union"`` is faster even though the union of a
large batch's fired sets approaches the dense set (at 89 % per-sample Δh sparsity
and B = 32 it still covers ~1 − 0.89³² ≈ 98 % of the columns); ``"per_sample"`` is
kept as the executable model of what the accelerator (batch 1) does. When the union
is every column, the kernels skip the gather (``FULL``). Counters (``stats``) are
always per sample, whatever the strategy.

Measured (CPU time, 1 thread, one DeltaLSTM layer F=16, H=128, T=61, forward +
backward, random-walk input; shared machine, ±20 %)::

    B   θ     op reduction   union   per_sample   autograd (sparse_bptt=False)
    1   0     2 %            24 ms   42 ms        22 ms
    1   0.2   95 %           26 ms   34 ms        26 ms
    32  0     2 %            60 ms   647 ms       54 ms
    32  0.05  83 %           64 ms   325 ms       51 ms
    32  0.2   95 %           54 ms   231 ms       53 ms

So on a CPU the sparse path costs about what dense autograd costs (Python/launch
overhead per step dominates at these sizes); its value here is exactness of the
sparse algorithm and its counts, the savings are the accelerator's.

The Functions are ``once_differentiable``: no double backward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.autograd.function import once_differentiable

from .delta import delta_step
from .stats import CallCounts, StatsSink

STRATEGIES = ("union", "per_sample")


@dataclass
class LayerConfig:
    """Non-tensor arguments of one layer call (passed through ``Function.apply``)."""

    kind: str                      # "lstm" or "gru"
    theta_x: float
    theta_h: float
    strategy: str = "union"
    sink: StatsSink | None = None
    numerics: object | None = None  # a reneta_train.numerics.HardwareNumerics


class Saved:
    """What the forward keeps for the backward (and for the trace).

    Shapes: T steps, B samples, F inputs, H hidden units, R gate rows.
    ``fx``/``fh``: fired masks (T, B, F)/(T, B, H); ``dx``/``dh``: the deltas;
    ``gx``/``gh``: per step, the fired-column groups (see ``fired_groups``);
    ``wt_ih``/``wt_hh``: the transposed weights the forward actually used (the
    quantized ones in hardware-numerics mode: the backward then is a
    straight-through estimator). Cell-specific tensors are set by the cell.
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)


# --------------------------------------------------------------------------
# sparse kernels over fired columns
# --------------------------------------------------------------------------

def fired_groups(fired: torch.Tensor, strategy: str) -> list:
    """Split one step's fired mask (B, N) into ``(rows, cols)`` groups.

    ``rows`` is ``None`` (all samples share ``cols``, the union of their fired
    columns) or a sample index ``b`` (``cols`` are exactly b's fired columns).
    ``cols`` is an ascending index tensor, or ``FULL`` when the union holds every
    column (then the kernels use the operands as they are, without a gather: the
    same arithmetic, less copying). Empty groups are dropped.
    """
    if strategy == "union":
        any_fired = fired.any(0)
        cols = any_fired.nonzero().squeeze(1)
        if cols.numel() == 0:
            return []
        return [(None, FULL if cols.numel() == fired.shape[1] else cols)]
    counts = fired.sum(1).tolist()
    cols = fired.nonzero()[:, 1].split(counts)
    return [(b, c) for b, c in enumerate(cols) if counts[b]]


#: marker for "every column" in a group (see ``fired_groups``)
FULL = slice(None)


def _cols(t: torch.Tensor, dim: int, cols) -> torch.Tensor:
    """``t`` restricted to ``cols`` along ``dim`` (a view for FULL, a gather otherwise)."""
    return t if cols is FULL else t.index_select(dim, cols)


def _put_cols(t: torch.Tensor, dim: int, cols, value: torch.Tensor) -> None:
    if cols is FULL:
        t.copy_(value)
    else:
        t.index_copy_(dim, cols, value)


def sparse_mv(delta: torch.Tensor, groups: list, wt: torch.Tensor) -> torch.Tensor:
    """``delta @ wt`` (= ``W·Δ`` per sample) using only the fired columns. (B, R)."""
    out = delta.new_zeros(delta.shape[0], wt.shape[1])
    for rows, cols in groups:
        if rows is None:
            out = _cols(delta, 1, cols) @ _cols(wt, 0, cols)
        else:
            out[rows] = delta[rows, cols] @ wt[cols]
    return out


def sparse_tmv(G: torch.Tensor, groups: list, wt: torch.Tensor, fired: torch.Tensor,
               a: torch.Tensor) -> torch.Tensor:
    """Transposed product at fired columns, plus the held-memory carry.

    Returns ``∂L/∂v_t = m ⊙ (WᵀG + a)`` (B, N) and updates the carry ``a`` in place
    to ``¬m ⊙ a − m ⊙ WᵀG``. ``WᵀG`` is computed only at the groups' columns.
    """
    dv = torch.zeros_like(a)
    for rows, cols in groups:
        if rows is None:
            D = G @ _cols(wt, 0, cols).t()             # (B, k)
            m = _cols(fired, 1, cols)
            a_sel = _cols(a, 1, cols)
            _put_cols(dv, 1, cols, torch.where(m, D + a_sel, torch.zeros_like(D)))
            _put_cols(a, 1, cols, torch.where(m, -D, a_sel))
        else:
            D = wt[cols] @ G[rows]                     # (k,)
            dv[rows, cols] = D + a[rows, cols]
            a[rows, cols] = -D
    return dv


def sparse_outer_acc(dwt: torch.Tensor, delta: torch.Tensor, groups: list, G: torch.Tensor) -> None:
    """``dwt[cols] += Δ[:, cols]ᵀ G`` (the transposed ``G·Δᵀ``), fired columns only."""
    for rows, cols in groups:
        if rows is None:
            if cols is FULL:
                dwt.addmm_(delta.t(), G)
            else:
                dwt.index_add_(0, cols, delta.index_select(1, cols).t() @ G)
        else:
            dwt.index_add_(0, cols, torch.outer(delta[rows, cols], G[rows]))


def _bias_or_zeros(b, rows, like):
    return b if b is not None else like.new_zeros(rows)


# --------------------------------------------------------------------------
# float forward (the numerics forward lives in numerics.py and returns the same Saved)
# --------------------------------------------------------------------------

def _encode_inputs(t, x, h, s, cfg, valid_t):
    """Delta-encode x_t and h_{t−1}; record masks, deltas and groups in ``s``."""
    dx, fx, s.x_hat = delta_step(x[t], s.x_hat, cfg.theta_x, valid_t)
    dh, fh, s.h_hat = delta_step(h, s.h_hat, cfg.theta_h, valid_t)
    s.dx[t], s.fx[t], s.dh[t], s.fh[t] = dx, fx, dh, fh
    s.gx.append(fired_groups(fx, cfg.strategy))
    s.gh.append(fired_groups(fh, cfg.strategy))
    return dx, dh


def _new_saved(x, h0, w_ih, w_hh, valid):
    T, B, F = x.shape
    H = w_hh.shape[1]
    z = dict(dtype=x.dtype, device=x.device)
    return Saved(
        T=T, B=B, F=F, H=H, valid=valid,
        wt_ih=w_ih.t().contiguous(), wt_hh=w_hh.t().contiguous(),
        dx=torch.zeros(T, B, F, **z), dh=torch.zeros(T, B, H, **z),
        fx=torch.zeros(T, B, F, dtype=torch.bool, device=x.device),
        fh=torch.zeros(T, B, H, dtype=torch.bool, device=x.device),
        gx=[], gh=[],
        x_hat=torch.zeros(B, F, **z), h_hat=torch.zeros(B, H, **z),
        h0=h0,
    )


def lstm_forward(x, valid, h0, c0, w_ih, w_hh, b_ih, b_hh, cfg: LayerConfig, record=None):
    """Sparse DeltaLSTM forward over a whole sequence (no autograd).

    Returns ``(output (T,B,H), h_n, c_n, saved)``. ``record`` (a dict of lists) is
    filled with the per-step products ``px = W_ih·Δx`` and ``ph = W_hh·Δh`` when given.
    """
    s = _new_saved(x, h0, w_ih, w_hh, valid)
    T, B, H = s.T, s.B, s.H
    R = 4 * H
    M = (_bias_or_zeros(b_ih, R, x) + _bias_or_zeros(b_hh, R, x)).expand(B, R).clone()
    s.gates = x.new_zeros(T, B, R)
    s.tanh_c = x.new_zeros(T, B, H)
    s.c = x.new_zeros(T, B, H)
    s.c0 = c0
    out = x.new_zeros(T, B, H)
    h, c = h0, c0
    for t in range(T):
        v = valid[t].unsqueeze(1)
        dx, dh = _encode_inputs(t, x, h, s, cfg, v)
        px = sparse_mv(dx, s.gx[t], s.wt_ih)
        ph = sparse_mv(dh, s.gh[t], s.wt_hh)
        if record is not None:
            record["px"].append(px)
            record["ph"].append(ph)
        M = M + px + ph
        gi, gf, gg, go = M.chunk(4, 1)
        i, f, g, o = torch.sigmoid(gi), torch.sigmoid(gf), torch.tanh(gg), torch.sigmoid(go)
        c_new = f * c + i * g
        tc = torch.tanh(c_new)
        h_new = o * tc
        c = torch.where(v, c_new, c)
        h = torch.where(v, h_new, h)
        out[t] = torch.where(v, h_new, torch.zeros_like(h_new))
        s.gates[t] = torch.cat((i, f, g, o), 1)
        s.tanh_c[t] = tc
        s.c[t] = c
    return out, h, c, s


def gru_forward(x, valid, h0, w_ih, w_hh, b_ih, b_hh, cfg: LayerConfig, record=None):
    """Sparse DeltaGRU forward over a whole sequence (no autograd).

    Memories (reference doc §1.3): ``M_rz`` (2H) gets both products,
    ``M_nx`` (H) the input product, ``M_nh`` (H) the hidden product.
    """
    s = _new_saved(x, h0, w_ih, w_hh, valid)
    T, B, H = s.T, s.B, s.H
    R = 3 * H
    bi = _bias_or_zeros(b_ih, R, x)
    bh = _bias_or_zeros(b_hh, R, x)
    M_rz = (bi[:2 * H] + bh[:2 * H]).expand(B, 2 * H).clone()
    M_nx = bi[2 * H:].expand(B, H).clone()
    M_nh = bh[2 * H:].expand(B, H).clone()
    s.r = x.new_zeros(T, B, H)
    s.z = x.new_zeros(T, B, H)
    s.n = x.new_zeros(T, B, H)
    s.m_nh = x.new_zeros(T, B, H)
    s.h_prev = x.new_zeros(T, B, H)
    out = x.new_zeros(T, B, H)
    h = h0
    for t in range(T):
        v = valid[t].unsqueeze(1)
        dx, dh = _encode_inputs(t, x, h, s, cfg, v)
        px = sparse_mv(dx, s.gx[t], s.wt_ih)
        ph = sparse_mv(dh, s.gh[t], s.wt_hh)
        if record is not None:
            record["px"].append(px)
            record["ph"].append(ph)
        M_rz = M_rz + px[:, :2 * H] + ph[:, :2 * H]
        M_nx = M_nx + px[:, 2 * H:]
        M_nh = M_nh + ph[:, 2 * H:]
        r = torch.sigmoid(M_rz[:, :H])
        z = torch.sigmoid(M_rz[:, H:])
        n = torch.tanh(M_nx + r * M_nh)
        h_new = (1 - z) * n + z * h
        s.r[t], s.z[t], s.n[t], s.m_nh[t], s.h_prev[t] = r, z, n, M_nh, h
        h = torch.where(v, h_new, h)
        out[t] = torch.where(v, h_new, torch.zeros_like(h_new))
    return out, h, s


# --------------------------------------------------------------------------
# backward
# --------------------------------------------------------------------------

class _Backward:
    """State shared by both cells' backward loops: carries, gradients, kernels."""

    def __init__(self, s: Saved, need_x: bool, need_w: bool, record=None):
        self.s = s
        self.need_x = need_x
        self.need_w = need_w
        self.record = record
        z = dict(dtype=s.dx.dtype, device=s.dx.device)
        R = s.wt_ih.shape[1]
        self.a_x = torch.zeros(s.B, s.F, **z) if need_x else None
        self.a_h = torch.zeros(s.B, s.H, **z)
        self.dx_in = torch.zeros(s.T, s.B, s.F, **z) if need_x else None
        self.dwt_ih = torch.zeros(s.F, R, **z) if need_w else None
        self.dwt_hh = torch.zeros(s.H, R, **z) if need_w else None

    def step(self, t: int, Gx: torch.Tensor, Gh: torch.Tensor) -> torch.Tensor:
        """Sparse products of step t; returns ∂L/∂h_{t−1} through Δh_t (B, H)."""
        s = self.s
        if self.need_x:
            self.dx_in[t] = sparse_tmv(Gx, s.gx[t], s.wt_ih, s.fx[t], self.a_x)
        dvh = sparse_tmv(Gh, s.gh[t], s.wt_hh, s.fh[t], self.a_h)
        if self.need_w:
            sparse_outer_acc(self.dwt_ih, s.dx[t], s.gx[t], Gx)
            sparse_outer_acc(self.dwt_hh, s.dh[t], s.gh[t], Gh)
        if self.record is not None:
            self.record["Gx"].append(Gx.clone())
            self.record["Gh"].append(Gh.clone())
        return dvh

    def weight_grads(self):
        if not self.need_w:
            return None, None
        return self.dwt_ih.t(), self.dwt_hh.t()


def _zeros_if_none(g, like):
    return torch.zeros_like(like) if g is None else g


def lstm_backward(s: Saved, grad_out, grad_hn, grad_cn, need_x, need_w, record=None):
    """Sparse BPTT for the LSTM. Returns (dx, dW_ih, dW_hh, db, dh0, dc0)."""
    bw = _Backward(s, need_x, need_w, record)
    B, H = s.B, s.H
    dh_next = _zeros_if_none(grad_hn, s.h0).clone()
    dc_next = _zeros_if_none(grad_cn, s.c0).clone()
    G = s.dx.new_zeros(B, 4 * H)
    for t in range(s.T - 1, -1, -1):
        v = s.valid[t].unsqueeze(1)
        dh = dh_next
        if grad_out is not None:
            dh = dh + torch.where(v, grad_out[t], torch.zeros_like(dh))
        i, f, g, o = s.gates[t].chunk(4, 1)
        tc = s.tanh_c[t]
        c_prev = s.c[t - 1] if t > 0 else s.c0
        dc = dh * o * (1 - tc * tc) + dc_next
        dz = torch.cat((dc * g * i * (1 - i),
                        dc * c_prev * f * (1 - f),
                        dc * i * (1 - g * g),
                        dh * tc * o * (1 - o)), 1)
        G = G + torch.where(v, dz, torch.zeros_like(dz))
        dvh = bw.step(t, G, G)
        dh_next = torch.where(v, dvh, dh_next)
        dc_next = torch.where(v, dc * f, dc_next)
    dW_ih, dW_hh = bw.weight_grads()
    return bw.dx_in, dW_ih, dW_hh, G.sum(0), dh_next, dc_next


def gru_backward(s: Saved, grad_out, grad_hn, need_x, need_w, record=None):
    """Sparse BPTT for the GRU. Returns (dx, dW_ih, dW_hh, db_ih, db_hh, dh0)."""
    bw = _Backward(s, need_x, need_w, record)
    B, H = s.B, s.H
    dh_next = _zeros_if_none(grad_hn, s.h0).clone()
    G_rz = s.dx.new_zeros(B, 2 * H)
    G_nx = s.dx.new_zeros(B, H)
    G_nh = s.dx.new_zeros(B, H)
    zero = s.dx.new_zeros(B, H)
    for t in range(s.T - 1, -1, -1):
        v = s.valid[t].unsqueeze(1)
        dh = dh_next
        if grad_out is not None:
            dh = dh + torch.where(v, grad_out[t], zero)
        r, z, n, m_nh, h_prev = s.r[t], s.z[t], s.n[t], s.m_nh[t], s.h_prev[t]
        dp = dh * (1 - z) * (1 - n * n)
        d_rz = torch.cat((dp * m_nh * r * (1 - r), dh * (h_prev - n) * z * (1 - z)), 1)
        G_rz = G_rz + torch.where(v, d_rz, torch.zeros_like(d_rz))
        G_nx = G_nx + torch.where(v, dp, zero)
        G_nh = G_nh + torch.where(v, dp * r, zero)
        dvh = bw.step(t, torch.cat((G_rz, G_nx), 1), torch.cat((G_rz, G_nh), 1))
        dh_next = torch.where(v, dh * z + dvh, dh_next)
    dW_ih, dW_hh = bw.weight_grads()
    return (bw.dx_in, dW_ih, dW_hh, torch.cat((G_rz, G_nx), 1).sum(0),
            torch.cat((G_rz, G_nh), 1).sum(0), dh_next)


# --------------------------------------------------------------------------
# counting
# --------------------------------------------------------------------------

def call_counts(s: Saved, rows: int) -> CallCounts:
    """All counts of one call with a single device→host transfer."""
    valid, fx, fh = torch.stack((s.valid.sum(), s.fx.sum(), s.fh.sum())).tolist()
    return CallCounts(rows=rows, nx=s.F, nh=s.H, valid=valid, fired_x=fx, fired_h=fh)


# --------------------------------------------------------------------------
# autograd Functions
# --------------------------------------------------------------------------

def _run_forward(kind, cfg, args, record=None):
    if cfg.numerics is not None:
        fwd = cfg.numerics.lstm_forward if kind == "lstm" else cfg.numerics.gru_forward
    else:
        fwd = lstm_forward if kind == "lstm" else gru_forward
    return fwd(*args, cfg, record=record)


class DeltaLSTMFunction(torch.autograd.Function):
    """One DeltaLSTM layer over a whole sequence, with sparse BPTT.

    ``apply(x (T,B,F), valid (T,B) bool, h0 (B,H), c0 (B,H), w_ih, w_hh, b_ih|None,
    b_hh|None, cfg: LayerConfig) -> (output (T,B,H), h_n, c_n)``.
    """

    @staticmethod
    def forward(ctx, x, valid, h0, c0, w_ih, w_hh, b_ih, b_hh, cfg):
        ctx.set_materialize_grads(False)
        out, hn, cn, s = _run_forward("lstm", cfg, (x, valid, h0, c0, w_ih, w_hh, b_ih, b_hh))
        ctx.s, ctx.cfg = s, cfg
        ctx.counts = call_counts(s, 4 * s.H)
        ctx.save_for_backward(w_ih, w_hh, c0)   # only to detect in-place changes before backward
        if cfg.sink is not None:
            cfg.sink.add(**ctx.counts.forward_counts())
        return out, hn, cn

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_hn, grad_cn):
        ctx.saved_tensors  # raises if the weights were modified in place since forward
        need = ctx.needs_input_grad
        need_x, need_w = need[0], need[4] or need[5]
        dx, dW_ih, dW_hh, db, dh0, dc0 = lstm_backward(ctx.s, grad_out, grad_hn, grad_cn, need_x, need_w)
        if ctx.cfg.sink is not None:
            ctx.cfg.sink.add(**ctx.counts.backward_counts(need_x, need_w))
        return (dx, None, dh0 if need[2] else None, dc0 if need[3] else None,
                dW_ih if need[4] else None, dW_hh if need[5] else None,
                db if need[6] else None, db if need[7] else None, None)


class DeltaGRUFunction(torch.autograd.Function):
    """One DeltaGRU layer over a whole sequence, with sparse BPTT.

    ``apply(x (T,B,F), valid (T,B) bool, h0 (B,H), w_ih, w_hh, b_ih|None, b_hh|None,
    cfg: LayerConfig) -> (output (T,B,H), h_n)``.
    """

    @staticmethod
    def forward(ctx, x, valid, h0, w_ih, w_hh, b_ih, b_hh, cfg):
        ctx.set_materialize_grads(False)
        out, hn, s = _run_forward("gru", cfg, (x, valid, h0, w_ih, w_hh, b_ih, b_hh))
        ctx.s, ctx.cfg = s, cfg
        ctx.counts = call_counts(s, 3 * s.H)
        ctx.save_for_backward(w_ih, w_hh)
        if cfg.sink is not None:
            cfg.sink.add(**ctx.counts.forward_counts())
        return out, hn

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_hn):
        ctx.saved_tensors
        need = ctx.needs_input_grad
        need_x, need_w = need[0], need[3] or need[4]
        dx, dW_ih, dW_hh, db_ih, db_hh, dh0 = gru_backward(ctx.s, grad_out, grad_hn, need_x, need_w)
        if ctx.cfg.sink is not None:
            ctx.cfg.sink.add(**ctx.counts.backward_counts(need_x, need_w))
        return (dx, None, dh0 if need[2] else None,
                dW_ih if need[3] else None, dW_hh if need[4] else None,
                db_ih if need[5] else None, db_hh if need[6] else None, None)
