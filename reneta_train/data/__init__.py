"""Data sets for the Delta RNN trainer; nothing is ever downloaded.

``load_dataset(name, **options) -> DatasetSplits`` with ``name`` one of

* ``"synthetic"`` (default for demos): built-in seeded keyword-spotting-like sequences,
  61 frames x 16 features (:mod:`reneta_train.data.synthetic`); options ``num_classes``,
  ``num_train``, ``num_val``, ``num_test``, ``seed``, ...;
* ``"japanese_vowels"``, ``"basic_motions"``: the ``.ts`` files of the sktime 1.2.0 wheel
  (``pip install --no-deps sktime==1.2.0``), or ``root=FOLDER`` (:mod:`reneta_train.data.ts`);
  options ``root``, ``val_fraction``, ``seed``;
* ``"gsc"``: Google Speech Commands v2 from a local folder ``root`` (:mod:`reneta_train.data.gsc`);
  options ``root`` (required), ``cache_dir``, ``keywords``, ``include_unknown``, ``unknown_ratio``,
  ``silence_ratio``, ``max_per_class``, ``seed``, ``use_cache``, ``verbose``.

Every split holds ``x`` (N, T, F) float32, framewise ``y`` (N, T) int64 with class 0 = silence,
``lengths`` (N,) and clip ``labels`` (N,); see :mod:`reneta_train.data.base`.
"""

from __future__ import annotations

from typing import Any, Callable

from .base import SILENCE_CLASS, DatasetError, DatasetSplits, Split
from .gsc import load_gsc
from .synthetic import input_delta_sparsity, make_synthetic_kws
from .ts import load_sktime_dataset, load_ts_classification, parse_ts

__all__ = [
    "DATASETS", "DatasetError", "DatasetSplits", "SILENCE_CLASS", "Split", "input_delta_sparsity", "load_dataset",
    "load_gsc", "load_sktime_dataset", "load_ts_classification", "make_synthetic_kws", "parse_ts",
]


def _japanese_vowels(**kw: Any) -> DatasetSplits:
    return load_sktime_dataset("japanese_vowels", **kw)


def _basic_motions(**kw: Any) -> DatasetSplits:
    return load_sktime_dataset("basic_motions", **kw)


#: data set name -> loader(**options)
DATASETS: dict[str, Callable[..., DatasetSplits]] = {
    "synthetic": make_synthetic_kws,
    "japanese_vowels": _japanese_vowels,
    "basic_motions": _basic_motions,
    "gsc": load_gsc,
}


def load_dataset(name: str, **options: Any) -> DatasetSplits:
    """Load data set ``name`` (see the module docstring); options that are ``None`` are dropped."""
    key = name.lower().replace("-", "_")
    if key not in DATASETS:
        raise DatasetError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    options = {k: v for k, v in options.items() if v is not None}
    return DATASETS[key](**options)
