#!/usr/bin/env python3
"""reneta: train Delta RNNs, generate their accelerator, simulate and check it bit-exactly.

Subcommands (``python build.py SUBCOMMAND --help`` for each):

  sim     run vector sets (ours, or the reference testbench's .dat files) on a backend and
          compare bit-exactly with the expected results
  bench   cycles, utilization and sparse-over-dense speedup of the accelerator on pysim
  sweep   synthesize and benchmark a parameter grid (cached, parallel, Dask); HTML report
  generate  Verilog + RTLIL + config of the accelerator (or --board: a board's build plan)
  synth   LUT/FF/DSP/BRAM and Fmax with YoWASP Yosys + nextpnr (ecp5, ice40; xc7 estimate)
  vivado  a Vivado project (Tcl, XDC, Verilog) of a Xilinx board top
  train   train a DeltaLSTM/DeltaGRU (same as ``python -m reneta_train``)
  export  export one sample's hardware vectors from a trained model
  demo    the whole flow on built-in data: train, export, generate, simulate the gateware,
          compare, synthesize, report

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
        if args.backend in ("pysim", "verilator"):
            opts = {"dram_latency": args.dram_latency, "dram_stall": args.dram_stall,
                    "seed": args.seed, "max_cycles": args.max_cycles,
                    "program_in": args.program_in}
        elif args.vcd:
            print("sim: --vcd needs --backend pysim or verilator", file=sys.stderr)
            return EXIT_BAD_INPUT
        for k, (label, sample, vs) in enumerate(jobs):
            if args.vcd:        # one VCD (and .gtkw) per vector set: FILE, FILE-1, ...
                v = Path(args.vcd)
                opts["vcd"] = str(v if k == 0 else v.with_name(f"{v.stem}-{k}{v.suffix}"))
                Path(opts["vcd"]).parent.mkdir(parents=True, exist_ok=True)
            run = run_vectors(vs, args.backend, **opts)
            if run.harness is not None:
                h = run.harness
                print(f"{label}: {h.sim_cycles} cycles simulated in {h.wall_seconds:.3f} s "
                      f"({h.cycles_per_second:,.0f} cycles/s, {args.backend})"
                      + (f"; waves: {opts['vcd']} + .gtkw" if args.vcd else ""))
            for row in run.rows:
                results.append({"sample": sample, "label": label, **row})
            for c in run.checks:
                if not c.passed:
                    print(f"{label}: {c.name} ({c.proc}): {c.mismatches} of {c.total} words "
                          f"differ; first: {c.first}", file=sys.stderr)
    except (VectorFileError, ValueError) as e:
        print(f"sim: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (RuntimeError, TimeoutError, AssertionError) as e:
        # HarnessError / HarnessTimeout / VerilatorError / AxiProtocolError
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
    p.add_argument("--backend", default="golden", choices=["golden", "pysim", "verilator"],
                   help="simulation backend: golden (numpy ISA model), pysim (the whole "
                        "accelerator in Amaranth's simulator; fills cycles) or verilator (its "
                        "Verilog under Verilator: same cycles, much faster; the first run of "
                        "a configuration builds the model, ~1 min) (default: golden)")
    p.add_argument("--dram-latency", type=int, default=20, metavar="N",
                   help="pysim/verilator: DRAM read latency in cycles (default 20)")
    p.add_argument("--dram-stall", type=float, default=0.0, metavar="P",
                   help="pysim/verilator: probability of DRAM back-pressure per cycle "
                        "(default 0)")
    p.add_argument("--seed", type=int, default=0,
                   help="pysim/verilator: seed of the DRAM back-pressure (default 0)")
    p.add_argument("--max-cycles", type=int, default=None, metavar="N",
                   help="pysim/verilator: give up after N cycles (default 2,000,000)")
    p.add_argument("--program-in", default="axil", choices=["axil", "queued", "dram"],
                   help="pysim/verilator: how the host gives the program: pushed over "
                        "AXI4-Lite after START (default), queued before START, or fetched "
                        "by the accelerator from DRAM (START|FETCH)")
    p.add_argument("--vcd", metavar="FILE",
                   help="pysim/verilator: write a VCD of the run and FILE.gtkw (GTKWave, "
                        "main buses); several vector sets: FILE, FILE-1, ...")
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
          f"{args.dram_latency} cycles, {args.backend}")
    try:
        rows = run_bench(dram_latency=args.dram_latency, seed=args.seed,
                         dense_each=args.dense_each, backend=args.backend, **kw)
    except (ValueError, RuntimeError, TimeoutError) as e:
        print(f"bench: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print()
    print(_table(rows, ["sparsity", "proc", "pass", "instructions", "cycles", "mac_beats",
                        "utilization", "dense_cycles", "speedup", "stall_dram",
                        "stall_smem", "stall_hazard", "not_busy", "sim_cycles_per_s"]))
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
    p.add_argument("--backend", default="pysim", choices=["pysim", "verilator"],
                   help="pysim (default) or verilator (the emitted Verilog, ~1000x faster "
                        "after a 1-3 minute build, same cycles); both queue the program "
                        "before START")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.set_defaults(func=cmd_bench)


# --- sweep ----------------------------------------------------------------------------------

def cmd_sweep(args) -> int:
    from platforms.sweep import sweep_main
    return sweep_main(args)


def _add_sweep(sub):
    p = sub.add_parser("sweep", help="synthesize and benchmark a grid of configurations",
                       description="Synthesize and benchmark every point of a parameter grid "
                                   "(cached by content; local processes or a Dask cluster) "
                                   "and write results.csv, results.json, PNG plots and "
                                   "report.html. Exit 0 all good, 1 a point failed, 2 bad "
                                   "input.")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="a parameter and its values (repeatable; the sweep is every "
                        "combination; JSON lists/objects are one value, e.g. "
                        "procedures=[\"MxV_SP\"],[\"MxV\",\"MxV_SP\"]; fmt: fixed, bf16, q8.8)")
    p.add_argument("--config", metavar="FILE", help="base AcceleratorConfig JSON")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="override a base parameter (repeatable)")
    p.add_argument("--target", default="ecp5", choices=["ecp5", "ice40", "xc7"])
    p.add_argument("--device", help="device of the target (default: the target's default)")
    p.add_argument("--no-pnr", action="store_true",
                   help="synthesis only: resources without Fmax (much faster)")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="place and route each point with seeds 1..N and report the fastest "
                        "(with fmax_median_mhz; default 1)")
    p.add_argument("--no-bench", action="store_true", help="skip the pysim benchmark")
    p.add_argument("--sparsity", type=float, action="append",
                   help="benchmark Δ sparsity (repeatable; default 0.5, 0.8, 0.9)")
    p.add_argument("--bench-n", type=int, default=32,
                   help="benchmark Nx = Nh, rounded up to num_pe (default 32)")
    p.add_argument("--bench-nt", type=int, default=16, help="benchmark timesteps (default 16)")
    p.add_argument("--dram-latency", type=int, default=20)
    p.add_argument("--jobs", type=int, default=2,
                   help="local worker processes (default 2; 1 runs in this process)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run on this Dask distributed scheduler instead of local processes")
    p.add_argument("--out", type=Path, default=Path("out/sweep"))
    p.add_argument("--cache", type=Path, default=None,
                   help="result cache directory (default $RENETA_SWEEP_CACHE or "
                        "out/sweep-cache)")
    p.add_argument("--force", action="store_true", help="recompute cached points")
    p.set_defaults(func=cmd_sweep)


# --- generate / synth / vivado -------------------------------------------------------------

def _config_from_args(args):
    """The AcceleratorConfig of ``--config``/``--param``; `ConfigError` names the culprit."""
    from platforms.config_args import resolve_config
    return resolve_config(args.config, args.param or ())


def _add_config_args(p):
    p.add_argument("--config", metavar="FILE", help="AcceleratorConfig JSON (default: defaults)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="override a parameter (repeatable), e.g. num_pe=8, fmt=bf16, "
                        "fmt=q8.8, procedures=MxV_SP,MTxV_SP")


def cmd_generate(args) -> int:
    from platforms.generate import generate
    from platforms.hdl_check import iverilog_compile, verilator_lint
    from reneta_hw.config import ConfigError

    try:
        cfg = _config_from_args(args)
        if args.board:
            from platforms.boards import generate_board
            paths = generate_board(args.board, cfg, args.out)
        else:
            paths = generate(cfg, args.out, name=args.name)
    except (ConfigError, ValueError) as e:
        print(f"generate: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for kind, path in paths.items():
        print(f"{kind:10s} {path}")
    ok = True
    if args.check and "verilog" in paths:
        top = "top" if args.board else args.name
        for check in (verilator_lint(paths["verilog"], top), iverilog_compile(paths["verilog"], top)):
            if check.unavailable:
                print(f"check {check.tool}: skipped ({check.unavailable})")
            else:
                print(f"check {check.tool}: {'ok' if check.ok else 'FAILED'}")
                if not check.ok:
                    print(check.log, file=sys.stderr)
                    ok = False
    return EXIT_OK if ok else EXIT_MISMATCH


def _add_generate(sub):
    p = sub.add_parser("generate", help="Verilog and RTLIL of the accelerator",
                       description="Write the accelerator's Verilog (NAME.v), RTLIL (NAME.il), "
                                   "config (NAME.config.json) and manifest; the same "
                                   "parameters give the same bytes. --board writes a board "
                                   "top and its build files instead.")
    _add_config_args(p)
    p.add_argument("--out", type=Path, default=Path("out/generate"))
    p.add_argument("--name", default="reneta", help="top module name (default reneta)")
    p.add_argument("--board", help="a board top and its build files (see build.py vivado "
                                   "--help for the list)")
    p.add_argument("--check", action="store_true",
                   help="also run verilator --lint-only and iverilog on the Verilog")
    p.set_defaults(func=cmd_generate)


def cmd_synth(args) -> int:
    from platforms.synth import SynthError, default_cache_dir, synth_target
    from reneta_hw.config import ConfigError

    try:
        cfg = _config_from_args(args)
        rep = synth_target(cfg, args.target, args.device, pnr=not args.no_pnr,
                           freq_mhz=args.freq, seed=args.seed, seeds=args.seeds,
                           jobs=args.jobs, workdir=args.workdir, fanout=args.fanout,
                           router=args.router,
                           cache_dir=None if args.no_cache else
                           (args.cache or default_cache_dir()))
    except (ConfigError, ValueError) as e:
        print(f"synth: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SynthError as e:
        print(f"synth: {e}", file=sys.stderr)
        return EXIT_MISMATCH
    rows = [{k: rep.get(k) for k in ("target", "part", "luts", "ffs", "dsps", "brams",
                                      "lutrams", "fmax_mhz")}]
    print(_table(rows, list(rows[0])))
    print(rep["message"] + (" (cached)" if rep.get("cached") else ""))
    fr = rep.get("fanout_replication")
    if fr and fr["nets"]:
        print(f"fanout replication: {fr['nets']} driver(s) cloned into {fr['clones']} copies "
              f"(largest: {fr['largest'][0][0]}, {fr['largest'][0][1]} loads)")
    if rep.get("critical_path") and rep.get("fmax_mhz") and rep.get("freq_target_mhz") \
            and rep["fmax_mhz"] < rep["freq_target_mhz"]:
        print("critical path:\n  " + "\n  ".join(rep["critical_path"][:12]))
    late = rep.get("failing_endpoints")
    if late and late["count"]:
        print(f"{late['count']} endpoint(s) later than {late['period_ns']} ns "
              f"({late['target_mhz']:g} MHz), by block (endpoints, worst arrival):")
        for block, n, worst in late["by_block"]:
            print(f"  {n:6d}  {worst:6.2f} ns  {block}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rep, indent=1, sort_keys=True))
    return EXIT_OK if rep["fits"] else EXIT_MISMATCH


def _add_synth(sub):
    from platforms.synth import DEFAULT_FANOUT, DEFAULT_ROUTER, ROUTERS
    p = sub.add_parser("synth", help="LUT/FF/DSP/BRAM and Fmax with Yosys + nextpnr",
                       description="Synthesize the accelerator out of context with the YoWASP "
                                   "Yosys and nextpnr (xc7: a synth_xilinx estimate without "
                                   "timing). Exit 0 fits, 1 does not fit or a tool failed, "
                                   "2 bad input.")
    _add_config_args(p)
    p.add_argument("--target", default="ecp5", choices=["ecp5", "ice40", "xc7"])
    p.add_argument("--device", help="ecp5: 25k, 45k, 85k (default), um5g-85k; ice40: up5k "
                                    "(default), hx8k, hx1k; xc7: xc7a35t (default), xc7a100t, "
                                    "xc7z010, xc7z020")
    p.add_argument("--freq", type=float, help="P&R target clock in MHz (default 150 ecp5, 24 "
                                              "ice40)")
    p.add_argument("--no-pnr", action="store_true", help="Yosys only (no Fmax)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr seed (the first, with --seeds)")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="place and route with N seeds (--seed, --seed+1, ...) and report the "
                        "fastest, with every seed's Fmax and the median (default 1)")
    p.add_argument("--jobs", type=int, default=1, metavar="J",
                   help="--seeds: run J place-and-route processes at once (default 1)")
    p.add_argument("--workdir", type=Path, help="keep the tool files (logs, JSON) here")
    p.add_argument("--fanout", type=int, default=DEFAULT_FANOUT, metavar="N",
                   help="ecp5: before place and route, clone each flip-flop or LUT that drives "
                        "at least N cell inputs, see platforms/fanout.py (e.g. 128; default "
                        f"{DEFAULT_FANOUT}: off)")
    p.add_argument("--router", choices=ROUTERS, default=DEFAULT_ROUTER,
                   help=f"nextpnr's router (ecp5, ice40; default {DEFAULT_ROUTER})")
    p.add_argument("--cache", type=Path, help="reuse/store reports in this directory (default "
                                              "$RENETA_SYNTH_CACHE or ~/.cache/reneta/synth, "
                                              "shared with build.py demo)")
    p.add_argument("--no-cache", action="store_true", help="always run the tools")
    p.add_argument("--json", metavar="OUT", help="write the report as JSON")
    p.set_defaults(func=cmd_synth)


def cmd_vivado(args) -> int:
    from platforms.boards import BOARDS, generate_board
    from reneta_hw.config import ConfigError

    if BOARDS[args.board].family != "xc7":
        print(f"vivado: {args.board} is not a Xilinx board (use build.py generate --board)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        paths = generate_board(args.board, _config_from_args(args), args.out,
                               dram_words=args.dram_words)
    except (ConfigError, ValueError) as e:
        print(f"vivado: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for kind, path in paths.items():
        print(f"{kind:12s} {path}")
    print(f"run: cd {args.out} && vivado -mode batch -source {paths['tcl'].name}")
    return EXIT_OK


def _add_vivado(sub):
    from platforms.boards import BOARDS
    p = sub.add_parser("vivado", help="a Vivado project (Tcl, XDC, Verilog) for a Xilinx board",
                       description="Write a Vivado batch project for a board top (accelerator "
                                   "+ UART-to-AXI4-Lite bridge + on-chip BRAM DRAM + LEDs): "
                                   "create_project, the Verilog, the XDC from the board's "
                                   "resources, synth/opt/place/route, report_utilization, "
                                   "report_timing_summary. Vivado is not needed to generate.")
    _add_config_args(p)
    p.add_argument("--board", required=True,
                   choices=[n for n, b in BOARDS.items() if b.family == "xc7"])
    p.add_argument("--out", type=Path, default=Path("out/vivado"))
    p.add_argument("--dram-words", type=int, default=512,
                   help="rows of the on-chip DRAM (default 512)")
    p.set_defaults(func=cmd_vivado)


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
    """Train, export, generate, simulate on the gateware, compare, synthesize, report."""
    import time
    from platforms.demo_hw import pick_backend, start_synth
    from reneta_hw.config import ConfigError

    t0 = time.time()
    out = Path(args.out)
    try:
        cfg = _config_from_args(args)
        backend, why = pick_backend(args.sim_backend)
        data_options = {}
        for item in args.data or ():
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"--data {item!r}: expected key=value (e.g. num_train=200)")
            try:
                data_options[key] = json.loads(value)
            except json.JSONDecodeError:
                data_options[key] = value
    except (ConfigError, ValueError) as e:
        print(f"demo: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out.mkdir(parents=True, exist_ok=True)
    # synthesis needs only the config: it runs in another process from the start
    synth_job = start_synth(cfg, args.synth, out / "synth")
    try:
        return _demo_stages(args, cfg, backend, why, data_options, synth_job, out, t0)
    except BaseException:
        if synth_job is not None:
            synth_job.cancel()
        raise


def _demo_stages(args, cfg, backend, why, data_options, synth_job, out, t0) -> int:
    """The demo after its inputs are checked (`cmd_demo` cancels synthesis if this fails)."""
    import time
    import torch
    from platforms.demo_hw import write_report
    from platforms.generate import generate
    from reneta_train.model import load_model
    from reneta_train.train import TrainConfig, train
    from sim.runner import run_vectors

    # With synthesis running on one core, a second torch (OpenMP) thread fights it for the
    # other: measured here, epochs took 80-180 s instead of 2 s until Yosys finished.
    torch.set_num_threads(1 if synth_job is not None else max(1, torch.get_num_threads()))
    tc = TrainConfig(dataset="synthetic", data_options=data_options, cell="lstm",
                     hidden_size=args.hidden_size,
                     theta_x=args.theta, theta_h=args.theta, pretrain_epochs=args.pretrain_epochs,
                     epochs=args.epochs, seed=args.seed)
    print(f"[1/6] training a DeltaLSTM (H={tc.hidden_size}, θ={args.theta}) on the built-in "
          f"synthetic keyword-spotting data")
    metrics = train(tc, out / "train", progress=not args.quiet)
    final = metrics["final"]
    model, payload = load_model(out / "train" / "model.pt")
    from reneta_train.data import load_dataset
    data = load_dataset(**_dataset_args(payload))

    print(f"[2/6] exporting test sample {args.sample}: layer 0, MxV_SP/MTxV_SP/VXV_SP vectors")
    tr, vs, vpath, dat = _export(model, data.test, args.sample, cfg, out)
    golden = run_vectors(vs, "golden")
    dat_ok = None
    if dat is not None:
        from sim.reneta_dat import find_samples, read_sample, sample_to_vectors
        dat_ok = all(run_vectors(sample_to_vectors(read_sample(dat, l, s))).passed
                     for l, s in find_samples(dat))

    tag = (f"{cfg.num_pe} PEs, {cfg.fmt}, config {cfg.content_hash()}")
    print(f"[3/6] generating the accelerator ({tag}) into {out / 'hdl'} (synthesis: "
          f"{args.synth}, running in the background since the start)")
    hdl = generate(cfg, out / "hdl")

    print(f"[4/6] simulating {len(vs.program)} instructions on the gateware ({backend}: {why})")
    ts = time.time()
    try:
        gw = run_vectors(vs, backend)
    except (RuntimeError, TimeoutError) as e:
        print(f"demo: gateware simulation failed: {e}", file=sys.stderr)
        if synth_job is not None:
            synth_job.cancel()
        return EXIT_MISMATCH
    sim_s = round(time.time() - ts, 1)
    h = gw.harness
    print(f"[5/6] comparing with the golden model: "
          f"{'bit-exact' if gw.passed else 'MISMATCH'} ({sim_s} s)")
    for c in gw.checks:
        if not c.passed:
            print(f"  {c.name} ({c.proc}): {c.mismatches} of {c.total} words differ; "
                  f"first: {c.first}", file=sys.stderr)

    T, n1 = tr.steps, tr.W.shape[1]
    blocks = -(-tr.W.shape[0] // cfg.num_pe)
    dense_beats = blocks * n1 * T             # the same work without skipping, per procedure
    rows = []
    for r in gw.rows:
        cyc = r["cycles"]
        rows.append({"proc": r["proc"], "pass": r["pass"], "beats": r["beats"], "cycles": cyc,
                     "utilization": round(r["beats"] / cyc, 3) if cyc else None,
                     "dense_beats": dense_beats,
                     "speedup": round(dense_beats / cyc, 3) if cyc else None})
    cycles_total = h.cycles_total if h else None
    mac = h.counters.get("mac_beats") if h else None

    synth = None
    synth_note = "skipped (--synth none)"
    if synth_job is not None:
        print(f"[6/6] synthesis for ECP5 ({args.synth}): waiting for the background run")
        try:
            synth = synth_job.result()
        except Exception as e:            # the demo still reports what it has
            synth_note = f"failed: {str(e).splitlines()[0][:300]}"
            print(f"demo: synthesis {synth_note}", file=sys.stderr)
    else:
        print("[6/6] synthesis skipped (--synth none)")
    if synth is not None and synth.get("fmax_mhz") is None and synth.get("fits"):
        synth_note = ("Yosys only (no Fmax" + ("; no cached place-and-route of this design: "
                      "`build.py demo --synth pnr` or `build.py synth` adds it once"
                      if args.synth == "auto" else "") + ")")
    pick = (lambda k: synth.get(k)) if synth else (lambda k: None)     # noqa: E731
    summary = {
        "accuracy": final.get("test_acc"), "frame_accuracy": final.get("test_frame_acc"),
        "sparsity_dx": final.get("test_sparsity_dx"), "sparsity_dh": final.get("test_sparsity_dh"),
        "op_reduction": final.get("test_op_reduction"),
        "hidden_size": args.hidden_size, "sample": args.sample,
        "sample_sparsity": vs.meta["sparsity"],
        "bit_exact": gw.passed, "bit_exact_golden_vectors": golden.passed,
        "bit_exact_reneta_dat": dat_ok, "sim_backend": backend, "sim_seconds": sim_s,
        "beats": {r["proc"]: r["beats"] for r in rows},
        "cycles": {r["proc"]: r["cycles"] for r in rows}, "cycles_total": cycles_total,
        "utilization": round(mac / cycles_total, 3) if mac and cycles_total else None,
        "utilization_per_proc": {r["proc"]: r["utilization"] for r in rows},
        "dense_beats": dense_beats,
        "speedup_vs_dense": {r["proc"]: r["speedup"] for r in rows},
        "speedup_method": ("dense cycles = the dense form's MAC beat count (every column, "
                           "every step) at utilization 1.0, its best case; sparse cycles "
                           "measured on the gateware: a lower bound on the speedup"),
        "luts": pick("luts"), "ffs": pick("ffs"), "dsps": pick("dsps"),
        "brams": pick("brams"), "fmax_mhz": pick("fmax_mhz"),
        "synth_mode": args.synth, "synthesis": synth, "synth_note": synth_note,
        "config": cfg.to_json(), "config_summary": tag, "hdl": {k: str(v) for k, v in hdl.items()},
        "vectors": str(vpath), "train_dir": str(out / "train"),
    }
    summary["elapsed_s"] = round(time.time() - t0, 1)
    files = write_report(out, summary, rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print()
    print(_table(rows, ["proc", "pass", "beats", "cycles", "utilization", "dense_beats",
                        "speedup"]))
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"      # noqa: E731
    print(f"\naccuracy {pct(summary['accuracy'])}, Δx sparsity {pct(summary['sparsity_dx'])}, "
          f"Δh sparsity {pct(summary['sparsity_dh'])}, operations saved "
          f"{pct(summary['op_reduction'])}")
    print(f"gateware ({backend}) bit-exact with the golden model: {gw.passed}; golden vectors: "
          f"{golden.passed}; reference .dat: {dat_ok}; {cycles_total} cycles, utilization "
          f"{pct(summary['utilization'])}")
    print("synthesis: " + (synth["message"] + (" (cached)" if synth.get("cached") else "")
                           if synth else synth_note))
    if synth and synth_note.startswith("Yosys only"):
        print(f"  {synth_note}")
    print(f"summary: {out / 'summary.json'}, report: {files['report']}; "
          f"{summary['elapsed_s']} s")
    ok = gw.passed and golden.passed and dat_ok is not False
    return EXIT_OK if ok else EXIT_MISMATCH


def _add_demo(sub):
    from platforms.demo_hw import SYNTH_MODES
    p = sub.add_parser("demo", help="the whole flow on built-in data",
                       description="Train a DeltaLSTM on the built-in synthetic data, export "
                                   "a sample's vectors, generate the accelerator, run the "
                                   "vectors on its gateware (Verilator, else pysim), check "
                                   "bit-exactness against the golden model, synthesize for "
                                   "ECP5 and write summary.json, report.md and plots.")
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--theta", type=float, default=0.1)
    p.add_argument("--pretrain-epochs", type=int, default=10)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--sample", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", action="append", metavar="KEY=VALUE",
                   help="option of the synthetic data set (repeatable), e.g. num_train=240, "
                        "num_frames=30 (default: its defaults, 2400 training clips of 61 "
                        "frames)")
    _add_config_args(p)
    p.add_argument("--sim-backend", default="auto", choices=["auto", "verilator", "pysim"],
                   help="gateware simulator (default auto: Verilator if usable, else pysim)")
    p.add_argument("--synth", default="auto", choices=SYNTH_MODES,
                   help="ECP5-85F synthesis: auto (cached place-and-route if any, else Yosys "
                        "only), pnr (always place and route: Fmax; tens of minutes for the "
                        "default design, then cached), yosys, none (default auto)")
    p.add_argument("--no-synth", dest="synth", action="store_const", const="none",
                   help="same as --synth none")
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
    _add_sweep(sub)
    _add_generate(sub)
    _add_synth(sub)
    _add_vivado(sub)
    _add_train(sub)
    _add_export(sub)
    _add_demo(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
