#!/usr/bin/env python3
"""reneta: train Delta RNNs, generate their accelerator, simulate and check it bit-exactly.

Subcommands (``python build.py SUBCOMMAND --help`` for each):

  sim     run vector sets (ours, or the reference testbench's .dat files) on a backend and
          compare bit-exactly with the expected results
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
        for label, sample, vs in jobs:
            run = run_vectors(vs, args.backend)
            for row in run.rows:
                results.append({"sample": sample, "label": label, **row})
            for c in run.checks:
                if not c.passed:
                    print(f"{label}: {c.name} ({c.proc}): {c.mismatches} of {c.total} words "
                          f"differ; first: {c.first}", file=sys.stderr)
    except (VectorFileError, ValueError) as e:
        print(f"sim: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT

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
    p.add_argument("--backend", default="golden", choices=["golden"],
                   help="simulation backend (default: golden)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.add_argument("--num-pe", type=int, default=None,
                   help="PEs of the accelerator that runs .dat samples (default 16)")
    p.add_argument("--nx", type=int, help="override the inferred layer input size")
    p.add_argument("--nh", type=int, help="override the inferred layer output rows")
    p.add_argument("--nt", type=int, help="override/check the number of timesteps")
    p.set_defaults(func=cmd_sim)


# --- train / export / demo ----------------------------------------------------------------

def cmd_train(args) -> int:
    from reneta_train.cli import main as train_main
    return train_main(args.rest)


def _add_train(sub):
    p = sub.add_parser("train", help="train a DeltaLSTM/DeltaGRU (python -m reneta_train)",
                       add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_train)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="build.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[2:]))
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    _add_sim(sub)
    _add_train(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
