"""`build.py demo` end to end, small: a tiny model, a 4-PE accelerator, pysim, no synthesis
(the synthesis flows have their own tests in test_platforms.py)."""

import json

import pytest

import build


def test_demo_small(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = build.main(["demo", "--out", str(out), "--hidden-size", "4", "--pretrain-epochs", "1",
                     "--epochs", "1", "--quiet", "--data", "num_train=96", "--data", "num_val=24",
                     "--data", "num_test=24", "--data", "num_frames=12",
                     "--param", "num_pe=4", "--param", "max_n=64", "--param", "max_m=16",
                     "--param", "spm_depth=32", "--param", "smem_depth=512",
                     "--param", "axi_data_width=64", "--sim-backend", "pysim", "--no-synth"])
    text = capsys.readouterr().out
    assert rc == 0, text
    s = json.loads((out / "summary.json").read_text())
    for key in ("accuracy", "sparsity_dx", "sparsity_dh", "bit_exact", "cycles", "utilization",
                "speedup_vs_dense", "luts", "dsps", "brams", "fmax_mhz"):
        assert key in s, key
    assert s["bit_exact"] is True and s["sim_backend"] == "pysim"
    assert set(s["cycles"]) == {"MxV_SP", "MTxV_SP", "VXV_SP"}
    assert all(c > 0 for c in s["cycles"].values())
    assert 0 < s["utilization"] <= 1
    assert s["luts"] is None and s["synth_mode"] == "none"
    assert (out / "hdl" / "reneta.v").exists() and (out / "report.md").exists()
    assert (out / "cycles.png").exists()
    assert "bit-exact with the golden model: True" in text


def test_demo_bad_param_exits_2(tmp_path, capsys):
    assert build.main(["demo", "--out", str(tmp_path / "d"), "--param", "num_pe=7"]) == 2
    assert "num_pe" in capsys.readouterr().err
    assert build.main(["demo", "--out", str(tmp_path / "d"), "--data", "num_train"]) == 2
    assert "--data" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


@pytest.mark.slow
def test_demo_default(tmp_path):
    """The README's command with its defaults (minutes)."""
    assert build.main(["demo", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
