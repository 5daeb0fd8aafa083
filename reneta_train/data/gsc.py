"""Google Speech Commands (v2) from a local folder, with the log-mel features of the reference (§4.2).

Nothing is downloaded: ``root`` must be the extracted data set in its real layout::

    root/
      yes/0a7c2a8d_nohash_0.wav ...      one folder per word, 16 kHz mono PCM wav files
      ...
      _background_noise_/*.wav           long noise recordings (the source of silence clips)
      validation_list.txt                one "word/file.wav" per line
      testing_list.txt

Splits: a file listed in ``testing_list.txt`` is test, in ``validation_list.txt`` val, any other
wav of a word folder train (the official split).

Classes: 0 = ``_silence_``; then the keywords (``keywords=None``: every word folder, sorted);
with ``include_unknown`` one more class ``_unknown_`` collects a seeded sample of the other words
(``unknown_ratio`` × the mean keyword-class size of that split). ``silence_ratio`` × the mean
keyword-class size silence clips per split are cut from ``_background_noise_``: each noise file
is divided in time into 80 % / 10 % / 10 % parts for train / val / test (no leakage), a 1 s clip
is cut at a seeded random offset and scaled by a random gain of -10, -5 or 0 dB.

Features (per 1 s clip; shorter clips are zero-padded to 16000 samples, longer ones truncated):
frames of 262 samples (16.384 ms) without overlap -> 61 frames; Hamming window; 1024-point rFFT
magnitude / 1024; 16 triangular mel filters with n+2 mel-spaced edges from 100 to 8000 Hz;
``20·log10(max(energy, 1e-6))``; then global scalar standardisation with the training-split
mean/std. Frame labels: frames ``[2 : -2]`` carry the clip label, the first and last 2 frames
are silence (0); silence clips are 0 throughout.

The raw (unnormalised) features are cached in a ``.npz`` file, by default *next to* the data
folder (``<parent>/<root name>_reneta_features_<key>.npz``) or in ``cache_dir``; never inside the
data folder, which is only read. The key hashes the options, the feature parameters and the
names, sizes and modification times of every file used, so a changed folder is re-processed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
import wave
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import DatasetError, DatasetSplits, SILENCE_NAME, make_split, normalise, scalar_stats

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000
FRAME_SAMPLES = 262          # round(0.016384 s * 16 kHz)
NUM_FRAMES = CLIP_SAMPLES // FRAME_SAMPLES   # 61
N_FFT = 1024
N_MELS = 16
F_MIN = 100.0
F_MAX = 8000.0
LOG_FLOOR = 1e-6
EDGE_SILENCE_FRAMES = 2
NOISE_GAINS_DB = (-10.0, -5.0, 0.0)
BACKGROUND = "_background_noise_"
UNKNOWN_NAME = "_unknown_"
CACHE_VERSION = 1


# ----------------------------------------------------------------------------- audio + features

def read_wav(path) -> np.ndarray:
    """Read a 16 kHz mono PCM wav (8/16/24/32-bit) with the ``wave`` module; float64 in [-1, 1)."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            data = w.readframes(frames)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (wave.Error, EOFError) as e:
        raise DatasetError(f"{path}: not a valid PCM WAV file ({e})") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e})") from None
    if channels != 1:
        raise DatasetError(f"{path}: expected mono audio, got {channels} channels")
    if rate != SAMPLE_RATE:
        raise DatasetError(f"{path}: expected a sample rate of {SAMPLE_RATE} Hz, got {rate} Hz")
    if len(data) != frames * width:
        raise DatasetError(f"{path}: truncated: the header announces {frames} samples, "
                           f"the file holds {len(data) // max(width, 1)}")
    if width == 1:
        return (np.frombuffer(data, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    if width == 2:
        return np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0
    if width == 3:
        b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        return v.astype(np.float64) / float(1 << 23)
    if width == 4:
        return np.frombuffer(data, dtype="<i4").astype(np.float64) / 2147483648.0
    raise DatasetError(f"{path}: unsupported sample width of {width} bytes")


def write_wav(path, audio: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write float audio in [-1, 1) as a 16-bit mono PCM wav (used by tests and tools)."""
    pcm = np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, rate: int = SAMPLE_RATE,
                   f_min: float = F_MIN, f_max: float = F_MAX) -> np.ndarray:
    """``(n_mels, n_fft//2+1)`` triangular filters, n+2 mel-spaced edges, evaluated at the bin frequencies."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
    fb = np.zeros((n_mels, freqs.size))
    for m in range(n_mels):
        lo, ce, hi = edges[m], edges[m + 1], edges[m + 2]
        rise = (freqs - lo) / (ce - lo)
        fall = (hi - freqs) / (hi - ce)
        fb[m] = np.maximum(0.0, np.minimum(rise, fall))
    return fb


_FILTERBANK = None


def logmel(audio: np.ndarray) -> np.ndarray:
    """Log-mel features of clips: ``audio`` (N, 16000) or (16000,) float -> (N, 61, 16) float32 (§4.2)."""
    global _FILTERBANK
    if _FILTERBANK is None:
        _FILTERBANK = mel_filterbank()
    a = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    a = fit_clip(a)
    frames = a[:, : NUM_FRAMES * FRAME_SAMPLES].reshape(a.shape[0], NUM_FRAMES, FRAME_SAMPLES)
    frames = frames * np.hamming(FRAME_SAMPLES)
    mag = np.abs(np.fft.rfft(frames, n=N_FFT, axis=-1)) / N_FFT
    energy = mag @ _FILTERBANK.T
    return (20.0 * np.log10(np.maximum(energy, LOG_FLOOR))).astype(np.float32)


def fit_clip(a: np.ndarray) -> np.ndarray:
    """Zero-pad or truncate the last axis to 16000 samples."""
    n = a.shape[-1]
    if n >= CLIP_SAMPLES:
        return a[..., :CLIP_SAMPLES]
    pad = [(0, 0)] * (a.ndim - 1) + [(0, CLIP_SAMPLES - n)]
    return np.pad(a, pad)


def frame_labels(label: int, num_frames: int = NUM_FRAMES) -> np.ndarray:
    y = np.zeros(num_frames, dtype=np.int64)
    if label != 0:
        y[EDGE_SILENCE_FRAMES: num_frames - EDGE_SILENCE_FRAMES] = label
    return y


# ----------------------------------------------------------------------------- folder scan

def _read_list(root: Path, name: str) -> list[str]:
    p = root / name
    if not p.is_file():
        raise DatasetError(f"{p}: file not found (a Speech Commands folder has validation_list.txt "
                           "and testing_list.txt)")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{p}: cannot read ({e})") from None
    out = []
    for lineno, line in enumerate(lines, start=1):
        rel = line.strip().replace("\\", "/")
        if not rel:
            continue
        parts = rel.split("/")
        if len(parts) != 2 or not parts[1].lower().endswith(".wav") or parts[0] in ("", ".", ".."):
            raise DatasetError(f"{p}:{lineno}: expected 'word/file.wav', got {line.strip()[:60]!r}")
        if not (root / rel).is_file():
            raise DatasetError(f"{p}:{lineno}: lists {rel}, but {root / rel} does not exist")
        out.append(rel)
    return out


def scan_folder(root) -> dict[str, Any]:
    """Check the layout and list every word's wav files and the split lists."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: Speech Commands folder not found")
    val = _read_list(root, "validation_list.txt")
    test = _read_list(root, "testing_list.txt")
    words: dict[str, list[str]] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if d.name.startswith("_") or d.name.startswith("."):
            continue
        files = sorted(f"{d.name}/{f.name}" for f in d.iterdir() if f.is_file() and f.name.lower().endswith(".wav"))
        if files:
            words[d.name] = files
    if not words:
        raise DatasetError(f"{root}: no word folders with .wav files (expected root/<word>/*.wav)")
    bg_dir = root / BACKGROUND
    noise = sorted(str(p.relative_to(root)).replace(os.sep, "/") for p in bg_dir.glob("*.wav")) if bg_dir.is_dir() else []
    return dict(words=words, val=set(val), test=set(test), noise=noise)


def _file_fingerprint(root: Path, rels: Sequence[str]) -> str:
    h = hashlib.sha256()
    for rel in rels:
        st = (root / rel).stat()
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------- plan + build

def _plan(root: Path, scan: dict, keywords, include_unknown: bool, unknown_ratio: float, silence_ratio: float,
          max_per_class: int | None, seed: int):
    words = scan["words"]
    if keywords is None:
        keywords = sorted(words)
    keywords = [str(k) for k in keywords]
    if len(set(keywords)) != len(keywords):
        raise DatasetError(f"keywords lists a word twice: {keywords}")
    for k in keywords:
        if k not in words:
            raise DatasetError(f"{root / k}: keyword folder not found or without .wav files")
    others = [w for w in sorted(words) if w not in keywords]
    if include_unknown and not others:
        raise DatasetError(f"{root}: include_unknown needs word folders besides the keywords")
    class_names = [SILENCE_NAME] + keywords + ([UNKNOWN_NAME] if include_unknown else [])
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x65C]))

    def split_of(rel):
        return "test" if rel in scan["test"] else "val" if rel in scan["val"] else "train"

    clips: dict[str, list[tuple[str, int]]] = {"train": [], "val": [], "test": []}
    for ci, k in enumerate(keywords, start=1):
        per = {"train": [], "val": [], "test": []}
        for rel in words[k]:
            per[split_of(rel)].append(rel)
        for s, rels in per.items():
            if max_per_class is not None and len(rels) > max_per_class:
                rels = sorted(rng.choice(rels, size=max_per_class, replace=False).tolist())
            clips[s].extend((rel, ci) for rel in rels)
    mean_count = {s: len(v) / max(len(keywords), 1) for s, v in clips.items()}
    if include_unknown:
        ui = len(class_names) - 1
        for s in clips:
            pool = [rel for w in others for rel in words[w] if split_of(rel) == s]
            n = min(len(pool), int(round(unknown_ratio * mean_count[s])))
            if n:
                pick = sorted(rng.choice(len(pool), size=n, replace=False).tolist())
                clips[s].extend((pool[i], ui) for i in pick)
    silence: dict[str, list[tuple[str, int, float]]] = {"train": [], "val": [], "test": []}
    if silence_ratio > 0:
        if not scan["noise"]:
            raise DatasetError(f"{root / BACKGROUND}: folder missing or without .wav files "
                               "(needed for silence clips; pass silence_ratio=0 to train without them)")
        lengths = {}
        for rel in scan["noise"]:
            p = root / rel
            try:
                with wave.open(str(p), "rb") as w:
                    lengths[rel] = w.getnframes()
            except (wave.Error, EOFError) as e:
                raise DatasetError(f"{p}: not a valid PCM WAV file ({e})") from None
        bounds = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}
        for s in clips:
            n = int(round(silence_ratio * mean_count[s]))
            lo_f, hi_f = bounds[s]
            usable = [(rel, int(lo_f * L), int(hi_f * L)) for rel, L in lengths.items()
                      if int(hi_f * L) - int(lo_f * L) >= CLIP_SAMPLES]
            if n and not usable:
                raise DatasetError(f"{root / BACKGROUND}: no noise file is long enough to cut 1 s {s} silence clips "
                                   f"from its {s} part ({int(100 * (hi_f - lo_f))} % of the file)")
            for _ in range(n):
                rel, lo, hi = usable[int(rng.integers(len(usable)))]
                off = int(rng.integers(lo, hi - CLIP_SAMPLES + 1))
                gain = float(NOISE_GAINS_DB[int(rng.integers(len(NOISE_GAINS_DB)))])
                silence[s].append((rel, off, gain))
    return class_names, clips, silence


def _build(root: Path, class_names, clips, silence, verbose: bool) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    noise_cache: dict[str, np.ndarray] = {}
    for s in ("train", "val", "test"):
        items = clips[s]
        n = len(items) + len(silence[s])
        if verbose:
            print(f"[gsc] {s}: computing log-mel features of {n} clips", file=sys.stderr, flush=True)
        feats = np.zeros((n, NUM_FRAMES, N_MELS), dtype=np.float32)
        labels = np.zeros(n, dtype=np.int64)
        chunk = 256
        for start in range(0, len(items), chunk):
            part = items[start: start + chunk]
            audio = np.stack([fit_clip(read_wav(root / rel)) for rel, _ in part])
            feats[start: start + len(part)] = logmel(audio)
            labels[start: start + len(part)] = [c for _, c in part]
        base = len(items)
        for i, (rel, off, gain) in enumerate(silence[s]):
            if rel not in noise_cache:
                noise_cache[rel] = read_wav(root / rel)
            audio = noise_cache[rel][off: off + CLIP_SAMPLES] * (10.0 ** (gain / 20.0))
            feats[base + i] = logmel(audio)[0]
        out[f"{s}_x"] = feats
        out[f"{s}_labels"] = labels
        out[f"{s}_files"] = np.array([rel for rel, _ in items] + [f"{rel}@{off}:{g:+.0f}dB" for rel, off, g in silence[s]])
    out["class_names"] = np.array(class_names)
    return out


def _default_cache_path(root: Path, key: str) -> Path:
    return root.resolve().parent / f"{root.resolve().name}_reneta_features_{key[:16]}.npz"


def load_gsc(root=None, cache_dir=None, keywords: Sequence[str] | None = None, include_unknown: bool = False,
             unknown_ratio: float = 1.0, silence_ratio: float = 1.0, max_per_class: int | None = None,
             seed: int = 0, use_cache: bool = True, verbose: bool = False) -> DatasetSplits:
    """Load Speech Commands from the folder ``root`` (see the module docstring for every option)."""
    if root is None:
        raise DatasetError("gsc: the Speech Commands folder is a required argument (root=/path/to/folder)")
    root = Path(root)
    scan = scan_folder(root)
    if unknown_ratio < 0 or silence_ratio < 0:
        raise ValueError("unknown_ratio and silence_ratio must be >= 0")
    if max_per_class is not None and max_per_class < 1:
        raise ValueError("max_per_class must be >= 1")
    class_names, clips, silence = _plan(root, scan, keywords, include_unknown, unknown_ratio, silence_ratio,
                                        max_per_class, seed)
    used = sorted({rel for s in clips.values() for rel, _ in s} | {rel for s in silence.values() for rel, _, _ in s})
    key_src = dict(
        version=CACHE_VERSION, rate=SAMPLE_RATE, frame=FRAME_SAMPLES, frames=NUM_FRAMES, nfft=N_FFT, mels=N_MELS,
        fmin=F_MIN, fmax=F_MAX, floor=LOG_FLOOR, classes=class_names,
        clips={s: [list(c) for c in v] for s, v in clips.items()},
        silence={s: [list(c) for c in v] for s, v in silence.items()},
        files=_file_fingerprint(root, used),
    )
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()

    cache_path = None
    if use_cache:
        if cache_dir is not None:
            cdir = Path(cache_dir)
            try:
                inside = cdir.resolve().is_relative_to(root.resolve())
            except OSError:
                inside = False
            if inside:
                raise DatasetError(f"{cdir}: the feature cache must not be inside the data folder {root}")
            cache_path = cdir / f"gsc_{root.resolve().name}_{key[:16]}.npz"
        else:
            cache_path = _default_cache_path(root, key)

    data = None
    if cache_path is not None and cache_path.is_file():
        try:
            with np.load(cache_path, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    data = {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError, EOFError) as e:
            warnings.warn(f"{cache_path}: unreadable feature cache ({e}); recomputing", stacklevel=2)
        if data is not None and verbose:
            print(f"[gsc] features loaded from cache {cache_path}", file=sys.stderr, flush=True)
    if data is None:
        data = _build(root, class_names, clips, silence, verbose)
        data["key"] = np.array(key)
        if cache_path is not None:
            try:
                cache_path.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_path.with_name(cache_path.name + ".tmp.npz")
                np.savez(tmp, **data)
                os.replace(tmp, cache_path)
                if verbose:
                    print(f"[gsc] features cached in {cache_path}", file=sys.stderr, flush=True)
            except OSError as e:
                warnings.warn(f"{cache_path}: cannot write the feature cache ({e}); pass cache_dir=", stacklevel=2)
                cache_path = None

    lengths = {s: np.full(len(data[f"{s}_labels"]), NUM_FRAMES, dtype=np.int64) for s in ("train", "val", "test")}
    if len(data["train_labels"]) == 0:
        raise DatasetError(f"{root}: the training split is empty")
    mean, std = scalar_stats(data["train_x"], lengths["train"])
    splits = {}
    for s in ("train", "val", "test"):
        labels = data[f"{s}_labels"].astype(np.int64)
        y = np.stack([frame_labels(int(c)) for c in labels]) if len(labels) else np.zeros((0, NUM_FRAMES), np.int64)
        splits[s] = make_split(normalise(data[f"{s}_x"], lengths[s], mean, std), y, lengths[s], labels)
    info = dict(
        source="Google Speech Commands folder", root=str(root), cache=str(cache_path) if cache_path else None,
        key=key[:16], seed=int(seed), include_unknown=include_unknown, unknown_ratio=unknown_ratio,
        silence_ratio=silence_ratio, max_per_class=max_per_class,
        normalisation={"kind": "global scalar (train)", "mean": mean, "std": std},
    )
    return DatasetSplits(name="gsc", train=splits["train"], val=splits["val"], test=splits["test"],
                         num_features=N_MELS, num_classes=len(class_names), class_names=list(class_names), info=info)
