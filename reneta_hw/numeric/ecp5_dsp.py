"""ECP5 multiplier blocks with their own registers, for synthesis on ECP5.

Why: Yosys maps a ``*`` onto a combinational MULT18X18D and leaves the registers around
it in the fabric; it does not pack them into the block (it has no such pass for ECP5).
On a large design the placer puts those flip-flops far from the multiplier column, and
the route in, the multiplier and the route out land in one cycle: at 16 PEs that was
the critical path (9.6 ns, 6.1 ns of it routing). With the block's input and output
registers switched on, the path is cut at the block's pins on both sides, and nextpnr
times it as registered (its ``MULT18X18D_REGS_*`` timing classes).

The registers behave like `reneta_hw.numeric.units.Unit.cut` registers: they load
while ``en`` is high (the block's CE0) and are never reset (RST0 tied low, GSR off),
so a unit that uses them is cycle-exact with its generic form.

Only elaboration for ECP5 uses this: a platform says so by being an amaranth-boards
ECP5 platform or by carrying ``reneta_ecp5_dsp = True`` (see `Ecp5SynthHints`, which the
out-of-context ECP5 flow passes). Simulation and the emitted Verilog use the generic
``*``; ``tests/test_units_fixed.py`` runs the ECP5 elaboration under Verilator against
the format's reference, through a behavioural model of the block
(`ECP5_MULT18X18D_MODEL`).
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Signal, Value

__all__ = ["Ecp5SynthHints", "targets_ecp5", "uses_ecp5_dsp", "ecp5_mult18",
           "ECP5_MULT18X18D_MODEL"]

#: widest signed operand one MULT18X18D takes
MULT18_BITS = 18


class Ecp5SynthHints:
    """The platform argument of an out-of-context ECP5 synthesis: no pins, no build
    flow, only the facts that elaboration may use to pick ECP5 primitives."""

    reneta_ecp5_dsp = True
    reneta_ecp5_bram = True

    def __repr__(self) -> str:
        return "Ecp5SynthHints()"


def targets_ecp5(platform, primitive: str) -> bool:
    """Whether elaboration for ``platform`` should instantiate the ECP5 ``primitive``
    blocks (``"dsp"``, ``"bram"``): an amaranth-boards ECP5 platform uses them all, any
    other platform those for which it carries ``reneta_ecp5_<primitive> = True``."""
    if platform is None:
        return False
    if getattr(platform, f"reneta_ecp5_{primitive}", False):
        return True
    try:
        from amaranth.vendor import LatticeECP5Platform
    except ImportError:                                   # pragma: no cover
        return False
    return isinstance(platform, LatticeECP5Platform)


def uses_ecp5_dsp(platform) -> bool:
    """Whether elaboration for ``platform`` should instantiate ECP5 multiplier blocks."""
    return targets_ecp5(platform, "dsp")


def ecp5_mult18(m, a, b, en, *, reg_inputs: bool, reg_output: bool, name: str = "dsp"):
    """Signed ``a * b`` on one MULT18X18D; returns the ``len(a) + len(b)``-bit product.

    ``a`` and ``b`` are raw two's complement words of at most 18 bits (sign-extended to
    18 here). ``reg_inputs`` switches on the A and B input registers, ``reg_output`` the
    output register; both load while ``en`` is high. Latency = the number switched on.
    """
    a, b = Value.cast(a), Value.cast(b)
    for what, v in (("a", a), ("b", b)):
        if not 1 <= len(v) <= MULT18_BITS:
            raise ValueError(f"ecp5_mult18: operand {what} has {len(v)} bits; one "
                             f"MULT18X18D takes 1 to {MULT18_BITS}")
    width = len(a) + len(b)
    a18 = Signal(MULT18_BITS, name=f"{name}_a")
    b18 = Signal(MULT18_BITS, name=f"{name}_b")
    p36 = Signal(2 * MULT18_BITS, name=f"{name}_p")
    m.d.comb += [a18.eq(a.as_signed()), b18.eq(b.as_signed())]
    clocked = "CLK0"
    ports = {
        "p_REG_INPUTA_CLK": clocked if reg_inputs else "NONE",
        "p_REG_INPUTB_CLK": clocked if reg_inputs else "NONE",
        "p_REG_OUTPUT_CLK": clocked if reg_output else "NONE",
        "p_REG_INPUTC_CLK": "NONE",
        "p_REG_PIPELINE_CLK": "NONE",
        "p_GSR": "DISABLED",
        "p_RESETMODE": "SYNC",
        "i_SIGNEDA": Const(1, 1), "i_SIGNEDB": Const(1, 1),
        "i_SOURCEA": Const(0, 1), "i_SOURCEB": Const(0, 1),
        "i_CLK0": ClockSignal("sync"), "i_CE0": en, "i_RST0": Const(0, 1),
    }
    for i in range(MULT18_BITS):
        ports[f"i_A{i}"] = a18[i]
        ports[f"i_B{i}"] = b18[i]
        ports[f"i_C{i}"] = Const(0, 1)
    for i in range(2 * MULT18_BITS):
        ports[f"o_P{i}"] = p36[i]
    m.submodules[name] = Instance("MULT18X18D", **ports)
    return p36[:width].as_signed()


#: A behavioural Verilog model of the MULT18X18D features `ecp5_mult18` uses, for the
#: tests that simulate the ECP5 elaboration (Yosys ships only a black box of the block):
#: the signed 18x18 product (SIGNEDA/B taken as 1), the A/B input and the output
#: registers on CLK0 loading while CE0 is high, no reset.
ECP5_MULT18X18D_MODEL = r"""
module MULT18X18D #(
    parameter REG_INPUTA_CLK = "NONE", parameter REG_INPUTB_CLK = "NONE",
    parameter REG_INPUTC_CLK = "NONE", parameter REG_PIPELINE_CLK = "NONE",
    parameter REG_OUTPUT_CLK = "NONE", parameter GSR = "ENABLED",
    parameter RESETMODE = "SYNC"
) (
    input A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17,
    input B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17,
    input C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14, C15, C16, C17,
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0,
    output P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17,
    output P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31, P32, P33,
    output P34, P35
);
    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
    reg [17:0] a_r, b_r;
    reg [35:0] p_r;
    always @(posedge CLK0) if (CE0) begin a_r <= a; b_r <= b; end
    wire [17:0] a_i = (REG_INPUTA_CLK == "NONE") ? a : a_r;
    wire [17:0] b_i = (REG_INPUTB_CLK == "NONE") ? b : b_r;
    wire [35:0] prod = $signed(a_i) * $signed(b_i);
    always @(posedge CLK0) if (CE0) p_r <= prod;
    wire [35:0] p = (REG_OUTPUT_CLK == "NONE") ? prod : p_r;
    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20,
            P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2,
            P1, P0} = p;
endmodule
"""
