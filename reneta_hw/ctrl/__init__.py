"""Controller of the accelerator: instruction queue, legality checker, issue/pause/fence
sequencing and performance counters (`Controller`), plus the register map glue in
`reneta_hw.top`. `StubCore` stands in for the datapath core in tests."""

from .checker import RULES, InstructionChecker, python_rule, raw_rule, rule_name
from .controller import COUNTERS, Controller, State
from .interfaces import EVENTS, events_layout, smem_host_signature, spm_host_signature

__all__ = ["RULES", "InstructionChecker", "python_rule", "raw_rule", "rule_name", "COUNTERS",
           "Controller", "State", "EVENTS", "events_layout", "smem_host_signature",
           "spm_host_signature"]
