"""Activation functions as the accelerator computes them, and their derivatives.

``Func`` is the ISA's 2-bit FUNC field. `apply_func` is what the result path applies to a
result word:

* ``NONE``: the word unchanged.
* ``RELU``: ``0`` when the word's sign bit (its MSB) is set, else the word unchanged
  (the same rule for every format, so bfloat16 ``-0`` becomes ``+0``).
* ``SIGMOID``, ``TANH``: one lookup in a ROM of ``2**table_bits`` words
  (`activation_table`), addressed by `activation_index`. The gateware holds the very
  same contents (it builds its ROM from `activation_table`).

Lookup tables (`ActivationSpec`): the input is clamped to ``[-R, R)``, ``R = 2**range_log2``,
which is split into ``N = 2**table_bits`` bins of width ``h = 2R / N``. The index is

* `FixedPoint` (floor, pure bit slicing): with ``s`` the signed word (value ``s * 2**-f``),
  ``c = clamp(s, -2**(range_log2+f), 2**(range_log2+f) - 1)`` and
  ``index = (c >> d) + N/2`` where ``d = range_log2 + 1 + f - table_bits``; i.e. the bits
  ``[range_log2+f : d]`` of ``c`` with their MSB inverted. Entry ``i`` covers the words
  ``s`` in ``[k * 2**d, (k+1) * 2**d - 1]``, ``k = i - N/2``; its value is ``f`` at the
  centre of those inputs, ``(k * 2**d + (2**d - 1) / 2) * 2**-f`` (so with ``d = 0`` it is
  exact at every input).
* `BFloat16` (round half away from zero): ``index = clamp(round(x / h), -N/2, N/2 - 1) + N/2``
  where ``round`` rounds the magnitude half up (sign-magnitude hardware: add half an index
  LSB to the aligned significand, truncate); subnormal inputs count as zero and NaN/inf
  inputs as infinities (they clamp). Entry ``i`` holds ``f((i - N/2) * h)`` (the bin centre).

Entries are ``f`` evaluated in float64 and encoded in the word format by the format's own
``encode`` (FixedPoint: rounding mode and saturation, so with ``int_bits = 1`` the value
1.0 becomes the largest word; BFloat16: round to nearest even).

Default tables (`activation_spec`): ``R = 8`` and ``N = 1024`` for both functions
(one index for both ROMs). For a FixedPoint with fewer integer bits, ``R`` shrinks to
the word range (``range_log2 = int_bits - 1``) and ``table_bits`` to the input resolution.

Derivatives for the backward pass, from the saved activation *output* ``y`` (a word),
each one multiply-accumulate with the format's own operations and one ``to_word``::

    sigmoid_deriv(y) = to_word(add(word_to_acc(y), neg_acc(mul(y, y))))   # y - y*y
    tanh_deriv(y)    = to_word(add(word_to_acc(ONE), neg_acc(mul(y, y)))) # 1 - y*y

``y - y*y`` equals ``y*(1-y)`` and needs no rounded ``1-y``. ``ONE`` is the word 1.0 or, if
1.0 is not a word (FixedPoint with ``int_bits == 1``), the largest word
``1 - 2**-frac_bits`` (then ``tanh_deriv(0) = 1 - 2**-frac_bits``).

Accuracy: `WORST_CASE_ERROR` holds the worst-case absolute error against float64 of
every function for the default formats ``FixedPoint()`` (Q8.8) and ``BFloat16()``, over
every input word (activations: all 2**16 words but bf16 NaN patterns; derivatives: every
word in the activation's output range, ``[0, 1]`` and ``[-1, 1]``).
`WORST_CASE_REL_ERROR` holds the relative errors of the bf16 derivatives. The test-suite
measures them exhaustively and checks each stated number is an upper bound within a
factor of 2 of the measurement.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from .bfloat16 import BF16, BIAS, BFloat16, _unpack
from .errors import check_patterns
from .fixed_point import FixedPoint, to_signed
from .format import NumberFormat

__all__ = [
    "Func", "ActivationSpec", "activation_spec", "activation_table", "activation_index",
    "apply_func", "sigmoid_deriv", "tanh_deriv", "one_word",
    "WORST_CASE_ERROR", "WORST_CASE_REL_ERROR",
]


class Func(enum.IntEnum):
    """The FUNC field of an instruction (2 bits)."""

    NONE = 0
    RELU = 1
    SIGMOID = 2
    TANH = 3


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


_FUNCS = {Func.SIGMOID: _sigmoid, Func.TANH: np.tanh}


@dataclass(frozen=True)
class ActivationSpec:
    """Geometry of an activation lookup table: input range ``[-R, R)``, ``2**table_bits`` bins."""

    #: ``R = 2**range_log2``
    range_log2: int = 3
    #: address bits of the ROM
    table_bits: int = 10

    def __post_init__(self):
        for name in ("range_log2", "table_bits"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise ValueError(f"ActivationSpec.{name}: must be an integer, got {v!r}")
        if not 1 <= self.table_bits <= 20:
            raise ValueError(f"ActivationSpec.table_bits: must be 1..20, got {self.table_bits!r}")
        if not -100 <= self.range_log2 <= 100:
            raise ValueError(f"ActivationSpec.range_log2: must be -100..100, "
                             f"got {self.range_log2!r}")

    @property
    def R(self) -> float:
        return 2.0 ** self.range_log2

    @property
    def entries(self) -> int:
        return 1 << self.table_bits

    @property
    def step_log2(self) -> int:
        """log2 of the bin width ``h = 2R / entries``."""
        return self.range_log2 + 1 - self.table_bits

    @property
    def step(self) -> float:
        return 2.0 ** self.step_log2


def activation_spec(fmt: NumberFormat) -> ActivationSpec:
    """The default table geometry of a format (shared by sigmoid and tanh)."""
    if isinstance(fmt, FixedPoint):
        r = min(3, fmt.int_bits - 1)
        return ActivationSpec(r, min(10, r + 1 + fmt.frac_bits))
    if isinstance(fmt, BFloat16):
        return ActivationSpec(3, 10)
    raise TypeError(f"activation: unsupported number format {fmt!r}")


def _spec(fmt: NumberFormat, spec: ActivationSpec | None) -> ActivationSpec:
    if spec is None:
        return activation_spec(fmt)
    if not isinstance(spec, ActivationSpec):
        raise TypeError(f"activation: spec must be an ActivationSpec, got {spec!r}")
    if isinstance(fmt, FixedPoint):
        if spec.range_log2 > fmt.int_bits - 1:
            raise ValueError(f"ActivationSpec.range_log2: must be <= int_bits - 1 = "
                             f"{fmt.int_bits - 1} for {fmt}, got {spec.range_log2}")
        if spec.range_log2 + fmt.frac_bits < 0:
            raise ValueError(f"ActivationSpec.range_log2: must be >= -frac_bits = "
                             f"{-fmt.frac_bits} for {fmt}, got {spec.range_log2}")
        if spec.table_bits > spec.range_log2 + 1 + fmt.frac_bits:
            raise ValueError(f"ActivationSpec.table_bits: must be <= range_log2 + 1 + "
                             f"frac_bits = {spec.range_log2 + 1 + fmt.frac_bits} for {fmt} "
                             f"(one entry per input word), got {spec.table_bits}")
    elif not isinstance(fmt, BFloat16):
        raise TypeError(f"activation: unsupported number format {fmt!r}")
    return spec


def _func(func) -> Func:
    try:
        return Func(func)
    except ValueError:
        raise ValueError(f"activation: func must be one of {[f.name for f in Func]} "
                         f"(0..3), got {func!r}") from None


def _table_inputs(fmt: NumberFormat, spec: ActivationSpec) -> np.ndarray:
    """The float64 input each table entry is evaluated at (the centre of its bin)."""
    k = np.arange(spec.entries, dtype=np.int64) - (spec.entries >> 1)
    if isinstance(fmt, FixedPoint):
        d = spec.range_log2 + 1 + fmt.frac_bits - spec.table_bits
        return (k * 2.0 ** d + ((1 << d) - 1) / 2.0) * fmt.lsb
    return k * spec.step


def activation_table(fmt: NumberFormat, func, spec: ActivationSpec | None = None) -> np.ndarray:
    """ROM contents (word patterns, ``np.int64``, ``2**table_bits`` of them) of SIGMOID/TANH."""
    func = _func(func)
    if func not in _FUNCS:
        raise ValueError(f"activation_table: only SIGMOID and TANH use a table, got {func.name}")
    spec = _spec(fmt, spec)
    values = _FUNCS[func](_table_inputs(fmt, spec))
    if isinstance(fmt, FixedPoint):
        return fmt.encode(values, on_overflow="saturate")
    return fmt.encode(values)


def activation_index(fmt: NumberFormat, words, spec: ActivationSpec | None = None) -> np.ndarray:
    """ROM address (0 .. 2**table_bits - 1) of each word (see the module docstring)."""
    spec = _spec(fmt, spec)
    w = check_patterns(words, fmt.word_bits, "activation_index: words")
    half = spec.entries >> 1
    if isinstance(fmt, FixedPoint):
        s = to_signed(w, fmt.word_bits)
        top = spec.range_log2 + fmt.frac_bits
        c = np.clip(s, -(1 << top), (1 << top) - 1)
        return (c >> (top + 1 - spec.table_bits)) + half
    # BFloat16: |x| / h = m * 2**sh with the 8-bit significand m
    sign, exp, m, zero, inf = _unpack(w, BF16)
    sh = exp - BIAS - BF16.frac_bits - spec.step_log2
    left = np.clip(sh, 0, spec.table_bits)                 # saturating shifts
    right = np.clip(-sh, 0, BF16.p + 1)
    mag = ((m << left) + ((1 << right) >> 1)) >> right     # round half away from zero
    mag = np.where(zero, 0, np.where(inf, half, np.minimum(mag, half)))
    k = np.clip(np.where(sign == 1, -mag, mag), -half, half - 1)
    return k + half


def apply_func(fmt: NumberFormat, func, words, spec: ActivationSpec | None = None) -> np.ndarray:
    """``func`` applied to result words (word patterns in, word patterns out)."""
    func = _func(func)
    w = check_patterns(words, fmt.word_bits, "apply_func: words")
    if func == Func.NONE:
        return w
    if func == Func.RELU:
        return np.where((w >> (fmt.word_bits - 1)) & 1 == 1, 0, w)
    return activation_table(fmt, func, spec)[activation_index(fmt, w, spec)]


def one_word(fmt: NumberFormat) -> int:
    """The word used as 1.0 by the derivatives: 1.0, or the largest word if 1.0 is not one."""
    if isinstance(fmt, FixedPoint):
        return int(fmt.encode(1.0, on_overflow="saturate"))
    return int(fmt.encode(1.0))


def sigmoid_deriv(fmt: NumberFormat, y) -> np.ndarray:
    """``sigma'(x) = y * (1 - y)`` from the sigmoid output ``y``, as ``y - y*y`` (one MAC)."""
    y = check_patterns(y, fmt.word_bits, "sigmoid_deriv: y")
    return fmt.to_word(fmt.add(fmt.word_to_acc(y), fmt.neg_acc(fmt.mul(y, y))))


def tanh_deriv(fmt: NumberFormat, y) -> np.ndarray:
    """``tanh'(x) = 1 - y*y`` from the tanh output ``y`` (one MAC; see `one_word`)."""
    y = check_patterns(y, fmt.word_bits, "tanh_deriv: y")
    one = fmt.word_to_acc(np.full(y.shape, one_word(fmt), dtype=np.int64))
    return fmt.to_word(fmt.add(one, fmt.neg_acc(fmt.mul(y, y))))


# Worst-case errors against float64 (see the module docstring), derived as
# "largest slope x largest distance from an input to its bin centre + half an output LSB"
# for the tables, and "half an LSB (ulp) of the largest result" for the derivatives (one
# rounding: Q8.8 rounds y*y once; bf16/fp32 computes y - y*y in fp32 and rounds it to
# bf16, a double rounding that is innocuous as 24 >= 2*8 + 2). tests/test_activation.py
# measures every one exhaustively and checks it is an upper bound within a factor of 2.
WORST_CASE_ERROR = {
    # Q8.8: bins of 4 LSB, centre 1.5 LSB from the farthest input; output LSB 2**-8
    (FixedPoint(), "sigmoid"): 0.25 * 1.5 * 2.0 ** -8 + 2.0 ** -9,     # 0.00342
    (FixedPoint(), "tanh"): 1.0 * 1.5 * 2.0 ** -8 + 2.0 ** -9,         # 0.00781
    (FixedPoint(), "sigmoid_deriv"): 2.0 ** -9,                        # 0.00195
    (FixedPoint(), "tanh_deriv"): 2.0 ** -9,                           # 0.00195
    # bf16: h = 2**-6, so inputs are at most 2**-7 from their bin centre; outputs in
    # [0.5, 1) have an ulp of 2**-8
    (BFloat16(), "sigmoid"): 0.25 * 2.0 ** -7 + 2.0 ** -9,             # 0.00391
    (BFloat16(), "tanh"): 1.0 * 2.0 ** -7 + 2.0 ** -9,                 # 0.00977
    (BFloat16(), "sigmoid_deriv"): 2.0 ** -11,                         # results <= 0.25
    (BFloat16(), "tanh_deriv"): 2.0 ** -9,                             # results <= 1
}
#: relative errors of the bf16 derivatives: half an ulp, 2**-8 of the result at most
WORST_CASE_REL_ERROR = {
    (BFloat16(), "sigmoid_deriv"): 2.0 ** -8,
    (BFloat16(), "tanh_deriv"): 2.0 ** -8,
}
