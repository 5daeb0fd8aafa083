"""Classification data sets in the sktime/UEA ``.ts`` text format, parsed without sktime.

The format: ``#`` comment lines; ``@tag value`` header lines (``@problemName``, ``@timeStamps``,
``@missing``, ``@univariate``, ``@dimensions``, ``@equalLength``, ``@seriesLength``,
``@classLabel true <labels...>``); then ``@data`` and one case per line: the dimensions separated
by ``:``, the values of one dimension by ``,``, and the class label as the last ``:`` field.
``?`` is a missing value (allowed only with ``@missing true``; replaced by the channel mean after
standardisation). Time-stamped data (``@timeStamps true``) is not supported.

Two data sets that the ``sktime`` 1.2.0 wheel ships are wired up:

* ``japanese_vowels``: 9 speakers, 12 LPC-cepstrum channels, 270 train / 370 test sequences of
  7-29 frames (UCI Japanese Vowels, Kudo, Toyama & Shimbo 1999; CC BY 4.0 per UCI);
* ``basic_motions``: 4 activities, 6 IMU channels, 40 / 40 sequences of 100 frames.

Install the files with ``pip install --no-deps sktime==1.2.0``; they are located through
``importlib.util.find_spec("sktime")`` *without importing sktime* (its import chain is heavy).
The data keep their licences (sktime: BSD-3-Clause).

Layout in :class:`~reneta_train.data.base.DatasetSplits`: class 0 is silence (never a target
here, kept so every data set shares the trainer's "silence = 0" convention), the file's classes are
1..K in header order; every valid frame of a sequence is labelled with its class. Channels are
standardised with the per-channel mean/std of the training split. The file's TRAIN part is split
into train/val (stratified, ``val_fraction``, seeded); TEST is the test split.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .base import (DatasetError, DatasetSplits, channel_stats, class_names_with_silence, make_split, normalise,
                   stratified_split)

#: data set name -> (folder and file stem inside sktime/datasets/data)
SKTIME_DATASETS = {
    "japanese_vowels": "JapaneseVowels",
    "basic_motions": "BasicMotions",
}


@dataclasses.dataclass
class TsData:
    """The parsed content of one ``.ts`` file."""

    #: one float64 array (length, dimensions) per case
    series: list[np.ndarray]
    #: the class label of every case, as written in the file
    labels: list[str]
    #: the class labels declared by ``@classLabel true ...`` (file order)
    class_labels: list[str]
    #: the header tags, lower-cased names, raw string values
    header: dict[str, str]

    @property
    def num_dimensions(self) -> int:
        return int(self.series[0].shape[1]) if self.series else 0


def _bool_tag(path, lineno, name, value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "false"):
        return v == "true"
    raise DatasetError(f"{path}:{lineno}: @{name} must be true or false, got {value!r}")


def parse_ts(path, text: str | None = None) -> TsData:
    """Parse a ``.ts`` classification file (or ``text``, with ``path`` used in messages only).

    Raises :class:`DatasetError` naming the file, the line and the problem.
    """
    path = str(path)
    if text is None:
        try:
            with open(path, "r", encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            raise DatasetError(f"{path}: file not found") from None
        except UnicodeDecodeError as e:
            raise DatasetError(f"{path}: not a text .ts file ({e})") from None
        except OSError as e:
            raise DatasetError(f"{path}: cannot read ({e})") from None

    header: dict[str, str] = {}
    class_labels: list[str] | None = None
    has_labels = False
    missing_allowed = False
    dims_declared: int | None = None
    series_length: int | None = None
    equal_length: bool | None = None
    in_data = False
    series: list[np.ndarray] = []
    labels: list[str] = []

    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise DatasetError(f"{path}:{lineno}: expected an @tag header line or @data before the data, "
                                   f"got {line[:40]!r}")
            parts = line[1:].split(None, 1)
            tag = parts[0].lower()
            value = parts[1] if len(parts) > 1 else ""
            if tag == "data":
                in_data = True
                if class_labels is None and "classlabel" not in header:
                    raise DatasetError(f"{path}:{lineno}: @data before @classLabel: "
                                       "only classification files (with class labels) are supported")
                continue
            header[tag] = value
            if tag == "timestamps":
                if _bool_tag(path, lineno, "timeStamps", value):
                    raise DatasetError(f"{path}:{lineno}: time-stamped .ts data (@timeStamps true) is not supported")
            elif tag == "missing":
                missing_allowed = _bool_tag(path, lineno, "missing", value)
            elif tag == "equallength":
                equal_length = _bool_tag(path, lineno, "equalLength", value)
            elif tag == "dimensions":
                try:
                    dims_declared = int(value)
                except ValueError:
                    raise DatasetError(f"{path}:{lineno}: @dimensions must be an integer, got {value!r}") from None
                if dims_declared < 1:
                    raise DatasetError(f"{path}:{lineno}: @dimensions must be >= 1, got {dims_declared}")
            elif tag == "serieslength":
                try:
                    series_length = int(value)
                except ValueError:
                    raise DatasetError(f"{path}:{lineno}: @seriesLength must be an integer, got {value!r}") from None
            elif tag == "classlabel":
                toks = value.split()
                if not toks:
                    raise DatasetError(f"{path}:{lineno}: @classLabel needs true/false")
                has_labels = _bool_tag(path, lineno, "classLabel", toks[0])
                if not has_labels:
                    raise DatasetError(f"{path}:{lineno}: @classLabel false: only classification files "
                                       "(with class labels) are supported")
                class_labels = toks[1:]
                if not class_labels:
                    raise DatasetError(f"{path}:{lineno}: @classLabel true lists no class labels")
                if len(set(class_labels)) != len(class_labels):
                    raise DatasetError(f"{path}:{lineno}: @classLabel lists a label twice")
            continue

        # a case
        if line.startswith("@"):
            raise DatasetError(f"{path}:{lineno}: header line {line[:40]!r} after @data")
        fields = line.split(":")
        if len(fields) < 2:
            raise DatasetError(f"{path}:{lineno}: a case needs at least one dimension and a class label "
                               "separated by ':'")
        label = fields[-1].strip()
        assert class_labels is not None
        if label not in class_labels:
            raise DatasetError(f"{path}:{lineno}: class label {label!r} is not declared in @classLabel "
                               f"({' '.join(class_labels)})")
        dims = fields[:-1]
        if dims_declared is not None and len(dims) != dims_declared:
            raise DatasetError(f"{path}:{lineno}: {len(dims)} dimensions, but @dimensions says {dims_declared}")
        if series and len(dims) != series[0].shape[1]:
            raise DatasetError(f"{path}:{lineno}: {len(dims)} dimensions, but the first case has "
                               f"{series[0].shape[1]}")
        chans = []
        for d, field in enumerate(dims):
            toks = [s.strip() for s in field.split(",")]
            if toks == [""] or any(s == "" for s in toks):
                raise DatasetError(f"{path}:{lineno}: dimension {d} has an empty value")
            vals = []
            for s in toks:
                if s == "?" or s.lower() == "nan":
                    if not missing_allowed:
                        raise DatasetError(f"{path}:{lineno}: missing value '?' in dimension {d}, "
                                           "but the header does not say @missing true")
                    vals.append(math.nan)
                    continue
                try:
                    v = float(s)
                except ValueError:
                    raise DatasetError(f"{path}:{lineno}: dimension {d}: {s[:30]!r} is not a number") from None
                if not math.isfinite(v):
                    raise DatasetError(f"{path}:{lineno}: dimension {d}: non-finite value {s!r}")
                vals.append(v)
            chans.append(vals)
        n = len(chans[0])
        if any(len(c) != n for c in chans):
            raise DatasetError(f"{path}:{lineno}: the dimensions of one case have different lengths "
                               f"({sorted({len(c) for c in chans})})")
        if equal_length and series_length is not None and n != series_length:
            raise DatasetError(f"{path}:{lineno}: series of length {n}, but @seriesLength says {series_length}")
        series.append(np.array(chans, dtype=np.float64).T)
        labels.append(label)

    if not in_data:
        raise DatasetError(f"{path}: no @data line: not a .ts file")
    if not series:
        raise DatasetError(f"{path}: no cases after @data")
    return TsData(series=series, labels=labels, class_labels=list(class_labels or []), header=header)


def pad_series(series: list[np.ndarray], num_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack variable-length ``(T_i, D)`` arrays into a zero-padded ``(N, T, D)`` array plus lengths."""
    lengths = np.array([s.shape[0] for s in series], dtype=np.int64)
    T = int(lengths.max()) if num_frames is None else int(num_frames)
    if num_frames is not None and lengths.max() > T:
        raise ValueError(f"a series has {lengths.max()} frames, more than num_frames={T}")
    x = np.zeros((len(series), T, series[0].shape[1]), dtype=np.float64)
    for i, s in enumerate(series):
        x[i, : s.shape[0]] = s
    return x, lengths


def sktime_data_dir() -> Path:
    """The ``datasets/data`` folder of an installed sktime, found without importing sktime."""
    spec = importlib.util.find_spec("sktime")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("sktime is not installed: its wheel ships the .ts files. "
                           "Install them with `pip install --no-deps sktime==1.2.0` or pass root=FOLDER")
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "datasets" / "data"
        if d.is_dir():
            return d
    raise DatasetError(f"sktime is installed at {list(spec.submodule_search_locations)} but has no "
                       "datasets/data folder")


def find_ts_files(name: str, root=None) -> tuple[Path, Path]:
    """Paths of ``<Stem>_TRAIN.ts`` and ``<Stem>_TEST.ts`` for data set ``name``.

    ``root`` may be the folder holding the two files, or a folder holding ``<Stem>/`` (like sktime's
    ``datasets/data``); by default sktime's folder.
    """
    if name not in SKTIME_DATASETS:
        raise DatasetError(f"unknown .ts data set {name!r}; known: {', '.join(SKTIME_DATASETS)}")
    stem = SKTIME_DATASETS[name]
    base = sktime_data_dir() if root is None else Path(root)
    if not base.is_dir():
        raise DatasetError(f"{base}: data folder not found")
    for folder in (base / stem, base):
        train, test = folder / f"{stem}_TRAIN.ts", folder / f"{stem}_TEST.ts"
        if train.is_file() or test.is_file():
            for p in (train, test):
                if not p.is_file():
                    raise DatasetError(f"{p}: file not found (its {('TEST' if p is test else 'TRAIN')} "
                                       "counterpart exists)")
            return train, test
    raise DatasetError(f"{base / stem / (stem + '_TRAIN.ts')}: file not found "
                       f"(looked in {base / stem} and {base})")


def load_ts_classification(train_path, test_path, val_fraction: float = 0.2, seed: int = 0,
                           name: str = "ts") -> DatasetSplits:
    """Load a TRAIN/TEST pair of ``.ts`` files as :class:`DatasetSplits` (layout in the module docstring)."""
    tr = parse_ts(train_path)
    te = parse_ts(test_path)
    if tr.class_labels != te.class_labels:
        raise DatasetError(f"{test_path}: @classLabel {te.class_labels} differs from {train_path}: {tr.class_labels}")
    if tr.num_dimensions != te.num_dimensions:
        raise DatasetError(f"{test_path}: {te.num_dimensions} dimensions, but {train_path} has {tr.num_dimensions}")
    index = {c: i + 1 for i, c in enumerate(tr.class_labels)}
    T = max(max(s.shape[0] for s in tr.series), max(s.shape[0] for s in te.series))

    def arrays(data: TsData):
        x, lengths = pad_series(data.series, T)
        labels = np.array([index[c] for c in data.labels], dtype=np.int64)
        y = np.where(np.arange(T)[None, :] < lengths[:, None], labels[:, None], 0)
        return x, y, lengths, labels

    x, y, lengths, labels = arrays(tr)
    tr_idx, va_idx = stratified_split(labels, val_fraction, seed)
    if len(va_idx) == 0:
        raise DatasetError(f"{train_path}: too few cases ({len(labels)}) for a validation split "
                           f"with val_fraction={val_fraction}")
    mean, std = channel_stats(x[tr_idx], lengths[tr_idx])
    xt, yt, lt, labt = arrays(te)
    splits = {
        "train": make_split(normalise(x[tr_idx], lengths[tr_idx], mean, std), y[tr_idx], lengths[tr_idx],
                            labels[tr_idx]),
        "val": make_split(normalise(x[va_idx], lengths[va_idx], mean, std), y[va_idx], lengths[va_idx],
                          labels[va_idx]),
        "test": make_split(normalise(xt, lt, mean, std), yt, lt, labt),
    }
    info: dict[str, Any] = dict(
        source=".ts files", train_file=os.fspath(train_path), test_file=os.fspath(test_path),
        problem=tr.header.get("problemname", ""), val_fraction=val_fraction, seed=int(seed),
        normalisation={"kind": "per channel (train)", "mean": mean.tolist(), "std": std.tolist()},
    )
    return DatasetSplits(name=name, train=splits["train"], val=splits["val"], test=splits["test"],
                         num_features=tr.num_dimensions, num_classes=len(tr.class_labels) + 1,
                         class_names=class_names_with_silence(tr.class_labels), info=info)


def load_sktime_dataset(name: str, root=None, val_fraction: float = 0.2, seed: int = 0) -> DatasetSplits:
    """``japanese_vowels`` or ``basic_motions`` from sktime's wheel (or ``root``); see the module docstring."""
    train, test = find_ts_files(name, root)
    return load_ts_classification(train, test, val_fraction=val_fraction, seed=seed, name=name)
