"""Training loop: pretrain at θ = 0, retrain with thresholds, θ sweeps, checkpoints and metrics.

Scheme (reference §4.1/§4.4): ``pretrain_epochs`` at θx = θh = 0 (dense; by default through
``nn.LSTM``/``nn.GRU`` on the same parameters, which computes the same function and is faster),
then ``epochs`` with the thresholds (the Delta RNN with sparse BPTT). With ``pretrain_epochs = 0``
the model trains with the thresholds from the start. A sweep (``sweep_theta``) retrains a copy of
the pretrained weights for ``epochs`` per θ (θx = θh = θ) and records accuracy, sparsity and
operation reduction per θ.

Optimiser: AdamW (``lr``, ``weight_decay`` 0.01), gradient-norm clipping (``grad_clip``), a fresh
optimiser per phase; learning rate per epoch ``e`` of a phase of ``E`` epochs: cosine decay from
``lr`` to ``lr_min_ratio * lr`` (``lr_schedule="cosine"``) or constant; in a retrain phase the
first epoch runs at ``0.1 * lr`` (the reference's warm-up, ``retrain_warmup``).

Determinism: all randomness derives from ``seed``: the data set, the initial weights
(``torch.manual_seed(seed)``) and the batch order of epoch ``e`` of phase ``p``
(a ``torch.Generator`` seeded from ``(seed, p, e)``). Because the shuffling is a function of the
position in the run, a run that stops and is resumed from its checkpoint gives the same result
as an uninterrupted one (on the same machine and thread count).

Per epoch the trainer records: training loss and accuracies and the training pass's layer
counters (forward + sparse backward, when the delta backend ran), then evaluates val and test
with the delta network (forward only) and records loss, clip accuracy, frame accuracy, Δx/Δh/total
sparsity and operation reduction (``1 - performed/dense`` MACs, from the layer counters, padding
excluded). See :mod:`reneta_train.model` for the metric definitions.

Files written in ``out``: ``checkpoint.pt`` (every epoch), ``metrics.json``/``metrics.csv``
(every epoch), ``pretrained.pt`` (after pretraining), ``model_theta_<θ>.pt`` per sweep point,
``model.pt`` (the final model) and the plots of :mod:`reneta_train.plots`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .data import DatasetSplits, Split, load_dataset
from .model import DeltaRNNClassifier, batch_metrics, count_parameters, framewise_loss, save_model

CHECKPOINT_FORMAT = "reneta_train.checkpoint/1"


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (JSON-able; stored in checkpoints and metrics.json)."""

    dataset: str = "synthetic"
    #: options passed to ``reneta_train.data.load_dataset`` (e.g. root, num_classes, seed ...)
    data_options: dict = dataclasses.field(default_factory=dict)
    cell: str = "lstm"
    num_layers: int = 1
    hidden_size: int = 64
    theta_x: float = 0.1
    theta_h: float = 0.1
    pretrain_epochs: int = 20
    epochs: int = 6
    batch_size: int = 32
    eval_batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 0.01
    grad_clip: float = 5.0
    lr_schedule: str = "cosine"
    lr_min_ratio: float = 0.1
    retrain_warmup: bool = True
    sparse_bptt: bool = True
    #: "torch" (nn.LSTM/nn.GRU on the same weights, fast) or "delta" (the Delta RNN at θ = 0)
    pretrain_backend: str = "torch"
    #: thresholds of a sweep (θx = θh = θ); None = one retrain at (theta_x, theta_h)
    sweep_theta: list | None = None
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        if self.cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {self.cell!r}")
        for name in ("num_layers", "hidden_size", "batch_size", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.epochs < 0 or self.pretrain_epochs < 0:
            raise ValueError("epochs and pretrain_epochs must be >= 0")
        if self.epochs == 0 and self.pretrain_epochs == 0:
            raise ValueError("nothing to train: epochs and pretrain_epochs are both 0")
        if self.sweep_theta is not None and (not self.sweep_theta or self.epochs < 1):
            raise ValueError("a θ sweep needs at least one θ and epochs >= 1")
        for th in [self.theta_x, self.theta_h] + list(self.sweep_theta or []):
            if not (math.isfinite(th) and th >= 0):
                raise ValueError(f"thresholds must be finite and >= 0, got {th}")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip <= 0:
            raise ValueError("lr and grad_clip must be > 0, weight_decay >= 0")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got {self.lr_schedule!r}")
        if self.pretrain_backend not in ("torch", "delta"):
            raise ValueError(f"pretrain_backend must be 'torch' or 'delta', got {self.pretrain_backend!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown training options: {sorted(unknown)}")
        return cls(**d)


@dataclasses.dataclass
class Phase:
    name: str            # "pretrain", "train", "retrain", "sweep"
    theta_x: float
    theta_h: float
    epochs: int
    init: str            # "continue" (keep the current weights) or "base" (copy the pretrained weights)
    backend: str         # "delta" or "torch"
    warmup: bool

    @property
    def label(self) -> str:
        if self.name == "sweep":
            return f"sweep θ={self.theta_x:g}"
        return self.name


def plan_phases(cfg: TrainConfig) -> list[Phase]:
    phases = []
    if cfg.pretrain_epochs > 0:
        phases.append(Phase("pretrain", 0.0, 0.0, cfg.pretrain_epochs, "continue", cfg.pretrain_backend, False))
    pre = cfg.pretrain_epochs > 0
    if cfg.sweep_theta is not None:
        for th in cfg.sweep_theta:
            phases.append(Phase("sweep", float(th), float(th), cfg.epochs, "base", "delta",
                                pre and cfg.retrain_warmup))
    elif cfg.epochs > 0:
        phases.append(Phase("retrain" if pre else "train", cfg.theta_x, cfg.theta_h, cfg.epochs, "continue",
                            "delta", pre and cfg.retrain_warmup))
    return phases


def epoch_lr(cfg: TrainConfig, phase: Phase, epoch: int) -> float:
    if phase.warmup and epoch == 0:
        return 0.1 * cfg.lr
    if cfg.lr_schedule == "constant" or phase.epochs <= 1:
        return cfg.lr
    lo = cfg.lr * cfg.lr_min_ratio
    return lo + (cfg.lr - lo) * 0.5 * (1.0 + math.cos(math.pi * epoch / (phase.epochs - 1)))


# ---------------------------------------------------------------------- progress bar

class ProgressBar:
    """A tiny progress bar on stderr (redrawn with ``\\r`` on a terminal; silent otherwise)."""

    def __init__(self, total: int, desc: str = "", stream=None, enabled: bool = True, width: int = 24):
        self.total = max(int(total), 1)
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.width = width
        self.n = 0
        self.start = time.monotonic()
        self._last = 0.0
        self.postfix = ""

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        self.n += n
        if postfix is not None:
            self.postfix = postfix
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.n >= self.total):
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        frac = min(self.n / self.total, 1.0)
        filled = int(round(frac * self.width))
        el = now - self.start
        eta = el / frac - el if frac > 0 else 0.0
        line = (f"\r{self.desc} |{'#' * filled}{'.' * (self.width - filled)}| {self.n}/{self.total} "
                f"[{el:5.1f}s<{eta:5.1f}s] {self.postfix}")
        self.stream.write(line[:160].ljust(100))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 110 + "\r")
            self.stream.flush()


# ---------------------------------------------------------------------- evaluation

def _stats_dict(stats, prefix: str) -> dict[str, float]:
    return {
        f"{prefix}sparsity_dx": stats.sparsity_dx,
        f"{prefix}sparsity_dh": stats.sparsity_dh,
        f"{prefix}sparsity": stats.sparsity,
        f"{prefix}op_reduction": stats.op_reduction,
        f"{prefix}macs": int(stats.macs),
        f"{prefix}dense_macs": int(stats.dense_macs),
    }


@torch.no_grad()
def evaluate(model: DeltaRNNClassifier, split: Split, batch_size: int = 256, device: str = "cpu",
             silence: int = 0) -> dict[str, float]:
    """Loss, clip accuracy, frame accuracy and delta statistics of ``model`` on ``split`` (delta backend)."""
    was_training, backend = model.training, model.backend
    model.eval()
    model.backend = "delta"
    model.reset_stats()
    tot = dict(loss_sum=0.0, frames=0, frame_correct=0, clips=0, clip_correct=0)
    try:
        for i in range(0, len(split), batch_size):
            x = split.x[i:i + batch_size].to(device)
            y = split.y[i:i + batch_size].to(device)
            lengths = split.lengths[i:i + batch_size].to(device)
            labels = split.labels[i:i + batch_size].to(device)
            logits = model(x, lengths)
            for k, v in batch_metrics(logits, y, lengths, labels, silence).items():
                tot[k] += v
        stats = model.stats()
    finally:
        model.train(was_training)
        model.backend = backend
    nan = float("nan")
    out = {
        "loss": tot["loss_sum"] / tot["frames"] if tot["frames"] else nan,
        "acc": tot["clip_correct"] / tot["clips"] if tot["clips"] else nan,
        "frame_acc": tot["frame_correct"] / tot["frames"] if tot["frames"] else nan,
    }
    out.update(_stats_dict(stats, ""))
    return out


# ---------------------------------------------------------------------- trainer

def _fmt_pct(v) -> str:
    return "  n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:5.1f}%"


class Trainer:
    """Runs a :class:`TrainConfig` into an output folder; see the module docstring."""

    def __init__(self, cfg: TrainConfig, out: str | os.PathLike, data: DatasetSplits | None = None,
                 progress: bool = True, log: Callable[[str], None] | None = None):
        cfg.validate()
        self.cfg = cfg
        self.out = Path(out)
        self.progress = progress
        self.log = log if log is not None else (lambda s: print(s, file=sys.stderr, flush=True))
        self.device = torch.device(cfg.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but CUDA is not available")
        self.data = data if data is not None else load_dataset(cfg.dataset, **cfg.data_options)
        self.phases = plan_phases(cfg)
        torch.manual_seed(cfg.seed)
        self.model = DeltaRNNClassifier(self.data.num_features, self.data.num_classes, cfg.hidden_size,
                                        cfg.num_layers, cfg.cell, sparse_bptt=cfg.sparse_bptt).to(self.device)
        self.base_state: dict | None = None if self.phases[0].init == "continue" else self._state_copy()
        self.history: list[dict[str, Any]] = []
        self.sweep: list[dict[str, Any]] = []
        self.phase_idx = 0
        self.epoch = 0          # completed epochs of the current phase
        self.elapsed = 0.0      # training seconds over all invocations
        self.optimizer: torch.optim.Optimizer | None = None
        self._start_phase_pending = True

    # ------------------------------------------------------------------ state
    def _state_copy(self) -> dict:
        return {k: v.detach().clone().cpu() for k, v in self.model.state_dict().items()}

    def _new_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        payload = {
            "format": CHECKPOINT_FORMAT, "config": self.cfg.to_dict(), "phase_idx": self.phase_idx,
            "epoch": self.epoch, "elapsed": self.elapsed,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "base_state": self.base_state, "history": self.history, "sweep": self.sweep,
        }
        tmp = self.checkpoint_path().with_suffix(".pt.tmp")
        torch.save(payload, tmp)
        tmp.replace(self.checkpoint_path())

    @staticmethod
    def read_checkpoint(path) -> dict:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no checkpoint to resume from")
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint")
        return payload

    def load_checkpoint(self, payload: dict) -> None:
        self.model.load_state_dict(payload["model"])
        self.phase_idx = int(payload["phase_idx"])
        self.epoch = int(payload["epoch"])
        self.elapsed = float(payload["elapsed"])
        self.base_state = payload["base_state"]
        self.history = list(payload["history"])
        self.sweep = list(payload["sweep"])
        self.optimizer = None
        self._start_phase_pending = True
        if payload["optimizer"] is not None and self.phase_idx < len(self.phases) and self.epoch > 0:
            self.optimizer = self._new_optimizer()
            self.optimizer.load_state_dict(payload["optimizer"])
            self._start_phase_pending = False
        if self.phase_idx < len(self.phases):
            ph = self.phases[self.phase_idx]
            self.model.set_thresholds(ph.theta_x, ph.theta_h)

    # ------------------------------------------------------------------ loop
    def _begin_phase(self) -> None:
        ph = self.phases[self.phase_idx]
        if ph.init == "base" and self.base_state is not None:
            self.model.load_state_dict(self.base_state)
        self.model.set_thresholds(ph.theta_x, ph.theta_h)
        self.optimizer = self._new_optimizer()
        self._start_phase_pending = False

    def _end_phase(self) -> None:
        ph = self.phases[self.phase_idx]
        meta = self.model_metadata()
        if ph.name == "pretrain":
            self.base_state = self._state_copy()
            save_model(self.out / "pretrained.pt", self.model, **meta)
        if ph.name == "sweep":
            last = self.history[-1]
            rec = {"theta": ph.theta_x}
            for k in ("val_acc", "val_frame_acc", "test_acc", "test_frame_acc", "test_loss", "test_sparsity_dx",
                      "test_sparsity_dh", "test_sparsity", "test_op_reduction", "train_sparsity",
                      "train_op_reduction", "train_macs", "train_dense_macs"):
                rec[k] = last.get(k)
            self.sweep.append(rec)
            save_model(self.out / f"model_theta_{ph.theta_x:g}.pt", self.model, **meta)
        self.phase_idx += 1
        self.epoch = 0
        self.optimizer = None
        self._start_phase_pending = True

    def _shuffle(self, n: int) -> torch.Tensor:
        g = torch.Generator()
        g.manual_seed((self.cfg.seed * 1_000_003 + self.phase_idx * 10_007 + self.epoch) % (2 ** 63))
        return torch.randperm(n, generator=g)

    def train_epoch(self) -> dict[str, Any]:
        cfg, ph, model = self.cfg, self.phases[self.phase_idx], self.model
        lr = epoch_lr(cfg, ph, self.epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        model.train()
        model.backend = ph.backend
        model.reset_stats()
        train = self.data.train
        order = self._shuffle(len(train))
        nb = math.ceil(len(train) / cfg.batch_size)
        bar = ProgressBar(nb, f"{ph.label} {self.epoch + 1}/{ph.epochs}", enabled=self.progress)
        tot = dict(loss_sum=0.0, frames=0, frame_correct=0, clips=0, clip_correct=0)
        t0 = time.perf_counter()
        try:
            for b in range(nb):
                idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                x, y = train.x[idx].to(self.device), train.y[idx].to(self.device)
                lengths, labels = train.lengths[idx].to(self.device), train.labels[idx].to(self.device)
                logits = model(x, lengths)
                loss = framewise_loss(logits, y, lengths)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                self.optimizer.step()
                with torch.no_grad():
                    for k, v in batch_metrics(logits.detach(), y, lengths, labels).items():
                        tot[k] += v
                bar.update(1, f"loss {tot['loss_sum'] / max(tot['frames'], 1):.4f}")
        finally:
            bar.close()
            model.backend = "delta"
        train_time = time.perf_counter() - t0
        row: dict[str, Any] = {
            "phase": ph.name, "phase_index": self.phase_idx, "epoch": self.epoch + 1,
            "global_epoch": len(self.history) + 1, "theta_x": ph.theta_x, "theta_h": ph.theta_h, "lr": lr,
            "train_loss": tot["loss_sum"] / max(tot["frames"], 1),
            "train_acc": tot["clip_correct"] / max(tot["clips"], 1),
            "train_frame_acc": tot["frame_correct"] / max(tot["frames"], 1),
            "train_backend": ph.backend,
        }
        if ph.backend == "delta":
            row.update(_stats_dict(model.stats(), "train_"))
        else:
            row.update({k: None for k in _stats_dict(model.stats(), "train_")})
        t1 = time.perf_counter()
        for name in ("val", "test"):
            for k, v in evaluate(model, getattr(self.data, name), cfg.eval_batch_size, self.device).items():
                row[f"{name}_{k}"] = v
        row["train_time_s"] = train_time
        row["eval_time_s"] = time.perf_counter() - t1
        return row

    def run(self, stop_after: int | None = None) -> dict[str, Any]:
        """Train until done (or for ``stop_after`` more epochs); returns the metrics dictionary."""
        self.out.mkdir(parents=True, exist_ok=True)
        done = 0
        while self.phase_idx < len(self.phases):
            if stop_after is not None and done >= stop_after:
                self.log(f"stopped after {done} epoch(s); continue with --resume")
                return self.metrics(finished=False)
            if self._start_phase_pending:
                self._begin_phase()
            ph = self.phases[self.phase_idx]
            t0 = time.perf_counter()
            row = self.train_epoch()
            self.elapsed += time.perf_counter() - t0
            row["elapsed_s"] = self.elapsed
            self.history.append(row)
            self.epoch += 1
            done += 1
            self.log(self.format_row(row, ph))
            if self.epoch >= ph.epochs:
                self._end_phase()
            self.save_checkpoint()
            self.write_metrics(finished=self.phase_idx >= len(self.phases))
        save_model(self.out / "model.pt", self.model, **self.model_metadata())
        metrics = self.write_metrics(finished=True)
        try:
            from .plots import plot_run
            plot_run(metrics, self.out)
        except Exception as e:  # plots are a convenience: never lose a finished run to them
            self.log(f"warning: plotting failed: {type(e).__name__}: {e}")
        return metrics

    # ------------------------------------------------------------------ reporting
    @staticmethod
    def format_row(row: dict, ph: Phase) -> str:
        return (f"[{ph.label} {row['epoch']}/{ph.epochs}] loss {row['train_loss']:.4f} "
                f"val acc {_fmt_pct(row['val_acc'])} test acc {_fmt_pct(row['test_acc'])} "
                f"(frames {_fmt_pct(row['test_frame_acc'])}) Δx sp {_fmt_pct(row['test_sparsity_dx'])} "
                f"Δh sp {_fmt_pct(row['test_sparsity_dh'])} op red. {_fmt_pct(row['test_op_reduction'])} "
                f"(train {_fmt_pct(row.get('train_op_reduction'))}) "
                f"({row['train_time_s'] + row['eval_time_s']:.1f} s)")

    def model_metadata(self) -> dict[str, Any]:
        return {"dataset": self.data.summary(), "train_config": self.cfg.to_dict()}

    def final_summary(self) -> dict[str, Any]:
        if not self.history:
            return {}
        last = self.history[-1]
        keys = ("phase", "theta_x", "theta_h", "val_acc", "val_frame_acc", "test_acc", "test_frame_acc", "test_loss",
                "test_sparsity_dx", "test_sparsity_dh", "test_sparsity", "test_op_reduction", "train_sparsity_dx",
                "train_sparsity_dh", "train_sparsity", "train_op_reduction")
        out = {k: last.get(k) for k in keys}
        out["elapsed_s"] = self.elapsed
        return out

    def metrics(self, finished: bool) -> dict[str, Any]:
        return {
            "finished": finished, "config": self.cfg.to_dict(), "dataset": self.data.summary(),
            "model": {**self.model.config(), "parameters": count_parameters(self.model)},
            "phases": [dataclasses.asdict(p) for p in self.phases],
            "epochs": self.history, "sweep": self.sweep, "final": self.final_summary(),
        }

    def write_metrics(self, finished: bool) -> dict[str, Any]:
        m = self.metrics(finished)
        _atomic_write(self.out / "metrics.json", json.dumps(_jsonable(m), indent=1, allow_nan=True))
        write_csv(self.out / "metrics.csv", self.history)
        if self.sweep:
            write_csv(self.out / "sweep.csv", self.sweep)
        return m


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, (str, int, float, bool)) or o is None:
        return o
    if isinstance(o, torch.Tensor):
        return o.tolist()
    return str(o)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_csv(path, rows: list[dict[str, Any]]) -> None:
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    tmp.replace(path)


def train(cfg: TrainConfig, out, resume: bool = False, stop_after: int | None = None, progress: bool = True,
          log: Callable[[str], None] | None = None, data: DatasetSplits | None = None) -> dict[str, Any]:
    """Run (or resume) a training run into ``out``; returns the metrics dictionary (also in metrics.json).

    With ``resume`` the configuration stored in ``out/checkpoint.pt`` is used (``cfg`` only supplies
    ``device``). ``stop_after`` stops after that many epochs of this call, keeping the checkpoint.
    """
    out = Path(out)
    if resume:
        payload = Trainer.read_checkpoint(out / "checkpoint.pt")
        stored = TrainConfig.from_dict(payload["config"])
        stored.device = cfg.device
        trainer = Trainer(stored, out, data=data, progress=progress, log=log)
        trainer.load_checkpoint(payload)
        if trainer.phase_idx >= len(trainer.phases):
            trainer.log(f"{out}: the run had already finished ({len(trainer.history)} epochs); rewriting its outputs")
        else:
            trainer.log(f"resuming {out} at phase {trainer.phase_idx + 1}/{len(trainer.phases)} "
                        f"({trainer.phases[trainer.phase_idx].label}), after epoch {trainer.epoch} of it "
                        f"({len(trainer.history)} epochs done)")
    else:
        trainer = Trainer(cfg, out, data=data, progress=progress, log=log)
    return trainer.run(stop_after=stop_after)
