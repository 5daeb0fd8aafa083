"""`build.py generate` / `platforms.generate`: the accelerator's HDL, reproducible and clean
for Verilator and Icarus; `platforms.config_args`: --config/--param parsing."""

import json

import pytest

import build
from platforms.config_args import resolve_config
from platforms.generate import generate
from platforms.hdl_check import (iverilog_compile, iverilog_unavailable_reason,
                                 verilator_lint, verilator_unavailable_reason)
from reneta_hw.config import AcceleratorConfig, ConfigError
from reneta_hw.numeric import BFloat16

SMALL = ["num_pe=2", "max_n=16", "max_m=16", "smem_depth=256", "spm_depth=16",
         "axi_data_width=64", "axi_addr_width=16", "instr_queue_depth=4"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    cfg = resolve_config(params=SMALL)
    return cfg, generate(cfg, out)


def test_files_and_manifest(generated):
    import hashlib
    cfg, paths = generated
    assert set(paths) == {"verilog", "rtlil", "config", "manifest"}
    v = paths["verilog"].read_text()
    assert "module reneta(" in v
    assert str(paths["verilog"].parent) not in v          # emit_src=False: no paths
    assert AcceleratorConfig.from_json(json.loads(paths["config"].read_text())) == cfg
    man = json.loads(paths["manifest"].read_text())
    assert man["config_hash"] == cfg.content_hash()
    for p in ("verilog", "rtlil", "config"):
        assert man["files"][paths[p].name] == hashlib.sha256(paths[p].read_bytes()).hexdigest()
    names = {p["name"] for p in man["ports"]}
    assert {"ctrl__aw__awaddr", "dram__r__rdata", "irq"} <= names


def test_same_parameters_same_bytes(generated, tmp_path, capsys):
    """The CLI, from the config JSON of the first run, writes identical files."""
    cfg, paths = generated
    rc = build.main(["generate", "--config", str(paths["config"]), "--out", str(tmp_path)])
    assert rc == 0
    for kind in ("verilog", "rtlil", "config", "manifest"):
        assert (tmp_path / paths[kind].name).read_bytes() == paths[kind].read_bytes(), kind


def test_verilator_lint(generated):
    reason = verilator_unavailable_reason()
    if reason:
        pytest.skip(reason)
    check = verilator_lint(generated[1]["verilog"], "reneta")
    assert check.ok, check.log


def test_iverilog_compiles(generated):
    reason = iverilog_unavailable_reason()
    if reason:
        pytest.skip(reason)
    check = iverilog_compile(generated[1]["verilog"], "reneta")
    assert check.ok, check.log


def test_rtlil_marks_no_rw_check_memories(generated):
    """The RTLIL is the synthesis input: collision masks of no_rw_check memories are set."""
    il = generated[1]["rtlil"].read_text()
    assert "no_rw_check" in il
    assert "COLLISION_X_MASK 1'1" in il or "COLLISION_X_MASK 2'11" in il


# --- parameters -------------------------------------------------------------------------------

def test_param_shorthands():
    assert resolve_config(params=["fmt=bf16"]).fmt == BFloat16(accumulate="fp32")
    assert resolve_config(params=["fmt=bf16acc"]).fmt == BFloat16(accumulate="bf16")
    fx = resolve_config(params=["fmt=q4.12"]).fmt
    assert (fx.int_bits, fx.frac_bits) == (4, 12)
    assert resolve_config(params={"num_pe": 8}).num_pe == 8
    assert resolve_config(params=["procedures=MxV_SP,VXV_SP"]).procedures == ("MxV_SP", "VXV_SP")


def test_config_file_then_params(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps(AcceleratorConfig(num_pe=8, max_n=64).to_json()))
    cfg = resolve_config(f, ["max_n=128"])
    assert (cfg.num_pe, cfg.max_n) == (8, 128)
    f.write_text(json.dumps({"config": AcceleratorConfig(num_pe=4).to_json(), "luts": 1}))
    assert resolve_config(f).num_pe == 4                  # a summary.json holds it in "config"


@pytest.mark.parametrize("args, needle", [
    (["--param", "num_pe=3"], "num_pe"),
    (["--param", "nope=1"], "nope"),
    (["--param", "num_pe"], "key=value"),
    (["--param", "fmt=float8"], "fmt=float8"),
    (["--param", "num_pe=4", "--param", "num_pe=8"], "given twice"),
    (["--config", "/nonexistent/c.json"], "/nonexistent/c.json"),
])
def test_bad_parameters_exit_2(args, needle, tmp_path, capsys):
    assert build.main(["generate", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("generate: ") and needle in err
    assert not list(tmp_path.iterdir())


def test_bad_config_json(tmp_path, capsys):
    f = tmp_path / "c.json"
    f.write_text("{nope")
    with pytest.raises(ConfigError, match="not JSON"):
        resolve_config(f)
    f.write_text(json.dumps({"num_pe": 4, "colour": "red"}))
    with pytest.raises(ConfigError, match="colour"):
        resolve_config(f)
