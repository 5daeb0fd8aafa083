"""DeltaLSTM and DeltaGRU modules, drop-in shaped like ``torch.nn.LSTM``/``nn.GRU``.

Why shaped like torch's: parameters have the same names, shapes, order and
initialisation, so a pretrained ``nn.LSTM``/``nn.GRU`` loads with
``load_state_dict`` (and back), which is how delta networks are usually obtained
(pretrain dense, retrain with thresholds; reference doc §4.1).

Delta rule and initial conditions (see ``reneta_train.delta``):

* a unit fires when ``|v − v̂| > θ`` (strict), so with ``θ = 0`` the layer computes
  exactly what ``nn.LSTM``/``nn.GRU`` computes (up to float rounding of the
  accumulated memory);
* ``x̂`` and ``ĥ`` start at 0; the pre-activation memory starts at the biases
  (LSTM ``M_0 = b_ih + b_hh``; GRU ``M_r, M_z`` with both biases, ``M_nx = b_in``,
  ``M_nh = b_hn``);
* **with an initial state** ``h0``, ``ĥ`` still starts at 0, so the first hidden
  delta is ``h0`` itself (thresholded). The memory then catches up with ``W_hh·h0``
  in step 0, which keeps the θ = 0 result equal to torch's.

Variable-length batches (``lengths=`` or a ``PackedSequence``): steps at or past a
sequence's length change neither its state nor its memories, produce zero output
and are not counted in any statistic. The returned state of a sequence is its
state after its last valid step (as ``nn.LSTM`` does with packed input).

Not supported (they are not part of the accelerator): ``dropout``,
``bidirectional``, ``proj_size``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from . import reference
from .delta import check_lengths, check_theta, valid_mask
from .sparse_bptt import STRATEGIES, DeltaGRUFunction, DeltaLSTMFunction, LayerConfig
from .stats import CallCounts, LayerStats, StatsSink


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


class _CountBackward(torch.autograd.Function):
    """Identity on the outputs whose backward adds the backward counters.

    Used by the ``sparse_bptt=False`` path, so that the counters describe the same
    algorithm (and give the same numbers) whichever implementation runs.
    """

    @staticmethod
    def forward(ctx, sink, counts, *tensors):
        ctx.sink, ctx.counts = sink, counts
        ctx.set_materialize_grads(False)
        return tuple(t.clone() for t in tensors)

    @staticmethod
    def backward(ctx, *grads):
        ctx.sink.add(**ctx.counts)
        return (None, None) + grads


class _DeltaRNNBase(nn.Module):
    _kind: str = ""
    _gates: int = 0

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 theta_x=0.0, theta_h=0.0, sparse_bptt=True, numerics=None, device=None,
                 dtype=None, *, sparse_strategy="union"):
        super().__init__()
        self.input_size = _check_int("input_size", input_size, 1)
        self.hidden_size = _check_int("hidden_size", hidden_size, 1)
        self.num_layers = _check_int("num_layers", num_layers, 1)
        self.bias = _check_bool("bias", bias)
        self.batch_first = _check_bool("batch_first", batch_first)
        self.theta_x = theta_x
        self.theta_h = theta_h
        self.sparse_bptt = sparse_bptt
        self.sparse_strategy = sparse_strategy
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ValueError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
        self.numerics = numerics
        factory = dict(device=device, dtype=dtype)
        rows = self._gates * hidden_size
        # Same registration order as torch.nn.RNNBase: per layer w_ih, w_hh, b_ih, b_hh.
        for layer in range(num_layers):
            cols = input_size if layer == 0 else hidden_size
            params = [("weight_ih", (rows, cols)), ("weight_hh", (rows, hidden_size))]
            if bias:
                params += [("bias_ih", (rows,)), ("bias_hh", (rows,))]
            for name, shape in params:
                self.register_parameter(f"{name}_l{layer}", nn.Parameter(torch.empty(shape, **factory)))
        self.reset_parameters()
        self._sinks = [StatsSink() for _ in range(num_layers)]

    # --- configuration -------------------------------------------------------
    @property
    def theta_x(self) -> float:
        """Input delta threshold θx (shared by all layers, units and samples)."""
        return self._theta_x

    @theta_x.setter
    def theta_x(self, value):
        self._theta_x = check_theta("theta_x", value)

    @property
    def theta_h(self) -> float:
        """Hidden delta threshold θh."""
        return self._theta_h

    @theta_h.setter
    def theta_h(self, value):
        self._theta_h = check_theta("theta_h", value)

    @property
    def sparse_bptt(self) -> bool:
        """True: the custom sparse backward; False: plain autograd (the reference)."""
        return self._sparse_bptt

    @sparse_bptt.setter
    def sparse_bptt(self, value):
        self._sparse_bptt = _check_bool("sparse_bptt", value)

    @property
    def sparse_strategy(self) -> str:
        """How the sparse kernels batch: ``"union"`` or ``"per_sample"`` (see sparse_bptt.py)."""
        return self._sparse_strategy

    @sparse_strategy.setter
    def sparse_strategy(self, value):
        if value not in STRATEGIES:
            raise ValueError(f"sparse_strategy must be one of {STRATEGIES}, got {value!r}")
        self._sparse_strategy = value

    @property
    def numerics(self):
        """``None`` (float) or a ``reneta_train.numerics.HardwareNumerics``."""
        return self._numerics

    @numerics.setter
    def numerics(self, value):
        if value is not None:
            from .numerics import HardwareNumerics
            if not isinstance(value, HardwareNumerics):
                raise ValueError("numerics must be None or a reneta_train.numerics.HardwareNumerics, "
                                 f"got {type(value).__name__}")
            if not self.sparse_bptt:
                raise ValueError("numerics= needs sparse_bptt=True (its straight-through backward "
                                 "is the sparse BPTT)")
        self._numerics = value

    def reset_parameters(self) -> None:
        """``U(−1/√H, 1/√H)`` for every parameter, in torch's order (same draws as nn.LSTM/GRU)."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """No-op, for code written against ``nn.LSTM`` (there is no cuDNN path here)."""

    def layer_parameters(self, layer: int):
        """``(w_ih, w_hh, b_ih | None, b_hh | None)`` of one layer."""
        if not 0 <= layer < self.num_layers:
            raise ValueError(f"layer must be in [0, {self.num_layers}), got {layer}")
        g = lambda n: getattr(self, f"{n}_l{layer}") if (self.bias or n.startswith("weight")) else None
        return g("weight_ih"), g("weight_hh"), g("bias_ih"), g("bias_hh")

    # --- statistics ----------------------------------------------------------
    @property
    def stats(self) -> list[LayerStats]:
        """Counters per layer (copies), accumulated since construction or ``reset_stats()``."""
        return [s.stats.copy() for s in self._sinks]

    def reset_stats(self) -> None:
        for s in self._sinks:
            s.reset()

    # --- forward -------------------------------------------------------------
    def forward(self, input, state=None, lengths=None):
        """Run all layers.

        Args:
            input: (T, B, F), or (B, T, F) with ``batch_first``, or (T, F) unbatched,
                or a ``PackedSequence``.
            state: initial state, LSTM ``(h0, c0)`` / GRU ``h0``, each (num_layers, B, H)
                ((num_layers, H) for unbatched input); default zeros.
            lengths: optional B valid lengths (not with a PackedSequence).

        Returns:
            ``(output, state)``: output shaped like the input (a PackedSequence for
            packed input) with H features, zero at padded steps; the final state
            shaped like ``state``, differentiable.
        """
        packed = isinstance(input, PackedSequence)
        unbatched = False
        if packed:
            if lengths is not None:
                raise ValueError("lengths must not be given with a PackedSequence (it carries its own)")
            x, lengths = pad_packed_sequence(input)
        elif torch.is_tensor(input):
            if input.dim() == 2:
                unbatched = True
                x = input.unsqueeze(1)
            elif input.dim() == 3:
                x = input.transpose(0, 1) if self.batch_first else input
            else:
                raise ValueError(f"{type(self).__name__}: input must be 2-D (unbatched) or 3-D, "
                                 f"got shape {tuple(input.shape)}")
        else:
            raise TypeError(f"{type(self).__name__}: input must be a tensor or a PackedSequence, "
                            f"got {type(input).__name__}")
        self._check_input(x)
        T, B, _ = x.shape
        lengths = check_lengths(lengths, T, B, device=x.device)
        valid = valid_mask(lengths, T, B, device=x.device)
        states = self._check_state(state, B, unbatched, x)

        out = x
        finals = []
        for layer in range(self.num_layers):
            out, final = self._run_layer(layer, out, valid, [s[layer] for s in states])
            finals.append(final)
        final_state = [torch.stack([f[k] for f in finals]) for k in range(len(states))]

        if packed:
            out = _pack_like(out, input)
        elif unbatched:
            out = out.squeeze(1)
            final_state = [s.squeeze(1) for s in final_state]
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, self._state_out(final_state)

    def _check_input(self, x):
        name = type(self).__name__
        if not x.dtype.is_floating_point:
            raise ValueError(f"{name}: input must be floating point, got {x.dtype}")
        w = self.weight_ih_l0
        if x.dtype != w.dtype:
            raise ValueError(f"{name}: input dtype {x.dtype} differs from the parameters' {w.dtype}; "
                             "convert one of them (e.g. model.double() or x.float())")
        if x.device != w.device:
            raise ValueError(f"{name}: input is on {x.device} but the parameters are on {w.device}")
        if x.shape[2] != self.input_size:
            raise ValueError(f"{name}: input has {x.shape[2]} features, expected input_size={self.input_size}")
        if x.shape[0] == 0:
            raise ValueError(f"{name}: input has no time steps")

    def _check_state_tensor(self, what, s, B, unbatched, x):
        L, H = self.num_layers, self.hidden_size
        want = (L, H) if unbatched else (L, B, H)
        if not torch.is_tensor(s):
            raise ValueError(f"{type(self).__name__}: {what} must be a tensor of shape {want}, "
                             f"got {type(s).__name__}")
        if tuple(s.shape) != want:
            raise ValueError(f"{type(self).__name__}: {what} must have shape {want} "
                             f"(num_layers, batch, hidden_size), got {tuple(s.shape)}")
        if s.dtype != x.dtype or s.device != x.device:
            raise ValueError(f"{type(self).__name__}: {what} must have the input's dtype and device "
                             f"({x.dtype}, {x.device}), got ({s.dtype}, {s.device})")
        return s.unsqueeze(1) if unbatched else s

    def _zeros_state(self, B, x):
        return x.new_zeros(self.num_layers, B, self.hidden_size)

    # --- per-layer dispatch -----------------------------------------------------
    def _config(self, layer):
        return LayerConfig(kind=self._kind, theta_x=self.theta_x, theta_h=self.theta_h,
                           strategy=self.sparse_strategy, sink=self._sinks[layer],
                           numerics=self.numerics)

    def _reference_counts(self, layer, x, valid, fx, fh, outs, weights):
        """Counters for the autograd path (same numbers as the sparse Functions)."""
        valid_n, fx_n, fh_n = torch.stack((valid.sum(), fx.sum(), fh.sum())).tolist()
        counts = CallCounts(rows=self._gates * self.hidden_size, nx=x.shape[2], nh=self.hidden_size,
                            valid=valid_n, fired_x=fx_n, fired_h=fh_n)
        sink = self._sinks[layer]
        sink.add(**counts.forward_counts())
        need_w = any(w.requires_grad for w in weights)
        if torch.is_grad_enabled() and any(o.requires_grad for o in outs):
            outs = _CountBackward.apply(sink, counts.backward_counts(x.requires_grad, need_w), *outs)
        return outs

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        s += f", theta_x={self.theta_x}, theta_h={self.theta_h}"
        if not self.sparse_bptt:
            s += ", sparse_bptt=False"
        if self.numerics is not None:
            s += f", numerics={self.numerics!r}"
        return s


class DeltaLSTM(_DeltaRNNBase):
    """Delta LSTM (gate order i, f, g, o, as ``nn.LSTM``); state ``(h, c)``.

    ``DeltaLSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    theta_x=0.0, theta_h=0.0, sparse_bptt=True, numerics=None, device=None, dtype=None)``
    """

    _kind = "lstm"
    _gates = 4

    def _check_state(self, state, B, unbatched, x):
        if state is None:
            return [self._zeros_state(B, x), self._zeros_state(B, x)]
        if not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise ValueError("DeltaLSTM: state must be a tuple (h0, c0), "
                             f"got {type(state).__name__}")
        return [self._check_state_tensor("h0", state[0], B, unbatched, x),
                self._check_state_tensor("c0", state[1], B, unbatched, x)]

    def _state_out(self, final_state):
        return tuple(final_state)

    def _run_layer(self, layer, x, valid, state):
        h0, c0 = state
        w_ih, w_hh, b_ih, b_hh = self.layer_parameters(layer)
        if self.sparse_bptt:
            out, hn, cn = DeltaLSTMFunction.apply(x, valid, h0, c0, w_ih, w_hh, b_ih, b_hh,
                                                  self._config(layer))
        else:
            if self.numerics is not None:
                raise ValueError("DeltaLSTM: numerics= needs sparse_bptt=True (its straight-through "
                                 "backward is the sparse BPTT)")
            out, hn, cn, fx, fh = reference.lstm_reference(x, valid, h0, c0, w_ih, w_hh, b_ih, b_hh,
                                                           self.theta_x, self.theta_h)
            out, hn, cn = self._reference_counts(layer, x, valid, fx, fh, (out, hn, cn),
                                                 (w_ih, w_hh))
        return out, (hn, cn)


class DeltaGRU(_DeltaRNNBase):
    """Delta GRU (gate order r, z, n, as ``nn.GRU``); state ``h``.

    ``DeltaGRU(input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    theta_x=0.0, theta_h=0.0, sparse_bptt=True, numerics=None, device=None, dtype=None)``
    """

    _kind = "gru"
    _gates = 3

    def _check_state(self, state, B, unbatched, x):
        if state is None:
            return [self._zeros_state(B, x)]
        return [self._check_state_tensor("h0", state, B, unbatched, x)]

    def _state_out(self, final_state):
        return final_state[0]

    def _run_layer(self, layer, x, valid, state):
        (h0,) = state
        w_ih, w_hh, b_ih, b_hh = self.layer_parameters(layer)
        if self.sparse_bptt:
            out, hn = DeltaGRUFunction.apply(x, valid, h0, w_ih, w_hh, b_ih, b_hh, self._config(layer))
        else:
            if self.numerics is not None:
                raise ValueError("DeltaGRU: numerics= needs sparse_bptt=True (its straight-through "
                                 "backward is the sparse BPTT)")
            out, hn, fx, fh = reference.gru_reference(x, valid, h0, w_ih, w_hh, b_ih, b_hh,
                                                      self.theta_x, self.theta_h)
            out, hn = self._reference_counts(layer, x, valid, fx, fh, (out, hn), (w_ih, w_hh))
        return out, (hn,)


def _pack_like(out: torch.Tensor, packed: PackedSequence) -> PackedSequence:
    """Pack a (T, B, H) output (original batch order) with ``packed``'s layout."""
    if packed.sorted_indices is not None:
        out = out.index_select(1, packed.sorted_indices.to(out.device))
    bs = packed.batch_sizes
    T = bs.numel()
    keep = torch.arange(out.shape[1]).unsqueeze(0) < bs.unsqueeze(1)      # (T, B), time-major
    data = out[:T][keep.to(out.device)]
    return PackedSequence(data, bs, packed.sorted_indices, packed.unsorted_indices)
