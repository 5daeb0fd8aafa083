"""Block-RAM wrappers on `amaranth.lib.memory.Memory` with the reference design's timing.

Why wrappers and not bare `Memory` everywhere: the blocks of the accelerator (SMEM banks,
the PE-local partial-sum memories, the SPM) rely on *exact* read timing and on what a read
returns when the same address is written in the same cycle. The reference design gets that
from Xilinx language templates (``BRAM_SDP_1C``, ``BRAM_SP_NC``, reference §3.4); here the
same contract is written once, documented cycle by cycle, tested against a Python model and
checked to map onto real block RAM (ECP5 ``DP16KD``, Xilinx 7-series ``RAMB18E1/RAMB36E1``)
with Yosys. Every user then gets the same, portable behaviour.

Timing notation: "edge k" is the k-th rising clock edge; "cycle k" is the clock period that
follows edge k-1 and ends at edge k. Inputs are sampled at the end of their cycle (at the
edge); registered outputs change just after the edge. In an async testbench this is
``ctx.set(inputs); await ctx.tick(); ctx.get(outputs)``.

The domain reset does not touch the read data register of either wrapper (as in the
reference templates; it keeps the block RAM's read latch free of reset logic); after
power-up it reads 0. The extra output register of `SimpleDualPortRAM` at ``read_latency=2``
has its own synchronous clear (``r_reg_rst``), as the reference's ``rstb``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["SimpleDualPortRAM", "SinglePortRAM"]


def _check_int(owner: str, name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{owner}.{name}: must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}.{name}: must be at least {minimum}, got {value}")
    return value


def _granularity(owner: str, width: int, byte_enable) -> int | None:
    """``False``/``None`` -> no lane enables; ``True`` -> 8-bit lanes; int -> lanes of that width."""
    if byte_enable is None or byte_enable is False:
        return None
    gran = 8 if byte_enable is True else byte_enable
    if isinstance(gran, bool) or not isinstance(gran, int) or gran < 1:
        raise ValueError(f"{owner}.byte_enable: must be False, True (8-bit lanes) or a positive "
                         f"lane width in bits, got {byte_enable!r}")
    if width % gran:
        raise ValueError(f"{owner}.byte_enable: the lane width {gran} must divide width={width}")
    if gran == width:
        return None     # a single lane is a plain write enable
    return gran


class _Validated:
    """Marks an object whose constructor rejected its parameters as used, so that Amaranth
    does not add an "created but never used" warning to the ValueError."""

    def __init__(self, obj):
        self.obj = obj

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.obj._MustUse__used = True
        return False


def _check_init(owner: str, init, width: int, depth: int):
    if init is None:
        return []
    init = list(init)
    if len(init) > depth:
        raise ValueError(f"{owner}.init: {len(init)} values do not fit in depth={depth}")
    for i, v in enumerate(init):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < (1 << width):
            raise ValueError(f"{owner}.init: value {v!r} at address {i} is not an unsigned "
                             f"{width}-bit integer")
    return init


class SimpleDualPortRAM(wiring.Component):
    """One write port and one read port on one clock (the reference's ``BRAM_SDP_1C``).

    Why: the PE-local accumulator memories and the descriptor memories are written by one
    side of the pipeline and read by another at the same time; a simple dual-port block RAM
    gives both a port each with no arbitration.

    Parameters
    ----------
    width, depth : int
        Word width in bits and number of words. The address ports are
        ``ceil_log2(depth)`` bits wide (at least 1); an address ``>= depth`` is out of range
        (writes to it are dropped, reads return an unspecified word).
    read_latency : 1 or 2
        1 = synchronous read (``LOW_LATENCY``); 2 = plus an output register with its own
        enable and clear (``HIGH_PERFORMANCE``).
    byte_enable : False, True or int
        ``True`` = one write enable per 8-bit lane, an int = lanes of that many bits
        (must divide ``width``); ``w_en`` is then ``width // lane`` bits wide, bit ``i``
        writing bits ``[i*lane, (i+1)*lane)``.
    init : iterable of int, optional
        Initial contents (power-on; the reset does not reload them); missing words are 0.

    Ports
    -----
    ``w_addr, w_data, w_en`` (in): written at edge k when ``w_en`` (any lane) is high in cycle k.
    ``r_addr, r_en`` (in), ``r_data`` (out), and at ``read_latency=2`` also
    ``r_reg_en, r_reg_rst`` (in).

    Timing (exact)
    --------------
    * ``read_latency=1``: if ``r_en`` is high in cycle k, then after edge k ``r_data`` shows
      ``mem[r_addr]`` *as it was before edge k* (read-first: a write to the same address at
      the same edge is **not** seen; it is seen by a read one cycle later). If ``r_en`` is
      low, ``r_data`` holds its value.
    * ``read_latency=2``: the first stage behaves as above (internal register ``ram_data``).
      At edge k, the output register loads 0 if ``r_reg_rst`` is high, else ``ram_data`` if
      ``r_reg_en`` is high, else holds. With ``r_en = r_reg_en = 1`` every cycle,
      ``r_data`` after edge k+1 is the word addressed in cycle k (old data on a collision at
      edge k). ``r_reg_rst`` clears only this register, never the array (as ``rstb``).

    One read and one write per cycle, sustained: full throughput at either latency.

    Mapping (Yosys 0.70, checked by the tests)
    ------------------------------------------
    * ECP5: one ``DP16KD`` per 1024x16 (18 Kbit). The DP16KD has no read-first mode
      *between* its two ports, so Yosys emulates the exact read-first collision rule in
      fabric (it delays the write one cycle and bypasses it to a colliding read): about
      30-40 LUT4 and 42-44 FF per memory at 16 bits, on the read data path. Xilinx 7-series
      (``RAMB18E1`` in SDP mode) does read-first natively: no extra logic.
    * ``read_latency=2``: Yosys does not absorb the output register into the block RAM's
      optional output register on either family (the ECP5 ``DP16KD`` library has no
      ``OUTREG`` mode, the Xilinx one no ``DOB_REG``): it stays ``width`` fabric flip-flops
      (with CE/SR), which nextpnr places next to the block. It still shortens the path
      behind the RAM; the tests pin that it costs no more than ``width`` FFs and no
      extra block RAM.
    """

    def __init__(self, width: int, depth: int, *, read_latency: int = 1, byte_enable=False,
                 init=None):
        owner = type(self).__name__
        with _Validated(self):
            self.width = _check_int(owner, "width", width, 1)
            self.depth = _check_int(owner, "depth", depth, 1)
            if read_latency not in (1, 2) or isinstance(read_latency, bool):
                raise ValueError(f"{owner}.read_latency: must be 1 or 2, got {read_latency!r}")
            self.read_latency = read_latency
            self.granularity = _granularity(owner, self.width, byte_enable)
            self.init = _check_init(owner, init, self.width, self.depth)
        self.addr_bits = max(1, ceil_log2(self.depth))
        self.lanes = 1 if self.granularity is None else self.width // self.granularity
        members = {
            "w_addr": In(self.addr_bits),
            "w_data": In(self.width),
            "w_en": In(self.lanes),
            "r_addr": In(self.addr_bits),
            "r_en": In(1),
            "r_data": Out(self.width),
        }
        if self.read_latency == 2:
            members["r_reg_en"] = In(1)
            members["r_reg_rst"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=unsigned(self.width), depth=self.depth,
                                        init=self.init)
        wr = mem.write_port(granularity=self.granularity)
        rd = mem.read_port(domain="sync")      # not transparent: read-first
        m.d.comb += [
            wr.addr.eq(self.w_addr),
            wr.data.eq(self.w_data),
            wr.en.eq(self.w_en),
            rd.addr.eq(self.r_addr),
            rd.en.eq(self.r_en),
        ]
        if self.read_latency == 1:
            m.d.comb += self.r_data.eq(rd.data)
        else:
            out = Signal(self.width)
            with m.If(self.r_reg_rst):
                m.d.sync += out.eq(0)
            with m.Elif(self.r_reg_en):
                m.d.sync += out.eq(rd.data)
            m.d.comb += self.r_data.eq(out)
        return m


class SinglePortRAM(wiring.Component):
    """One address port shared by reads and writes, "no change" read mode (``BRAM_SP_NC``).

    Why: each SMEM bank lane is a single-port RAM (the arbiter grants one access per bank
    per cycle), which is the densest and most portable block-RAM mode.

    Parameters: ``width``, ``depth``, ``byte_enable``, ``init`` as `SimpleDualPortRAM`.

    Ports: ``addr, en, we, w_data`` (in), ``r_data`` (out); ``we`` has one bit per lane
    with byte enables.

    Timing (exact), at edge k for the inputs of cycle k:

    * ``en`` high, ``we`` all zero: read; after edge k ``r_data = mem[addr]``.
    * ``en`` high, any ``we`` bit high: write the enabled lanes of ``w_data``;
      ``r_data`` **does not change** (it keeps the last read value: "no change" mode, as the
      reference's ``BRAM_SP_NC``). Read the written word with a read in a later cycle.
    * ``en`` low: nothing happens (``we`` is ignored), ``r_data`` holds.

    "No change" was chosen over read-first because it is what the SMEM arbiter of the
    reference expects and because it saves the read power of write cycles; every family
    maps it to block RAM (the read enable becomes the output clock enable).
    One access per cycle, sustained. Maps to block RAM with no extra logic on ECP5
    (``DP16KD`` ``WRITEMODE=NORMAL``) and Xilinx 7-series.
    """

    def __init__(self, width: int, depth: int, *, byte_enable=False, init=None):
        owner = type(self).__name__
        with _Validated(self):
            self.width = _check_int(owner, "width", width, 1)
            self.depth = _check_int(owner, "depth", depth, 1)
            self.granularity = _granularity(owner, self.width, byte_enable)
            self.init = _check_init(owner, init, self.width, self.depth)
        self.addr_bits = max(1, ceil_log2(self.depth))
        self.lanes = 1 if self.granularity is None else self.width // self.granularity
        super().__init__({
            "addr": In(self.addr_bits),
            "en": In(1),
            "we": In(self.lanes),
            "w_data": In(self.width),
            "r_data": Out(self.width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=unsigned(self.width), depth=self.depth,
                                        init=self.init)
        wr = mem.write_port(granularity=self.granularity)
        rd = mem.read_port(domain="sync")
        writing = self.we.any()
        m.d.comb += [
            wr.addr.eq(self.addr),
            wr.data.eq(self.w_data),
            wr.en.eq(self.we & self.en.replicate(self.lanes)),
            rd.addr.eq(self.addr),
            rd.en.eq(self.en & ~writing),
            self.r_data.eq(rd.data),
        ]
        return m
