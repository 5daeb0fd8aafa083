"""On-chip memories and stream buffering: block-RAM wrappers, stream FIFOs, pipeline stages.

* `SimpleDualPortRAM`, `SinglePortRAM` (`bram.py`): `lib.memory.Memory` with the reference
  design's exact read timing (read-first SDP, "no change" single port), mapped to block RAM.
* `StreamFIFO`, `PipelineRegister`, `SkidBuffer`, `PingPongBuffer`, `SplitBuffer` (`fifo.py`):
  `lib.stream` stages.
* `report.ecp5_figures()` (`report.py`): their ECP5 size and Fmax at the default parameters.
"""

from .bram import SimpleDualPortRAM, SinglePortRAM
from .fifo import (PingPongBuffer, PipelineRegister, PrefetchFIFO, SkidBuffer, SplitBuffer,
                   StreamFIFO)

__all__ = ["SimpleDualPortRAM", "SinglePortRAM", "StreamFIFO", "PipelineRegister", "SkidBuffer",
           "PingPongBuffer", "SplitBuffer", "PrefetchFIFO"]
