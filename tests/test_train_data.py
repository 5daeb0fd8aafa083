"""Data sets of the trainer: synthetic generator, .ts parser (+ sktime files if installed), Speech Commands."""

from __future__ import annotations

import importlib.util
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from reneta_train.data import DatasetError, input_delta_sparsity, load_dataset, make_synthetic_kws, parse_ts
from reneta_train.data import gsc as gsc_mod
from reneta_train.data.ts import find_ts_files, load_ts_classification

torch.set_num_threads(1)

SMALL = dict(num_classes=5, num_train=60, num_val=20, num_test=20)


# ----------------------------------------------------------------------------- synthetic

def test_synthetic_shapes_and_determinism():
    a = make_synthetic_kws(seed=3, **SMALL)
    b = make_synthetic_kws(seed=3, **SMALL)
    c = make_synthetic_kws(seed=4, **SMALL)
    assert a.num_features == 16 and a.num_classes == 5 and a.class_names[0] == "_silence_"
    for name, n in (("train", 60), ("val", 20), ("test", 20)):
        s, t = getattr(a, name), getattr(b, name)
        assert s.x.shape == (n, 61, 16) and s.x.dtype == torch.float32
        assert s.y.shape == (n, 61) and s.y.dtype == torch.int64
        assert s.lengths.shape == (n,) and bool((s.lengths == 61).all())
        assert torch.equal(s.x, t.x) and torch.equal(s.y, t.y) and torch.equal(s.labels, t.labels)
    assert not torch.equal(a.train.x, c.train.x)
    # val/test do not depend on the size of the training split (independent child seeds) ...
    d = make_synthetic_kws(seed=3, **{**SMALL, "num_train": 30})
    # ... up to the normalisation, which uses the training statistics
    ra = a.val.x * a.info["normalisation"]["std"] + a.info["normalisation"]["mean"]
    rd = d.val.x * d.info["normalisation"]["std"] + d.info["normalisation"]["mean"]
    assert torch.allclose(ra, rd, atol=1e-4)


def test_synthetic_label_layout_and_normalisation():
    d = make_synthetic_kws(seed=0, **SMALL)
    x, y, labels = d.train.x.numpy(), d.train.y.numpy(), d.train.labels.numpy()
    assert np.bincount(labels, minlength=5).tolist() == [12] * 5          # balanced, silence included
    for i in range(len(labels)):
        k = labels[i]
        nz = np.flatnonzero(y[i])
        if k == 0:
            assert nz.size == 0                                           # silence clip: all frames 0
            continue
        assert set(np.unique(y[i][nz])) == {k}                            # event frames carry the clip label
        assert nz[-1] - nz[0] + 1 == nz.size                              # one contiguous event
        assert nz[0] >= 2 and nz[-1] <= 61 - 3                            # silence margin at both ends
        assert 18 <= nz.size <= 40
    # global scalar standardisation with the training statistics
    assert abs(x.mean()) < 1e-3 and abs(x.std() - 1.0) < 1e-3
    # the event is visible: event frames differ from background frames
    ev = y > 0
    assert x[ev].mean() > x[~ev].mean() + 0.3


def test_synthetic_delta_sparsity_grows_with_theta():
    d = make_synthetic_kws(seed=0, **SMALL)
    sp = [input_delta_sparsity(d.train.x, d.train.lengths, th) for th in (0.0, 0.05, 0.1, 0.2, 0.3)]
    assert sp[0] < 0.01
    assert all(b > a for a, b in zip(sp, sp[1:]))
    assert sp[2] > 0.5 and sp[4] > 0.75                                   # slowly varying input


def test_input_sparsity_matches_layer_counters():
    from reneta_train import DeltaLSTM

    d = make_synthetic_kws(seed=1, **SMALL)
    rnn = DeltaLSTM(16, 8, batch_first=True, theta_x=0.2, theta_h=0.2)
    with torch.no_grad():
        rnn(d.train.x[:16], lengths=d.train.lengths[:16])
    ref = input_delta_sparsity(d.train.x[:16], d.train.lengths[:16], 0.2)
    assert rnn.stats[0].sparsity_dx == pytest.approx(ref, abs=1e-12)


def test_synthetic_bad_arguments_and_registry():
    with pytest.raises(ValueError, match="num_classes"):
        make_synthetic_kws(num_classes=1)
    with pytest.raises(ValueError, match="num_train"):
        make_synthetic_kws(num_train=0)
    with pytest.raises(DatasetError, match="unknown data set"):
        load_dataset("imagenet")
    d = load_dataset("synthetic", num_classes=3, num_train=9, num_val=3, num_test=3, root=None)
    assert d.num_classes == 3 and len(d.train) == 9


# ----------------------------------------------------------------------------- .ts format

TS_HEADER = """# A comment line
#
@problemName Toy
@timeStamps false
@missing {missing}
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
"""


def write_ts(path: Path, cases, missing="false"):
    lines = [TS_HEADER.format(missing=missing)]
    for dims, label in cases:
        lines.append(":".join(",".join(str(v) for v in d) for d in dims) + f":{label}\n")
    path.write_text("".join(lines))
    return path


def toy_cases(rng, n, offset=0.0):
    cases = []
    for i in range(n):
        T = int(rng.integers(3, 8))
        label = "up" if i % 2 == 0 else "down"
        sign = 1 if label == "up" else -1
        a = np.round(offset + sign * np.linspace(0, 1, T) + 0.01 * rng.normal(size=T), 4)
        b = np.round(10 + 5 * rng.normal(size=T), 4)
        cases.append(([a.tolist(), b.tolist()], label))
    return cases


def test_parse_ts_generated_file(tmp_path):
    p = write_ts(tmp_path / "toy.ts", [([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], "up"), ([[7, 8], [9, 10]], "down")])
    d = parse_ts(p)
    assert d.class_labels == ["up", "down"] and d.labels == ["up", "down"]
    assert d.header["problemname"] == "Toy" and d.num_dimensions == 2
    assert d.series[0].shape == (3, 2) and d.series[1].shape == (2, 2)
    np.testing.assert_array_equal(d.series[0], [[1, 4], [2, 5], [3, 6]])
    np.testing.assert_array_equal(d.series[1], [[7, 9], [8, 10]])


@pytest.mark.parametrize("body,missing,match", [
    ("1,2:3,4:left\n", "false", r":11: class label 'left' is not declared"),
    ("1,2:up\n", "false", r":11: 1 dimensions, but @dimensions says 2"),
    ("1,x:3,4:up\n", "false", r":11: dimension 0: 'x' is not a number"),
    ("1,?:3,4:up\n", "false", r":11: missing value"),
    ("1,2,3:3,4:up\n", "false", r":11: the dimensions of one case have different lengths"),
    ("1,,2:3,4,5:up\n", "false", r":11: dimension 0 has an empty value"),
    ("", "false", r"no cases after @data"),
])
def test_parse_ts_errors(tmp_path, body, missing, match):
    p = tmp_path / "bad.ts"
    p.write_text(TS_HEADER.format(missing=missing) + body)
    with pytest.raises(DatasetError, match=match) as e:
        parse_ts(p)
    assert str(p) in str(e.value)


def test_parse_ts_header_errors(tmp_path):
    p = tmp_path / "x.ts"
    p.write_text("@problemName X\n@classLabel true a b\n1,2:a\n")
    with pytest.raises(DatasetError, match=r"x.ts:3: expected an @tag header line or @data"):
        parse_ts(p)
    p.write_text("@timeStamps true\n@classLabel true a\n@data\n(0,1):a\n")
    with pytest.raises(DatasetError, match="time-stamped"):
        parse_ts(p)
    p.write_text("@classLabel false\n@data\n1,2\n")
    with pytest.raises(DatasetError, match="only classification files"):
        parse_ts(p)
    p.write_text("@problemName X\n")
    with pytest.raises(DatasetError, match="no @data line"):
        parse_ts(p)
    with pytest.raises(DatasetError, match="file not found"):
        parse_ts(tmp_path / "nope.ts")
    # missing values are accepted with @missing true
    p.write_text(TS_HEADER.format(missing="true") + "1,?:3,4:up\n")
    assert np.isnan(parse_ts(p).series[0][1, 0])


def test_load_ts_classification_generated(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "Toy"
    folder.mkdir()
    train = write_ts(folder / "Toy_TRAIN.ts", toy_cases(rng, 20))
    test = write_ts(folder / "Toy_TEST.ts", toy_cases(rng, 6, offset=0.5))
    d = load_ts_classification(train, test, val_fraction=0.2, seed=0, name="toy")
    assert d.num_features == 2 and d.num_classes == 3 and d.class_names == ["_silence_", "up", "down"]
    assert len(d.train) == 16 and len(d.val) == 4 and len(d.test) == 6
    assert sorted(d.val.labels.tolist()) == [1, 1, 2, 2]                   # stratified
    T = d.train.x.shape[1]
    assert T == 7 and d.test.x.shape[1] == 7
    for s in (d.train, d.val, d.test):
        mask = s.valid_mask()
        assert bool((s.x[~mask] == 0).all())                               # zero padding
        assert bool((s.y[~mask] == 0).all())
        assert bool((s.y == torch.where(mask, s.labels[:, None], torch.zeros_like(s.y))).all())
    # per-channel standardisation on the valid training frames
    vals = d.train.x[d.train.valid_mask()]
    np.testing.assert_allclose(vals.mean(0).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(vals.std(0, unbiased=False).numpy(), 1.0, atol=1e-4)
    # a class mismatch between TRAIN and TEST is reported
    bad = tmp_path / "bad_TEST.ts"
    bad.write_text(TS_HEADER.format(missing="false").replace("up down", "up sideways") + "1:2:up\n")
    with pytest.raises(DatasetError, match="@classLabel"):
        load_ts_classification(train, bad)


def test_find_ts_files_with_root(tmp_path):
    rng = np.random.default_rng(1)
    stem = tmp_path / "JapaneseVowels"
    stem.mkdir()
    write_ts(stem / "JapaneseVowels_TRAIN.ts", toy_cases(rng, 10))
    with pytest.raises(DatasetError, match="JapaneseVowels_TEST.ts: file not found"):
        find_ts_files("japanese_vowels", tmp_path)
    write_ts(stem / "JapaneseVowels_TEST.ts", toy_cases(rng, 4))
    tr, te = find_ts_files("japanese_vowels", tmp_path)
    assert tr.name == "JapaneseVowels_TRAIN.ts" and te.parent == stem
    d = load_dataset("japanese_vowels", root=tmp_path, val_fraction=0.2)
    assert d.name == "japanese_vowels" and len(d.test) == 4
    with pytest.raises(DatasetError, match="file not found"):
        load_dataset("basic_motions", root=tmp_path)
    with pytest.raises(DatasetError, match="data folder not found"):
        load_dataset("basic_motions", root=tmp_path / "nowhere")


HAVE_SKTIME = importlib.util.find_spec("sktime") is not None


@pytest.mark.skipif(not HAVE_SKTIME, reason="sktime not installed (pip install --no-deps sktime==1.2.0)")
def test_sktime_files():
    jv = load_dataset("japanese_vowels")
    assert jv.num_features == 12 and jv.num_classes == 10
    assert (len(jv.train), len(jv.val), len(jv.test)) == (216, 54, 370)
    assert 7 <= int(jv.train.lengths.min()) and int(jv.test.lengths.max()) <= 29
    sp = [input_delta_sparsity(jv.train.x, jv.train.lengths, th) for th in (0.1, 0.2, 0.3)]
    assert 0.2 < sp[0] < sp[1] < sp[2] < 0.8
    bm = load_dataset("basic_motions")
    assert bm.num_features == 6 and bm.num_classes == 5 and bm.train.x.shape[1] == 100
    assert len(bm.train) + len(bm.val) == 40 and len(bm.test) == 40


def test_sktime_missing_is_a_clear_error(monkeypatch):
    import reneta_train.data.ts as ts

    monkeypatch.setattr(ts.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetError, match="pip install --no-deps sktime==1.2.0"):
        load_dataset("japanese_vowels")


# ----------------------------------------------------------------------------- Speech Commands

WORDS = ("yes", "no", "up")


def make_gsc(root: Path, per_word=5, noise_seconds=12, seed=0) -> Path:
    """A tiny Speech Commands folder in the real layout (synthetic tones)."""
    rng = np.random.default_rng(seed)
    val, test = [], []
    for wi, w in enumerate(WORDS):
        (root / w).mkdir(parents=True)
        for i in range(per_word):
            n = 16000 if i % 2 else 11000                                   # some clips shorter than 1 s
            t = np.arange(n) / 16000
            a = 0.3 * np.sin(2 * np.pi * (400 + 900 * wi) * t) * np.hanning(n) + 0.01 * rng.normal(size=n)
            rel = f"{w}/spk{i}_nohash_0.wav"
            gsc_mod.write_wav(root / rel, a)
            if i == per_word - 2:
                val.append(rel)
            elif i == per_word - 1:
                test.append(rel)
    (root / "_background_noise_").mkdir()
    gsc_mod.write_wav(root / "_background_noise_" / "white_noise.wav", 0.1 * rng.normal(size=16000 * noise_seconds))
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    return root


def test_logmel_features():
    fb = gsc_mod.mel_filterbank()
    assert fb.shape == (16, 513) and (fb.sum(1) > 0).all()
    assert gsc_mod.NUM_FRAMES == 61 and gsc_mod.FRAME_SAMPLES == 262
    # a tone at a filter's centre frequency is loudest in that band
    edges = 700 * (10 ** (np.linspace(2595 * np.log10(1 + 100 / 700), 2595 * np.log10(1 + 8000 / 700), 18) / 2595) - 1)
    t = np.arange(16000) / 16000
    for m in (2, 7, 12):
        feats = gsc_mod.logmel(0.5 * np.sin(2 * np.pi * edges[m + 1] * t))
        assert feats.shape == (1, 61, 16)
        assert (feats[0].argmax(axis=1) == m).all()
    # digital silence hits the log floor; a frame equals the direct formula
    assert np.allclose(gsc_mod.logmel(np.zeros(16000)), 20 * np.log10(gsc_mod.LOG_FLOOR))
    a = np.random.default_rng(0).normal(0, 0.1, 16000)
    frame = a[262 * 5: 262 * 6] * np.hamming(262)
    mag = np.abs(np.fft.rfft(frame, 1024)) / 1024
    np.testing.assert_allclose(gsc_mod.logmel(a)[0, 5], 20 * np.log10(np.maximum(fb @ mag, 1e-6)), rtol=1e-5)


def test_gsc_load_and_cache(tmp_path, monkeypatch):
    root = make_gsc(tmp_path / "speech_commands")
    d = load_dataset("gsc", root=root)
    assert d.class_names == ["_silence_", "no", "up", "yes"] and d.num_classes == 4 and d.num_features == 16
    # 3 train clips per word, 1 val, 1 test, plus silence_ratio * mean class size silence clips
    assert [len(d.train), len(d.val), len(d.test)] == [12, 4, 4]
    for s in (d.train, d.val, d.test):
        assert s.x.shape[1:] == (61, 16) and bool((s.lengths == 61).all())
        for yy, lab in zip(s.y, s.labels):
            if lab == 0:
                assert bool((yy == 0).all())
            else:
                assert bool((yy[:2] == 0).all()) and bool((yy[-2:] == 0).all()) and bool((yy[2:-2] == lab).all())
    assert sorted(d.test.labels.tolist()) == [0, 1, 2, 3]
    x = d.train.x
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std(unbiased=False)) - 1) < 1e-3
    # cache next to the data folder, never inside it
    caches = list(tmp_path.glob("speech_commands_reneta_features_*.npz"))
    assert len(caches) == 1 and d.info["cache"] == str(caches[0])
    assert not list(root.rglob("*.npz"))
    # a second load reads the cache (feature extraction would fail)
    monkeypatch.setattr(gsc_mod, "_build", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    d2 = load_dataset("gsc", root=root)
    assert torch.equal(d.train.x, d2.train.x) and torch.equal(d.test.y, d2.test.y)
    monkeypatch.undo()
    # explicit cache folder; inside the data folder is refused
    d3 = load_dataset("gsc", root=root, cache_dir=tmp_path / "cache", keywords=["yes", "up"], include_unknown=True)
    assert d3.class_names == ["_silence_", "yes", "up", "_unknown_"]
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    with pytest.raises(DatasetError, match="must not be inside the data folder"):
        load_dataset("gsc", root=root, cache_dir=root / "cache")
    # a changed file changes the key: recomputed, new cache file
    gsc_mod.write_wav(root / "yes" / "spk0_nohash_0.wav", np.zeros(16000))
    load_dataset("gsc", root=root)
    assert len(list(tmp_path.glob("speech_commands_reneta_features_*.npz"))) == 2


def test_gsc_errors(tmp_path):
    with pytest.raises(DatasetError, match="Speech Commands folder not found"):
        load_dataset("gsc", root=tmp_path / "none")
    with pytest.raises(DatasetError, match="required argument"):
        load_dataset("gsc")
    root = make_gsc(tmp_path / "sc", per_word=3)
    opts = dict(root=root, use_cache=False)
    # malformed wav
    bad = root / "no" / "spk0_nohash_0.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(DatasetError, match=r"spk0_nohash_0.wav: not a valid PCM WAV file"):
        load_dataset("gsc", **opts)
    # stereo / wrong rate
    with wave.open(str(bad), "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(16000), w.writeframes(b"\x00" * 400)
    with pytest.raises(DatasetError, match="expected mono audio, got 2 channels"):
        load_dataset("gsc", **opts)
    gsc_mod.write_wav(bad, np.zeros(8000), rate=8000)
    with pytest.raises(DatasetError, match="expected a sample rate of 16000 Hz, got 8000 Hz"):
        load_dataset("gsc", **opts)
    gsc_mod.write_wav(bad, np.zeros(8000))
    # a listed file that does not exist
    lst = root / "testing_list.txt"
    lst.write_text(lst.read_text() + "up/ghost_nohash_0.wav\n")
    with pytest.raises(DatasetError, match=r"testing_list.txt:4: lists up/ghost_nohash_0.wav"):
        load_dataset("gsc", **opts)
    lst.write_text("\n".join(lst.read_text().splitlines()[:3]) + "\n")
    # a missing list file
    (root / "validation_list.txt").rename(root / "v.txt")
    with pytest.raises(DatasetError, match="validation_list.txt: file not found"):
        load_dataset("gsc", **opts)
    (root / "v.txt").rename(root / "validation_list.txt")
    # unknown keyword
    with pytest.raises(DatasetError, match="keyword folder not found"):
        load_dataset("gsc", keywords=["yes", "maybe"], **opts)
    # no background noise: an error unless silence clips are switched off
    for f in (root / "_background_noise_").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="_background_noise_: folder missing or without .wav files"):
        load_dataset("gsc", **opts)
    d = load_dataset("gsc", silence_ratio=0.0, **opts)
    assert d.num_classes == 4 and int(d.train.labels.min()) == 1
