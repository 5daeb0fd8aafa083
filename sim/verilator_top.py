"""Runs a `VectorSet` on the whole accelerator's Verilog under Verilator: `run_verilator`.

Why: pysim runs the accelerator at a few hundred to a few thousand cycles per second;
the emitted Verilog under Verilator runs the same design orders of magnitude faster, and
running it through the same harness also checks that the Verilog behaves as the Amaranth
design does (same memories, same cycle counts).

What is simulated: `ProbedReneta` = ``reneta_hw.top.Reneta(cfg)`` plus two probe outputs
(an instruction entering the core; an instruction retiring), converted with
``emit_src=False``. The testbench is C++ (``sim/verilator_tb.cpp`` after a generated
prologue of port names and register offsets) and does what `sim.harness.run_pysim` does,
cycle for cycle: the AXI4 DRAM slave is a transcription of `sim.axi_memory.AxiMemory`
(same latency, same back-pressure: Python's Mersenne Twister seeded like
``random.Random(seed)``, drawn in the same order), the host makes the same AXI4-Lite
accesses in the same order, and the monitor stamps issue/retire on the same edges. So
``cycles_total``, ``cycles_per_proc``, the counters, ``sim_cycles`` and the DRAM stats are
equal to pysim's on the same vectors, latency, stall and seed.

One difference: pysim loads SMEM/SPM by backdoor (memory init contents, zero cycles); here
they are written through the AXI4-Lite windows before the program phase, and read back
through them after it (the rows `sim.harness.smem_rows_used`, as pysim reads). Those cycles
are reported apart (``HarnessResult.extras``: ``load_cycles``, ``readback_cycles``) and are
not in ``sim_cycles``; the DRAM model does not step while they run, so its random sequence
stays aligned with pysim's. The three ways of giving the program (``program_in``: pushed
after START, queued before it, fetched from DRAM) are pysim's, placed alike
(`sim.harness.program_placement`).

Builds: one executable per (config, design source, Amaranth version, testbench source,
trace), cached under ``$RENETA_VERILATOR_CACHE`` (default ``~/.cache/reneta/verilator``)
by `sim.verilator_eval.build_executable`; memories and program travel through files, so
one build runs any vector set of its configuration. ``vcd=FILE`` uses a separate
``--trace`` build and writes the VCD of the program phase plus ``FILE`` with ``.gtkw``
(`sim.waves`).

``python -m sim.verilator_top --bench`` runs one benchmark case on both backends and
prints cycles/s of each and the ratio.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from reneta_hw.bus.axi import Axi4Signature, AxiLiteSignature
from reneta_hw.ctrl.checker import rule_name
from reneta_hw.ctrl.controller import COUNTERS
from reneta_hw.isa import Proc, descriptor_layout, to_words, words_per_instruction
from reneta_hw.top import ADDR_WIDTH, CTRL_BITS, FETCH_BIT, IRQ_BITS, REG, Reneta

from .axi_memory import AxiProtocolError
from .golden import Memories
from .layout import pack_row, unpack_row
from .harness import (DRAM_MODEL, HarnessError, HarnessResult, HarnessTimeout,
                      attribute_cycles, program_placement, smem_rows_used)
from .vectors import VectorSet
from .verilator_eval import (VerilatorError, _cache_root, _ports, build_executable,
                             unavailable_reason, verilator_name)

__all__ = ["ProbedReneta", "run_verilator", "build_model", "unavailable_reason",
           "VerilatorError", "TOP_NAME", "TARGETS"]

TOP_NAME = "reneta_sim"
_TB_SOURCE = Path(__file__).with_name("verilator_tb.cpp")


class ProbedReneta(wiring.Component):
    """``Reneta(cfg)`` with its ports unchanged plus ``probe_issue`` (an instruction enters
    the core this cycle) and ``probe_retired`` (one retires): what the harness's monitor
    samples inside the design, brought out so a Verilog testbench can see it."""

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "ctrl": In(AxiLiteSignature(ADDR_WIDTH, 32)),
            "dram": Out(Axi4Signature(cfg.axi_data_width, cfg.axi_addr_width,
                                      cfg.axi_id_width)),
            "irq": Out(1),
            "probe_issue": Out(1),
            "probe_retired": Out(1),
        })

    def elaborate(self, platform):
        from amaranth.hdl import Module
        m = Module()
        m.submodules.reneta = r = Reneta(self.cfg)
        wiring.connect(m, wiring.flipped(self.ctrl), r.ctrl)
        wiring.connect(m, wiring.flipped(self.dram), r.dram)
        m.d.comb += [self.irq.eq(r.irq),
                     self.probe_issue.eq(r.core.instr.valid & r.core.instr.ready),
                     self.probe_retired.eq(r.core.retired)]
        return m


# --- build --------------------------------------------------------------------------------

def _source_digest() -> str:
    """Hash of everything the emitted Verilog depends on (design sources, Amaranth)."""
    import amaranth
    import reneta_hw
    h = hashlib.sha256(amaranth.__version__.encode())
    root = Path(reneta_hw.__file__).parent
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    h.update(Path(__file__).read_bytes())
    h.update(_TB_SOURCE.read_bytes())
    return h.hexdigest()


def _port_accessors(ins: dict, outs: dict, data_bytes: int) -> tuple[str, str]:
    """C++ of ``sample_master`` and ``set_dram_inputs`` for these port widths."""
    def get_scalar(field, port):
        return f"    m.{field} = top->{verilator_name(port)};"

    def bytes_get(field, port, width):
        n = verilator_name(port)
        if width <= 64:
            return (f"    {{ uint64_t v = top->{n}; std::memcpy(m.{field}, &v, {data_bytes}); }}")
        return (f"    for (int k = 0; k < {width // 32}; k++) {{ uint32_t x = top->{n}[k]; "
                f"std::memcpy(m.{field} + 4 * k, &x, 4); }}")

    def bytes_set(port, src, width):
        n = verilator_name(port)
        if width <= 64:
            return (f"    {{ uint64_t v = 0; std::memcpy(&v, {src}, {data_bytes}); "
                    f"top->{n} = v; }}")
        return (f"    for (int k = 0; k < {width // 32}; k++) {{ uint32_t x; "
                f"std::memcpy(&x, {src} + 4 * k, 4); top->{n}[k] = x; }}")

    get = ["static void sample_master(MasterOut& m) {"]
    for ch in ("ar", "aw"):
        for f in ("valid", "addr", "len", "size", "burst", "id"):
            get.append(get_scalar(ch + f, f"dram__{ch}__{ch}{f}"))
    get.append(get_scalar("rready", "dram__r__rready"))
    get.append(get_scalar("wvalid", "dram__w__wvalid"))
    get.append(bytes_get("wdata", "dram__w__wdata", outs["dram__w__wdata"]))
    get.append(get_scalar("wstrb", "dram__w__wstrb"))
    get.append(get_scalar("wlast", "dram__w__wlast"))
    get.append(get_scalar("bready", "dram__b__bready"))
    get.append("}")
    put = ["static void set_dram_inputs(const Dram& d) {"]
    for port, val in (("dram__ar__arready", "d.arready"), ("dram__r__rvalid", "d.rvalid"),
                      ("dram__r__rresp", "d.rresp"), ("dram__r__rlast", "d.rlast"),
                      ("dram__r__rid", "d.rid"), ("dram__aw__awready", "d.awready"),
                      ("dram__w__wready", "d.wready"), ("dram__b__bvalid", "d.bvalid"),
                      ("dram__b__bid", "d.bid"), ("dram__b__bresp", "d.bresp")):
        put.append(f"    top->{verilator_name(port)} = {val};")
    put.append(bytes_set("dram__r__rdata", "d.rdata", ins["dram__r__rdata"]))
    put.append("}")
    return "\n".join(get), "\n".join(put)


def _driver(cfg, verilog: str) -> str:
    ins, outs = _ports(verilog, TOP_NAME)
    dbytes = cfg.axi_data_width // 8
    lines = [
        "// generated by sim/verilator_top.py",
        "#include <cstdint>", "#include <cstring>", '#include "verilated.h"',
        f'#include "V{TOP_NAME}.h"', f"#define MODEL V{TOP_NAME}",
        f"static const int DATA_BYTES = {dbytes};",
        f"static const int SIZE_CODE = {dbytes.bit_length() - 1};",
        f"static const int ROW_WORDS = {-(-cfg.row_bits // 32)};",
        f"static const int INSTR_WORDS = {words_per_instruction(cfg)};",
        f"static const int SPM_WORDS = {-(-descriptor_layout(cfg).size // 32)};",
        f"static const long QUEUE_DEPTH = {cfg.instr_queue_depth};",
        f"static const bool ADDR_HI_WORD = {'true' if cfg.axi_addr_width > 32 else 'false'};",
        f"static const int CTRL_FETCH = {FETCH_BIT};",
        f"static const int N_COUNTERS = {len(COUNTERS)};",
        "static const uint32_t REG_COUNTERS[] = {"
        + ", ".join(str(REG[n.upper()]) for n in COUNTERS) + "};",
    ]
    for name in ("IRQ_ENABLE", "IRQ_STATUS", "STATUS", "ERROR", "ERROR_INDEX", "INSTR_COUNT",
                 "INSTR", "CTRL", "SPM_ADDR", "SPM_WDATA", "SPM_RDATA", "SMEM_ADDR",
                 "SMEM_WDATA", "SMEM_RDATA", "PROG_ADDR", "PROG_COUNT"):
        lines.append(f"static const uint32_t REG_{name} = {REG[name]:#x};")
    for name, bit in CTRL_BITS.items():
        lines.append(f"static const int CTRL_{name.upper()} = {bit};")
    for name, bit in IRQ_BITS.items():
        lines.append(f"static const int IRQ_{name.upper()} = {bit};")
    for ch, sigs in (("aw", ("awaddr", "awvalid", "awready")), ("w", ("wdata", "wstrb",
                     "wvalid", "wready")), ("b", ("bready", "bvalid", "bresp")),
                     ("ar", ("araddr", "arvalid", "arready")),
                     ("r", ("rready", "rvalid", "rdata", "rresp"))):
        for s in sigs:
            lines.append(f"#define CTRL_{s.upper()} {verilator_name(f'ctrl__{ch}__{s}')}")
    get, put = _port_accessors(ins, outs, dbytes)
    return "\n".join(lines) + "\n" + _TB_SOURCE.read_text() + "\n" + get + "\n" + put + "\n"


_BUILT: dict = {}


def _opt() -> str:
    """C++ optimisation of the model: ``$RENETA_VERILATOR_OPT``, default ``-O1`` (the tests
    use ``-O0``: a third of the compile time, half the speed)."""
    return os.environ.get("RENETA_VERILATOR_OPT", "-O1")


#: what the design may be elaborated for: the generic Verilog, or the netlist that ECP5
#: synthesis reads (`Ecp5SynthHints`: DP16KD and MULT18X18D blocks, run through their
#: behavioural models)
TARGETS = ("generic", "ecp5")


def _design_verilog(cfg, target: str) -> str:
    from amaranth.back import verilog as _verilog
    if target == "generic":
        return _verilog.convert(ProbedReneta(cfg), name=TOP_NAME, emit_src=False)
    from reneta_hw.mem.ecp5_bram import ECP5_DP16KD_MODEL
    from reneta_hw.numeric.ecp5_dsp import ECP5_MULT18X18D_MODEL, Ecp5SynthHints
    return (_verilog.convert(ProbedReneta(cfg), name=TOP_NAME, platform=Ecp5SynthHints(),
                             emit_src=False) + ECP5_DP16KD_MODEL + ECP5_MULT18X18D_MODEL)


def build_model(cfg, trace: bool = False, target: str = "generic") -> Path:
    """The testbench executable of ``cfg`` (built, or found in the cache) elaborated for
    ``target`` (one of `TARGETS`); see the module docstring. The Verilog conversion is
    skipped when a build of the same config, target and sources exists."""
    reason = unavailable_reason()
    if reason:
        raise VerilatorError(reason)
    if target not in TARGETS:
        raise ValueError(f"target: must be one of {TARGETS}, got {target!r}")
    parts = [cfg.to_json_str(), _source_digest(), str(trace), _opt()]
    if target != "generic":
        parts.append(target)
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]
    if key in _BUILT and _BUILT[key].exists():
        return _BUILT[key]
    index = _cache_root() / f"{TOP_NAME}-index-{key}"
    if index.exists():
        exe = Path(index.read_text().strip())
        if exe.exists():
            _BUILT[key] = exe
            return exe
    text = _design_verilog(cfg, target)
    exe = build_executable(TOP_NAME, text, _driver(cfg, text), opt=_opt(), trace=trace)
    index.parent.mkdir(parents=True, exist_ok=True)
    tmp = index.with_suffix(".tmp")
    tmp.write_text(str(exe))
    tmp.replace(index)
    _BUILT[key] = exe
    return exe


# --- run ----------------------------------------------------------------------------------

def _stall_values(dram_stall) -> list:
    chans = ("ar", "aw", "w", "r", "b")
    if isinstance(dram_stall, dict):
        unknown = set(dram_stall) - set(chans)
        if unknown:
            raise ValueError(f"dram_stall: unknown channel(s) {sorted(unknown)}")
        vals = [float(dram_stall.get(c, 0.0)) for c in chans]
    else:
        vals = [float(dram_stall)] * 5
    for c, p in zip(chans, vals):
        if not 0 <= p < 1:
            raise ValueError(f"dram_stall[{c!r}]: must be a probability in [0, 1), got {p}")
    return vals


def _seed_key(seed) -> list:
    """The 32-bit key words `random.Random(seed)` feeds MT19937's init_by_array."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed: must be an integer, got {seed!r}")
    n = abs(int(seed))
    key = []
    while True:
        key.append(n & 0xFFFF_FFFF)
        n >>= 32
        if not n:
            return key


def run_verilator(vs: VectorSet, dram_latency: int = 20, dram_stall=0.0, seed: int = 0,
                  max_cycles: int | None = None, vcd: str | None = None,
                  dram_log: str | None = None, program_in: str = "axil",
                  program_addr: int | None = None, target: str = "generic") -> HarnessResult:
    """Run ``vs`` on the Verilator model; same arguments and result as `run_pysim` (see the
    module docstring; ``program_in`` and ``program_addr`` as there). ``wall_seconds`` is the
    program phase's time inside the executable; ``extras`` has ``load_cycles``,
    ``readback_cycles`` and ``process_seconds`` (the whole executable's run: loading,
    program, read-back, file I/O). ``dram_log=FILE`` writes the
    DRAM model's events, one per line as ``AxiMemory(trace=True).log`` has them (cycle,
    ar/rlast/aw/b, address, len, id): for finding where two runs part. ``target="ecp5"``
    runs the design as ECP5 synthesis elaborates it (see `TARGETS`)."""
    cfg = vs.config
    vs.memories.validate(cfg)
    dram_size, prog_addr, image = program_placement(vs, program_in, program_addr)
    if not isinstance(dram_latency, (int, np.integer)) or dram_latency < 1:
        raise ValueError(f"dram_latency: must be an integer >= 1, got {dram_latency!r}")
    stall = _stall_values(dram_stall)
    key = _seed_key(seed)
    max_cycles = 2_000_000 if max_cycles is None else int(max_cycles)
    if max_cycles < 1:
        raise ValueError(f"max_cycles: must be >= 1, got {max_cycles}")
    exe = build_model(cfg, trace=bool(vcd), target=target)
    n_core = sum(i.proc != Proc.IDLE for i in vs.program)
    with tempfile.TemporaryDirectory(prefix="reneta-vtop-") as td:
        d = Path(td)
        _write_inputs(d, vs, dram_size, prog_addr, image)
        params = {
            "program_in": program_in, "prog_addr": prog_addr,
            "dram_latency": int(dram_latency), "stall": " ".join(repr(s) for s in stall),
            "seed_key": " ".join(str(k) for k in key), "max_cycles": max_cycles,
            "smem_hi": smem_rows_used(vs), "spm_depth": cfg.spm_depth,
            "core_instructions": n_core, "vcd": str(Path(vcd).resolve()) if vcd else "",
            "log_dram": "1" if dram_log else "", **DRAM_MODEL,
        }
        (d / "params.txt").write_text("".join(f"{k} {v}\n" for k, v in params.items()))
        t0 = time.perf_counter()
        r = subprocess.run([str(exe), str(d)], capture_output=True, text=True)
        process_seconds = time.perf_counter() - t0
        if r.returncode:
            raise VerilatorError(f"run_verilator: {exe.name} failed (exit {r.returncode}): "
                                 f"{(r.stdout + r.stderr)[-2000:]}")
        if dram_log:
            (d / "dram_log.txt").replace(dram_log)
        res = dict(line.partition(" ")[::2]
                   for line in (d / "result.txt").read_text().splitlines())
        issue = [int(x) for x in res.get("issue", "").split()]
        retire = [int(x) for x in res.get("retire", "").split()]
        _raise_failure(res, vs, max_cycles, n_core, issue, retire)
        mems = _read_outputs(d, vs)
    counters = dict(zip(COUNTERS, (int(x) for x in res["counters"].split())))
    instructions, per_proc = attribute_cycles(vs, issue, retire)
    dram_stats = dict(zip(("cycles", "busy_cycles", "read_bursts", "write_bursts", "r_beats",
                           "w_beats", "bytes_read", "bytes_written"),
                          (int(x) for x in res["dram_stats"].split())))
    extras = {"load_cycles": int(res["load_ticks"]),
              "readback_cycles": int(res["readback_ticks"]),
              "process_seconds": process_seconds}
    if vcd:
        from .waves import write_gtkw
        write_gtkw(vcd, Path(vcd).with_suffix(".gtkw"))
    return HarnessResult(memories=mems, cycles_total=counters["cycles"],
                         cycles_per_proc=per_proc, counters=counters,
                         sim_cycles=int(res["ticks"]),
                         wall_seconds=float(res["run_seconds"]), instructions=instructions,
                         dram_stats=dram_stats, pauses=int(res["pauses"]), extras=extras)


def _write_inputs(d: Path, vs: VectorSet, dram_size: int, prog_addr: int, image) -> None:
    """The program and the memory images as the testbench reads them: program words;
    (row, row words) of every non-zero SMEM row; (address, low, high) of every non-zero SPM
    word; the DRAM model's whole byte image (``dram_size`` bytes, with the program's
    ``image`` at ``prog_addr`` unless it is None; see `program_placement`)."""
    cfg = vs.config
    row_words = -(-cfg.row_bits // 32)
    prog = np.array([w for ins in vs.program for w in to_words(cfg, ins)], dtype=np.uint32)
    prog.tofile(d / "program.bin")
    smem = vs.memories.smem
    recs = []
    for r in np.flatnonzero(smem.any(axis=1)):
        v = pack_row(smem[r], cfg.word_bits)
        recs.append([int(r)] + [(v >> (32 * k)) & 0xFFFF_FFFF for k in range(row_words)])
    np.array(recs, dtype=np.uint32).reshape(-1, 1 + row_words).tofile(d / "smem.bin")
    spm = vs.memories.spm
    sp = [[int(a), int(spm[a]) & 0xFFFF_FFFF, (int(spm[a]) >> 32) & 0xFFFF_FFFF]
          for a in np.flatnonzero(spm)]
    np.array(sp, dtype=np.uint32).reshape(-1, 3).tofile(d / "spm.bin")
    dram = np.zeros(dram_size, dtype=np.uint8)
    if len(vs.memories.dram):
        raw = b"".join(int(w).to_bytes(cfg.word_bytes, "little") for w in vs.memories.dram)
        dram[:len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    if image is not None:
        dram[prog_addr:prog_addr + len(image)] = image
    dram.tofile(d / "dram.bin")


def _raise_failure(res: dict, vs: VectorSet, max_cycles: int, n_core: int, issue: list,
                   retire: list) -> None:
    """The exception run_pysim would raise for the failure the testbench reported, if any."""
    if "fail_timeout" in res:
        raise HarnessTimeout(
            f"run_verilator: the program did not finish within {max_cycles} cycles "
            f"({len(issue)} of {n_core} instructions issued to the core, {len(retire)} "
            "retired)")
    if "fail_protocol" in res:
        ch, cyc, rule = res["fail_protocol"].split(" ", 2)
        raise AxiProtocolError(ch, int(cyc), rule)
    if "fail_bus" in res:
        raise HarnessError(f"run_verilator: {res['fail_bus']}")
    if "error" in res:
        e, idx = (int(x) for x in res["error"].split())
        rule, code, from_core = e & 0xF, (e >> 4) & 0xF, (e >> 8) & 1
        if from_core:
            msg = f"the core reported error code {code} at instruction {idx}"
        else:
            ins = vs.program[idx] if idx < len(vs.program) else None
            msg = (f"instruction {idx} ({ins.proc.name if ins else '?'}) is illegal: rule "
                   f"{rule} ({rule_name(rule)})")
        raise HarnessError(f"run_verilator: {msg}")


def _read_outputs(d: Path, vs: VectorSet) -> Memories:
    """The memories after the run: SMEM rows read back (the others keep their input), every
    SPM word, the DRAM image's words."""
    cfg = vs.config
    row_words = -(-cfg.row_bits // 32)
    sw = np.fromfile(d / "smem_out.bin", dtype=np.uint32).reshape(-1, row_words)
    spm_w = np.fromfile(d / "spm_out.bin", dtype=np.uint32).reshape(-1, 2)
    dram_out = np.fromfile(d / "dram_out.bin", dtype=np.uint8)
    smem = vs.memories.smem.copy()
    for row in range(len(sw)):
        v = 0
        for k, w in enumerate(sw[row]):
            v |= int(w) << (32 * k)
        smem[row] = unpack_row(v, cfg.num_pe, cfg.word_bits)
    spm = spm_w[:, 0].astype(np.int64) | (spm_w[:, 1].astype(np.int64) << 32)
    n_img, wb = len(vs.memories.dram), cfg.word_bytes
    raw = dram_out[:n_img * wb].reshape(n_img, wb).astype(np.int64)
    dwords = (raw << (8 * np.arange(wb, dtype=np.int64))).sum(axis=1)
    return Memories(dram=dwords, smem=smem, spm=spm)


# --- benchmark ------------------------------------------------------------------------------

def _bench(argv=None) -> int:
    import argparse

    from .bench import bench_config, bench_vectors, make_bench_problem
    from .harness import run_pysim
    from .vectors import compare

    ap = argparse.ArgumentParser(prog="python -m sim.verilator_top",
                                 description="cycles/s of pysim and Verilator on one case")
    ap.add_argument("--bench", action="store_true", help="run the benchmark")
    ap.add_argument("--num-pe", type=int, default=4)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--nt", type=int, default=8)
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--proc", default="MxV_SP")
    ap.add_argument("--dram-latency", type=int, default=20)
    ap.add_argument("--dram-stall", type=float, default=0.0)
    ap.add_argument("--skip-pysim", action="store_true")
    a = ap.parse_args(argv)
    if not a.bench:
        ap.print_help()
        return 2
    cfg = bench_config(a.num_pe, a.n, a.nt)
    prob = make_bench_problem(cfg, a.n, a.n, a.nt, a.sparsity, seed=0)
    vs = bench_vectors(prob, a.proc)
    t = time.perf_counter()
    build_model(cfg)
    print(f"verilator build (conversion + verilate + compile, or cache): "
          f"{time.perf_counter() - t:.1f} s")
    hv = run_verilator(vs, dram_latency=a.dram_latency, dram_stall=a.dram_stall)
    ok_v = all(c.passed for c in compare(vs, hv.memories))
    print(f"verilator: {hv.sim_cycles} cycles in {hv.wall_seconds:.3f} s = "
          f"{hv.cycles_per_second:,.0f} cycles/s (process {hv.extras['process_seconds']:.2f} s,"
          f" +{hv.extras['load_cycles']} load, +{hv.extras['readback_cycles']} read-back "
          f"cycles); bit-exact: {ok_v}; CYCLES {hv.cycles_total}")
    if a.skip_pysim:
        return 0 if ok_v else 1
    hp = run_pysim(vs, dram_latency=a.dram_latency, dram_stall=a.dram_stall)
    ok_p = all(c.passed for c in compare(vs, hp.memories))
    print(f"pysim:     {hp.sim_cycles} cycles in {hp.wall_seconds:.3f} s = "
          f"{hp.cycles_per_second:,.0f} cycles/s; bit-exact: {ok_p}; CYCLES {hp.cycles_total}")
    same = (hp.cycles_total == hv.cycles_total and hp.cycles_per_proc == hv.cycles_per_proc
            and hp.counters == hv.counters)
    print(f"ratio: {hv.cycles_per_second / hp.cycles_per_second:,.0f}x; identical cycle counts: "
          f"{same}")
    return 0 if ok_v and ok_p and same else 1


if __name__ == "__main__":
    raise SystemExit(_bench())
