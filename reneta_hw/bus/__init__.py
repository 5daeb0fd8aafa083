"""AXI bus blocks: AXI4/AXI4-Lite signatures, the DRAM read master (DRG), the write master
and the AXI4-Lite control-register slave. The matching DRAM model for simulation is
``sim.axi_memory.AxiMemory``; ``python -m reneta_hw.bus.report`` prints ECP5 figures."""

from .axi import (Axi4Signature, AxiLiteSignature, Burst, Resp, BOUNDARY, MAX_BURST_BEATS,
                  size_code, crosses_boundary, beats_to_boundary)
from .axi_read import AxiReadMaster, BurstSplitter, read_request_layout, row_layout
from .axi_write import AxiWriteMaster, write_row_layout
from .axi_lite import Access, Register, AxiLiteRegisters

__all__ = [
    "Axi4Signature", "AxiLiteSignature", "Burst", "Resp", "BOUNDARY", "MAX_BURST_BEATS",
    "size_code", "crosses_boundary", "beats_to_boundary",
    "AxiReadMaster", "BurstSplitter", "read_request_layout", "row_layout",
    "AxiWriteMaster", "write_row_layout",
    "Access", "Register", "AxiLiteRegisters",
]
