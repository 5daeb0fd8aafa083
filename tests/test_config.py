import json
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from reneta_hw.config import ALL_PROCEDURES, AcceleratorConfig, ConfigError
from reneta_hw.numeric import BFloat16, FixedPoint


def test_defaults_are_the_reference():
    c = AcceleratorConfig()
    assert (c.num_pe, c.max_n, c.max_m, c.word_bits) == (16, 256, 256, 16)
    assert c.row_bits == 256 and c.row_bytes == 32
    assert c.lane_bits == 4 and c.max_blocks == 16
    # n1 and counts can express max_n (the reference's 8-bit fields could not)
    assert (1 << c.n_bits) > c.max_n and (1 << c.count_bits) > c.max_n
    assert (1 << c.nt_bits) > c.max_m and (1 << c.t_bits) >= c.max_m
    assert c.smem_addr_bits == 13 and c.spm_addr_bits == 9
    assert set(c.procedures) == set(ALL_PROCEDURES)


@pytest.mark.parametrize("kw, param", [
    (dict(num_pe=12), "num_pe"),
    (dict(num_pe=1), "num_pe"),
    (dict(max_n=100), "max_n"),
    (dict(max_n=0), "max_n"),
    (dict(max_m=0), "max_m"),
    (dict(smem_depth=1000), "smem_depth"),
    (dict(smem_banks=3), "smem_banks"),
    (dict(spm_depth=128), "spm_depth"),
    (dict(data_fifo_depth=1), "data_fifo_depth"),
    (dict(axi_data_width=48), "axi_data_width"),
    (dict(axi_addr_width=8), "axi_addr_width"),
    (dict(procedures=("MxV_SP", "FOO")), "procedures"),
    (dict(procedures=()), "procedures"),
    (dict(fmt="int16"), "fmt"),
    (dict(num_pe=2.0), "num_pe"),
    (dict(fmt=FixedPoint(4, 2, acc_bits=8), max_n=256), "max_n"),
])
def test_validation_names_parameter(kw, param):
    with pytest.raises(ConfigError, match=rf"AcceleratorConfig\.{param}: "):
        AcceleratorConfig(**kw)


def test_axi_width_must_match_rows():
    # 2 PEs x 16 bits = 32-bit rows: 256-bit AXI is a multiple, fine; 24-bit words are 3 bytes
    AcceleratorConfig(num_pe=2, max_n=16)
    with pytest.raises(ConfigError, match="axi_data_width"):
        AcceleratorConfig(num_pe=2, max_n=16, fmt=FixedPoint(12, 12, acc_bits=48),
                          axi_data_width=64)


configs = st.builds(
    AcceleratorConfig,
    num_pe=st.sampled_from([2, 4, 8, 16, 32]),
    max_m=st.integers(1, 512),
    fmt=st.one_of(st.builds(BFloat16, accumulate=st.sampled_from(["bf16", "fp32"])),
                  st.builds(FixedPoint, int_bits=st.integers(9, 12), frac_bits=st.integers(0, 4),
                            rounding=st.sampled_from(["truncate", "nearest_even"]),
                            overflow=st.sampled_from(["wrap", "saturate"]),
                            acc_bits=st.integers(32, 40))),
    procedures=st.lists(st.sampled_from(ALL_PROCEDURES), min_size=1, unique=True).map(tuple),
)


@settings(max_examples=50, deadline=None)
@given(configs)
def test_json_round_trip_and_hash(cfg):
    text = json.dumps(cfg.to_json())
    back = AcceleratorConfig.from_json(text)
    assert back == cfg
    assert back.content_hash() == cfg.content_hash()
    assert hash(back) == hash(cfg)


def test_hash_stable_across_processes_and_sensitive():
    c = AcceleratorConfig()
    code = ("from reneta_hw.config import AcceleratorConfig;"
            "print(AcceleratorConfig().content_hash())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert other == c.content_hash()
    assert c.replace(num_pe=8).content_hash() != c.content_hash()
    assert c.replace(fmt=BFloat16()).content_hash() != c.content_hash()


def test_from_json_errors():
    with pytest.raises(ConfigError, match="unknown parameter"):
        AcceleratorConfig.from_json({"num_pes": 4})
    with pytest.raises(ConfigError, match="fmt"):
        AcceleratorConfig.from_json({"fmt": {"kind": "posit"}})


def test_with_params_from_strings():
    c = AcceleratorConfig.with_params(num_pe="8", procedures="MxV_SP,VXV_SP",
                                      fmt='{"kind": "bfloat16", "accumulate": "bf16"}')
    assert c.num_pe == 8 and c.procedures == ("MxV_SP", "VXV_SP")
    assert c.fmt == BFloat16("bf16")
