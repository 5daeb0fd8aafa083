"""ECP5 block RAMs (DP16KD) with their output register, for synthesis on ECP5.

Why: Yosys's ECP5 block RAM library has no output-register mode, so every block RAM it
infers drives the fabric straight from its read latch, 4.26 ns after the clock
(measured with nextpnr-ecp5 0.11, speed 8): two thirds of a 150 MHz cycle before any
routing. With ``REGMODE = "OUTREG"`` the block's own output register takes that read
one cycle later and the path out starts at a register (a one-BRAM design then runs at
477 MHz, limited by a counter). A memory that already puts a register right behind its
read (the SMEM banks' ``bank_q``) can move that register into the block for free.

`ecp5_lane_ram` builds one simple dual-port memory of ``lanes`` words per row out of
DP16KD blocks: write port A (one write enable per lane), read port B with the output
register, latency 2 (address at edge k, data after edge k + 1). Each block holds bits
of a single lane (a lane of W bits is split into ``ceil(W / width)`` blocks), so a
lane's write enable is the block's ``WEA``. The block width is the widest whose depth
(16384 / 8192 / 4096 / 2048 / 1024 rows for 1 / 2 / 4 / 9 / 18 bits) holds the rows;
`ecp5_lane_ram_blocks` says how many blocks that takes, or None above 16384 rows.
`ecp5_rom` builds a read-only table (the activation ROMs) read through both ports, each
with its output register, its contents in the INITVAL parameters laid out as Yosys's own
mapping lays them (a test compares the two).

Measured (nextpnr-ecp5 0.11, 85F speed 8, seed 1, 16 PEs with small memories:
``max_n=64, max_m=64, smem_depth=1024, spm_depth=64``): 108.8 MHz and 3,012 endpoints
later than 6.67 ns with the SMEM on these blocks, against 104.87 MHz and 3,325 with
Yosys's; 101 DP16KD against 85 (512-row banks take one 18-bit block per 16-bit lane).
One seed: the seed-to-seed spread is about 9 %.

What a DP16KD does not give: a read of the row that the other port writes at the same
edge is undefined. The caller must keep such collisions away from the data it uses (the
SMEM delays its writes by one cycle and bypasses them; see `reneta_hw.mem.smem`).

Only elaboration for ECP5 uses this (`targets_ecp5(platform, "bram")`); simulation and
the emitted Verilog use `amaranth.lib.memory.Memory`. ``tests/test_ecp5_bram.py`` runs
the ECP5 elaboration under Verilator against the generic one, through a behavioural model
of the block (`ECP5_DP16KD_MODEL`) whose undefined collision reads return garbage.
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Signal, Value

from reneta_hw.numeric.ecp5_dsp import targets_ecp5

__all__ = ["uses_ecp5_bram", "ecp5_lane_ram", "ecp5_lane_ram_blocks", "ecp5_rom",
           "ecp5_rom_blocks", "ecp5_fifo_ram", "ecp5_fifo_ram_blocks", "dp16kd_initvals",
           "ECP5_DP16KD_MODEL"]

#: DP16KD data widths and the rows each holds (ports A and B at the same width)
DP16KD_ROWS = {18: 1024, 9: 2048, 4: 4096, 2: 8192, 1: 16384}
#: address bits of a DP16KD port (ADx13..ADx0); a width's row number sits in the top bits
DP16KD_ADDR_BITS = 14


def uses_ecp5_bram(platform) -> bool:
    """Whether elaboration for ``platform`` should instantiate ECP5 block RAMs."""
    return targets_ecp5(platform, "bram")


def _block_width(depth: int, widths: dict = DP16KD_ROWS) -> int | None:
    """The widest of ``widths`` (width -> rows) whose rows hold ``depth``; None if none."""
    fits = [w for w, rows in widths.items() if rows >= depth]
    return max(fits) if fits else None


def _row_bits(width: int) -> int:
    """Address bits of a row at DP16KD data width ``width``."""
    return (DP16KD_ROWS[width] - 1).bit_length()


def _address_pins(port: str, addr: Value, width: int, byte_enables: bool = False) -> dict:
    """``i_AD<port>13 .. 0`` for row ``addr`` at data width ``width``: the row number in the
    top bits, zeros below it (at 18 bits ADx1/ADx0 are a write's byte enables: both on when
    ``byte_enables``)."""
    row_bits = _row_bits(width)
    low = [Const(int(byte_enables and width == 18 and i < 2), 1)
           for i in range(DP16KD_ADDR_BITS - row_bits)]
    bits = low + [addr[i] if i < len(addr) else Const(0, 1) for i in range(row_bits)]
    pins = {f"i_AD{port}{i}": b for i, b in enumerate(bits)}
    pins.update({f"i_CS{port}{i}": Const(0, 1) for i in range(3)})
    return pins


def _dp16kd_parameters(width: int, regmode_a: str, regmode_b: str) -> dict:
    """Parameters every DP16KD here shares: both ports at ``width``, no chip select, no GSR."""
    return {"p_DATA_WIDTH_A": width, "p_DATA_WIDTH_B": width,
            "p_REGMODE_A": regmode_a, "p_REGMODE_B": regmode_b,
            "p_WRITEMODE_A": "NORMAL", "p_WRITEMODE_B": "NORMAL",
            "p_RESETMODE": "SYNC", "p_ASYNC_RESET_RELEASE": "SYNC",
            "p_CSDECODE_A": "0b000", "p_CSDECODE_B": "0b000", "p_GSR": "DISABLED"}


def ecp5_lane_ram_blocks(depth: int, lanes: int, lane_bits: int) -> int | None:
    """DP16KD blocks `ecp5_lane_ram` uses for this shape; None if ``depth`` is too deep
    for one block per column (the caller then keeps the generic memory)."""
    width = _block_width(depth)
    if width is None:
        return None
    return lanes * -(-lane_bits // width)


def ecp5_lane_ram(m, *, depth: int, lanes: int, lane_bits: int, waddr, wdata, wlanes,
                  raddr, name: str) -> Value:
    """A ``depth`` x ``lanes * lane_bits`` memory on DP16KD blocks; returns the read data.

    Lane ``l`` of a row is ``wdata[l * lane_bits:(l + 1) * lane_bits]``. At each edge lane
    ``l`` of row ``waddr`` is written where ``wlanes[l]`` is high, and row ``raddr`` is
    read; its data is on the returned value after the next edge (the output register
    loads every cycle). The contents start as zero, and so does the read data.
    """
    width = _block_width(depth)
    if width is None:
        raise ValueError(f"ecp5_lane_ram {name}: {depth} rows do not fit one DP16KD column "
                         f"(at most {max(DP16KD_ROWS.values())})")
    waddr, wdata, wlanes, raddr = (Value.cast(v) for v in (waddr, wdata, wlanes, raddr))
    if len(wdata) != lanes * lane_bits or len(wlanes) != lanes:
        raise ValueError(f"ecp5_lane_ram {name}: wdata has {len(wdata)} bits and wlanes "
                         f"{len(wlanes)}; expected {lanes * lane_bits} and {lanes}")
    row_bits = _row_bits(width)
    for what, a in (("waddr", waddr), ("raddr", raddr)):
        if len(a) > row_bits:
            raise ValueError(f"ecp5_lane_ram {name}: {what} has {len(a)} bits; a "
                             f"{width}-bit DP16KD has {row_bits}")
    rdata = Signal(lanes * lane_bits, name=f"{name}_rdata")
    chunks = -(-lane_bits // width)
    for lane in range(lanes):
        for c in range(chunks):
            lo = lane * lane_bits + c * width
            n = min(width, (lane + 1) * lane_bits - lo)
            do = Signal(18, name=f"{name}_l{lane}c{c}_do")
            m.d.comb += rdata[lo:lo + n].eq(do[:n])
            ports = {
                **_dp16kd_parameters(width, "NOREG", "OUTREG"),
                **_address_pins("A", waddr, width, byte_enables=True),
                **_address_pins("B", raddr, width),
                "i_CLKA": ClockSignal("sync"), "i_CEA": Const(1, 1),
                "i_OCEA": Const(1, 1), "i_RSTA": Const(0, 1), "i_WEA": wlanes[lane],
                "i_CLKB": ClockSignal("sync"), "i_CEB": Const(1, 1),
                "i_OCEB": Const(1, 1), "i_RSTB": Const(0, 1), "i_WEB": Const(0, 1),
            }
            for i in range(18):
                ports[f"i_DIA{i}"] = wdata[lo + i] if i < n else Const(0, 1)
                ports[f"i_DIB{i}"] = Const(0, 1)
                ports[f"o_DOB{i}"] = do[i]
            m.submodules[f"{name}_l{lane}c{c}"] = Instance("DP16KD", **ports)
    return rdata


def ecp5_fifo_ram_blocks(depth: int, width: int) -> int | None:
    """DP16KD blocks `ecp5_fifo_ram` uses for a ``depth`` x ``width`` memory; None if it
    is deeper than one block column holds."""
    bw = _block_width(depth, FIFO_WIDTHS)
    return -(-width // bw) if bw else None


#: DP16KD widths `ecp5_fifo_ram` uses, with their rows: the 36-bit pseudo dual port mode,
#: then the true dual port ones
FIFO_WIDTHS = {36: 512, **DP16KD_ROWS}


def ecp5_fifo_ram(m, *, depth: int, width: int, waddr, wdata, wen, raddr,
                  name: str) -> Value:
    """A ``depth`` x ``width`` memory on DP16KD blocks read through both of its registers;
    returns the read data.

    Row ``waddr`` is written with ``wdata`` at an edge where ``wen`` is high; row ``raddr``
    is read at every edge and its data is on the returned value after the next edge (the
    read latch and the output register load every cycle: a read of the row written at the
    same edge is undefined, the caller discards it). The data start as zero. Unlike a
    `Memory` read port (whose read-old-data collision Yosys emulates with a delayed write
    and a bypass multiplexer behind the block), nothing but the block lies on the path.
    """
    bw = _block_width(depth, FIFO_WIDTHS)
    if bw is None:
        raise ValueError(f"ecp5_fifo_ram {name}: {depth} rows do not fit one DP16KD column "
                         f"(at most {max(FIFO_WIDTHS.values())})")
    waddr, wdata, wen, raddr = (Value.cast(v) for v in (waddr, wdata, wen, raddr))
    if len(wdata) != width:
        raise ValueError(f"ecp5_fifo_ram {name}: wdata has {len(wdata)} bits, not {width}")
    row_bits = (FIFO_WIDTHS[bw] - 1).bit_length()
    for what, a in (("waddr", waddr), ("raddr", raddr)):
        if len(a) > row_bits:
            raise ValueError(f"ecp5_fifo_ram {name}: {what} has {len(a)} bits; a "
                             f"{bw}-bit DP16KD has {row_bits}")
    if bw != 36:
        # a true dual port mode: the lane RAM of one lane (read latch and output register
        # enabled every cycle as here)
        return ecp5_lane_ram(m, depth=depth, lanes=1, lane_bits=width, waddr=waddr,
                             wdata=wdata, wlanes=wen, raddr=raddr, name=name)
    # the 36-bit pseudo dual port mode: port A writes all four bytes (ADA3..ADA0) while
    # enabled, port B reads
    rdata = Signal(width, name=f"{name}_rdata")
    low = DP16KD_ADDR_BITS - row_bits
    for c in range(-(-width // bw)):
        lo, n = c * bw, min(bw, width - c * bw)
        do = Signal(36, name=f"{name}_c{c}_do")
        m.d.comb += rdata[lo:lo + n].eq(do[:n])
        ports = {**_dp16kd_parameters(bw, "OUTREG", "OUTREG"),
                 "i_CLKA": ClockSignal("sync"), "i_CLKB": ClockSignal("sync"),
                 "i_CEA": wen, "i_WEA": Const(1, 1), "i_CEB": Const(1, 1),
                 "i_OCEA": Const(1, 1), "i_OCEB": Const(1, 1),
                 "i_RSTA": Const(0, 1), "i_RSTB": Const(0, 1), "i_WEB": Const(0, 1)}
        for i in range(DP16KD_ADDR_BITS):
            ports[f"i_ADA{i}"] = (Const(1, 1) if i < 4 else Const(0, 1)) if i < low \
                else (waddr[i - low] if i - low < len(waddr) else Const(0, 1))
            ports[f"i_ADB{i}"] = Const(0, 1) if i < low \
                else (raddr[i - low] if i - low < len(raddr) else Const(0, 1))
        ports.update({f"i_CS{p}{i}": Const(0, 1) for p in "AB" for i in range(3)})
        for i in range(18):
            ports[f"i_DIA{i}"] = wdata[lo + i] if i < n else Const(0, 1)
            ports[f"i_DIB{i}"] = wdata[lo + 18 + i] if 18 + i < n else Const(0, 1)
            ports[f"o_DOA{i}"] = do[i]
            ports[f"o_DOB{i}"] = do[18 + i]
        m.submodules[f"{name}_c{c}"] = Instance("DP16KD", **ports)
    return rdata


#: DP16KD widths `ecp5_rom` uses, with their rows (the INITVAL layout is checked against
#: Yosys's mapping for these two; the narrower ones pack rows differently)
ROM_WIDTHS = {18: 1024, 9: 2048}


def ecp5_rom_blocks(depth: int, width: int) -> int | None:
    """DP16KD blocks `ecp5_rom` uses for a ``depth`` x ``width`` table (two read ports
    share them); None if the table is deeper than 2048 rows."""
    bw = _block_width(depth, ROM_WIDTHS)
    return -(-width // bw) if bw else None


def dp16kd_initvals(rows: list, width: int) -> dict:
    """``INITVAL_00`` .. ``INITVAL_3F`` of a block holding ``rows`` (ints below
    ``2 ** width``) at data width ``width`` (18 or 9). The block's 16 Kibit are 1024 words
    of 18 bits (a 9-bit row ``r`` is the half ``r % 2`` of word ``r // 2``); each INITVAL
    holds 16 words in 20-bit slots, as Yosys's ``brams_map_16kd.v`` lays them out."""
    per_word = 18 // width
    words = [0] * 1024
    for r, v in enumerate(rows):
        words[r // per_word] |= v << (width * (r % per_word))
    return {f"INITVAL_{k:02X}": sum(words[k * 16 + i] << (20 * i) for i in range(16))
            for k in range(64)}


def ecp5_rom(m, *, init: list, width: int, addrs: list, en, name: str) -> list:
    """A ``len(init)`` x ``width`` read-only table on DP16KD blocks read through up to two
    ports, each with the block's output register; returns each port's data.

    Timing equals a `Memory` read port with enable ``en`` followed by a register loaded
    on ``en``: the address is taken at an edge where ``en`` is high and its entry is on the
    data after the next such edge (both the read latch and the output register hold while
    ``en`` is low). The data start as zero.
    """
    depth = len(init)
    bw = _block_width(depth, ROM_WIDTHS)
    if bw is None:
        raise ValueError(f"ecp5_rom {name}: {depth} rows do not fit one DP16KD column at "
                         f"{min(ROM_WIDTHS)} bits or more (at most {max(ROM_WIDTHS.values())})")
    if not 1 <= len(addrs) <= 2:
        raise ValueError(f"ecp5_rom {name}: 1 or 2 read ports, got {len(addrs)}")
    if any(not 0 <= v < (1 << width) for v in init):
        raise ValueError(f"ecp5_rom {name}: an entry does not fit {width} bits")
    row_bits = _row_bits(bw)
    addrs = [Value.cast(a) for a in addrs]
    for a in addrs:
        if len(a) > row_bits:
            raise ValueError(f"ecp5_rom {name}: an address has {len(a)} bits; a {bw}-bit "
                             f"DP16KD has {row_bits}")
    en = Value.cast(en)
    datas = [Signal(width, name=f"{name}_data{k}") for k in range(len(addrs))]
    for c in range(-(-width // bw)):
        lo, n = c * bw, min(bw, width - c * bw)
        rows = [(v >> lo) & ((1 << n) - 1) for v in init]
        ports = {f"p_{k}": Const(v, 320) for k, v in dp16kd_initvals(rows, bw).items()}
        ports.update(_dp16kd_parameters(bw, "OUTREG", "OUTREG"))
        for k, port in enumerate("AB"):
            do = Signal(18, name=f"{name}_c{c}_do{port}")
            if k < len(addrs):
                m.d.comb += datas[k][lo:lo + n].eq(do[:n])
            ports.update(_address_pins(port, addrs[k] if k < len(addrs) else Const(0, 1), bw))
            ports.update({f"i_CLK{port}": ClockSignal("sync"), f"i_CE{port}": en,
                          f"i_OCE{port}": en, f"i_RST{port}": Const(0, 1),
                          f"i_WE{port}": Const(0, 1)})
            for i in range(18):
                ports[f"i_DI{port}{i}"] = Const(0, 1)
                ports[f"o_DO{port}{i}"] = do[i]
        m.submodules[f"{name}_c{c}"] = Instance("DP16KD", **ports)
    return datas


#: A behavioural Verilog model of the DP16KD features `ecp5_lane_ram`, `ecp5_rom` and
#: `ecp5_fifo_ram` use, for the tests that simulate the ECP5 elaboration (Yosys ships only
#: a black box of the block): equal widths on both ports (1, 2, 4, 9, 18; the row number in
#: the top address bits, at 18 bits ADx1/ADx0 the two byte enables of a write), the 36-bit
#: pseudo dual port mode (port A writes DIB:DIA under the byte enables ADA3..ADA0, port B
#: reads onto DOB:DOA), the INITVAL contents (at 18 and 9 bits),
#: port A writes, both ports read into their latch while CEx is high, and with
#: REGMODE_x = "OUTREG" the output register takes the latch while OCEx is high. A read of
#: the row port A writes at the same edge is undefined in the block; the model returns the
#: inverted old row then, so a design that relies on it fails.
ECP5_DP16KD_MODEL = r"""
module DP16KD #(
    parameter DATA_WIDTH_A = 18, parameter DATA_WIDTH_B = 18,
    parameter REGMODE_A = "NOREG", parameter REGMODE_B = "NOREG",
    parameter RESETMODE = "SYNC", parameter ASYNC_RESET_RELEASE = "SYNC",
    parameter CSDECODE_A = "0b000", parameter CSDECODE_B = "0b000",
    parameter WRITEMODE_A = "NORMAL", parameter WRITEMODE_B = "NORMAL",
    parameter GSR = "ENABLED",
    INITVAL_PARAMETERS
) (
    input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6,
    input DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
    input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
    input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
    output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6,
    output DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
    input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6,
    input DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
    input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
    input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
    output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6,
    output DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
    localparam W = DATA_WIDTH_A;
    localparam SHIFT = (W == 36) ? 5 : (W == 18) ? 4 : (W == 9) ? 3 : (W == 4) ? 2 :
                       (W == 2) ? 1 : 0;
    localparam ROWS = 16384 >> SHIFT;
    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3,
                       ADA2, ADA1, ADA0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3,
                       ADB2, ADB1, ADB0};
    wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8,
                       DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8,
                       DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
    wire [13 - SHIFT:0] row_a = ada[13:SHIFT];
    wire [13 - SHIFT:0] row_b = adb[13:SHIFT];
    // a 36-bit row (DIB:DIA, read on DOB:DOA) is written by port A and read by port B
    // (pseudo dual port); the byte enables of an 18-bit write are ADA1/ADA0, of a 36-bit
    // one ADA3..ADA0
    wire [35:0] wdat = (W == 36) ? {dib, dia} : {18'h0, dia};
    wire [35:0] be = (W == 36) ? {{9{ADA3}}, {9{ADA2}}, {9{ADA1}}, {9{ADA0}}} :
                     (W == 18) ? {18'h0, {9{ADA1}}, {9{ADA0}}} : 36'hfffffffff;
    wire [35:0] wmask = be & ((36'h1 << W) - 36'h1);
    reg [35:0] mem [0:ROWS - 1];
    reg [35:0] latch_a, out_a, latch_b, out_b;
    reg [319:0] initval [0:63];
    integer i;
    initial begin
INITVAL_LOADS
        // 1024 words of 18 bits, 16 per INITVAL; a 9-bit row is half a word
        for (i = 0; i < ROWS; i = i + 1)
            if (W == 18) mem[i] = {18'h0, initval[i / 16][(i % 16) * 20 +: 18]};
            else if (W == 9)
                mem[i] = {27'h0, initval[i / 32][((i / 2) % 16) * 20 + 9 * (i % 2) +: 9]};
            else mem[i] = 36'h0;
        latch_a = 36'h0;
        out_a = 36'h0;
        latch_b = 36'h0;
        out_b = 36'h0;
    end
    always @(posedge CLKA) begin
        if (CEA) latch_a <= mem[row_a] & ((36'h1 << W) - 36'h1);
        if (RSTA) out_a <= 36'h0;
        else if (OCEA) out_a <= latch_a;
    end
    always @(posedge CLKB) begin
        if (CEB) begin
            if (CEA && WEA && row_a == row_b)
                latch_b <= ~mem[row_b] & ((36'h1 << W) - 36'h1);   // undefined: garbage
            else
                latch_b <= mem[row_b] & ((36'h1 << W) - 36'h1);
        end
        if (RSTB) out_b <= 36'h0;
        else if (OCEB) out_b <= latch_b;
    end
    always @(posedge CLKA)
        if (CEA && WEA) mem[row_a] <= (mem[row_a] & ~wmask) | (wdat & wmask);
    wire [35:0] dob = (REGMODE_B == "OUTREG") ? out_b : latch_b;
    wire [35:0] doa = (REGMODE_A == "OUTREG") ? out_a : latch_a;
    // at 36 bits port B's read comes out on both: its low half on DOA
    wire [17:0] doa_pins = (W == 36) ? dob[17:0] : doa[17:0];
    wire [17:0] dob_pins = (W == 36) ? dob[35:18] : dob[17:0];
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6,
            DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = dob_pins;
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6,
            DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = doa_pins;
endmodule
""".replace("INITVAL_PARAMETERS", ",\n    ".join(
    f"parameter [319:0] INITVAL_{k:02X} = 320'h0" for k in range(64))).replace(
    "INITVAL_LOADS", "\n".join(f"        initval[{k}] = INITVAL_{k:02X};" for k in range(64)))
