"""Hardware numerics: run the delta layers in the accelerator's number format.

Why: a model trained in float may lose accuracy on the accelerator; training
(or at least evaluating) in the accelerator's arithmetic closes that gap, and the
same words are what hardware test vectors need. The arithmetic goes through the
format's reference functions (``reneta_hw.numeric``), the single source of truth
shared with the golden model, so nothing is approximated twice.

What is quantized (the forward pass; numpy, per step):

* weights and biases: ``fmt.encode`` (``on_overflow`` as configured), every call
  (fake quantization of the float master weights);
* the layer input and the initial state: ``fmt.encode``;
* the delta encoder: ``Δ = to_word(sub(word_to_acc(v), word_to_acc(v̂)))`` in the
  format, fired when ``|decode(Δ)| > θ_q`` with ``θ_q = decode(encode(θ))``: θ is
  quantized in exactly one place (the original code quantized it in one place and
  not the other); the memory ``v̂`` takes the word ``v`` on firing;
* the products, exactly as the accelerator's MxV_SP: per output row,
  ``acc = +0``, then ``acc = add(acc, mul(W[row, j], Δ[j]))`` for the fired columns
  ``j`` in ascending order, then ``to_word(acc)``. LSTM: one run per step over the
  concatenated ``Δ = [Δx; Δh]`` with ``W = [W_ih | W_hh]``. GRU: two runs per step,
  ``W_ih·Δx`` and ``W_hh·Δh`` (its n-gate keeps them in separate memories);
* the memories: word additions ``M = to_word(add(word_to_acc(M), word_to_acc(P)))``
  (GRU r/z memories add the x product first, then the h product); ``M_0`` is the
  word sum of the encoded biases;
* element-wise part, ``elementwise=``:

  - ``"word"`` (default): everything in words. Gates by the accelerator's
    activation units (``apply_func``: sigmoid/tanh lookup tables); products of
    two words ``to_word(mul(a, b))``; ``f⊙c + i⊙g`` and ``M_nx + r⊙M_nh`` and
    ``n + z⊙(h − n)`` with one accumulator and one final ``to_word``.
  - ``"float"``: gates and the LSTM cell state in float64 from the decoded
    memories; ``h`` is encoded to a word after every step (it feeds the delta
    encoder, the next step and the next layer as a word).

Backward: straight-through estimators. The sparse BPTT of ``sparse_bptt.py`` runs
in float on the *decoded* values of the quantized forward (gates, cell states,
deltas, and the quantized weights), and treats every ``encode``/``to_word`` as the
identity. So the weight gradient ``Σ G_t Δ_tᵀ`` uses the deltas the hardware
actually saw.

Speed: numpy, a loop over steps and over the fired columns of the step (vectorized
over samples and rows). Fine for tests, vectors and small models; much slower than
float training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .sparse_bptt import Saved, fired_groups


def _formats():
    """Import the number formats lazily: ``reneta_train`` works without them."""
    from reneta_hw.numeric import activation
    from reneta_hw.numeric.format import NumberFormat
    return NumberFormat, activation


@dataclass(frozen=True)
class HardwareNumerics:
    """The accelerator's number format for a ``DeltaLSTM``/``DeltaGRU``.

    Args:
        fmt: a ``reneta_hw.numeric`` number format (``FixedPoint(...)``, ``BFloat16(...)``).
        elementwise: ``"word"`` or ``"float"`` (see the module docstring).
        on_overflow: how ``encode`` treats values out of range (weights, inputs,
            state): ``"saturate"`` (default), ``"error"`` (raise, naming the value),
            or a format-specific mode (``"wrap"`` for FixedPoint, ``"inf"`` for BFloat16).
    """

    fmt: object
    elementwise: str = "word"
    on_overflow: str = "saturate"

    def __post_init__(self):
        NumberFormat, _ = _formats()
        if not isinstance(self.fmt, NumberFormat):
            raise ValueError("HardwareNumerics: fmt must be a reneta_hw.numeric NumberFormat "
                             f"(FixedPoint or BFloat16), got {self.fmt!r}")
        if self.elementwise not in ("word", "float"):
            raise ValueError(f"HardwareNumerics: elementwise must be 'word' or 'float', "
                             f"got {self.elementwise!r}")
        if not isinstance(self.on_overflow, str):
            raise ValueError(f"HardwareNumerics: on_overflow must be a string, got {self.on_overflow!r}")
        self.fmt.encode(0.0, on_overflow=self.on_overflow)   # rejects an unknown mode now

    def __repr__(self) -> str:
        return (f"HardwareNumerics({self.fmt}, elementwise={self.elementwise!r}, "
                f"on_overflow={self.on_overflow!r})")

    # --- conversions ----------------------------------------------------------------
    def encode(self, t) -> np.ndarray:
        """Tensor or array of reals → word patterns (np.int64)."""
        if torch.is_tensor(t):
            t = t.detach().cpu().to(torch.float64).numpy()
        return self.fmt.encode(np.asarray(t, dtype=np.float64), on_overflow=self.on_overflow)

    def decode(self, words, like: torch.Tensor) -> torch.Tensor:
        """Words → a tensor with ``like``'s dtype and device."""
        return torch.from_numpy(np.ascontiguousarray(self.fmt.decode(words))).to(
            dtype=like.dtype, device=like.device)

    def quantize(self, t: torch.Tensor) -> torch.Tensor:
        """Round a tensor to the word format (no gradient)."""
        return self.decode(self.encode(t), t)

    def quantize_theta(self, theta: float) -> float:
        """The threshold the delta encoder compares with: θ rounded to a word."""
        return float(self.fmt.decode(self.encode(np.float64(theta))))

    # --- word arithmetic ----------------------------------------------------------------
    def _w2a(self, w):
        f = self.fmt
        if hasattr(f, "word_to_acc"):
            return f.word_to_acc(w)
        return f.encode_acc(f.decode(w))

    def _neg(self, a):
        f = self.fmt
        if hasattr(f, "neg_acc"):
            return f.neg_acc(a)
        return f.encode_acc(-f.decode_acc(a))

    def word_add(self, a, b):
        """``to_word(add(a, b))`` of two words."""
        return self.fmt.to_word(self.fmt.add(self._w2a(a), self._w2a(b)))

    def word_sub(self, a, b):
        """``a − b`` of two words: the delta encoder's own subtraction
        (`sim.delta_ref.sub_word`, the one definition the gateware is checked against)."""
        from sim.delta_ref import sub_word
        return sub_word(self.fmt, a, b)

    def mxv_sp(self, wt_words: np.ndarray, delta_words: np.ndarray, fired: np.ndarray) -> np.ndarray:
        """MxV_SP for a batch: ``out[b, r] = to_word(Σ_j∈fired[b] W[r, j]·Δ[b, j])``.

        ``wt_words``: (N, R) transposed weight words; ``delta_words``: (B, N);
        ``fired``: (B, N) bool. The sum runs per row from +0 over the fired columns
        in ascending order (each sample its own list), as the accelerator does.
        """
        fmt = self.fmt
        B, N = fired.shape
        R = wt_words.shape[1]
        counts = fired.sum(1)
        K = int(counts.max()) if B else 0
        order = np.argsort(~fired, axis=1, kind="stable")[:, :K]   # fired columns first, ascending
        acc = np.full((B, R), fmt.zero_acc, dtype=np.int64)
        rows = np.arange(B)
        for k in range(K):
            col = order[:, k]
            new = fmt.mac(acc, wt_words[col], delta_words[rows, col][:, None])
            acc = np.where((k < counts)[:, None], new, acc)
        return fmt.to_word(acc)

    def delta(self, v_words, hat_words, theta_q: float, valid: np.ndarray):
        """Delta encoder in words: returns ``(Δ words, fired, new memory words)``."""
        d = self.word_sub(v_words, hat_words)
        fired = (np.abs(self.fmt.decode(d)) > theta_q) & valid
        zero = np.zeros_like(d)
        return np.where(fired, d, zero), fired, np.where(fired, v_words, hat_words)

    def _ops(self):
        return _WordOps(self) if self.elementwise == "word" else _FloatOps(self)

    # --- layer forwards (same contract as sparse_bptt.lstm_forward / gru_forward) -------
    def _start(self, x, valid, h0, w_ih, w_hh, cfg):
        """Common set-up: encoded operands and the Saved skeleton."""
        T, B, F = x.shape
        H = w_hh.shape[1]
        wih_w = self.encode(w_ih)
        whh_w = self.encode(w_hh)
        st = dict(
            T=T, B=B, F=F, H=H,
            x_w=self.encode(x),
            wt_words=np.ascontiguousarray(np.concatenate([wih_w, whh_w], 1).T),
            wih_w=wih_w, whh_w=whh_w,
            valid=valid.cpu().numpy(),
            theta_x=self.quantize_theta(cfg.theta_x),
            theta_h=self.quantize_theta(cfg.theta_h),
            zero_x=self.encode(np.zeros((B, F))),
            zero_h=self.encode(np.zeros((B, H))),
        )
        s = Saved(T=T, B=B, F=F, H=H, valid=valid, h0=h0,
                  wt_ih=self.decode(wih_w, x).t().contiguous(),
                  wt_hh=self.decode(whh_w, x).t().contiguous())
        return st, s

    def _finish_saved(self, s, st, x, dx_w, dh_w, fx, fh, cfg, record):
        s.dx = self.decode(np.stack(dx_w), x)
        s.dh = self.decode(np.stack(dh_w), x)
        s.fx = torch.from_numpy(np.stack(fx)).to(x.device)
        s.fh = torch.from_numpy(np.stack(fh)).to(x.device)
        s.gx = [fired_groups(s.fx[t], cfg.strategy) for t in range(s.T)]
        s.gh = [fired_groups(s.fh[t], cfg.strategy) for t in range(s.T)]
        if record is not None:
            record["px"].extend(s.dx[t] @ s.wt_ih for t in range(s.T))
            record["ph"].extend(s.dh[t] @ s.wt_hh for t in range(s.T))
            record["words"] = dict(W_ih=st["wih_w"], W_hh=st["whh_w"],
                                   dx=np.stack(dx_w), dh=np.stack(dh_w), **record.get("words", {}))

    def _bias_words(self, b, rows, B):
        if b is None:
            return self.encode(np.zeros(rows))
        return self.encode(b)

    def lstm_forward(self, x, valid, h0, c0, w_ih, w_hh, b_ih, b_hh, cfg, record=None):
        """DeltaLSTM forward in the format. Returns ``(out, h_n, c_n, saved)`` like
        ``sparse_bptt.lstm_forward``; ``record['words']['product']`` gets the MxV_SP words."""
        st, s = self._start(x, valid, h0, w_ih, w_hh, cfg)
        ops = self._ops()
        T, B, F, H = s.T, s.B, s.F, s.H
        R = 4 * H
        m0 = self.word_add(self._bias_words(b_ih, R, B), self._bias_words(b_hh, R, B))
        M = np.broadcast_to(m0, (B, R)).copy()
        h_w = self.encode(h0)
        c = ops.from_float(c0)
        x_hat, h_hat = st["zero_x"], st["zero_h"]
        dx_l, dh_l, fx_l, fh_l, p_l = [], [], [], [], []
        gates, tcs, cs, outs = [], [], [], []
        for t in range(T):
            v = st["valid"][t][:, None]
            dx, fx, x_hat = self.delta(st["x_w"][t], x_hat, st["theta_x"], v)
            dh, fh, h_hat = self.delta(h_w, h_hat, st["theta_h"], v)
            P = self.mxv_sp(st["wt_words"], np.concatenate([dx, dh], 1), np.concatenate([fx, fh], 1))
            M = np.where(v, self.word_add(M, P), M)
            m = ops.from_word(M)
            i, f = ops.sigmoid(m[:, :H]), ops.sigmoid(m[:, H:2 * H])
            g, o = ops.tanh(m[:, 2 * H:3 * H]), ops.sigmoid(m[:, 3 * H:])
            c_new = ops.mul_add(f, c, i, g)
            tc = ops.tanh(c_new)
            h_new = ops.to_word(ops.mul(o, tc))
            c = np.where(v, c_new, c)
            h_w = np.where(v, h_new, h_w)
            dx_l.append(dx); dh_l.append(dh); fx_l.append(fx); fh_l.append(fh); p_l.append(P)
            gates.append(np.concatenate([ops.value(a) for a in (i, f, g, o)], 1))
            tcs.append(ops.value(tc))
            cs.append(ops.value(c))
            outs.append(np.where(v, self.fmt.decode(h_new), 0.0))
        like = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dtype=x.dtype, device=x.device)
        s.gates, s.tanh_c, s.c = like(np.stack(gates)), like(np.stack(tcs)), like(np.stack(cs))
        s.c0 = like(ops.value(ops.from_float(c0)))
        if record is not None:
            record["words"] = dict(product=np.stack(p_l))
        self._finish_saved(s, st, x, dx_l, dh_l, fx_l, fh_l, cfg, record)
        return like(np.stack(outs)), self.decode(h_w, x), like(ops.value(c)), s

    def gru_forward(self, x, valid, h0, w_ih, w_hh, b_ih, b_hh, cfg, record=None):
        """DeltaGRU forward in the format. Returns ``(out, h_n, saved)`` like
        ``sparse_bptt.gru_forward``; ``record['words']`` gets ``product_x``/``product_h``."""
        st, s = self._start(x, valid, h0, w_ih, w_hh, cfg)
        ops = self._ops()
        T, B, F, H = s.T, s.B, s.F, s.H
        R = 3 * H
        bi, bh = self._bias_words(b_ih, R, B), self._bias_words(b_hh, R, B)
        M_rz = np.broadcast_to(self.word_add(bi[:2 * H], bh[:2 * H]), (B, 2 * H)).copy()
        M_nx = np.broadcast_to(bi[2 * H:], (B, H)).copy()
        M_nh = np.broadcast_to(bh[2 * H:], (B, H)).copy()
        wt_ih_w = np.ascontiguousarray(st["wih_w"].T)
        wt_hh_w = np.ascontiguousarray(st["whh_w"].T)
        h_w = self.encode(h0)
        x_hat, h_hat = st["zero_x"], st["zero_h"]
        dx_l, dh_l, fx_l, fh_l, px_l, ph_l = [], [], [], [], [], []
        rs, zs, ns, mnhs, hps, outs = [], [], [], [], [], []
        for t in range(T):
            v = st["valid"][t][:, None]
            dx, fx, x_hat = self.delta(st["x_w"][t], x_hat, st["theta_x"], v)
            dh, fh, h_hat = self.delta(h_w, h_hat, st["theta_h"], v)
            px = self.mxv_sp(wt_ih_w, dx, fx)
            ph = self.mxv_sp(wt_hh_w, dh, fh)
            M_rz = np.where(v, self.word_add(self.word_add(M_rz, px[:, :2 * H]), ph[:, :2 * H]), M_rz)
            M_nx = np.where(v, self.word_add(M_nx, px[:, 2 * H:]), M_nx)
            M_nh = np.where(v, self.word_add(M_nh, ph[:, 2 * H:]), M_nh)
            r = ops.sigmoid(ops.from_word(M_rz[:, :H]))
            z = ops.sigmoid(ops.from_word(M_rz[:, H:]))
            mnh = ops.from_word(M_nh)
            n = ops.tanh(ops.add_mul(ops.from_word(M_nx), r, mnh))
            h_prev = ops.from_word(h_w)
            h_new = ops.to_word(ops.add_mul(n, z, ops.sub(h_prev, n)))
            h_w = np.where(v, h_new, h_w)
            dx_l.append(dx); dh_l.append(dh); fx_l.append(fx); fh_l.append(fh)
            px_l.append(px); ph_l.append(ph)
            rs.append(ops.value(r)); zs.append(ops.value(z)); ns.append(ops.value(n))
            mnhs.append(ops.value(mnh)); hps.append(ops.value(h_prev))
            outs.append(np.where(v, self.fmt.decode(h_new), 0.0))
        like = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dtype=x.dtype, device=x.device)
        s.r, s.z, s.n = like(np.stack(rs)), like(np.stack(zs)), like(np.stack(ns))
        s.m_nh, s.h_prev = like(np.stack(mnhs)), like(np.stack(hps))
        if record is not None:
            record["words"] = dict(product_x=np.stack(px_l), product_h=np.stack(ph_l))
        self._finish_saved(s, st, x, dx_l, dh_l, fx_l, fh_l, cfg, record)
        return like(np.stack(outs)), self.decode(h_w, x), s


class _WordOps:
    """Element-wise arithmetic on word patterns (``elementwise="word"``)."""

    def __init__(self, hn: HardwareNumerics):
        self.hn = hn
        self.fmt = hn.fmt
        _, self.act = _formats()

    def from_word(self, w):
        return w

    def from_float(self, t):
        return self.hn.encode(t)

    def to_word(self, w):
        return w

    def value(self, w):
        return self.fmt.decode(w)

    def sigmoid(self, w):
        return self.act.apply_func(self.fmt, self.act.Func.SIGMOID, w)

    def tanh(self, w):
        return self.act.apply_func(self.fmt, self.act.Func.TANH, w)

    def mul(self, a, b):
        return self.fmt.to_word(self.fmt.mul(a, b))

    def sub(self, a, b):
        return self.hn.word_sub(a, b)

    def mul_add(self, a, b, c, d):
        """``a⊙b + c⊙d``: one accumulator, one rounding to a word."""
        f = self.fmt
        return f.to_word(f.add(f.mul(a, b), f.mul(c, d)))

    def add_mul(self, a, b, c):
        """``a + b⊙c``: one accumulator, one rounding to a word."""
        f = self.fmt
        return f.to_word(f.add(self.hn._w2a(a), f.mul(b, c)))


class _FloatOps:
    """Element-wise arithmetic in float64 (``elementwise="float"``)."""

    def __init__(self, hn: HardwareNumerics):
        self.hn = hn

    def from_word(self, w):
        return self.hn.fmt.decode(w)

    def from_float(self, t):
        return t.detach().cpu().to(torch.float64).numpy()

    def to_word(self, v):
        return self.hn.encode(v)

    def value(self, v):
        return v

    def sigmoid(self, v):
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-v))

    def tanh(self, v):
        return np.tanh(v)

    def mul(self, a, b):
        return a * b

    def sub(self, a, b):
        return a - b

    def mul_add(self, a, b, c, d):
        return a * b + c * d

    def add_mul(self, a, b, c):
        return a + b * c
