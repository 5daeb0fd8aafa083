"""Verilog and RTLIL of the accelerator for one `AcceleratorConfig` (``build.py generate``).

Why: users take the accelerator into their own flows (Vivado, Yosys, Verilator, an SoC
builder) as plain HDL files; the parameters that made them travel with them, and the
same parameters always give the same bytes (Amaranth ``emit_src=False``: no absolute
paths, no timestamps), so a file's hash identifies the design.

`generate(cfg, out_dir)` writes, for ``name`` (default ``reneta``):

- ``{name}.v``: Verilog (Amaranth's own Yosys ``write_verilog``), what simulators and
  vendor tools read; simulation semantics are the Amaranth design's, bit for bit.
- ``{name}.il``: RTLIL for Yosys, with `platforms.synth.rtlil_no_rw_check` applied (the
  memories marked ``no_rw_check`` map to block RAM without collision-bypass logic); this
  is the exact file `platforms.synth` synthesizes.
- ``{name}.config.json``: the `AcceleratorConfig` (readable by ``--config``).
- ``{name}.manifest.json``: config hash, top module name, ports, file SHA-256s.

Both HDL files come from one elaboration (one RTLIL text), so they always describe the
same netlist.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from amaranth.back import rtlil
from amaranth.back import verilog as _verilog

from reneta_hw.config import AcceleratorConfig

from .hdl_check import VERILATOR_WAIVERS
from .synth import rtlil_no_rw_check

__all__ = ["generate", "convert_design", "GENERATED_SUFFIXES"]

GENERATED_SUFFIXES = (".v", ".il", ".config.json", ".manifest.json")


def _rtlil_to_verilog(rtlil_text: str) -> str:
    # Amaranth's own RTLIL -> Verilog step (the one `verilog.convert` runs), applied to the
    # RTLIL we already have so that the design is elaborated once.
    return _verilog._convert_rtlil_text(rtlil_text, strip_internal_attrs=False)


def convert_design(design, name: str = "top") -> tuple[str, str]:
    """``(verilog, rtlil)`` texts of an Amaranth component, reproducible byte for byte.

    The Verilog keeps Amaranth's read-during-write rule of every memory (old data); the
    RTLIL carries ``no_rw_check`` collision masks for synthesis (see module docstring).
    """
    il = rtlil.convert(design, name=name, emit_src=False)
    return _rtlil_to_verilog(il), rtlil_no_rw_check(il)


def _ports(design) -> list[dict]:
    from amaranth.lib import wiring
    ports = []
    for path, member, value in design.signature.flatten(design):
        ports.append({"name": "__".join(map(str, path)),
                      "dir": "in" if member.flow == wiring.In else "out",
                      "width": len(value.as_value()) if hasattr(value, "as_value")
                      else len(value)})
    return ports


def generate(cfg: AcceleratorConfig, out_dir: str | Path, *, name: str = "reneta",
             design=None) -> dict[str, Path]:
    """Write the HDL of ``Reneta(cfg)`` (or ``design``) to ``out_dir``; return the paths by
    kind: ``{"verilog", "rtlil", "config", "manifest"}``."""
    if not isinstance(cfg, AcceleratorConfig):
        raise TypeError(f"generate: cfg must be an AcceleratorConfig, got {cfg!r}")
    if not name.isidentifier():
        raise ValueError(f"generate: name must be a Verilog identifier, got {name!r}")
    if design is None:
        from reneta_hw.top import Reneta
        design = Reneta(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    v_text, il_text = convert_design(design, name)
    paths = {"verilog": out / f"{name}.v", "rtlil": out / f"{name}.il",
             "config": out / f"{name}.config.json", "manifest": out / f"{name}.manifest.json"}
    paths["verilog"].write_text(v_text)
    paths["rtlil"].write_text(il_text)
    paths["config"].write_text(json.dumps(cfg.to_json(), indent=1, sort_keys=True) + "\n")
    manifest = {
        "top": name,
        "config_hash": cfg.content_hash(),
        "ports": _ports(design),
        "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                  for k, p in paths.items() if k != "manifest"},
        "verilog_waivers": {"verilator": list(VERILATOR_WAIVERS)},
    }
    paths["manifest"].write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return paths
