"""`Reneta`: the accelerator's top level: AXI4-Lite control slave, controller, datapath core.

Why: a host (CPU, testbench, harness) needs one documented way to load on-chip memories,
queue a program, run it, learn how it ended and read what it cost; the DRAM side is a
plain AXI4 master. Everything below is generated from one `AcceleratorConfig`.

Ports: ``ctrl``: In(`AxiLiteSignature`(12-bit address, 32-bit data)); ``dram``:
Out(`Axi4Signature`(cfg.axi_data_width, cfg.axi_addr_width, cfg.axi_id_width)) (the core's);
``irq``: Out(1) = ``|(IRQ_STATUS & IRQ_ENABLE)``.

Register map (byte offsets; 32-bit words; multi-word registers low word first; ``W`` =
`reneta_hw.isa.words_per_instruction`; see also ``docs/registers.md``):

=======  ==============  ======  ===========================================================
offset   name            access  meaning
=======  ==============  ======  ===========================================================
0x000    ID              ro      0x524E5441 ("RNTA")
0x004    VERSION         ro      major << 16 | minor (``VERSION``)
0x008    CONFIG_HASH     ro      first 8 hex digits of ``cfg.content_hash()``
0x00C    CAPS            ro      [7:0] num_pe, [15:8] word bits, [19:16] W, [31:20] queue depth
0x010    CTRL            pulse   bit0 START (also resumes), bit1 RESUME, bit2 CLEAR_COUNTERS,
                                 bit3 CLEAR_ERROR (clears the error and drops the queue),
                                 bit4 FETCH (queue PROG_COUNT instructions read from DRAM)
0x014    IRQ_ENABLE      rw      bit0 done, bit1 paused, bit2 error
0x018    IRQ_STATUS      w1c     bit0 done, bit1 paused, bit2 error (set by hardware)
0x01C    STATUS          ro      bit0 running, bit1 paused, bit2 done, bit3 error, bit4 core
                                 idle, bit5 queue full, bit6 fetching, [23:8] queue level,
                                 [26:24] state
0x020    ERROR           ro      [3:0] rule of the illegal instruction (`ctrl.checker.RULES`,
                                 0 = none), [7:4] core error code, bit8 error from the core
0x024    ERROR_INDEX     ro      index (since START) of the offending instruction
0x028    INSTR_COUNT     rw      0: a run ends when the queue is empty; N: after N instructions
0x02C    ISSUED          ro      instructions consumed since START
0x030    PROG_ADDR       rw      DRAM byte address of a program (2 words if the AXI address
                                 is wider than 32 bits; `ctrl.fetch.program_slot_bytes` aligned)
0x038    PROG_COUNT      rw      [15:0] instructions FETCH reads from PROG_ADDR
0x040    INSTR           push    the instruction, W words; writing the last word queues it
                                 (held back while the queue and the 2-entry push buffer
                                 are full)
0x0C0    SPM_ADDR        rw      SPM address of the host window
0x0C8    SPM_WDATA       pulse   2 words: descriptor bits; writing the high word writes SPM
0x0D0    SPM_RDATA       ro      2 words: SPM[SPM_ADDR] (valid 2 cycles after SPM_ADDR is set)
0x0E0    SMEM_ADDR       rw      SMEM row of the host window
0x0E8    SMEM_MASK       rw      2 words: lanes written by SMEM_WDATA (init all ones)
0x100    counters        ro      64-bit each: CYCLES 0x100, BUSY 0x108, MAC_BEATS 0x110,
                                 STALL_DRAM 0x118, STALL_SMEM 0x120, STALL_HAZARD 0x128,
                                 STALL_OUT 0x130, RETIRED 0x138
0x400    SMEM_WDATA      pulse   one row (num_pe words, lane 0 in the low bits of 0x400);
                                 writing its last word writes SMEM[SMEM_ADDR] (masked)
0x800    SMEM_RDATA      ro      SMEM[SMEM_ADDR] (a read waits until it shows the new row)
=======  ==============  ======  ===========================================================

The SPM/SMEM windows work while the machine is not running (the core ignores host access
while busy). To read back what was just written through a window, write its ADDR register
(again) before reading RDATA: RDATA follows the memory 2 cycles after an ADDR write, but a
window write reaches the memory only 2 cycles after its own write response. Unmapped addresses answer SLVERR. Counters count while running; read them
when not running for a coherent 64-bit value.

Programs in DRAM: the `reneta_hw.ctrl.fetch.InstructionFetcher` reads them through the same
AXI4 master as the core (`reneta_hw.bus.axi_read_mux.AxiReadMux`: the fetcher's reads carry
ARID 1, the core's ARID 0) and queues them exactly like INSTR writes (do not push over
AXI4-Lite while STATUS.fetching). A fetch read error stops the machine like a core bus error
(ERROR: from-core bit and code 2).

The core defaults to `reneta_hw.core.RenetaCore`; ``core=`` passes another component with the
same ports (`reneta_hw.ctrl.stub_core.StubCore` in tests).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .bus.axi import Axi4Signature, AxiLiteSignature
from .bus.axi_lite import AxiLiteRegisters, Register
from .config import AcceleratorConfig
from .bus.axi_read_mux import AxiReadMux
from .ctrl.controller import COUNTERS, Controller
from .ctrl.fetch import InstructionFetcher

#: `reneta_hw.core.ErrorCode.BUS` (a fetch read error is reported with the core's bus code)
_BUS_ERROR = 2
from .isa import descriptor_layout, instruction_layout, words_per_instruction

__all__ = ["Reneta", "register_map", "REG", "ID_VALUE", "VERSION", "CTRL_BITS", "IRQ_BITS",
           "ADDR_WIDTH", "FETCH_BIT"]

ID_VALUE = 0x524E5441
VERSION = (1 << 16) | 0
ADDR_WIDTH = 12
CTRL_BITS = {"start": 0, "resume": 1, "clear_counters": 2, "clear_error": 3}
FETCH_BIT = 4
IRQ_BITS = {"done": 0, "paused": 1, "error": 2}

#: cycles an AXI4-Lite read of a memory window waits after its address or data changed
WINDOW_SETTLE = 6

#: byte offsets of the registers (multi-word ones: offset of the low word)
REG = {
    "ID": 0x000, "VERSION": 0x004, "CONFIG_HASH": 0x008, "CAPS": 0x00C, "CTRL": 0x010,
    "IRQ_ENABLE": 0x014, "IRQ_STATUS": 0x018, "STATUS": 0x01C, "ERROR": 0x020,
    "ERROR_INDEX": 0x024, "INSTR_COUNT": 0x028, "ISSUED": 0x02C, "PROG_ADDR": 0x030,
    "PROG_COUNT": 0x038, "INSTR": 0x040,
    "SPM_ADDR": 0x0C0, "SPM_WDATA": 0x0C8, "SPM_RDATA": 0x0D0, "SMEM_ADDR": 0x0E0,
    "SMEM_MASK": 0x0E8, "SMEM_WDATA": 0x400, "SMEM_RDATA": 0x800,
}
for _k, _n in enumerate(COUNTERS):
    REG[_n.upper()] = 0x100 + 8 * _k


def register_map(cfg: AcceleratorConfig) -> list:
    """The `Register` list of ``cfg``'s register file (see the module docstring)."""
    ib = instruction_layout(cfg).size
    db = descriptor_layout(cfg).size
    if words_per_instruction(cfg) > 32:
        raise ValueError("register_map: an instruction of more than 32 words does not fit "
                         "the INSTR window")
    if db > 64:
        raise ValueError("register_map: SPM words wider than 64 bits do not fit the window")
    regs = [
        Register("id", REG["ID"], "ro", doc="identification"),
        Register("version", REG["VERSION"], "ro"),
        Register("config_hash", REG["CONFIG_HASH"], "ro"),
        Register("caps", REG["CAPS"], "ro"),
        Register("ctrl", REG["CTRL"], "pulse", width=5),
        Register("irq_enable", REG["IRQ_ENABLE"], "rw", width=3),
        Register("irq_status", REG["IRQ_STATUS"], "w1c", width=3),
        Register("status", REG["STATUS"], "ro"),
        Register("error", REG["ERROR"], "ro", width=9),
        Register("error_index", REG["ERROR_INDEX"], "ro"),
        Register("instr_count", REG["INSTR_COUNT"], "rw"),
        Register("issued", REG["ISSUED"], "ro"),
        Register("prog_addr", REG["PROG_ADDR"], "rw", width=cfg.axi_addr_width),
        Register("prog_count", REG["PROG_COUNT"], "rw", width=16),
        Register("instr", REG["INSTR"], "push", width=ib),
        Register("spm_addr", REG["SPM_ADDR"], "rw", width=cfg.spm_addr_bits),
        Register("spm_wdata", REG["SPM_WDATA"], "pulse", width=max(db, 33)),
        Register("spm_rdata", REG["SPM_RDATA"], "ro", width=db),
        Register("smem_addr", REG["SMEM_ADDR"], "rw", width=cfg.smem_addr_bits),
        Register("smem_mask", REG["SMEM_MASK"], "rw", width=max(cfg.num_pe, 33),
                 init=(1 << cfg.num_pe) - 1),
        Register("smem_wdata", REG["SMEM_WDATA"], "pulse", width=cfg.row_bits),
        Register("smem_rdata", REG["SMEM_RDATA"], "ro", width=cfg.row_bits),
    ]
    for n in COUNTERS:
        regs.append(Register(n, REG[n.upper()], "ro", width=64))
    return regs


class Reneta(wiring.Component):
    """The whole accelerator for ``cfg`` (see the module docstring)."""

    def __init__(self, cfg: AcceleratorConfig, core=None):
        if not isinstance(cfg, AcceleratorConfig):
            self._MustUse__used = True      # no "never used" warning on top of the error
            raise ValueError(f"Reneta.cfg: must be an AcceleratorConfig, got {cfg!r}")
        self.cfg = cfg
        if core is None:
            from .core import RenetaCore
            core = RenetaCore(cfg)
        self.core = core
        self.regs = AxiLiteRegisters(register_map(cfg), addr_width=ADDR_WIDTH, data_width=32)
        self.controller = Controller(cfg)
        self.fetcher = InstructionFetcher(cfg, axi_id=1)
        super().__init__({
            "ctrl": In(AxiLiteSignature(ADDR_WIDTH, 32)),
            "dram": Out(Axi4Signature(cfg.axi_data_width, cfg.axi_addr_width,
                                      cfg.axi_id_width)),
            "irq": Out(1),
        })

    @property
    def smem_memories(self):
        return self.core.smem_memories

    @property
    def spm_memory(self):
        return self.core.spm_memory

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        m.submodules.regs = r = self.regs
        m.submodules.controller = c = self.controller
        m.submodules.core = core = self.core
        wiring.connect(m, wiring.flipped(self.ctrl), r.bus)
        # DRAM: the core's writes straight through; its reads and the fetcher's share AR/R
        m.submodules.fetch = f = self.fetcher
        m.submodules.read_mux = rmux = AxiReadMux(cfg.axi_data_width, cfg.axi_addr_width,
                                                  cfg.axi_id_width, id1=1)
        for ch in ("aw", "w", "b"):
            wiring.connect(m, wiring.flipped(getattr(self.dram, ch)), getattr(core.dram, ch))
        for ch in ("ar", "r"):
            wiring.connect(m, getattr(core.dram, ch), getattr(rmux.s0, ch))
            wiring.connect(m, getattr(f.axi, ch), getattr(rmux.s1, ch))
            wiring.connect(m, wiring.flipped(getattr(self.dram, ch)), getattr(rmux.m, ch))

        # controller <-> register file and fetcher (fetched instructions first)
        m.d.comb += [
            c.push.payload.eq(Mux(f.push.valid, f.push.payload, r.instr.payload)),
            c.push.valid.eq(f.push.valid | r.instr.valid),
            f.push.ready.eq(c.push.ready),
            r.instr.ready.eq(c.push.ready & ~f.push.valid),
            c.instr_count.eq(r.instr_count),
            f.start.eq(r.ctrl_stb & r.ctrl[FETCH_BIT]),
            f.addr.eq(r.prog_addr), f.count.eq(r.prog_count),
        ]
        for name, bit in CTRL_BITS.items():
            m.d.comb += getattr(c, name).eq(r.ctrl_stb & r.ctrl[bit])
        r_id = r.id
        h = int(cfg.content_hash()[:8], 16)
        caps = (cfg.num_pe & 0xFF) | ((cfg.word_bits & 0xFF) << 8) \
            | ((words_per_instruction(cfg) & 0xF) << 16) | ((cfg.instr_queue_depth & 0xFFF) << 20)
        m.d.comb += [
            r_id.eq(ID_VALUE), r.version.eq(VERSION), r.config_hash.eq(h), r.caps.eq(caps),
            r.error.eq(Cat(c.err_rule, c.err_code, c.err_core)),
            r.error_index.eq(c.err_index),
            r.issued.eq(c.issued),
            r.irq_status_set.eq(Cat(c.done_set, c.paused_set, c.error_set)),
            self.irq.eq((r.irq_status & r.irq_enable).any()),
        ]
        # state bits at [26:24]
        st = Signal(32)
        m.d.comb += st.eq(Cat(c.running, c.paused, c.done, c.error, core.idle,
                              c.queue_level == cfg.instr_queue_depth, f.busy, Signal(1)))
        m.d.comb += st[8:24].eq(c.queue_level)
        m.d.comb += st[24:27].eq(c.state)
        m.d.comb += r.status.eq(st)
        for n in COUNTERS:
            m.d.comb += getattr(r, n).eq(getattr(c, n))

        # controller <-> core
        m.d.comb += [
            core.instr.payload.eq(c.core_instr.payload), core.instr.valid.eq(c.core_instr.valid),
            c.core_instr.ready.eq(core.instr.ready),
            c.core_idle.eq(core.idle), c.core_retired.eq(core.retired),
            # a fetch read error is reported as a bus error of the core
            c.core_error.eq(core.error | f.error),
            c.core_error_code.eq(Mux(core.error, core.error_code, _BUS_ERROR)),
            core.error_clear.eq(c.core_error_clear), f.error_clear.eq(c.core_error_clear),
            c.core_events.eq(core.events),
        ]

        # host windows (only while the machine is not running)
        # write enables registered (address and data are register-file flip-flops that stay
        # put until the next AXI write, at least 2 cycles later)
        host_ok = Signal()
        smem_we, spm_we = Signal(), Signal()
        m.d.sync += [host_ok.eq(~c.running & core.idle),
                     smem_we.eq(r.smem_wdata_stb & host_ok), spm_we.eq(r.spm_wdata_stb & host_ok)]
        sh, ph = core.smem_host, core.spm_host
        m.d.comb += [
            sh.addr.eq(r.smem_addr), sh.lane_mask.eq(r.smem_mask[:cfg.num_pe]),
            sh.wdata.eq(r.smem_wdata), sh.we.eq(smem_we),
            sh.re.eq(host_ok),
            ph.addr.eq(r.spm_addr), ph.wdata.eq(r.spm_wdata[:len(ph.wdata)]),
            ph.we.eq(spm_we), ph.re.eq(host_ok),
        ]
        # read data registered once more: the SMEM banks (block RAMs spread over the chip)
        # and the register file's read multiplexer stay in separate cycles
        smem_q = Signal(cfg.row_bits)
        spm_q = Signal(len(ph.rdata))
        m.d.sync += [smem_q.eq(sh.rdata), spm_q.eq(ph.rdata)]
        m.d.comb += [r.smem_rdata.eq(smem_q), r.spm_rdata.eq(spm_q)]
        # a read waits until the windows show the words at their current addresses and
        # contents (the SMEM path takes 5 cycles from an address change to ``smem_q``).
        # The hold is a flip-flop (the 22-bit "moved" compare in front of the read
        # channel's handshake was a path of 10.2 ns on ECP5): it rises one cycle after the
        # address write's response is out, and a read whose address arrives once that
        # response is seen is taken a cycle later still, so only a read sent before the
        # response (which AXI does not order after the write) can see the old window.
        settle = Signal(range(WINDOW_SETTLE + 1))
        last_addr = Signal(len(r.smem_addr) + len(r.spm_addr))
        now_addr = Cat(r.smem_addr, r.spm_addr)
        moved = now_addr != last_addr
        settling = Signal()              # settle != 0
        m.d.sync += last_addr.eq(now_addr)
        with m.If(moved | r.smem_wdata_stb | r.spm_wdata_stb):
            m.d.sync += [settle.eq(WINDOW_SETTLE), settling.eq(1)]
        with m.Elif(settle != 0):
            m.d.sync += [settle.eq(settle - 1), settling.eq(settle != 1)]
        m.d.comb += r.read_hold.eq(settling)
        return m
