"""Command line of the trainer: ``python -m reneta_train [train] [options]`` and ``python -m reneta_train bench``.

``main(argv=None) -> int`` is the entry point (``build.py train`` calls it).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from .data import DATASETS, DatasetError

DATASET_OPTIONS = {
    "synthetic": ("num_classes", "num_train", "num_val", "num_test"),
    "japanese_vowels": ("root", "val_fraction"),
    "basic_motions": ("root", "val_fraction"),
    "gsc": ("root", "cache_dir", "keywords", "include_unknown", "unknown_ratio", "silence_ratio", "max_per_class",
            "no_cache"),
}


def _float_list(text: str) -> list[float]:
    try:
        vals = [float(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals or any(not math.isfinite(v) or v < 0 for v in vals):
        raise argparse.ArgumentTypeError(f"expected non-negative numbers, got {text!r}")
    return vals


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` only for options whose default is not None (their help gives it)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from .train import TrainConfig

    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m reneta_train",
        description="Train a Delta RNN (DeltaLSTM/DeltaGRU + framewise classifier) with temporally sparse BPTT: "
                    "pretrain at θ=0, then retrain with thresholds, or sweep θ. "
                    "Subcommands: 'train' (default, these options) and 'bench' (timing table; "
                    "see 'python -m reneta_train bench --help').",
        formatter_class=_HelpFormatter,
    )
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default=d.dataset, choices=sorted(DATASETS), help="data set")
    g.add_argument("--data-root", dest="root", default=None,
                   help="data folder: the Speech Commands folder (gsc, required) or a folder with the .ts files "
                        "(japanese_vowels/basic_motions; default: the installed sktime wheel's data)")
    g.add_argument("--cache-dir", default=None,
                   help="gsc: folder for the feature cache (default: next to the data folder)")
    g.add_argument("--no-cache", action="store_true", default=None, help="gsc: do not read or write a feature cache")
    g.add_argument("--keywords", default=None,
                   help="gsc: comma-separated keyword folders (default: every word folder)")
    g.add_argument("--include-unknown", action="store_true", default=None,
                   help="gsc: add an _unknown_ class made of the other words")
    g.add_argument("--unknown-ratio", type=float, default=None, help="gsc: unknown clips per keyword-class size [1.0]")
    g.add_argument("--silence-ratio", type=float, default=None,
                   help="gsc: silence clips (from _background_noise_) per keyword-class size [1.0]")
    g.add_argument("--max-per-class", type=int, default=None, help="gsc: at most this many clips per class and split")
    g.add_argument("--num-classes", type=int, default=None, help="synthetic: classes including silence [12]")
    g.add_argument("--num-train", type=int, default=None, help="synthetic: training clips [2400]")
    g.add_argument("--num-val", type=int, default=None, help="synthetic: validation clips [480]")
    g.add_argument("--num-test", type=int, default=None, help="synthetic: test clips [480]")
    g.add_argument("--val-fraction", type=float, default=None,
                   help="japanese_vowels/basic_motions: part of TRAIN held out for validation [0.2]")
    g.add_argument("--data-seed", type=int, default=None, help="seed of the data set (default: --seed)")

    g = p.add_argument_group("model")
    g.add_argument("--cell", default=d.cell, choices=["lstm", "gru"], help="recurrent cell")
    g.add_argument("--layers", type=int, default=d.num_layers, help="recurrent layers")
    g.add_argument("--hidden", type=int, default=d.hidden_size, help="hidden units per layer (H)")
    g.add_argument("--theta", type=float, default=None, help="set both thresholds θx and θh")
    g.add_argument("--theta-x", type=float, default=d.theta_x, help="input delta threshold θx of the retraining")
    g.add_argument("--theta-h", type=float, default=d.theta_h, help="hidden delta threshold θh of the retraining")
    g.add_argument("--dense-bptt", action="store_true",
                   help="train through autograd of the masked delta forward instead of the sparse BPTT")

    g = p.add_argument_group("training")
    g.add_argument("--pretrain-epochs", type=int, default=d.pretrain_epochs, help="epochs at θ=0 before retraining")
    g.add_argument("--epochs", type=int, default=d.epochs,
                   help="epochs with the thresholds (per θ in a sweep)")
    g.add_argument("--sweep-theta", type=_float_list, default=None, metavar="T1,T2,...",
                   help="θ sweep: retrain the pretrained weights once per θ (θx=θh=θ) and record accuracy and "
                        "operations per θ")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="training batch size")
    g.add_argument("--eval-batch-size", type=int, default=d.eval_batch_size, help="evaluation batch size")
    g.add_argument("--lr", type=float, default=d.lr, help="AdamW learning rate")
    g.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    g.add_argument("--grad-clip", type=float, default=d.grad_clip, help="gradient-norm clipping")
    g.add_argument("--lr-schedule", default=d.lr_schedule, choices=["cosine", "constant"],
                   help="learning rate per epoch within a phase")
    g.add_argument("--no-warmup", action="store_true", help="no 0.1×lr first epoch when retraining")
    g.add_argument("--pretrain-backend", default=d.pretrain_backend, choices=["torch", "delta"],
                   help="pretraining through nn.LSTM/nn.GRU on the same weights (fast) or the Delta RNN at θ=0")
    g.add_argument("--seed", type=int, default=d.seed, help="seed of everything (weights, batch order, data)")

    g = p.add_argument_group("run")
    g.add_argument("--out", default="out/train", help="output folder")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint.pt (its stored configuration is used)")
    g.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="stop after N epochs of this invocation (checkpoint kept; continue with --resume)")
    g.add_argument("--device", default=d.device, help="torch device")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--quiet", action="store_true", help="no per-epoch log lines (final summary only)")
    return p


def _data_options(args) -> dict:
    allowed = DATASET_OPTIONS[args.dataset]
    opts = {}
    for name in ("root", "cache_dir", "no_cache", "keywords", "include_unknown", "unknown_ratio", "silence_ratio",
                 "max_per_class", "num_classes", "num_train", "num_val", "num_test", "val_fraction"):
        v = getattr(args, name)
        if v is None:
            continue
        if name not in allowed:
            flag = "--data-root" if name == "root" else "--" + name.replace("_", "-")
            raise ValueError(f"{flag} does not apply to --dataset {args.dataset}")
        if name == "no_cache":
            opts["use_cache"] = False
        elif name == "keywords":
            opts["keywords"] = [k for k in v.split(",") if k]
        else:
            opts[name] = v
    opts["seed"] = args.data_seed if args.data_seed is not None else args.seed
    if args.dataset == "gsc":
        if "root" not in opts:
            raise ValueError("--dataset gsc needs --data-root (the Speech Commands folder)")
        opts["verbose"] = True
    return opts


def config_from_args(args):
    from .train import TrainConfig

    tx = args.theta if args.theta is not None else args.theta_x
    th = args.theta if args.theta is not None else args.theta_h
    return TrainConfig(
        dataset=args.dataset, data_options=_data_options(args), cell=args.cell, num_layers=args.layers,
        hidden_size=args.hidden, theta_x=tx, theta_h=th, pretrain_epochs=args.pretrain_epochs, epochs=args.epochs,
        batch_size=args.batch_size, eval_batch_size=args.eval_batch_size, lr=args.lr, weight_decay=args.weight_decay,
        grad_clip=args.grad_clip, lr_schedule=args.lr_schedule, retrain_warmup=not args.no_warmup,
        sparse_bptt=not args.dense_bptt, pretrain_backend=args.pretrain_backend, sweep_theta=args.sweep_theta,
        seed=args.seed, device=args.device,
    )


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def print_summary(metrics: dict, out: Path, wall: float, stream=None) -> None:
    stream = stream if stream is not None else sys.stdout
    f = metrics.get("final") or {}
    if not f:
        return
    print(f"final ({f['phase']}, θx={f['theta_x']:g}, θh={f['theta_h']:g}): "
          f"test accuracy {_pct(f['test_acc'])} (frames {_pct(f['test_frame_acc'])}), "
          f"val accuracy {_pct(f['val_acc'])}", file=stream)
    print(f"  eval pass: Δx sparsity {_pct(f['test_sparsity_dx'])}, Δh sparsity {_pct(f['test_sparsity_dh'])}, "
          f"total {_pct(f['test_sparsity'])}, op reduction {_pct(f['test_op_reduction'])}", file=stream)
    if f.get("train_op_reduction") is not None:
        print(f"  training pass (fwd + sparse bwd): Δx {_pct(f['train_sparsity_dx'])}, Δh {_pct(f['train_sparsity_dh'])}, "
              f"op reduction {_pct(f['train_op_reduction'])}", file=stream)
    for r in metrics.get("sweep") or []:
        print(f"  sweep θ={r['theta']:<5g} test acc {_pct(r['test_acc'])}  Δ sparsity {_pct(r['test_sparsity'])}  "
              f"op reduction train {_pct(r['train_op_reduction'])} / eval {_pct(r['test_op_reduction'])}", file=stream)
    print(f"  training time {f['elapsed_s']:.1f} s (wall {wall:.1f} s); outputs in {out}/ "
          "(metrics.json, metrics.csv, model.pt, training_curves.png"
          + (", theta_sweep.png, sweep.csv" if metrics.get("sweep") else "") + ")", file=stream)


#: options that keep their meaning with --resume (everything else comes from the checkpoint)
RESUME_FLAGS = {"out", "resume", "stop_after", "device", "threads", "no_progress", "quiet"}


def _explicit_args(argv: list[str]) -> argparse.Namespace:
    """Only the options given on the command line (every default suppressed)."""
    p = build_parser()
    for action in p._actions:
        action.default = argparse.SUPPRESS
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from .bench import main as bench_main
        return bench_main(argv[1:])
    if argv and argv[0] == "train":
        argv = argv[1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resume:
        ignored = sorted(set(vars(_explicit_args(argv))) - RESUME_FLAGS)
        if ignored:
            print("note: --resume continues with the configuration stored in the checkpoint; ignoring "
                  + ", ".join("--" + k.replace("_", "-") for k in ignored), file=sys.stderr)
    import torch

    from .train import train

    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    t0 = time.perf_counter()
    try:
        cfg = config_from_args(args)
        cfg.validate()
        log = (lambda s: None) if args.quiet else None
        metrics = train(cfg, args.out, resume=args.resume, stop_after=args.stop_after,
                        progress=not args.no_progress, log=log)
    except (DatasetError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if metrics.get("finished"):
        print_summary(metrics, Path(args.out), time.perf_counter() - t0)
    return 0
