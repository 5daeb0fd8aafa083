"""Bit-exact numpy reference of the delta encoder (the OPM's ``Δ = x − x̂`` stage).

Why: the forward pass of a Delta RNN layer only multiplies the elements of its input
(and hidden) vector that changed by more than a threshold since they last "fired". The
golden model, the trainer's export of test vectors and the gateware
(`reneta_hw.opm.delta_encoder.DeltaEncoder`) must agree on every bit of that decision,
of the Δ words and of the list layout; this module is that single definition.

Word arithmetic (defined here; the number formats have no word subtraction):

* `sub_word(fmt, a, b)` = ``a − b`` as a word, rounded **once**:

  - `FixedPoint`: the exact signed difference ``sa − sb`` (``word_bits + 1`` bits), then
    the format's overflow rule into the word: ``"wrap"`` keeps the ``word_bits`` low bits,
    ``"saturate"`` clamps to ``[-2**(word_bits-1), 2**(word_bits-1) - 1]``. No rounding
    (same ``frac_bits``). This equals ``to_word(sub(word_to_acc(a), word_to_acc(b)))``
    whenever ``acc_bits > word_bits`` (the default 32); with ``acc_bits == word_bits`` and
    saturation that accumulator formulation is off by one LSB for ``b = -2**(word_bits-1)``
    (its negation saturates first); this function is the exact one.
  - `BFloat16`: the bfloat16 sum ``a + (b with its sign bit flipped)`` with the format's
    rules (subnormal inputs are zeros, NaN inputs infinities, one rounding to 8 significant
    bits, round to nearest even, flush to zero, ``inf − inf = +inf``, ``x − x = +0``), i.e.
    ``BFloat16(accumulate="bf16").sub(a, b)``. It does not depend on the format's
    accumulator: for ``accumulate="fp32"``, ``to_word(sub(word_to_acc(a), word_to_acc(b)))``
    gives the same word (a double rounding 24 -> 8 bits of a sum of two 8-bit operands is
    innocuous, 24 >= 2*8 + 2), which the tests check.

* `neg_word(fmt, w)`: FixedPoint ``fit(−s)`` (saturate: ``−min -> max``; wrap:
  ``−min -> min``); BFloat16 flips the sign bit (zeros and infinities included).

Firing: an element fires when ``|decode(Δ)| > decode(θ)`` (**strict**, real numbers; θ is a
word of the format, θ < 0 fires everything, a bfloat16 θ that is a NaN pattern is +-inf as
`decode` says). On firing ``x̂`` takes the raw current word ``x`` (so ``x̂_t = x̂_{t-1} + Δ_t``
without accumulated error, up to the saturation of Δ); non-fired elements keep ``x̂``. A
fired element is listed even if its Δ word is zero (possible only for θ < 0).

Lists (the ISA contract, `reneta_hw.isa`, `sim.layout.sparse_lists`): the non-zeros of all
timesteps concatenated in time order, indices ascending within a step, ``num_pe`` per row
(an index row and a value row), timestep t's descriptor ``(head_row, head_lane, count)``
with ``divmod(start + sum of earlier counts, num_pe) == (head_row, head_lane)``.

Block level: `EncoderModel` runs the same arithmetic command by command with the state the
hardware keeps (the x̂ memory rows, the list cursors) and produces the exact stream of row
writes the gateware emits (see its docstring for the packing rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reneta_hw.numeric.bfloat16 import BFloat16
from reneta_hw.numeric.errors import check_patterns
from reneta_hw.numeric.fixed_point import FixedPoint, from_signed, to_signed
from reneta_hw.numeric.format import NumberFormat

from .layout import SparseLists

__all__ = ["neg_word", "sub_word", "fires", "delta_step", "delta_steps", "delta_encode",
           "pack_lists", "DeltaCommand", "RowWrite", "EncoderModel", "apply_row_writes"]

_BF16_WORD = BFloat16(accumulate="bf16")


def _fmt_name(fmt) -> str:
    if isinstance(fmt, (FixedPoint, BFloat16)):
        return type(fmt).__name__
    raise TypeError(f"delta_ref: unsupported number format {fmt!r} "
                    f"(expected FixedPoint or BFloat16)")


def _words(fmt: NumberFormat, w, what: str) -> np.ndarray:
    return check_patterns(w, fmt.word_bits, f"delta_ref.{what}")


def _fit_word(fmt: FixedPoint, v: np.ndarray) -> np.ndarray:
    bits = fmt.word_bits
    if fmt.overflow == "saturate":
        v = np.clip(v, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return from_signed(v, bits)


def neg_word(fmt: NumberFormat, w) -> np.ndarray:
    """``−w`` as a word (see the module docstring)."""
    _fmt_name(fmt)
    w = _words(fmt, w, "neg_word: w")
    if isinstance(fmt, BFloat16):
        return w ^ 0x8000
    return _fit_word(fmt, -to_signed(w, fmt.word_bits))


def sub_word(fmt: NumberFormat, a, b) -> np.ndarray:
    """``a − b`` as a word, one rounding, the format's overflow rule (module docstring)."""
    _fmt_name(fmt)
    a = _words(fmt, a, "sub_word: a")
    b = _words(fmt, b, "sub_word: b")
    if isinstance(fmt, BFloat16):
        return _BF16_WORD.sub(a, b)
    bits = fmt.word_bits
    return _fit_word(fmt, to_signed(a, bits) - to_signed(b, bits))


def fires(fmt: NumberFormat, delta, theta) -> np.ndarray:
    """``|decode(delta)| > decode(theta)`` (strict; bool array, broadcast)."""
    _fmt_name(fmt)
    d = fmt.decode(_words(fmt, delta, "fires: delta"))
    t = fmt.decode(_words(fmt, theta, "fires: theta"))
    return np.abs(d) > t


def delta_step(fmt: NumberFormat, x, xhat, theta):
    """One encoding step: returns ``(delta, fired, xhat_new)``.

    ``delta`` is ``sub_word(x, xhat)`` where fired and 0 elsewhere (the dense Δ vector the
    matrix product sees); ``xhat_new`` is ``x`` where fired, ``xhat`` elsewhere.
    """
    x = _words(fmt, x, "delta_step: x")
    xhat = _words(fmt, xhat, "delta_step: xhat")
    d = sub_word(fmt, x, xhat)
    f = fires(fmt, d, theta)
    return np.where(f, d, 0), f, np.where(f, x, xhat)


def delta_steps(fmt: NumberFormat, x_words, theta_word, xhat0=None):
    """Encode ``x_words`` (nt, n) step by step from ``xhat0`` (n,) (default: +0 words).

    ``theta_word``: one word, or (nt,) words (one threshold per step).
    Returns ``(delta (nt, n), fired (nt, n) bool, xhat_final (n,))``.
    """
    x = _words(fmt, x_words, "delta_steps: x_words")
    if x.ndim != 2:
        raise ValueError(f"delta_steps: x_words must be (nt, n), got shape {x.shape}")
    nt, n = x.shape
    theta = np.broadcast_to(_words(fmt, theta_word, "delta_steps: theta_word"), (nt,))
    xhat = (np.zeros(n, dtype=np.int64) if xhat0 is None
            else _words(fmt, xhat0, "delta_steps: xhat0").copy())
    if xhat.shape != (n,):
        raise ValueError(f"delta_steps: xhat0 must have shape ({n},), got {xhat.shape}")
    delta = np.zeros((nt, n), dtype=np.int64)
    fired = np.zeros((nt, n), dtype=bool)
    for t in range(nt):
        delta[t], fired[t], xhat = delta_step(fmt, x[t], xhat, theta[t])
    return delta, fired, xhat


def pack_lists(delta, fired, num_pe: int, start: int = 0) -> SparseLists:
    """Lists of the fired elements of ``delta`` (nt, n), beginning at list slot ``start``.

    Slot ``s`` is row ``s // num_pe``, lane ``s % num_pe``; slots before ``start`` and after
    the last element are 0. With ``start=0`` this is `sim.layout.sparse_lists`.
    """
    delta = np.asarray(delta, dtype=np.int64)
    fired = np.asarray(fired, dtype=bool)
    if delta.ndim != 2 or fired.shape != delta.shape:
        raise ValueError(f"pack_lists: delta and fired must be (nt, n) of the same shape, "
                         f"got {delta.shape} and {fired.shape}")
    if start < 0:
        raise ValueError(f"pack_lists: start must be >= 0, got {start}")
    t_idx, i_idx = np.nonzero(fired)
    count = fired.sum(axis=1).astype(np.int64)
    heads = start + np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    end = start + int(count.sum())
    rows = max(1, -(-end // num_pe))
    idx = np.zeros(rows * num_pe, dtype=np.int64)
    val = np.zeros(rows * num_pe, dtype=np.int64)
    idx[start:end] = i_idx
    val[start:end] = delta[t_idx, i_idx]
    return SparseLists(idx.reshape(rows, num_pe), val.reshape(rows, num_pe),
                       heads // num_pe, heads % num_pe, count)


def delta_encode(fmt: NumberFormat, x_words, theta_word, xhat0=None, *, num_pe: int = 16,
                 head_row: int = 0, head_lane: int = 0):
    """The delta encoder over a sequence: ``(lists, descriptors, xhat_final)``.

    ``x_words`` (nt, n) words of the format, ``theta_word`` one word or (nt,) words,
    ``xhat0`` (n,) words (default +0). The lists begin at ``(head_row, head_lane)``
    (default the start of the list region) and continue across timesteps.

    Returns ``lists`` (`sim.layout.SparseLists`: index rows, value rows and the
    descriptors' fields), ``descriptors`` (nt, 3) int64 ``(head_row, head_lane, count)``
    and ``xhat_final`` (n,) words.
    """
    if not (isinstance(num_pe, int) and num_pe >= 1):
        raise ValueError(f"delta_encode: num_pe must be a positive integer, got {num_pe!r}")
    if not 0 <= head_lane < num_pe or head_row < 0:
        raise ValueError(f"delta_encode: (head_row, head_lane) = ({head_row}, {head_lane}) "
                         f"must be a row >= 0 and a lane in 0..{num_pe - 1}")
    delta, fired, xhat = delta_steps(fmt, x_words, theta_word, xhat0)
    lists = pack_lists(delta, fired, num_pe, head_row * num_pe + head_lane)
    desc = np.stack([lists.head_row, lists.head_lane, lists.count], axis=1).astype(np.int64)
    return lists, desc, xhat


# --- block-level model ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DeltaCommand:
    """One "start vector" command of the encoder (the fields of its command stream).

    n         elements of the vector (0 .. max_n); ``ceil(n / num_pe)`` beats follow
    theta     the threshold θ, a word of the format
    head_row  list row (relative to the list region) of the vector's first element ...
    head_lane ... and its lane; both ignored when ``cont``
    cont      continue the lists where the last vector on cursor ``cursor`` ended
    cursor    which list cursor to continue from and to update (e.g. 0: Δx lists, 1: Δh)
    clear     take x̂ as +0 words (ignore the memory), e.g. at the first timestep
    xhat_base first x̂ memory row of the vector (one row per beat)
    """
    n: int
    theta: int
    head_row: int = 0
    head_lane: int = 0
    cont: bool = False
    cursor: int = 0
    clear: bool = False
    xhat_base: int = 0


@dataclass(frozen=True)
class RowWrite:
    """One row the encoder emits: write lanes with ``mask`` bit set of list row ``row``."""
    row: int
    mask: int
    index: tuple
    value: tuple


@dataclass
class EncoderModel:
    """The encoder's state and behaviour, command by command (bit-exact, cycle-free).

    Packing rule of the row stream (what `DeltaEncoder` emits): list slots are filled in
    order from the vector's head; a row is emitted as soon as its last lane is filled, with
    the lanes filled since that row was last emitted set in ``mask``; at the end of a vector
    the partially filled row, if it has lanes not yet emitted, is emitted with its mask
    (the next vector continuing on that row re-emits it with the new lanes only). Lanes
    outside the mask are 0 here (don't-care in the gateware). Then the descriptor.
    """
    fmt: NumberFormat
    num_pe: int
    xhat_rows: int
    row_bits: int = 16
    num_cursors: int = 2
    xhat: np.ndarray = field(default=None)
    cursors: list = field(default=None)

    def __post_init__(self):
        _fmt_name(self.fmt)
        if self.xhat is None:
            self.xhat = np.zeros((self.xhat_rows, self.num_pe), dtype=np.int64)
        if self.cursors is None:
            self.cursors = [0] * self.num_cursors

    def run(self, cmd: DeltaCommand, x) -> tuple[list, tuple]:
        """Encode one vector ``x`` (``cmd.n`` words). Returns ``(row_writes, descriptor)``."""
        P = self.num_pe
        x = _words(self.fmt, x, "EncoderModel.run: x")
        if x.shape != (cmd.n,):
            raise ValueError(f"EncoderModel.run: x must have shape ({cmd.n},), got {x.shape}")
        beats = -(-cmd.n // P)
        if cmd.xhat_base < 0 or cmd.xhat_base + beats > self.xhat_rows:
            raise ValueError(f"EncoderModel.run: x̂ rows {cmd.xhat_base}.."
                             f"{cmd.xhat_base + beats - 1}"
                             f" outside the memory (0..{self.xhat_rows - 1})")
        if not 0 <= cmd.cursor < self.num_cursors:
            raise ValueError(f"EncoderModel.run: cursor {cmd.cursor} out of range "
                             f"0..{self.num_cursors - 1}")
        rows = slice(cmd.xhat_base, cmd.xhat_base + beats)
        mem = self.xhat[rows].reshape(-1)[:cmd.n]
        xhat = np.zeros_like(mem) if cmd.clear else mem
        d, f, new = delta_step(self.fmt, x, xhat, cmd.theta)
        flat = self.xhat[rows].reshape(-1).copy()
        flat[:cmd.n] = new
        self.xhat[rows] = flat.reshape(beats, P)

        wrap = (1 << self.row_bits) * P
        pos = self.cursors[cmd.cursor] if cmd.cont else (cmd.head_row * P + cmd.head_lane)
        pos %= wrap
        head = pos
        writes = []
        pend = {}

        def emit(row):
            idx = [0] * P
            val = [0] * P
            mask = 0
            for lane, (i, v) in sorted(pend.items()):
                idx[lane], val[lane] = i, v
                mask |= 1 << lane
            writes.append(RowWrite(row % (1 << self.row_bits), mask, tuple(idx), tuple(val)))
            pend.clear()

        for i in np.nonzero(f)[0]:
            pend[pos % P] = (int(i), int(d[i]))
            pos = (pos + 1) % wrap
            if pos % P == 0:
                emit(((pos - 1) % wrap) // P)
        if pend:
            emit(pos // P)
        self.cursors[cmd.cursor] = pos
        count = int(f.sum())
        return writes, (head // P, head % P, count)


def apply_row_writes(image_index, image_value, writes) -> None:
    """Apply row writes (masked lanes) to index/value images (rows, num_pe) in place."""
    for w in writes:
        for lane in range(image_index.shape[1]):
            if w.mask >> lane & 1:
                image_index[w.row, lane] = w.index[lane]
                image_value[w.row, lane] = w.value[lane]
