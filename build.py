#!/usr/bin/env python3
"""reneta: train Delta RNNs, generate their accelerator, simulate and check it bit-exactly.

Subcommands (``python build.py SUBCOMMAND --help`` for each):

  sim     run vector sets (ours, or the reference testbench's .dat files) on a backend and
          compare bit-exactly with the expected results
  bench   cycles, utilization and sparse-over-dense speedup of the accelerator on pysim
  train   train a DeltaLSTM/DeltaGRU (same as ``python -m reneta_train``)
  export  export one sample's hardware vectors from a trained model
  demo    the whole flow on built-in data: train, export, simulate, compare, report

Exit codes: 0 success, 1 a mismatch or failed check, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2


def _table(rows: list[dict], columns: list[str]) -> str:
    cells = [[("-" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) if cells else len(c)
              for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(x.ljust(w) for x, w in zip(row, widths)) for row in cells]
    return "\n".join(out)


# --- sim ------------------------------------------------------------------------------------

def cmd_sim(args) -> int:
    from sim.reneta_dat import find_samples, read_sample, sample_to_vectors
    from sim.runner import run_vectors
    from sim.vectors import VectorFileError, read_vectors

    if not args.vectors and not args.reneta_vectors:
        print("sim: give vector files/directories or --reneta-vectors DIR", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        jobs = []     # (label, sample id, VectorSet)
        for path in args.vectors:
            jobs.append((str(path), len(jobs), read_vectors(path)))
        if args.reneta_vectors:
            for layer, sample in find_samples(args.reneta_vectors):
                s = read_sample(args.reneta_vectors, layer, sample, nx=args.nx, nh=args.nh,
                                nt=args.nt)
                jobs.append((f"l{layer}_s{sample}", sample,
                             sample_to_vectors(s, num_pe=args.num_pe or 16)))
        results = []
        opts = {}
        if args.backend == "pysim":
            opts = {"dram_latency": args.dram_latency, "dram_stall": args.dram_stall,
                    "max_cycles": args.max_cycles}
        for label, sample, vs in jobs:
            run = run_vectors(vs, args.backend, **opts)
            for row in run.rows:
                results.append({"sample": sample, "label": label, **row})
            for c in run.checks:
                if not c.passed:
                    print(f"{label}: {c.name} ({c.proc}): {c.mismatches} of {c.total} words "
                          f"differ; first: {c.first}", file=sys.stderr)
    except (VectorFileError, ValueError) as e:
        print(f"sim: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (RuntimeError, TimeoutError) as e:       # HarnessError / HarnessTimeout (pysim)
        print(f"sim: {e}", file=sys.stderr)
        return EXIT_MISMATCH

    print(_table(results, ["label", "proc", "pass", "mismatches", "beats", "cycles"]))
    ok = all(r["pass"] for r in results)
    print(f"\n{'PASS' if ok else 'FAIL'}: {sum(r['pass'] for r in results)}/{len(results)} "
          f"procedure checks bit-exact (backend {args.backend})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"backend": args.backend, "results": results},
                                              indent=1))
    return EXIT_OK if ok else EXIT_MISMATCH


def _add_sim(sub):
    p = sub.add_parser("sim", help="run vectors on a backend and compare bit-exactly",
                       description="Run vector sets and compare every expected result "
                                   "word by word. Exit 0 all pass, 1 mismatch, 2 bad input.")
    p.add_argument("vectors", nargs="*", type=Path,
                   help="vector sets in the project's format (directory or .npz)")
    p.add_argument("--reneta-vectors", metavar="DIR", type=Path,
                   help="a directory of the reference testbench's .dat files")
    p.add_argument("--backend", default="golden", choices=["golden", "pysim"],
                   help="simulation backend: golden (numpy ISA model) or pysim (the whole "
                        "accelerator in Amaranth's simulator; fills cycles) (default: golden)")
    p.add_argument("--dram-latency", type=int, default=20, metavar="N",
                   help="pysim: DRAM read latency in cycles (default 20)")
    p.add_argument("--dram-stall", type=float, default=0.0, metavar="P",
                   help="pysim: probability of DRAM back-pressure per cycle (default 0)")
    p.add_argument("--max-cycles", type=int, default=None, metavar="N",
                   help="pysim: give up after N cycles (default 2,000,000)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.add_argument("--num-pe", type=int, default=None,
                   help="PEs of the accelerator that runs .dat samples (default 16)")
    p.add_argument("--nx", type=int, help="override the inferred layer input size")
    p.add_argument("--nh", type=int, help="override the inferred layer output rows")
    p.add_argument("--nt", type=int, help="override/check the number of timesteps")
    p.set_defaults(func=cmd_sim)


# --- bench ----------------------------------------------------------------------------------

def cmd_bench(args) -> int:
    from sim.bench import run_bench

    if args.quick:
        kw = dict(num_pe=4, n=16, nt=8, sparsities=tuple(args.sparsity or (0.5, 0.9)))
    else:
        kw = dict(num_pe=args.num_pe, n=args.n, nt=args.nt,
                  sparsities=tuple(args.sparsity or (0.5, 0.8, 0.9)))
    print(f"bench: {kw['num_pe']} PEs, Nx = Nh = {kw['n']}, Nt = {kw['nt']}, int16, DRAM latency "
          f"{args.dram_latency} cycles, pysim")
    try:
        rows = run_bench(dram_latency=args.dram_latency, seed=args.seed,
                         dense_each=args.dense_each, **kw)
    except (ValueError, RuntimeError, TimeoutError) as e:
        print(f"bench: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print()
    print(_table(rows, ["sparsity", "proc", "pass", "instructions", "cycles", "mac_beats",
                        "utilization", "dense_cycles", "speedup", "stall_dram",
                        "sim_cycles_per_s"]))
    ok = all(r["pass"] for r in rows)
    print(f"\n{'PASS' if ok else 'FAIL'}: results bit-exact with the golden model")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"case": kw | {"dram_latency": args.dram_latency},
                                               "results": rows}, indent=1))
    return EXIT_OK if ok else EXIT_MISMATCH


def _add_bench(sub):
    p = sub.add_parser("bench", help="cycles, utilization and sparse speedup on pysim",
                       description="Run MxV_SP, MTxV_SP, VXV_SP and their dense forms on the "
                                   "whole accelerator in pysim (the reference testbench's "
                                   "case by default) and report cycles, MAC beats, "
                                   "utilization, speedup and simulator speed.")
    p.add_argument("--quick", action="store_true",
                   help="a small case (4 PEs, 16x16, Nt=8; under a minute)")
    p.add_argument("--num-pe", type=int, default=16)
    p.add_argument("--n", type=int, default=64, help="Nx = Nh (default 64)")
    p.add_argument("--nt", type=int, default=64, help="timesteps (default 64)")
    p.add_argument("--sparsity", type=float, action="append",
                   help="Δ sparsity (repeatable; default 0.5, 0.8, 0.9)")
    p.add_argument("--dram-latency", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dense-each", action="store_true",
                   help="run the dense programs at every sparsity (default: once)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.set_defaults(func=cmd_bench)


# --- train / export / demo ----------------------------------------------------------------

def cmd_train(args) -> int:
    from reneta_train.cli import main as train_main
    return train_main(args.rest)


def _add_train(sub):
    p = sub.add_parser("train", help="train a DeltaLSTM/DeltaGRU (python -m reneta_train)",
                       add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_train)


def _trace_sample(model, split, index: int):
    """Trace layer 0 of ``model`` on one sample, with the real ∂L/∂h of the framewise loss."""
    import torch
    import torch.nn.functional as F
    from reneta_train.trace import trace_layer

    n = int(split.lengths[index])
    x = split.x[index:index + 1, :n].double()
    model = model.double()
    out, _ = model.rnn(x)
    out.retain_grad()
    loss = F.cross_entropy(model.classifier(out)[0], split.y[index, :n], reduction="sum")
    loss.backward()
    return trace_layer(model.rnn, x, layer_index=0, grad_output=out.grad[0].detach())


def _export(model, split, index, cfg, out: Path, log=print):
    """Vectors of one sample: our format (``vectors.npz``) and the reference .dat files."""
    from reneta_train.export import ExportError, export_reneta_dat, export_vectors
    from sim.vectors import write_vectors

    tr = _trace_sample(model, split, index)
    vs = export_vectors(tr, cfg, on_overflow="saturate", meta={"test_sample": index})
    path = write_vectors(vs, out / "vectors.npz")
    dat = None
    try:
        dat = export_reneta_dat(tr, out / "reneta_dat", sample=0)
    except ExportError as e:          # the int16 format has hard limits: say so, carry on
        log(f"note: no .dat export ({e})")
    return tr, vs, path, dat


def cmd_export(args) -> int:
    from reneta_hw.config import AcceleratorConfig
    from reneta_train.data import load_dataset
    from reneta_train.model import load_model

    model, payload = load_model(args.model)
    data = load_dataset(**_dataset_args(payload))
    cfg = AcceleratorConfig.from_json(json.loads(Path(args.config).read_text())) \
        if args.config else AcceleratorConfig()
    split = getattr(data, args.split)
    _, vs, path, dat = _export(model, split, args.sample, cfg, Path(args.out))
    print(f"wrote {path} ({len(vs.program)} instructions, Δ sparsity "
          f"{vs.meta['sparsity']:.3f})" + (f" and {dat}" if dat else ""))
    return EXIT_OK


def _dataset_args(payload) -> dict:
    tc = payload.get("train_config") or {}
    return {"name": tc.get("dataset", "synthetic"), **(tc.get("data_options") or {})}


def _add_export(sub):
    p = sub.add_parser("export", help="export one sample's hardware vectors from a model",
                       description="Trace one sample through layer 0 of a trained model "
                                   "(model.pt of python -m reneta_train) and write its "
                                   "MxV_SP/MTxV_SP/VXV_SP vectors (vectors.npz and .dat).")
    p.add_argument("model", type=Path, help="model.pt written by the trainer")
    p.add_argument("--out", type=Path, default=Path("out/vectors"))
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--sample", type=int, default=0)
    p.add_argument("--config", help="AcceleratorConfig JSON file (default: the defaults)")
    p.set_defaults(func=cmd_export)


def cmd_demo(args) -> int:
    """Train, export, simulate, compare, report."""
    import time
    import torch
    from reneta_hw.config import AcceleratorConfig
    from reneta_hw.isa import Proc
    from reneta_train.model import load_model
    from reneta_train.train import TrainConfig, train
    from sim.runner import run_vectors

    t0 = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tc = TrainConfig(dataset="synthetic", cell="lstm", hidden_size=args.hidden_size,
                     theta_x=args.theta, theta_h=args.theta, pretrain_epochs=args.pretrain_epochs,
                     epochs=args.epochs, seed=args.seed)
    print(f"[1/4] training a DeltaLSTM (H={tc.hidden_size}, θ={args.theta}) on the built-in "
          f"synthetic keyword-spotting data")
    metrics = train(tc, out / "train", progress=not args.quiet)
    final = metrics["final"]
    model, payload = load_model(out / "train" / "model.pt")
    from reneta_train.data import load_dataset
    data = load_dataset(**_dataset_args(payload))

    cfg = AcceleratorConfig()
    print(f"[2/4] exporting test sample {args.sample}: layer 0, MxV_SP/MTxV_SP/VXV_SP vectors")
    tr, vs, vpath, dat = _export(model, data.test, args.sample, cfg, out)

    print(f"[3/4] running {len(vs.program)} instructions on the golden model ({args.backend})")
    run = run_vectors(vs, args.backend)
    dat_ok = None
    if dat is not None:
        from sim.reneta_dat import find_samples, read_sample, sample_to_vectors
        dat_ok = all(run_vectors(sample_to_vectors(read_sample(dat, l, s))).passed
                     for l, s in find_samples(dat))
    beats = {r["proc"]: r["beats"] for r in run.rows}
    cycles = {r["proc"]: r["cycles"] for r in run.rows}
    T, n1 = tr.steps, tr.W.shape[1]
    blocks = -(-tr.W.shape[0] // cfg.num_pe)
    dense_beats = blocks * n1 * T             # the same work without skipping, per procedure
    print("[4/4] gateware simulation (build.py sim --backend pysim) and synthesis join the "
          "demo with the build flows (issue #6)")
    summary = {
        "accuracy": final.get("test_acc"), "frame_accuracy": final.get("test_frame_acc"),
        "sparsity_dx": final.get("test_sparsity_dx"), "sparsity_dh": final.get("test_sparsity_dh"),
        "op_reduction": final.get("test_op_reduction"),
        "sample_sparsity": vs.meta["sparsity"],
        "bit_exact": run.passed, "bit_exact_reneta_dat": dat_ok,
        "beats": beats, "dense_beats": dense_beats,
        "cycles": cycles if any(v is not None for v in cycles.values()) else None,
        "utilization": None,
        "speedup_vs_dense": {p: round(dense_beats / b, 3) if b else None
                             for p, b in beats.items()},
        "luts": None, "dsps": None, "brams": None, "fmax_mhz": None,
        "backend": args.backend, "config": cfg.to_json(), "vectors": str(vpath),
        "train_dir": str(out / "train"), "elapsed_s": round(time.time() - t0, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    rows = [{"proc": r["proc"], "pass": r["pass"], "beats": r["beats"],
             "dense beats": dense_beats, "ideal speedup": summary["speedup_vs_dense"][r["proc"]]}
            for r in run.rows]
    print()
    print(_table(rows, ["proc", "pass", "beats", "dense beats", "ideal speedup"]))
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"      # noqa: E731
    print(f"\naccuracy {pct(summary['accuracy'])}, Δx sparsity {pct(summary['sparsity_dx'])}, "
          f"Δh sparsity {pct(summary['sparsity_dh'])}, operations saved "
          f"{pct(summary['op_reduction'])}")
    print(f"bit-exact: {run.passed} (reference .dat: {dat_ok}); "
          f"summary: {out / 'summary.json'}; {summary['elapsed_s']} s")
    return EXIT_OK if run.passed and dat_ok is not False else EXIT_MISMATCH


def _add_demo(sub):
    p = sub.add_parser("demo", help="the whole flow on built-in data",
                       description="Train a DeltaLSTM on the built-in synthetic data, export "
                                   "a sample's vectors, run them, check bit-exactness, report.")
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--theta", type=float, default=0.1)
    p.add_argument("--pretrain-epochs", type=int, default=10)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--sample", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="golden", choices=["golden"])
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="build.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[2:]))
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    _add_sim(sub)
    _add_bench(sub)
    _add_train(sub)
    _add_export(sub)
    _add_demo(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
