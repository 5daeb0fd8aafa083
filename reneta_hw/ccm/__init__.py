"""CCM, the compute core: the PE array (multiply-accumulate lanes, reduction lane, local
partial-sum memories) and the activation units that apply FUNC to its results."""

from .activation_unit import ActivationCore, ActivationUnit
from .pe_array import PEArray, PEMode, pe_in_layout, pe_out_layout

__all__ = ["ActivationCore", "ActivationUnit", "PEArray", "PEMode", "pe_in_layout",
           "pe_out_layout"]
