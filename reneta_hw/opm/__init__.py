"""Output module (OPM): the delta encoder (``Δ = x − x̂``, threshold, non-zero lists and SPM
descriptors, x̂ memory); ``python -m reneta_hw.opm.report`` prints its ECP5 figures."""

from .delta_encoder import DeltaEncoder, command_layout, row_layout

__all__ = ["DeltaEncoder", "command_layout", "row_layout"]
