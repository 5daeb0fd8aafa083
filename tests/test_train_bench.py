"""The training-step benchmark (`python -m reneta_train.bench`) in --quick mode on tiny sizes."""

from __future__ import annotations

import json

import torch

from reneta_train.bench import HEADER, main
from reneta_train.cli import main as cli_main

torch.set_num_threads(1)

TINY = ["--quick", "--hidden", "8", "--theta", "0,0.3", "--batch", "4", "--frames", "20", "--repeats", "1",
        "--warmup", "0"]
KEYS = {"cell", "hidden", "theta", "batch", "frames", "layers", "ms_sparse", "ms_autograd", "ms_torch",
        "speedup_vs_autograd", "ratio_vs_torch", "sparsity_dx", "sparsity_dh", "sparsity", "op_reduction"}


def test_bench_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench" / "result.json"
    assert main(TINY + ["--cell", "both", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert HEADER in text
    table = [ln for ln in text.splitlines() if ln.startswith(("lstm ", "gru "))]
    assert len(table) == 4
    res = json.loads(out.read_text())
    assert res["config"]["hidden"] == [8] and res["config"]["theta"] == [0.0, 0.3] and res["config"]["batch"] == 4
    assert {"torch", "threads"} <= set(res["environment"])
    rows = res["rows"]
    assert [(r["cell"], r["theta"]) for r in rows] == [("lstm", 0.0), ("lstm", 0.3), ("gru", 0.0), ("gru", 0.3)]
    for r in rows:
        assert KEYS <= set(r)
        assert r["ms_sparse"] > 0 and r["ms_autograd"] > 0 and r["ms_torch"] > 0
        assert 0.0 <= r["sparsity"] <= 1.0
    for cell in ("lstm", "gru"):
        r0, r3 = [r for r in rows if r["cell"] == cell]
        assert r3["sparsity_dx"] > r0["sparsity_dx"] and r3["op_reduction"] > r0["op_reduction"]
        assert r0["ms_torch"] == r3["ms_torch"]            # nn.LSTM/GRU is measured once per H


def test_bench_via_cli_subcommand(capsys):
    assert cli_main(["bench"] + TINY) == 0
    assert "lstm     8  0.30" in capsys.readouterr().out
