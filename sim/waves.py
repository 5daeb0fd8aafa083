"""GTKWave save files (.gtkw) that open a simulation's VCD on the accelerator's main buses.

Why: a VCD of the whole accelerator holds thousands of signals; what one looks at first
are the buses between the blocks. Both backends (pysim's `Simulator.write_vcd` and a
Verilator ``--trace`` build) write every signal, under different scope roots (``bench.top``
vs ``TOP.reneta_sim.reneta``) and with different conventions for vector ranges, so the
save file is made from the VCD's own header: the same groups, for either simulator.

Groups (`MAIN_BUSES`): the AXI4-Lite control port, the five AXI4 DRAM channels, the
instruction stream into the core (and its idle/retired outputs), the PE array's input and
output streams, and the write-back's inputs and its SMEM and DRAM write streams.

``write_gtkw(vcd, gtkw)`` writes the save file; it raises `ValueError` if the VCD has no
scope that looks like the accelerator's top (a ``ctrl__ar__araddr`` port and a ``core``
child).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["MAIN_BUSES", "write_gtkw", "vcd_variables", "gtkw_for"]

#: (group, scope path below the accelerator's top, name prefixes or exact names)
MAIN_BUSES = (
    ("AXI4-Lite control", (), ("ctrl__ar__", "ctrl__r__", "ctrl__aw__", "ctrl__w__",
                                "ctrl__b__", "irq")),
    ("DRAM AR", (), ("dram__ar__",)),
    ("DRAM R", (), ("dram__r__",)),
    ("DRAM AW", (), ("dram__aw__",)),
    ("DRAM W", (), ("dram__w__",)),
    ("DRAM B", (), ("dram__b__",)),
    ("core instructions", ("core",), ("instr__", "idle", "retired", "error")),
    ("PE array in", ("core", "pe"), ("i__",)),
    ("PE array out", ("core", "pe"), ("o__",)),
    ("write-back in", ("core", "wb"), ("wb__", "res__")),
    ("write-back SMEM writes", ("core", "wb"), ("smem_w__",)),
    ("write-back DRAM writes", ("core", "wb"), ("dreq__", "ddata__")),
)


def vcd_variables(vcd_path) -> list:
    """``(scope tuple, name, width, range or "")`` of every variable in a VCD header."""
    out, scope = [], []
    with open(vcd_path, "r", errors="replace") as f:
        tokens: list[str] = []
        for line in f:
            tokens += line.split()
            while "$end" in tokens:
                k = tokens.index("$end")
                cmd, tokens = tokens[:k], tokens[k + 1:]
                if not cmd:
                    continue
                if cmd[0] == "$scope":
                    scope.append(cmd[2] if len(cmd) > 2 else "")
                elif cmd[0] == "$upscope":
                    scope.pop()
                elif cmd[0] == "$var" and len(cmd) >= 5:
                    rng = cmd[5] if len(cmd) > 5 else ""
                    out.append((tuple(scope), cmd[4], int(cmd[2]), rng))
                elif cmd[0] == "$enddefinitions":
                    return out
    return out


def _matches(name: str, keys) -> bool:
    return any(name == k or (k.endswith("__") and name.startswith(k)) for k in keys)


def gtkw_for(variables) -> list:
    """``(group, [trace names])`` of `MAIN_BUSES` found in ``variables`` (see
    `vcd_variables`), names as GTKWave spells them (``scope.name[hi:lo]``)."""
    scopes = {v[0] for v in variables}
    has_ctrl = {v[0] for v in variables if v[1] == "ctrl__ar__araddr"}
    roots = sorted((s for s in has_ctrl if s + ("core",) in scopes), key=len)
    if not roots:
        raise ValueError("write_gtkw: no scope of the VCD has the accelerator's ports (a "
                         "ctrl__ar__araddr variable next to a `core` scope)")
    root = roots[-1]
    groups = []
    for group, rel, keys in MAIN_BUSES:
        found = {}                  # name -> trace; listed in `keys` order, then by name
        for scope, name, width, rng in variables:
            # whole ports only: no views' fields (pysim: ``\\i__payload.w``, Verilator:
            # ``i__payload.w``), no pysim duplicates (``name$12``)
            if scope != root + rel or "." in name or name.startswith("\\") or "$" in name:
                continue
            if not _matches(name, keys) or name in found:
                continue
            suffix = rng if rng else (f"[{width - 1}:0]" if width > 1 else "")
            found[name] = ".".join(scope + (name,)) + suffix
        order = sorted(found, key=lambda n: (min(k for k, key in enumerate(keys)
                                                 if _matches(n, (key,))), n))
        if order:
            groups.append((group, [found[n] for n in order]))
    return groups


def write_gtkw(vcd_path, gtkw_path) -> Path:
    """Write a GTKWave save file for ``vcd_path`` showing `MAIN_BUSES`."""
    from vcd.gtkw import GTKWSave

    groups = gtkw_for(vcd_variables(vcd_path))
    gtkw_path = Path(gtkw_path)
    with open(gtkw_path, "w") as f:
        save = GTKWSave(f)
        save.comment("main buses of the RENETA accelerator (sim/waves.py)")
        save.dumpfile(str(Path(vcd_path).resolve()))
        save.signals_width(320)
        for group, names in groups:
            with save.group(group):
                for n in names:
                    save.trace(n)
    return gtkw_path
