"""The reference implementation: plain autograd through the masked delta forward.

Why keep it: it is the oracle for the hand-written sparse backward
(``sparse_bptt.py``). Every product here is a dense matrix product with the
masked delta vectors (zeros included), and autograd differentiates it, so it
shares no gradient code with the sparse version (only ``delta_step``). This is
what ``sparse_bptt=False`` runs. Reference doc §2.4 checked on the original code
that this is a valid reference for any sparse backward.
"""

from __future__ import annotations

import torch

from .delta import delta_step


def _bias(b, rows, like):
    return b if b is not None else like.new_zeros(rows)


def lstm_reference(x, valid, h0, c0, w_ih, w_hh, b_ih, b_hh, theta_x, theta_h):
    """DeltaLSTM layer, autograd. Returns ``(output, h_n, c_n, fired_x, fired_h)``
    where the fired masks are (T, B, F)/(T, B, H) bool."""
    T, B, F = x.shape
    H = w_hh.shape[1]
    M = (_bias(b_ih, 4 * H, x) + _bias(b_hh, 4 * H, x)).expand(B, 4 * H)
    x_hat = x.new_zeros(B, F)
    h_hat = x.new_zeros(B, H)
    h, c = h0, c0
    outs, fxs, fhs = [], [], []
    for t in range(T):
        v = valid[t].unsqueeze(1)
        dx, fx, x_hat = delta_step(x[t], x_hat, theta_x, v)
        dh, fh, h_hat = delta_step(h, h_hat, theta_h, v)
        M = M + dx @ w_ih.t() + dh @ w_hh.t()
        gi, gf, gg, go = M.chunk(4, 1)
        i, f, g, o = torch.sigmoid(gi), torch.sigmoid(gf), torch.tanh(gg), torch.sigmoid(go)
        c_new = f * c + i * g
        h_new = o * torch.tanh(c_new)
        c = torch.where(v, c_new, c)
        h = torch.where(v, h_new, h)
        outs.append(torch.where(v, h_new, torch.zeros_like(h_new)))
        fxs.append(fx)
        fhs.append(fh)
    return torch.stack(outs), h, c, torch.stack(fxs), torch.stack(fhs)


def gru_reference(x, valid, h0, w_ih, w_hh, b_ih, b_hh, theta_x, theta_h):
    """DeltaGRU layer, autograd, memories as in reference doc §1.3.
    Returns ``(output, h_n, fired_x, fired_h)``."""
    T, B, F = x.shape
    H = w_hh.shape[1]
    bi = _bias(b_ih, 3 * H, x)
    bh = _bias(b_hh, 3 * H, x)
    M_rz = (bi[:2 * H] + bh[:2 * H]).expand(B, 2 * H)
    M_nx = bi[2 * H:].expand(B, H)
    M_nh = bh[2 * H:].expand(B, H)
    x_hat = x.new_zeros(B, F)
    h_hat = x.new_zeros(B, H)
    h = h0
    outs, fxs, fhs = [], [], []
    for t in range(T):
        v = valid[t].unsqueeze(1)
        dx, fx, x_hat = delta_step(x[t], x_hat, theta_x, v)
        dh, fh, h_hat = delta_step(h, h_hat, theta_h, v)
        px = dx @ w_ih.t()
        ph = dh @ w_hh.t()
        M_rz = M_rz + px[:, :2 * H] + ph[:, :2 * H]
        M_nx = M_nx + px[:, 2 * H:]
        M_nh = M_nh + ph[:, 2 * H:]
        r = torch.sigmoid(M_rz[:, :H])
        z = torch.sigmoid(M_rz[:, H:])
        n = torch.tanh(M_nx + r * M_nh)
        h_new = (1 - z) * n + z * h
        h = torch.where(v, h_new, h)
        outs.append(torch.where(v, h_new, torch.zeros_like(h_new)))
        fxs.append(fx)
        fhs.append(fh)
    return torch.stack(outs), h, torch.stack(fxs), torch.stack(fhs)
