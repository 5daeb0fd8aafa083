"""PNG plots of a training run (matplotlib, Agg backend; no display needed).

* ``training_curves.png``: per epoch, (1) training/val/test loss, (2) val/test clip accuracy and
  test frame accuracy, (3) Δx/Δh/total sparsity and operation reduction of the evaluation pass
  (test split) and of the training pass; phase boundaries are marked.
* ``theta_sweep.png`` (sweep runs): test accuracy and operation reduction / sparsity vs θ, and
  the fraction of operations performed (1 − reduction) on a second axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _series(rows, key):
    return [float("nan") if r.get(key) is None else float(r[key]) for r in rows]


def plot_curves(history: list[dict[str, Any]], path) -> Path:
    path = Path(path)
    ep = [r["global_epoch"] for r in history]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    ax.plot(ep, _series(history, "train_loss"), "o-", label="train")
    ax.plot(ep, _series(history, "val_loss"), "s-", label="val")
    ax.plot(ep, _series(history, "test_loss"), "^-", label="test")
    ax.set_ylabel("framewise cross-entropy")
    ax.set_title("loss")
    ax = axes[1]
    ax.plot(ep, [100 * v for v in _series(history, "val_acc")], "s-", label="val (clip)")
    ax.plot(ep, [100 * v for v in _series(history, "test_acc")], "^-", label="test (clip)")
    ax.plot(ep, [100 * v for v in _series(history, "test_frame_acc")], "v--", label="test (frames)")
    ax.set_ylabel("accuracy [%]")
    ax.set_title("accuracy")
    ax = axes[2]
    for key, style, label in (("test_sparsity_dx", "o-", "Δx sparsity (eval)"),
                              ("test_sparsity_dh", "s-", "Δh sparsity (eval)"),
                              ("test_op_reduction", "^-", "op reduction (eval, fwd)"),
                              ("train_op_reduction", "v--", "op reduction (train, fwd+bwd)")):
        ax.plot(ep, [100 * v for v in _series(history, key)], style, label=label)
    ax.set_ylabel("%")
    ax.set_ylim(-5, 105)
    ax.set_title("temporal sparsity")
    # phase boundaries
    for i in range(1, len(history)):
        if history[i]["phase_index"] != history[i - 1]["phase_index"]:
            for a in axes:
                a.axvline(ep[i] - 0.5, color="grey", lw=0.8, ls=":")
    for a in axes:
        a.set_xlabel("epoch")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_sweep(sweep: list[dict[str, Any]], path) -> Path:
    path = Path(path)
    th = [r["theta"] for r in sweep]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(th, [100 * v for v in _series(sweep, "test_acc")], "o-", color="C0", label="test accuracy")
    ax.set_xlabel("θ (θx = θh)")
    ax.set_ylabel("test accuracy [%]", color="C0")
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(th, [100 * (1 - v) for v in _series(sweep, "train_op_reduction")], "s--", color="C1",
             label="ops performed, training (fwd+bwd)")
    ax2.plot(th, [100 * (1 - v) for v in _series(sweep, "test_op_reduction")], "^--", color="C2",
             label="ops performed, inference")
    ax2.plot(th, [100 * v for v in _series(sweep, "test_sparsity")], "v:", color="C3", label="Δ sparsity (test)")
    ax2.set_ylabel("% of dense MACs / sparsity %")
    ax2.set_ylim(-5, 105)
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="center right")
    ax.set_title("accuracy and operations vs θ")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_run(metrics: dict[str, Any], out) -> list[Path]:
    """Write the plots of a run's metrics dictionary into folder ``out``; returns the files."""
    out = Path(out)
    files = []
    if metrics.get("epochs"):
        files.append(plot_curves(metrics["epochs"], out / "training_curves.png"))
    if metrics.get("sweep"):
        files.append(plot_sweep(metrics["sweep"], out / "theta_sweep.png"))
    return files
