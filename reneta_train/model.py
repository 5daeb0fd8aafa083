"""The keyword-spotting classifier: a DeltaLSTM/DeltaGRU stack plus a framewise linear layer.

Architecture (reference §4.3): ``x (B, T, F) -> Delta{LSTM,GRU}(num_layers, hidden_size) -> Linear(H, C)``
applied at every frame, giving logits ``(B, T, C)``.

Metrics (used by the trainer and documented here once):

* **loss**: mean framewise cross-entropy over the *valid* frames (``t < lengths``); padding is ignored;
* **frame accuracy**: fraction of valid frames whose argmax equals the frame label;
* **accuracy** (clip accuracy): per clip, take the framewise argmax ``p_t`` over the valid frames;
  the decision is ``p_t`` at the *last* valid frame whose prediction is not silence (class 0),
  or silence if every frame is predicted silence; it is correct when it equals the clip label
  (a silence clip is correct only when no frame is predicted as a keyword). This is the
  "class at the last non-silence frame" decision of the reference code (§3).

Initialisation (reference §4.3): Xavier-uniform per gate block for layer 0's ``W_ih``,
orthogonal per gate block for every other RNN weight matrix, zero biases, Xavier-uniform
classifier weights with zero bias.

The model can also run its recurrent part through ``torch.nn.LSTM``/``nn.GRU`` sharing the *same*
parameters (``backend="torch"``): at θ = 0 the delta network computes exactly that function, so
dense pre-training can use PyTorch's fast kernels (the reference pretrains a plain LSTM too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

MODEL_FORMAT = "reneta_train.model/1"
CELLS = ("lstm", "gru")
BACKENDS = ("delta", "torch")


def _delta_class(cell: str):
    import reneta_train  # the layers live in the package root (DeltaLSTM, DeltaGRU)

    if cell == "lstm":
        return reneta_train.DeltaLSTM
    if cell == "gru":
        return reneta_train.DeltaGRU
    raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")


class DeltaRNNClassifier(nn.Module):
    """Delta RNN + framewise classifier. ``config()`` returns the JSON-able constructor arguments."""

    def __init__(self, input_size: int, num_classes: int, hidden_size: int = 64, num_layers: int = 1,
                 cell: str = "lstm", theta_x: float = 0.0, theta_h: float = 0.0, sparse_bptt: bool = True):
        super().__init__()
        cell = cell.lower()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        self.input_size = int(input_size)
        self.num_classes = int(num_classes)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.cell = cell
        self.sparse_bptt = bool(sparse_bptt)
        self.rnn = _delta_class(cell)(self.input_size, self.hidden_size, num_layers=self.num_layers, bias=True,
                                      batch_first=True, theta_x=float(theta_x), theta_h=float(theta_h),
                                      sparse_bptt=self.sparse_bptt)
        self.classifier = nn.Linear(self.hidden_size, self.num_classes)
        #: "delta" (the Delta RNN, counts statistics) or "torch" (nn.LSTM/nn.GRU on the same parameters)
        self.backend = "delta"
        self._torch_cache: list = []
        self.init_weights()

    # ------------------------------------------------------------------ configuration
    def config(self) -> dict[str, Any]:
        return dict(input_size=self.input_size, num_classes=self.num_classes, hidden_size=self.hidden_size,
                    num_layers=self.num_layers, cell=self.cell, theta_x=self.theta_x, theta_h=self.theta_h,
                    sparse_bptt=self.sparse_bptt)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "DeltaRNNClassifier":
        return cls(**cfg)

    @property
    def theta_x(self) -> float:
        return float(self.rnn.theta_x)

    @property
    def theta_h(self) -> float:
        return float(self.rnn.theta_h)

    def set_thresholds(self, theta_x: float, theta_h: float) -> None:
        self.rnn.theta_x = float(theta_x)
        self.rnn.theta_h = float(theta_h)

    # ------------------------------------------------------------------ statistics
    @property
    def layer_stats(self) -> list:
        return list(self.rnn.stats)

    def stats(self):
        """All layers' counters merged into one object (see ``reneta_train.stats``)."""
        from reneta_train.stats import merge

        return merge(self.rnn.stats)

    def reset_stats(self) -> None:
        self.rnn.reset_stats()

    # ------------------------------------------------------------------ weights
    def _gates(self) -> int:
        return 4 if self.cell == "lstm" else 3

    @torch.no_grad()
    def init_weights(self) -> None:
        """Reference initialisation (module docstring); uses the global torch RNG."""
        H, g = self.hidden_size, self._gates()
        for name, p in self.rnn.named_parameters():
            if name.startswith("bias"):
                p.zero_()
            elif name.startswith("weight"):
                for k in range(g):
                    block = p[k * H:(k + 1) * H]
                    if name == "weight_ih_l0":
                        nn.init.xavier_uniform_(block)
                    else:
                        nn.init.orthogonal_(block)
        nn.init.xavier_uniform_(self.classifier.weight)
        self.classifier.bias.zero_()

    def _torch_rnn(self) -> nn.Module:
        params = dict(self.rnn.named_parameters())
        ident = tuple((n, id(p), p.device, p.dtype) for n, p in params.items())
        if self._torch_cache and self._torch_cache[0][0] == ident:
            return self._torch_cache[0][1]
        ctor = nn.LSTM if self.cell == "lstm" else nn.GRU
        with torch.random.fork_rng(devices=[]):  # its own random init must not disturb the global RNG
            rnn = ctor(self.input_size, self.hidden_size, num_layers=self.num_layers, bias=True, batch_first=True)
        rnn = rnn.to(device=next(iter(params.values())).device, dtype=next(iter(params.values())).dtype)
        for name in rnn._flat_weights_names:
            if name not in params:
                raise RuntimeError(f"the delta layer has no parameter {name!r}; cannot share it with nn.{ctor.__name__}")
            delattr(rnn, name)
            setattr(rnn, name, params[name])   # RNNBase.__setattr__ keeps _flat_weights in sync
        rnn.train(self.training)
        self._torch_cache[:] = [(ident, rnn)]
        return rnn

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (B, T, F) -> logits (B, T, C)."""
        if self.backend == "torch":
            out, _ = self._torch_rnn()(x)
        elif self.backend == "delta":
            out, _ = self.rnn(x, lengths=lengths)
        else:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        return self.classifier(out)


# ---------------------------------------------------------------------- loss and metrics

def valid_mask(lengths: torch.Tensor, num_frames: int) -> torch.Tensor:
    return torch.arange(num_frames, device=lengths.device)[None, :] < lengths[:, None]


def framewise_loss(logits: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over valid frames (padding ignored)."""
    mask = valid_mask(lengths, y.shape[1])
    return F.cross_entropy(logits[mask], y[mask])


def clip_decisions(logits: torch.Tensor, lengths: torch.Tensor, silence: int = 0) -> torch.Tensor:
    """The class at the last valid frame whose argmax is not ``silence`` (``silence`` if none)."""
    pred = logits.argmax(-1)
    T = pred.shape[1]
    t = torch.arange(T, device=pred.device)[None, :].expand_as(pred)
    keyword = (pred != silence) & valid_mask(lengths, T)
    last = torch.where(keyword, t, torch.full_like(t, -1)).max(dim=1).values
    chosen = pred.gather(1, last.clamp(min=0)[:, None])[:, 0]
    return torch.where(last >= 0, chosen, torch.full_like(chosen, silence))


def batch_metrics(logits: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor,
                  silence: int = 0) -> dict[str, float]:
    """Sums (not means) for one batch: loss_sum, frames, frame_correct, clips, clip_correct."""
    mask = valid_mask(lengths, y.shape[1])
    frames = int(mask.sum())
    loss_sum = float(F.cross_entropy(logits[mask], y[mask], reduction="sum")) if frames else 0.0
    frame_correct = int(((logits.argmax(-1) == y) & mask).sum())
    clip_correct = int((clip_decisions(logits, lengths, silence) == labels).sum())
    return dict(loss_sum=loss_sum, frames=frames, frame_correct=frame_correct, clips=int(labels.numel()),
                clip_correct=clip_correct)


# ---------------------------------------------------------------------- save / load

def save_model(path, model: DeltaRNNClassifier, **extra: Any) -> None:
    """Write ``{"format", "config", "state_dict", **extra}`` with ``torch.save`` (``extra`` must be JSON-able)."""
    payload = {"format": MODEL_FORMAT, "config": model.config(),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    payload.update(extra)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_model(path, map_location="cpu") -> tuple[DeltaRNNClassifier, dict[str, Any]]:
    """Rebuild a model written by :func:`save_model`; returns ``(model, payload)``."""
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not a {MODEL_FORMAT} model file")
    model = DeltaRNNClassifier.from_config(payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model, payload


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))
