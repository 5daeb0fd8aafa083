"""Model, training loop and CLI (`python -m reneta_train`) on tiny synthetic runs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reneta_train.cli import main
from reneta_train.data import make_synthetic_kws
from reneta_train.model import DeltaRNNClassifier, clip_decisions, framewise_loss, load_model
from reneta_train.train import TrainConfig, Trainer, epoch_lr, plan_phases

torch.set_num_threads(1)

TINY = ["--num-classes", "4", "--num-train", "32", "--num-val", "16", "--num-test", "16", "--hidden", "8",
        "--batch-size", "16", "--no-progress", "--quiet"]
TIMING = {"train_time_s", "eval_time_s", "elapsed_s"}


def _history(out: Path) -> list[dict]:
    rows = json.loads((out / "metrics.json").read_text())["epochs"]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def _state(out: Path) -> dict:
    return torch.load(out / "model.pt", weights_only=True)["state_dict"]


# ----------------------------------------------------------------------------- model

def test_clip_decision_is_last_non_silence_frame():
    C = 4
    preds = torch.tensor([[0, 2, 2, 3, 0, 0],      # last non-silence frame -> 3
                          [0, 0, 0, 0, 0, 0],      # all silence -> 0
                          [1, 1, 0, 0, 2, 2]])     # frames past the length (4) are ignored -> 1
    logits = torch.nn.functional.one_hot(preds, C).float()
    lengths = torch.tensor([6, 6, 4])
    assert clip_decisions(logits, lengths).tolist() == [3, 0, 1]
    # the loss ignores padded frames
    y = torch.zeros(3, 6, dtype=torch.long)
    garbage = logits.clone()
    garbage[2, 4:] = torch.tensor([100.0, -100, -100, -100])
    assert torch.allclose(framewise_loss(logits, y, lengths), framewise_loss(garbage, y, lengths))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_torch_backend_shares_parameters(cell):
    torch.manual_seed(0)
    m = DeltaRNNClassifier(16, 5, hidden_size=8, num_layers=2, cell=cell).double()
    x = torch.randn(3, 12, 16, dtype=torch.float64)
    a = m(x)
    m.backend = "torch"
    b = m(x)
    assert torch.allclose(a, b, atol=1e-10)                  # θ = 0: the delta network is nn.LSTM/nn.GRU
    b.sum().backward()
    assert m.rnn.weight_hh_l1.grad is not None and m.rnn.weight_hh_l1.grad.abs().sum() > 0
    with torch.no_grad():
        m.rnn.weight_ih_l0.add_(0.1)                          # shared storage: the torch path sees updates
    m.backend = "delta"
    a2 = m(x)
    m.backend = "torch"
    assert torch.allclose(a2, m(x), atol=1e-10) and not torch.allclose(a, a2)


def test_schedule_and_phases():
    cfg = TrainConfig(pretrain_epochs=2, epochs=3, lr=1e-2, sweep_theta=[0.0, 0.2])
    ph = plan_phases(cfg)
    assert [p.name for p in ph] == ["pretrain", "sweep", "sweep"]
    assert ph[0].backend == "torch" and ph[1].init == "base" and ph[2].theta_x == 0.2
    assert epoch_lr(cfg, ph[1], 0) == pytest.approx(1e-3)     # retrain warm-up at 0.1 lr
    assert epoch_lr(cfg, ph[1], 2) == pytest.approx(1e-3)     # cosine down to lr_min_ratio * lr
    assert epoch_lr(cfg, ph[0], 0) == pytest.approx(1e-2)
    assert [p.name for p in plan_phases(TrainConfig(pretrain_epochs=0, epochs=1))] == ["train"]
    with pytest.raises(ValueError):
        TrainConfig(pretrain_epochs=0, epochs=0).validate()


# ----------------------------------------------------------------------------- CLI end to end

def test_cli_end_to_end_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(TINY + ["--pretrain-epochs", "1", "--epochs", "1", "--theta", "0.2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "Δx sparsity" in printed and "op reduction" in printed
    for f in ("metrics.json", "metrics.csv", "model.pt", "pretrained.pt", "checkpoint.pt", "training_curves.png"):
        assert (out / f).is_file(), f
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    m = json.loads((out / "metrics.json").read_text())
    assert m["finished"] and m["config"]["theta_x"] == 0.2 and len(m["epochs"]) == 2
    pre, re_ = m["epochs"]
    assert pre["phase"] == "pretrain" and pre["train_backend"] == "torch" and pre["train_op_reduction"] is None
    assert re_["phase"] == "retrain" and re_["theta_h"] == 0.2
    for k in ("train_loss", "val_loss", "val_acc", "test_acc", "test_frame_acc", "test_sparsity_dx",
              "test_sparsity_dh", "test_op_reduction", "train_op_reduction", "train_sparsity_dx"):
        assert isinstance(re_[k], float), k
    assert re_["test_sparsity_dx"] > 0.5 and re_["train_op_reduction"] > 0.3
    assert 0 <= m["final"]["test_acc"] <= 1 and m["final"]["phase"] == "retrain"
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and rows[1]["phase"] == "retrain" and float(rows[1]["theta_x"]) == 0.2
    # the model file rebuilds the model (constructor args are stored) and reproduces the evaluation
    model, payload = load_model(out / "model.pt")
    assert payload["config"] == dict(input_size=16, num_classes=4, hidden_size=8, num_layers=1, cell="lstm",
                                     theta_x=0.2, theta_h=0.2, sparse_bptt=True)
    json.dumps(payload["config"])
    data = make_synthetic_kws(num_classes=4, num_train=32, num_val=16, num_test=16, seed=0)
    from reneta_train.train import evaluate
    ev = evaluate(model, data.test)
    assert ev["acc"] == pytest.approx(re_["test_acc"]) and ev["sparsity_dx"] == pytest.approx(re_["test_sparsity_dx"])


def test_cli_resume_and_determinism(tmp_path):
    args = TINY + ["--pretrain-epochs", "1", "--epochs", "2", "--theta", "0.1", "--seed", "5"]
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert main(args + ["--out", str(a)]) == 0
    assert main(args + ["--out", str(b)]) == 0
    assert _history(a) == _history(b)                                           # same seed, same run
    # stop after 2 epochs (mid-retrain), then resume: identical to the uninterrupted run
    assert main(args + ["--out", str(c), "--stop-after", "2"]) == 0
    part = json.loads((c / "metrics.json").read_text())
    assert not part["finished"] and len(part["epochs"]) == 2 and not (c / "model.pt").exists()
    assert main(["--out", str(c), "--resume", "--no-progress", "--quiet"]) == 0
    assert _history(a) == _history(c)
    sa, sc = _state(a), _state(c)
    assert sa.keys() == sc.keys() and all(torch.equal(sa[k], sc[k]) for k in sa)
    # another seed gives another run
    d = tmp_path / "d"
    assert main(TINY + ["--pretrain-epochs", "1", "--epochs", "1", "--seed", "6", "--out", str(d)]) == 0
    assert _history(d)[0] != _history(a)[0]


def test_cli_sweep(tmp_path):
    out = tmp_path / "sweep"
    assert main(TINY + ["--pretrain-epochs", "1", "--epochs", "1", "--sweep-theta", "0,0.3", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert [r["theta"] for r in m["sweep"]] == [0.0, 0.3]
    s0, s3 = m["sweep"]
    assert s3["test_sparsity"] > s0["test_sparsity"] and s3["train_op_reduction"] > s0["train_op_reduction"]
    for f in ("sweep.csv", "theta_sweep.png", "model_theta_0.pt", "model_theta_0.3.pt", "model.pt"):
        assert (out / f).is_file(), f
    # both sweep points started from the same pretrained weights
    pre = torch.load(out / "pretrained.pt", weights_only=True)["state_dict"]
    base = Trainer.read_checkpoint(out / "checkpoint.pt")["base_state"]
    assert all(torch.equal(pre[k], base[k]) for k in pre)


def test_cli_gru_delta_pretrain_dense_bptt(tmp_path):
    out = tmp_path / "gru"
    assert main(TINY + ["--cell", "gru", "--pretrain-epochs", "1", "--epochs", "1", "--pretrain-backend", "delta",
                        "--dense-bptt", "--layers", "2", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"]["cell"] == "gru" and m["model"]["num_layers"] == 2 and not m["model"]["sparse_bptt"]
    assert m["epochs"][0]["train_op_reduction"] is not None                 # delta backend counted in pretrain


def test_cli_help_and_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--dataset", "--data-root", "--cell", "--layers", "--hidden", "--theta-x", "--theta-h", "--epochs",
                 "--pretrain-epochs", "--batch-size", "--lr", "--seed", "--device", "--out", "--resume",
                 "--sweep-theta", "bench"):
        assert flag in text, flag
    assert main(["--dataset", "gsc", "--out", str(tmp_path / "x")]) == 2
    assert "--data-root" in capsys.readouterr().err
    assert main(["--dataset", "gsc", "--data-root", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "Speech Commands folder not found" in capsys.readouterr().err
    assert main(["--dataset", "basic_motions", "--num-classes", "3", "--out", str(tmp_path / "x")]) == 2
    assert "does not apply" in capsys.readouterr().err
    assert main(["--resume", "--out", str(tmp_path / "nothing")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_python_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "reneta_train", "--help"], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert r.returncode == 0 and "--pretrain-epochs" in r.stdout


def test_cli_on_generated_speech_commands_folder(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("_train_data_helpers", Path(__file__).with_name("test_train_data.py"))
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    make_gsc = helpers.make_gsc

    root = make_gsc(tmp_path / "speech_commands")
    out = tmp_path / "gsc_run"
    assert main(["--dataset", "gsc", "--data-root", str(root), "--cache-dir", str(tmp_path / "cache"), "--hidden", "8",
                 "--pretrain-epochs", "1", "--epochs", "1", "--no-progress", "--quiet", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["dataset"]["class_names"] == ["_silence_", "no", "up", "yes"]
    assert m["dataset"]["sizes"] == {"train": 12, "val": 4, "test": 4}
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1


@pytest.mark.skipif(__import__("importlib").util.find_spec("sktime") is None, reason="sktime not installed")
def test_cli_japanese_vowels(tmp_path):
    out = tmp_path / "jv"
    assert main(["--dataset", "japanese_vowels", "--hidden", "16", "--pretrain-epochs", "1", "--epochs", "1",
                 "--no-progress", "--quiet", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"]["input_size"] == 12 and m["model"]["num_classes"] == 10


def test_progress_bar_draws_on_a_terminal():
    import io

    from reneta_train.train import ProgressBar

    class Tty(io.StringIO):
        def isatty(self):
            return True

    s = Tty()
    bar = ProgressBar(4, "epoch", stream=s)
    for _ in range(4):
        bar.update(1, "loss 0.5")
    bar.close()
    assert "epoch |" in s.getvalue() and "4/4" in s.getvalue() and "loss 0.5" in s.getvalue()
    quiet = io.StringIO()                       # not a terminal: nothing drawn
    ProgressBar(2, "x", stream=quiet).update(2)
    assert quiet.getvalue() == ""
