"""Number formats of the accelerator (bit-exact reference functions) and activations."""

from .activation import Func, apply_func
from .bfloat16 import BFloat16
from .errors import FormatOverflowError
from .fixed_point import FixedPoint
from .format import NumberFormat, format_from_json

__all__ = ["NumberFormat", "format_from_json", "FixedPoint", "BFloat16",
           "FormatOverflowError", "Func", "apply_func"]
