"""PyTorch side of RENETA: Delta RNN layers with symmetric temporally sparse BPTT.

Public API:

* ``DeltaLSTM``, ``DeltaGRU``: ``torch.nn.LSTM``/``nn.GRU``-shaped layers
  (``reneta_train.layers``);
* ``reneta_train.stats``: ``LayerStats`` counters and ``merge``;
* ``reneta_train.numerics.HardwareNumerics``: run the layers in the accelerator's
  number format;
* ``reneta_train.trace.trace_layer``: per-step quantities for hardware test vectors.
"""

from .layers import DeltaGRU, DeltaLSTM
from .numerics import HardwareNumerics
from .stats import LayerStats, merge
from .trace import LayerTrace, trace_layer

__all__ = ["DeltaLSTM", "DeltaGRU", "LayerStats", "merge", "HardwareNumerics",
           "LayerTrace", "trace_layer"]
