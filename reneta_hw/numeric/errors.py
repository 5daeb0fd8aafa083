"""Errors raised by the number formats, and the pattern checks they share."""

from __future__ import annotations

import numpy as np

__all__ = ["FormatOverflowError", "check_patterns", "first_index"]


class FormatOverflowError(ValueError):
    """A real value does not fit in a number format (or is NaN).

    Raised by ``encode``/``encode_acc`` with ``on_overflow="error"``; the message names
    the offending value, its index in the input array and the representable range.
    """


def first_index(mask: np.ndarray) -> tuple:
    """Index (a tuple, ``()`` for a 0-d array) of the first true element of ``mask``."""
    mask = np.asarray(mask)
    if mask.ndim == 0:
        return ()
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


def check_patterns(x, bits: int, what: str) -> np.ndarray:
    """Validate raw bit patterns and return them as ``np.int64``.

    ``x`` must be an integer array-like with every element in ``0 .. 2**bits - 1``
    (the unsigned pattern); anything else raises (``TypeError`` for a non-integer
    dtype, ``ValueError`` naming the first bad element otherwise). ``what`` names the
    operand in the message, e.g. ``"BFloat16.mul: a"``.
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{what}: expected raw bit patterns as an integer array, "
                        f"got dtype {arr.dtype}")
    if arr.size:
        if arr.dtype.kind == "u" and arr.dtype.itemsize == 8:
            bad = arr > np.uint64((1 << bits) - 1)
        else:
            arr = arr.astype(np.int64, copy=False)
            bad = (arr < 0) | (arr >> bits != 0)
        if bad.any():
            i = first_index(bad)
            raise ValueError(f"{what}: pattern {int(arr[i])} at index {i} is not a "
                             f"{bits}-bit unsigned pattern (0 .. {(1 << bits) - 1})")
    return arr.astype(np.int64, copy=False)
