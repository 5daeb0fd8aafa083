"""The project's test-vector format: config + program + memory images + expected results.

A vector set is stored either as a **directory** (``manifest.json`` plus one ``.npy`` file
per array) or as one **``.npz``** file (the same arrays plus the manifest as the array
``manifest.json``, UTF-8 bytes). The manifest::

    {
      "format": "reneta-vectors", "version": 1,
      "config":  AcceleratorConfig.to_json(),
      "program": [Instruction.to_json(), ...],            # fields by name, proc/func by name
      "memories": {"dram": "dram.npy", "smem": "smem.npy", "spm": "spm.npy"},
      "expected": [ {"name": "Mx_t0", "proc": "MxV_SP", "memory": "smem"|"dram",
                     "address": ROW (smem) or BYTE ADDRESS (dram), "array": "FILE.npy"}, ...],
      "meta": {... free-form: source, layer, sample, sparsity ...}
    }

Memory images hold raw words: ``dram`` flat (word-addressed; byte address = index *
word_bytes), ``smem`` (rows, num_pe) - fewer rows than ``smem_depth`` are zero-padded -,
``spm`` descriptor words (packed by `reneta_hw.isa.pack_descriptor`). An expected array is
(rows, num_pe) words that must equal the memory from ``address`` on after the program ran.

`read_vectors` checks everything it reads and raises `VectorFileError` naming the file
and what is wrong.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reneta_hw.config import AcceleratorConfig, ConfigError
from reneta_hw.isa import IllegalInstruction, Instruction, check

from .golden import Memories

FORMAT_NAME = "reneta-vectors"
FORMAT_VERSION = 1


class VectorFileError(ValueError):
    """A malformed vector file; the message names the file and the problem."""


@dataclass
class Expected:
    name: str
    proc: str
    memory: str          # "smem" or "dram"
    address: int         # SMEM row or DRAM byte address
    data: np.ndarray     # (rows, num_pe) words


@dataclass
class VectorSet:
    config: AcceleratorConfig
    program: list
    memories: Memories
    expected: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def expected_procs(self) -> list[str]:
        return list(dict.fromkeys(e.proc for e in self.expected))


def _dtype(cfg: AcceleratorConfig):
    return np.uint16 if cfg.word_bits <= 16 else np.uint32


def write_vectors(vs: VectorSet, path) -> Path:
    """Write ``vs`` to ``path``: a directory, or a ``.npz`` file if the name ends so."""
    path = Path(path)
    cfg = vs.config
    dt = _dtype(cfg)
    arrays = {"dram.npy": vs.memories.dram.astype(dt), "smem.npy": vs.memories.smem.astype(dt),
              "spm.npy": vs.memories.spm.astype(np.uint64)}
    expected = []
    for k, e in enumerate(vs.expected):
        fname = f"expected_{k:04d}.npy"
        arrays[fname] = np.asarray(e.data).astype(dt)
        expected.append({"name": e.name, "proc": e.proc, "memory": e.memory,
                         "address": int(e.address), "array": fname})
    manifest = {
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "config": cfg.to_json(),
        "program": [i.to_json() for i in vs.program],
        "memories": {"dram": "dram.npy", "smem": "smem.npy", "spm": "spm.npy"},
        "expected": expected, "meta": vs.meta,
    }
    text = json.dumps(manifest, indent=1, sort_keys=True)
    if path.suffix == ".npz":
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {k[:-4]: v for k, v in arrays.items()}
        payload["manifest.json"] = np.frombuffer(text.encode(), dtype=np.uint8)
        with open(path, "wb") as f:
            np.savez_compressed(f, **payload)
    else:
        path.mkdir(parents=True, exist_ok=True)
        (path / "manifest.json").write_text(text)
        for name, a in arrays.items():
            np.save(path / name, a)
    return path


class _Source:
    """Reads named arrays from a directory or a .npz, with errors naming the file."""

    def __init__(self, path: Path):
        self.path = path
        self.npz = None
        if path.is_dir():
            mf = path / "manifest.json"
            if not mf.is_file():
                raise VectorFileError(f"{path}: no manifest.json in this vector directory")
            self.manifest_text = mf.read_text()
        elif path.is_file():
            try:
                self.npz = np.load(path, allow_pickle=False)
            except (OSError, ValueError, zipfile.BadZipFile) as e:
                raise VectorFileError(f"{path}: not a readable .npz vector file ({e})") from None
            if "manifest.json" not in self.npz.files:
                raise VectorFileError(f"{path}: the .npz has no 'manifest.json' entry")
            try:
                self.manifest_text = bytes(self.npz["manifest.json"]).decode()
            except (UnicodeDecodeError, ValueError, zipfile.BadZipFile, EOFError) as e:
                raise VectorFileError(f"{path}: manifest.json is unreadable ({e})") from None
        else:
            raise VectorFileError(f"{path}: no such vector file or directory")

    def array(self, name: str) -> np.ndarray:
        where = f"{self.path}/{name}" if self.npz is None else f"{self.path}[{name}]"
        try:
            if self.npz is None:
                return np.load(self.path / name, allow_pickle=False)
            key = name[:-4] if name.endswith(".npy") else name
            if key not in self.npz.files:
                raise VectorFileError(f"{where}: array missing from the .npz")
            return self.npz[key]
        except VectorFileError:
            raise
        except FileNotFoundError:
            raise VectorFileError(f"{where}: file missing") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise VectorFileError(f"{where}: truncated or not a .npy array ({e})") from None


def _words(a: np.ndarray, cfg: AcceleratorConfig, where: str) -> np.ndarray:
    if a.dtype.kind not in "iu":
        raise VectorFileError(f"{where}: expected integer words, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() > cfg.fmt.word_mask):
        raise VectorFileError(f"{where}: values outside {cfg.word_bits}-bit words")
    return a


def read_vectors(path) -> VectorSet:
    path = Path(path)
    src = _Source(path)
    try:
        m = json.loads(src.manifest_text)
    except json.JSONDecodeError as e:
        raise VectorFileError(f"{path}: manifest.json is not valid JSON ({e})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT_NAME:
        raise VectorFileError(f"{path}: manifest 'format' must be {FORMAT_NAME!r}")
    if m.get("version") != FORMAT_VERSION:
        raise VectorFileError(f"{path}: unsupported version {m.get('version')!r} "
                              f"(this reader knows {FORMAT_VERSION})")
    for key in ("config", "program", "memories", "expected"):
        if key not in m:
            raise VectorFileError(f"{path}: manifest lacks {key!r}")
    try:
        cfg = AcceleratorConfig.from_json(m["config"])
    except (ConfigError, TypeError) as e:
        raise VectorFileError(f"{path}: manifest 'config': {e}") from None
    program = []
    for k, d in enumerate(m["program"]):
        try:
            ins = Instruction.from_json(d)
            check(cfg, ins, where=f"instruction {k}")
        except (IllegalInstruction, TypeError, ValueError) as e:
            raise VectorFileError(f"{path}: program: {e}") from None
        program.append(ins)

    mems = m["memories"]
    dram = _words(src.array(mems["dram"]), cfg, f"{path}: dram").reshape(-1)
    smem_in = _words(src.array(mems["smem"]), cfg, f"{path}: smem")
    if smem_in.ndim != 2 or smem_in.shape[1] != cfg.num_pe or smem_in.shape[0] > cfg.smem_depth:
        raise VectorFileError(f"{path}: smem image shape {smem_in.shape} does not fit "
                              f"({cfg.smem_depth}, {cfg.num_pe})")
    smem = np.zeros((cfg.smem_depth, cfg.num_pe), dtype=np.int64)
    smem[:smem_in.shape[0]] = smem_in
    spm_in = src.array(mems["spm"]).astype(np.int64).reshape(-1)
    if spm_in.shape[0] > cfg.spm_depth:
        raise VectorFileError(f"{path}: spm image has {spm_in.shape[0]} entries, more than "
                              f"spm_depth={cfg.spm_depth}")
    spm = np.zeros(cfg.spm_depth, dtype=np.int64)
    spm[:spm_in.shape[0]] = spm_in

    expected = []
    for k, e in enumerate(m["expected"]):
        try:
            name, proc, memory, address, fname = (e["name"], e["proc"], e["memory"],
                                                  int(e["address"]), e["array"])
        except (KeyError, TypeError, ValueError):
            raise VectorFileError(f"{path}: expected[{k}] needs name, proc, memory, "
                                  f"address and array") from None
        if memory not in ("smem", "dram"):
            raise VectorFileError(f"{path}: expected[{k}] ({name}): memory must be 'smem' or "
                                  f"'dram', got {memory!r}")
        data = _words(src.array(fname), cfg, f"{path}: expected {name}")
        if data.ndim != 2 or data.shape[1] != cfg.num_pe:
            raise VectorFileError(f"{path}: expected {name}: shape {data.shape} is not "
                                  f"(rows, {cfg.num_pe})")
        expected.append(Expected(name, proc, memory, address, data))
    return VectorSet(cfg, program, Memories(dram, smem, spm), expected, m.get("meta", {}))


@dataclass
class CheckResult:
    name: str
    proc: str
    mismatches: int
    total: int
    first: str = ""

    @property
    def passed(self) -> bool:
        return self.mismatches == 0


def region(mem: Memories, cfg: AcceleratorConfig, memory: str, address: int, rows: int
           ) -> np.ndarray:
    """``rows`` rows of a memory image from an SMEM row / DRAM byte address."""
    if memory == "smem":
        if address + rows > mem.smem.shape[0]:
            raise VectorFileError(f"expected region smem[{address}:{address + rows}] is outside "
                                  f"the SMEM ({mem.smem.shape[0]} rows)")
        return mem.smem[address:address + rows]
    if address % cfg.row_bytes:
        raise VectorFileError(f"expected DRAM address {address:#x} is not row aligned")
    w0 = address // cfg.word_bytes
    n = rows * cfg.num_pe
    if w0 + n > mem.dram.shape[0]:
        raise VectorFileError(f"expected region dram[{address:#x}..] is outside the DRAM image")
    return mem.dram[w0:w0 + n].reshape(rows, cfg.num_pe)


def compare(vs: VectorSet, mem: Memories) -> list[CheckResult]:
    """Compare every expected region with the memories after a run, word by word."""
    out = []
    for e in vs.expected:
        got = region(mem, vs.config, e.memory, e.address, e.data.shape[0])
        bad = np.argwhere(got != e.data)
        first = ""
        if len(bad):
            r, lane = (int(x) for x in bad[0])
            first = (f"{e.memory} row {e.address if e.memory == 'smem' else 0}+{r} lane {lane}:"
                     f" got {int(got[r, lane]):#x}, expected {int(e.data[r, lane]):#x}")
        out.append(CheckResult(e.name, e.proc, len(bad), int(e.data.size), first))
    return out


def summarize(vs: VectorSet, checks: list[CheckResult], beats: dict, cycles=None) -> list[dict]:
    """One row per procedure: pass, mismatches, beats, cycles (None from the golden model)."""
    rows = []
    for proc in vs.expected_procs():
        cs = [c for c in checks if c.proc == proc]
        rows.append({"proc": proc, "pass": all(c.passed for c in cs),
                     "mismatches": sum(c.mismatches for c in cs),
                     "beats": int(beats.get(proc, 0)),
                     "cycles": None if cycles is None else cycles.get(proc)})
    return rows
