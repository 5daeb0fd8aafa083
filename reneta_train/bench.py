"""Timing of one training step: sparse BPTT vs autograd through the masked delta forward vs nn.LSTM/nn.GRU.

``python -m reneta_train.bench [options]`` (or ``python -m reneta_train bench [options]``) prints one row
per (cell, H, θ): the wall time (best of ``--repeats``; the JSON also has the median) of forward +
backward of one batch (default 32 clips of the synthetic data set, T = 61, 16 features, one layer,
weights shared by all three implementations) for

* ``sparse``: ``Delta{LSTM,GRU}(sparse_bptt=True)`` (the custom symmetric sparse BPTT),
* ``autograd``: ``Delta{LSTM,GRU}(sparse_bptt=False)`` (autograd through the masked delta forward),
* ``torch``: ``nn.LSTM``/``nn.GRU`` (dense, θ-independent; the same number is repeated per θ),

plus the Δ sparsity and operation reduction the layer counters measured on those steps. The loss is
``Σ out ⊙ R`` with a fixed random ``R``; the input needs no gradient (as for a first layer).
Timings depend on the machine and its load; run with ``--threads 1`` for stable numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

QUICK = dict(hidden=[16, 32], theta=[0.0, 0.3], repeats=2, warmup=1)
DEFAULT = dict(hidden=[64, 128, 256], theta=[0.0, 0.1, 0.3], repeats=5, warmup=1)


def _int_list(text: str) -> list[int]:
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return vals


def _float_list(text: str) -> list[float]:
    try:
        vals = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals or min(vals) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative numbers, got {text!r}")
    return vals


def _time_step(module: nn.Module, x: torch.Tensor, R: torch.Tensor, repeats: int, warmup: int) -> list[float]:
    """Seconds of forward + backward of each timed step (grads zeroed outside the timed region)."""
    times = []
    for i in range(warmup + repeats):
        module.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        out, _ = module(x)
        (out * R).sum().backward()
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
    return times


def bench_inputs(batch: int, frames: int, seed: int) -> torch.Tensor:
    """``batch`` training clips of the synthetic data set, time-major ``(T, B, 16)``."""
    from .data import make_synthetic_kws

    d = make_synthetic_kws(num_train=batch, num_val=1, num_test=1, num_frames=frames, seed=seed)
    return d.train.x.transpose(0, 1).contiguous()


def run_bench(cells=("lstm",), hidden=(64, 128, 256), thetas=(0.0, 0.1, 0.3), batch: int = 32, frames: int = 61,
              layers: int = 1, repeats: int = 5, warmup: int = 1, seed: int = 0,
              log=None) -> dict[str, Any]:
    """Run the benchmark; returns ``{"config": ..., "environment": ..., "rows": [...]}``."""
    from . import DeltaGRU, DeltaLSTM
    from .stats import merge

    x = bench_inputs(batch, frames, seed)
    rows = []
    for cell in cells:
        dense_cls, delta_cls = (nn.LSTM, DeltaLSTM) if cell == "lstm" else (nn.GRU, DeltaGRU)
        for H in hidden:
            torch.manual_seed(seed)
            ref = dense_cls(x.shape[2], H, num_layers=layers)
            R = torch.randn(frames, batch, H, generator=torch.Generator().manual_seed(seed + 1))
            t_torch = _time_step(ref, x, R, repeats, warmup)
            for th in thetas:
                res: dict[str, Any] = dict(cell=cell, hidden=H, theta=float(th), batch=batch, frames=frames,
                                           layers=layers)
                for key, sparse in (("sparse", True), ("autograd", False)):
                    m = delta_cls(x.shape[2], H, num_layers=layers, theta_x=th, theta_h=th, sparse_bptt=sparse)
                    m.load_state_dict(ref.state_dict())
                    m.reset_stats()
                    times = _time_step(m, x, R, repeats, warmup)
                    res[f"ms_{key}"] = 1e3 * min(times)
                    res[f"ms_{key}_median"] = 1e3 * statistics.median(times)
                    if sparse:
                        s = merge(m.stats)
                        res.update(sparsity_dx=s.sparsity_dx, sparsity_dh=s.sparsity_dh, sparsity=s.sparsity,
                                   op_reduction=s.op_reduction)
                res["ms_torch"] = 1e3 * min(t_torch)
                res["ms_torch_median"] = 1e3 * statistics.median(t_torch)
                res["speedup_vs_autograd"] = res["ms_autograd"] / res["ms_sparse"]
                res["ratio_vs_torch"] = res["ms_sparse"] / res["ms_torch"]
                rows.append(res)
                if log is not None:
                    log(format_row(res))
    return {
        "config": dict(cells=list(cells), hidden=list(hidden), theta=[float(t) for t in thetas], batch=batch,
                       frames=frames, layers=layers, repeats=repeats, warmup=warmup, seed=seed),
        "environment": dict(torch=torch.__version__, threads=torch.get_num_threads(), python=platform.python_version(),
                            machine=platform.machine()),
        "rows": rows,
    }


HEADER = (f"{'cell':<5} {'H':>4} {'θ':>5} | {'sparse ms':>9} {'autograd ms':>11} {'torch ms':>9} | "
          f"{'vs autograd':>11} {'vs torch':>8} | {'Δx sp':>6} {'Δh sp':>6} {'Δ sp':>6} {'op red':>6}")


def format_row(r: dict[str, Any]) -> str:
    return (f"{r['cell']:<5} {r['hidden']:>4} {r['theta']:>5.2f} | {r['ms_sparse']:>9.2f} {r['ms_autograd']:>11.2f} "
            f"{r['ms_torch']:>9.2f} | {r['speedup_vs_autograd']:>10.2f}x {r['ratio_vs_torch']:>7.2f}x | "
            f"{100 * r['sparsity_dx']:>5.1f}% {100 * r['sparsity_dh']:>5.1f}% {100 * r['sparsity']:>5.1f}% "
            f"{100 * r['op_reduction']:>5.1f}%")


def format_table(result: dict[str, Any]) -> str:
    c = result["config"]
    lines = [f"time per training step (forward + backward), batch {c['batch']}, T = {c['frames']}, "
             f"{c['layers']} layer(s), best of {c['repeats']}, torch {result['environment']['torch']}, "
             f"{result['environment']['threads']} thread(s)",
             "  vs autograd = autograd ms / sparse ms (>1: sparse BPTT faster); "
             "vs torch = sparse ms / torch ms (>1: slower than dense nn.LSTM/GRU)",
             HEADER, "-" * len(HEADER)]
    lines += [format_row(r) for r in result["rows"]]
    return "\n".join(lines)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reneta_train.bench",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=_HelpFormatter)
    p.add_argument("--cell", default="lstm", choices=["lstm", "gru", "both"], help="recurrent cell(s)")
    p.add_argument("--hidden", type=_int_list, default=None,
                   help=f"hidden sizes, comma-separated [{','.join(map(str, DEFAULT['hidden']))}; quick: "
                        f"{','.join(map(str, QUICK['hidden']))}]")
    p.add_argument("--theta", type=_float_list, default=None,
                   help=f"thresholds θx=θh [{','.join(map(str, DEFAULT['theta']))}; quick: "
                        f"{','.join(map(str, QUICK['theta']))}]")
    p.add_argument("--batch", type=int, default=32, help="batch size")
    p.add_argument("--frames", type=int, default=61, help="time steps T")
    p.add_argument("--layers", type=int, default=1, help="recurrent layers")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed steps per measurement (the table shows the fastest, the JSON also the median) "
                        "[5; quick: 2]")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first [1]")
    p.add_argument("--quick", action="store_true", help="small settings (H 16,32, θ 0,0.3, 2 repeats)")
    p.add_argument("--seed", type=int, default=0, help="seed of the input data and weights")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", dest="json_out", default=None, metavar="OUT", help="also write the results as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    base = QUICK if args.quick else DEFAULT
    hidden = args.hidden or base["hidden"]
    thetas = args.theta or base["theta"]
    repeats = args.repeats if args.repeats is not None else base["repeats"]
    warmup = args.warmup if args.warmup is not None else base["warmup"]
    if args.batch < 1 or args.frames < 12 or args.layers < 1 or repeats < 1 or warmup < 0:
        print("error: --batch, --layers, --repeats must be >= 1, --frames >= 12, --warmup >= 0", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    cells = ("lstm", "gru") if args.cell == "both" else (args.cell,)
    print(format_table({"config": dict(batch=args.batch, frames=args.frames, layers=args.layers, repeats=repeats),
                        "environment": dict(torch=torch.__version__, threads=torch.get_num_threads()),
                        "rows": []}), flush=True)
    result = run_bench(cells, hidden, thetas, args.batch, args.frames, args.layers, repeats, warmup, args.seed,
                       log=lambda line: print(line, flush=True))
    if args.json_out:
        path = Path(args.json_out)
        if path.parent != Path(""):
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1), encoding="utf-8")
        print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
