import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.reneta_dat import read_sample, sample_to_vectors
from sim.runner import run_vectors
from sim.vectors import VectorFileError, read_vectors, write_vectors

from reneta_dat_writer import write_sample

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def vs(tmp_path):
    write_sample(tmp_path / "dat", nx=16, nh=32, nt=4, sparsity=0.5, seed=4, empty_steps=(2,))
    return sample_to_vectors(read_sample(tmp_path / "dat", 1, 0), num_pe=8)


@pytest.mark.parametrize("name", ["set", "set.npz"])
def test_round_trip(vs, tmp_path, name):
    path = write_vectors(vs, tmp_path / name)
    back = read_vectors(path)
    assert back.config == vs.config
    assert back.program == vs.program
    assert np.array_equal(back.memories.smem, vs.memories.smem)
    assert np.array_equal(back.memories.dram, vs.memories.dram)
    assert np.array_equal(back.memories.spm, vs.memories.spm)
    assert [(e.name, e.proc, e.memory, e.address) for e in back.expected] == \
        [(e.name, e.proc, e.memory, e.address) for e in vs.expected]
    assert back.meta == vs.meta
    assert run_vectors(back).passed


def test_cli_runs_our_format(vs, tmp_path):
    path = write_vectors(vs, tmp_path / "v.npz")
    r = subprocess.run([sys.executable, str(ROOT / "build.py"), "sim", str(path),
                        "--json", str(tmp_path / "o.json")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "o.json").read_text())["results"]
    assert [x["proc"] for x in rows] == ["MxV_SP", "MTxV_SP", "VXV_SP"]


def _manifest(path):
    return json.loads((path / "manifest.json").read_text())


@pytest.mark.parametrize("edit, message", [
    (lambda p: (p / "manifest.json").unlink(), "no manifest.json"),
    (lambda p: (p / "manifest.json").write_text("{"), "not valid JSON"),
    (lambda p: (p / "smem.npy").unlink(), "smem.npy: file missing"),
    (lambda p: (p / "dram.npy").write_bytes((p / "dram.npy").read_bytes()[:40]), "dram.npy"),
    (lambda p: np.save(p / "smem.npy", np.full((4, 8), 70000, dtype=np.int64)),
     "outside 16-bit words"),
    (lambda p: np.save(p / "smem.npy", np.zeros((4, 3), dtype=np.int64)), "smem image shape"),
])
def test_malformed_directory(vs, tmp_path, edit, message):
    path = write_vectors(vs, tmp_path / "set")
    edit(path)
    with pytest.raises(VectorFileError, match=message):
        read_vectors(path)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(format="other"), "format"),
    (lambda m: m.update(version=99), "unsupported version"),
    (lambda m: m["config"].update(num_pe=3), "config.*num_pe"),
    (lambda m: m["program"][0].update(t=99), "instruction 0"),
    (lambda m: m["program"][0].update(proc="FOO"), "unknown proc"),
    (lambda m: m["expected"][0].update(memory="spm"), "memory must be"),
    (lambda m: m.pop("program"), "lacks 'program'"),
])
def test_malformed_manifest(vs, tmp_path, change, message):
    path = write_vectors(vs, tmp_path / "set")
    m = _manifest(path)
    change(m)
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(VectorFileError, match=message):
        read_vectors(path)


def test_truncated_npz(vs, tmp_path):
    path = write_vectors(vs, tmp_path / "v.npz")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(VectorFileError, match="v.npz"):
        read_vectors(path)
    r = subprocess.run([sys.executable, str(ROOT / "build.py"), "sim", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "v.npz" in r.stderr
