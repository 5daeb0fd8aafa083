"""Fanout replication: a netlist step between Yosys and nextpnr-ecp5.

Why: nextpnr-ecp5 never duplicates a driver, and Yosys merges any registers the design
duplicates on purpose. So one flip-flop that stalls a wide pipeline drives every clock
enable of it: in the default 16-PE netlist (session 11) the PE array's stall flop drove
6,371 CE pins and the delta encoder's 4,734, spread over much of the chip. Such a net is
a long route to its farthest sink, whatever the placer does.

What: every ``TRELLIS_FF``, ``LUT4`` or ``PFUMX`` (a LUT5: the mux with the two LUT4s
that feed only it, which are cloned with it) whose output drives at least ``min_fanout``
cell inputs gets clones, and its sinks are shared out among the original and the clones in
groups of about ``sqrt(fanout)`` (at least ``min_group``), sorted by cell name so that
a group stays within one block of the hierarchy. A clone is a copy of the cell with the
same parameters, attributes and input nets, so it holds the same value in every cycle
(flip-flops start from the same initial value and see the same D, CE, LSR and clock):
the netlist's behaviour does not change, only where its loads hang. The placer then puts
each copy next to its group.

Only sinks that are ordinary inputs of LUT4, TRELLIS_FF, DP16KD, MULT18X18D or
TRELLIS_DPR16X4 cells move; anything else (a module port, the PFUMX/L6MUX21 that packs
with its LUT, a carry chain) stays on the original.

Measured (session 11, ECP5-85F speed 8, seed 1, 16 PEs with small memories, threshold
128, before LUT5s were cloned too: 116 drivers, 958 copies): 99.55 MHz and 3,615 endpoints over 6.67 ns, against
104.87 MHz and 3,325 for the same netlist without it. The delta encoder's late endpoints
halved (524 to 254), but the design's limit is elsewhere: most late paths start at
ordinary flip-flops and spend their time in routing. So `synth_target` leaves it off by
default (``fanout=0``); ``build.py synth --fanout 128`` turns it on.
"""

from __future__ import annotations

import copy
import math

__all__ = ["replicate_fanout", "DRIVERS", "MOVABLE_SINKS"]

#: cell type -> its output port whose net may be replicated
DRIVERS = {"TRELLIS_FF": "Q", "LUT4": "Z", "PFUMX": "Z"}
#: the PFUMX inputs that come from LUT4s packed with it (cloned along with it)
PFUMX_LUT_INPUTS = ("ALUT", "BLUT")
#: cell types whose inputs may be moved onto a clone's net
MOVABLE_SINKS = frozenset({"LUT4", "TRELLIS_FF", "DP16KD", "MULT18X18D", "TRELLIS_DPR16X4"})


def _fresh(cells: dict, name: str) -> str:
    while name in cells:
        name += "_"
    return name


def _top_module(netlist: dict) -> tuple[str, dict]:
    mods = netlist.get("modules") or {}
    tops = [(n, m) for n, m in mods.items()
            if str(m.get("attributes", {}).get("top", "0")).strip("0") != ""]
    if len(tops) != 1:
        if len(mods) == 1:
            return next(iter(mods.items()))
        raise ValueError(f"replicate_fanout: expected one top module, found "
                         f"{[n for n, _ in tops] or 'none'} among {list(mods)}")
    return tops[0]


def replicate_fanout(netlist: dict, *, min_fanout: int = 128, min_group: int = 32) -> dict:
    """Clone the high-fanout drivers of ``netlist`` (a Yosys JSON netlist, modified in
    place); returns what was done: ``nets`` (replicated), ``clones`` (copies of drivers;
    a LUT5's copy brings its two LUT4s),
    ``largest`` (up to 8 ``[driver, fanout, copies]``, largest fanout first)."""
    for what, v, lo in (("min_fanout", min_fanout, 2), ("min_group", min_group, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"replicate_fanout: {what} must be an integer >= {lo}, got {v!r}")
    _, mod = _top_module(netlist)
    cells = mod.setdefault("cells", {})
    netnames = mod.setdefault("netnames", {})

    driver = {}
    sinks: dict[int, list] = {}
    top_bit = 1
    for name, cell in cells.items():
        dirs = cell.get("port_directions", {})
        for port, bits in cell.get("connections", {}).items():
            for i, b in enumerate(bits):
                if not isinstance(b, int):
                    continue
                top_bit = max(top_bit, b)
                if dirs.get(port) == "output":
                    driver[b] = (name, port)
                else:
                    sinks.setdefault(b, []).append((name, port, i))
    # new nets are numbered above every bit in use (a port keeps the original's net)
    for named in list(mod.get("ports", {}).values()) + list(netnames.values()):
        top_bit = max([top_bit] + [b for b in named.get("bits", []) if isinstance(b, int)])
    name_of_bit = {}
    for nn_name, nn in sorted(netnames.items()):
        bits = nn.get("bits", [])
        for i, b in enumerate(bits):
            if isinstance(b, int) and b not in name_of_bit:
                name_of_bit[b] = nn_name if len(bits) == 1 else f"{nn_name}[{i}]"

    done = []
    clones = 0
    for bit in sorted(sinks):
        loads = sinks[bit]
        if len(loads) < min_fanout or bit not in driver:
            continue
        dname, dport = driver[bit]
        dcell = cells[dname]
        if DRIVERS.get(dcell.get("type")) != dport:
            continue
        luts = {}                       # a PFUMX's own LUT4s: input port -> cell name
        if dcell["type"] == "PFUMX":
            for p in PFUMX_LUT_INPUTS:
                b = dcell["connections"].get(p, [None])[0]
                src = driver.get(b, (None, None))[0]
                if src is None or cells[src]["type"] != "LUT4" or len(sinks.get(b, [])) != 1:
                    break
                luts[p] = src
            if len(luts) != len(PFUMX_LUT_INPUTS):
                continue
        movable = sorted(s for s in loads
                         if cells[s[0]].get("type") in MOVABLE_SINKS and s[0] != dname)
        group = max(min_group, math.isqrt(len(loads) - 1) + 1)
        copies = len(movable) // group - 1      # full groups beyond the original's
        if copies < 1:
            continue
        # the original keeps the fixed sinks and the first ``rest`` movable ones (a group
        # and the remainder); clone k takes the k-th group after them
        rest = len(movable) - copies * group
        for k in range(1, copies + 1):
            top_bit += 1
            clone = copy.deepcopy(dcell)
            clone["connections"][dport] = [top_bit]
            cells[_fresh(cells, f"{dname}$fanout{k}")] = clone
            out_bit = top_bit
            for p, lut in luts.items():
                top_bit += 1
                lut_clone = copy.deepcopy(cells[lut])
                lut_clone["connections"]["Z"] = [top_bit]
                cells[_fresh(cells, f"{lut}$fanout{k}")] = lut_clone
                clone["connections"][p] = [top_bit]
            for sname, sport, si in movable[rest + (k - 1) * group:rest + k * group]:
                cells[sname]["connections"][sport][si] = out_bit
            netnames[f"{name_of_bit.get(bit, dname)}$fanout{k}"] = {
                "hide_name": 0, "bits": [out_bit], "attributes": {}}
        clones += copies
        done.append([dname, len(loads), copies + 1])
    return {"nets": len(done), "clones": clones,
            "largest": sorted(done, key=lambda d: -d[1])[:8]}
