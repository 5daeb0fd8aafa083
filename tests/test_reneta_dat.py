import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.reneta_dat import find_samples, read_sample, sample_to_vectors
from sim.runner import run_vectors
from sim.vectors import VectorFileError

from reneta_dat_writer import write_sample

ROOT = Path(__file__).resolve().parent.parent


def build_py(*args):
    return subprocess.run([sys.executable, str(ROOT / "build.py"), *args], capture_output=True,
                          text=True, cwd=ROOT)


@pytest.fixture
def dat_dir(tmp_path):
    write_sample(tmp_path, nx=32, nh=48, nt=8, sparsity=0.5, seed=1, sample=0,
                 empty_steps=(0, 5))
    write_sample(tmp_path, nx=32, nh=48, nt=8, sparsity=0.9, seed=2, sample=1,
                 empty_steps=(7,), write_weights=False)
    return tmp_path


def test_reader_decodes_the_matrices(dat_dir):
    assert find_samples(dat_dir) == [(1, 0), (1, 1)]
    s = read_sample(dat_dir, 1, 0)
    assert (s.nt, s.nx, s.nh) == (8, 32, 48)
    assert s.count[0] == 0 and s.count[5] == 0
    X = s.delta()
    assert np.array_equal(s.mx, X @ s.w.T)
    assert np.array_equal(s.dl_dw, s.dl_dm.T @ X)


@pytest.mark.parametrize("num_pe", [16, 8])
def test_golden_passes_independent_vectors(dat_dir, num_pe):
    for layer, sample in find_samples(dat_dir):
        run = run_vectors(sample_to_vectors(read_sample(dat_dir, layer, sample), num_pe))
        assert run.passed, [c.first for c in run.checks if not c.passed]
        assert [r["proc"] for r in run.rows] == ["MxV_SP", "MTxV_SP", "VXV_SP"]


def test_a_wrong_expected_value_is_caught(dat_dir):
    vs = sample_to_vectors(read_sample(dat_dir, 1, 0))
    vs.expected[2].data[3, 5] ^= 1
    run = run_vectors(vs)
    assert not run.passed
    assert [r["pass"] for r in run.rows] == [True, True, False]
    assert run.rows[2]["mismatches"] == 1


def test_full_density_step_of_256(tmp_path):
    # a timestep with 256 non-zeros overflows the 8-bit count field: the heads tell
    write_sample(tmp_path, nx=256, nh=16, nt=3, sparsity=0.0, seed=3)
    s = read_sample(tmp_path, 1, 0)
    assert list(s.count) == [256, 256, 256]
    assert run_vectors(sample_to_vectors(s)).passed


def test_cli_json_and_exit_codes(dat_dir, tmp_path):
    out = tmp_path / "r.json"
    r = build_py("sim", "--reneta-vectors", str(dat_dir), "--backend", "golden",
                 "--json", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())["results"]
    assert len(res) == 6
    first = res[0]
    assert {k: first[k] for k in ("sample", "proc", "pass", "mismatches", "cycles")} == \
        {"sample": 0, "proc": "MxV_SP", "pass": True, "mismatches": 0, "cycles": None}
    s0 = read_sample(dat_dir, 1, 0)
    assert first["beats"] == int(s0.count.sum()) * 3          # 48 rows = 3 blocks of 16
    assert "PASS" in r.stdout

    # a corrupted expected file -> exit 1
    p = dat_dir / "Mx_l1_s1.dat"
    raw = bytearray(p.read_bytes())
    raw[1] ^= 0x01
    p.write_bytes(bytes(raw))
    r = build_py("sim", "--reneta-vectors", str(dat_dir))
    assert r.returncode == 1
    assert "Mx" in r.stderr and "differ" in r.stderr

    # truncated file -> exit 2 with the file named
    p.write_bytes(bytes(raw[:-3]))
    r = build_py("sim", "--reneta-vectors", str(dat_dir))
    assert r.returncode == 2
    assert "Mx_l1_s1.dat" in r.stderr


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "x_del_nzp_l1_s0.dat").write_bytes(
        (d / "x_del_nzp_l1_s0.dat").read_bytes()[:-2]), "truncated"),
    (lambda d: (d / "x_del_nzl_l1_s0.dat").write_bytes(
        (d / "x_del_nzl_l1_s0.dat").read_bytes()[:-2]), "odd number|too few|heads"),
    (lambda d: (d / "Wx_l1.dat").unlink(), "Wx_l1.dat: file missing"),
    (lambda d: (d / "dL_dWx_l1_s0.dat").write_bytes(b"\0" * 10), "dL_dWx_l1_s0.dat"),
])
def test_malformed_files_name_the_file(dat_dir, damage, message):
    damage(dat_dir)
    with pytest.raises(VectorFileError, match=message):
        read_sample(dat_dir, 1, 0)


def test_not_a_vector_directory(tmp_path):
    with pytest.raises(VectorFileError, match="no x_del_nzp"):
        find_samples(tmp_path)
    r = build_py("sim", "--reneta-vectors", str(tmp_path / "nope"))
    assert r.returncode == 2 and "no such directory" in r.stderr
