"""AXI4-Lite register-file slave, generated from a Python list of register descriptors.

Why: the host controls the accelerator through a handful of registers (start, status, error
flags, DRAM base addresses, performance counters) and feeds it instructions through a queue.
Instead of a hand-written decoder per design, `AxiLiteRegisters` elaborates one from
`Register` descriptors, so the register map lives in one place (Python) and the controller
just connects the ports it gets.

Register kinds (``access``):

=========  ==================================================  ===============================
access     behaviour                                           component ports
=========  ==================================================  ===============================
``rw``     read/write storage, reset to ``init``               ``<name>``: Out(width)
``ro``     read-only, reads the input (writes: SLVERR)         ``<name>``: In(width)
``w1c``    status bits: set by hardware, cleared by writing 1  ``<name>``: Out(width),
           (a set in the same cycle as the clear wins)         ``<name>_set``: In(width)
``pulse``  write strobe: the written value and a one-cycle     ``<name>``: Out(width),
           strobe (reads return the last value)                ``<name>_stb``: Out(1)
``push``   queue push: a write sends the value out as a        ``<name>``: Out(stream of
           stream beat (reads return the staged value)         width bits)
=========  ==================================================  ===============================

A register wider than the bus (``width > data_width``) takes consecutive words from
``offset`` (low word first). For ``push`` and ``pulse`` registers the lower words are staged
and the write of the *highest* word fires the push or strobe with all words; so a 100-bit
instruction is queued with 4 writes, the last one to ``offset + 12``. Staged words keep their
values, so fields that do not change need not be rewritten.

A push leaves through a two-entry buffer (its stream's ``valid`` and ``payload`` are
flip-flops), so the stream sees the value one cycle after the write executes.
Full queue: once that buffer is full, a push write waits for room. The write response (B) is
held back meanwhile, and no other write is taken, so the host sees a slow write, not a lost
one. Reads are served independently meanwhile (status can be polled while a push waits).

Protocol: AW and W are taken in any order (each into its own two-entry buffer) and the write
executes when both are held and the B register is free; ``WSTRB`` is honoured byte by byte.
Reads and writes proceed independently; each path takes one transaction per cycle when the
master keeps VALID and BREADY/RREADY high. Unmapped addresses answer SLVERR (reads return
0), as do writes to ``ro`` registers. Address bits below the bus width are ignored (the word
containing the address is accessed).

Latency: ``RVALID`` comes 3 cycles after the AR handshake (address held, the addressed
group of eight words sampled, then the word registered); the registers are read at the
sampling edge; ``BVALID`` comes 2 cycles after the later of the AW and W handshakes (for a push:
once its buffer has room); ``rw``/``pulse`` outputs change at the edge that raises BVALID.
"""

from __future__ import annotations

import enum as py_enum
import keyword
from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..mem.fifo import PingPongBuffer
from .axi import AxiLiteSignature, Resp, check_widths

__all__ = ["Access", "Register", "AxiLiteRegisters"]


class Access(str, py_enum.Enum):
    RW = "rw"
    RO = "ro"
    W1C = "w1c"
    PULSE = "pulse"
    PUSH = "push"


@dataclass(frozen=True)
class Register:
    """One register: ``name`` (a Python identifier: it names the ports), byte ``offset``,
    ``access`` (`Access` or its string), ``width`` in bits, ``init`` (reset value of ``rw``),
    ``doc``."""
    name: str
    offset: int
    access: Access | str = Access.RW
    width: int = 32
    init: int = 0
    doc: str = ""

    def __post_init__(self):
        try:
            object.__setattr__(self, "access", Access(self.access))
        except ValueError:
            raise ValueError(f"Register {self.name!r}: access must be one of "
                             f"{[a.value for a in Access]}, got {self.access!r}") from None
        if not isinstance(self.name, str) or not self.name.isidentifier() \
                or keyword.iskeyword(self.name):
            raise ValueError(f"Register name {self.name!r}: must be a Python identifier")
        for attr in ("offset", "width", "init"):
            v = getattr(self, attr)
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"Register {self.name!r}: {attr} must be an integer, got {v!r}")
        if self.offset < 0:
            raise ValueError(f"Register {self.name!r}: offset must be >= 0, got {self.offset}")
        if self.width < 1:
            raise ValueError(f"Register {self.name!r}: width must be >= 1, got {self.width}")
        if not 0 <= self.init < (1 << self.width):
            raise ValueError(f"Register {self.name!r}: init {self.init:#x} does not fit "
                             f"{self.width} bits")
        if self.init and self.access is not Access.RW:
            raise ValueError(f"Register {self.name!r}: init is only for rw registers")

    def words(self, data_width: int) -> int:
        return -(-self.width // data_width)


_RESERVED = {"bus", "signature", "elaborate"}


def _mux_tree(items, sel):
    """``items[sel]`` as a tree of 2:1 multiplexers (LSB of ``sel`` first). Constant-zero
    leaves fold away; ECP5 packs each 4:1 level into two LUT4s and a PFUMX."""
    level = list(items)
    for b in range(len(sel)):
        if len(level) == 1:
            break
        if len(level) % 2:
            level.append(Const(0, len(level[0])))
        level = [Mux(sel[b], level[2 * i + 1], level[2 * i]) for i in range(len(level) // 2)]
    return level[0]


class AxiLiteRegisters(wiring.Component):
    """AXI4-Lite slave with the registers ``registers`` (see the module docstring).

    Ports: ``bus`` (In `AxiLiteSignature`) and the per-register ports listed above.
    ``addr_width`` (default 12) and ``data_width`` (32 or 64) size the bus.
    """

    #: a read samples the words of ``2**READ_GROUP_BITS`` slots per group into registers
    READ_GROUP_BITS = 3

    def __init__(self, registers, *, addr_width: int = 12, data_width: int = 32):
        check_widths(data_width, addr_width, lite=True)
        registers = tuple(registers)
        if not registers:
            raise ValueError("registers: give at least one Register")
        db = data_width // 8
        names = set()
        words = {}
        members = {"bus": In(AxiLiteSignature(addr_width, data_width))}
        for reg in registers:
            if not isinstance(reg, Register):
                raise TypeError(f"registers: expected Register objects, got {reg!r}")
            if reg.offset % db:
                raise ValueError(f"Register {reg.name!r}: offset {reg.offset:#x} is not aligned "
                                 f"to the {db}-byte bus word")
            nw = reg.words(data_width)
            if reg.offset + nw * db > (1 << addr_width):
                raise ValueError(f"Register {reg.name!r}: offset {reg.offset:#x} (+{nw} words) "
                                 f"is outside the {addr_width}-bit address space")
            ports = {reg.name: None}
            if reg.access is Access.W1C:
                ports[reg.name + "_set"] = None
            if reg.access is Access.PULSE:
                ports[reg.name + "_stb"] = None
            for pn in ports:
                if pn in names or pn in _RESERVED:
                    raise ValueError(f"Register {reg.name!r}: port name {pn!r} is used twice "
                                     "or reserved")
                names.add(pn)
            for i in range(nw):
                widx = reg.offset // db + i
                if widx in words:
                    raise ValueError(f"Register {reg.name!r}: word at {widx * db:#x} overlaps "
                                     f"register {words[widx][0].name!r}")
                words[widx] = (reg, i)
            w = reg.width
            if reg.access is Access.RW:
                members[reg.name] = Out(unsigned(w), init=reg.init)
            elif reg.access is Access.RO:
                members[reg.name] = In(unsigned(w))
            elif reg.access is Access.W1C:
                members[reg.name] = Out(unsigned(w))
                members[reg.name + "_set"] = In(unsigned(w))
            elif reg.access is Access.PULSE:
                members[reg.name] = Out(unsigned(w))
                members[reg.name + "_stb"] = Out(1)
            else:
                members[reg.name] = Out(stream.Signature(unsigned(w)))
        # a read waits while ``read_hold`` is high (e.g. a memory window still fetching the
        # word at a newly written address)
        members["read_hold"] = In(1)
        self.registers = registers
        self.addr_width = addr_width
        self.data_width = data_width
        self._words = dict(sorted(words.items()))
        super().__init__(members)

    @property
    def register_map(self) -> dict:
        """``name -> (offset, access, width)``."""
        return {r.name: (r.offset, r.access.value, r.width) for r in self.registers}

    def offset_of(self, name: str) -> int:
        for r in self.registers:
            if r.name == name:
                return r.offset
        raise KeyError(f"no register named {name!r}")

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        dw = self.data_width
        db = dw // 8
        lb = (db - 1).bit_length()

        # state of registers that need some (rw/pulse outputs are the storage themselves)
        store = {}
        for reg in self.registers:
            if reg.access in (Access.RW, Access.PULSE):
                store[reg.name] = getattr(self, reg.name)
            elif reg.access is Access.W1C:
                store[reg.name] = getattr(self, reg.name)
            elif reg.access is Access.PUSH:
                store[reg.name] = Signal(reg.width, name=f"{reg.name}_stage")

        # ---------------- write path ----------------
        # AW and W are held in two-entry buffers: "the held write executes" (``done``: a
        # push's buffer has room) reaches only their flags, not the held data, and
        # AWREADY/WREADY are flip-flops. The address is decoded as it enters (a flag per
        # mapped word, and ``err``: unmapped or read-only), so the clock enables of the
        # registers are a few flip-flops ANDed, not a compare behind the buffer's
        # multiplexer (on ECP5 the instruction's staged words were a path of 8.7 ns)
        words = list(self._words.items())
        dec_layout = data.StructLayout({"sel": unsigned(len(words)), "err": 1})
        m.submodules.aw_hold = aw_hold = PingPongBuffer(dec_layout)
        m.submodules.w_hold = w_hold = PingPongBuffer(
            data.StructLayout({"data": unsigned(dw), "strb": unsigned(db)}))
        in_word = bus.aw.awaddr[lb:]
        in_sel = aw_hold.i.payload.sel
        for j, (widx, _) in enumerate(words):
            m.d.comb += in_sel[j].eq(in_word == widx)
        readonly = [in_sel[j] for j, (_, (reg, _)) in enumerate(words) if reg.access is Access.RO]
        m.d.comb += aw_hold.i.payload.err.eq(~in_sel.any() | Cat(*readonly).any()
                                             if readonly else ~in_sel.any())
        aw_full, sel, err = aw_hold.o.valid, aw_hold.o.payload.sel, aw_hold.o.payload.err
        w_full, w_data, w_strb = w_hold.o.valid, w_hold.o.payload.data, w_hold.o.payload.strb
        bvalid = Signal()
        bresp = Signal(2)
        done = Signal()           # the held write executes this cycle
        m.d.comb += [
            aw_hold.i.valid.eq(bus.aw.awvalid),
            bus.aw.awready.eq(aw_hold.i.ready), aw_hold.o.ready.eq(done),
            w_hold.i.valid.eq(bus.w.wvalid), w_hold.i.payload.data.eq(bus.w.wdata),
            w_hold.i.payload.strb.eq(bus.w.wstrb), bus.w.wready.eq(w_hold.i.ready),
            w_hold.o.ready.eq(done),
            bus.b.bvalid.eq(bvalid),
            bus.b.bresp.eq(bresp),
        ]
        with m.If(bvalid & bus.b.bready):
            m.d.sync += bvalid.eq(0)
        pending = Signal()        # both halves held and the B register free (or freeing)
        m.d.comb += pending.eq(aw_full & w_full & (~bvalid | bus.b.bready))
        bit_mask = Cat(*(b.replicate(8) for b in w_strb))

        def write_bytes(st, lo, hi):
            """Strobed bytes of the held W word into ``st[lo:hi]`` (byte enables: no muxes)."""
            for b in range(db):
                blo, bhi = 8 * b, min(8 * b + 8, hi - lo)
                if blo < bhi:
                    with m.If(w_strb[b]):
                        m.d.sync += st[lo + blo:lo + bhi].eq(w_data[blo:bhi])

        # a push goes out through a two-entry buffer: its ``i.ready`` is a flip-flop, so the
        # consumer's ready does not reach the staged words' clock enables, and the wide
        # value crosses to the consumer from flip-flops
        push_out = {}
        for reg in self.registers:
            if reg.access is Access.PULSE:
                m.d.sync += getattr(self, reg.name + "_stb").eq(0)
            if reg.access is Access.PUSH:
                # the pushed value: staged lower words + the held W word merged into the top one
                st = store[reg.name]
                lo = (reg.words(dw) - 1) * dw
                top = (w_data & bit_mask) | (Cat(st[lo:], Const(0, dw - (reg.width - lo)))
                                             & ~bit_mask)
                m.submodules[f"{reg.name}_out"] = out = PingPongBuffer(unsigned(reg.width))
                wiring.connect(m, out.o, wiring.flipped(getattr(self, reg.name)))
                m.d.comb += out.i.payload.eq(Cat(st[:lo], top[:reg.width - lo]))
                push_out[reg.name] = out

        # ``done`` unless the held word is the top word of a push whose buffer is full
        waits = []
        w1c_clear = {reg.name: Signal(reg.width, name=f"{reg.name}_clr")
                     for reg in self.registers if reg.access is Access.W1C}
        with m.If(pending):
            for j, (_, (reg, i)) in enumerate(words):
                nw = reg.words(dw)
                lo, hi = i * dw, min(reg.width, (i + 1) * dw)
                top = i == nw - 1
                if reg.access is Access.RO:
                    continue
                if reg.access is Access.PUSH and top:
                    out = push_out[reg.name]
                    waits.append(sel[j] & ~out.i.ready)
                    with m.If(sel[j]):
                        m.d.comb += out.i.valid.eq(1)
                        with m.If(out.i.ready):
                            write_bytes(store[reg.name], lo, hi)
                    continue
                with m.If(sel[j]):
                    if reg.access is Access.W1C:
                        m.d.comb += w1c_clear[reg.name][lo:hi].eq(
                            (w_data & bit_mask)[:hi - lo])
                    else:     # rw, pulse, lower words of push
                        write_bytes(store[reg.name], lo, hi)
                        if reg.access is Access.PULSE and top:
                            m.d.sync += getattr(self, reg.name + "_stb").eq(1)
        m.d.comb += done.eq(pending & ~Cat(*waits).any() if waits else pending)
        with m.If(done):
            m.d.sync += [bvalid.eq(1), bresp.eq(Mux(err, Resp.SLVERR, Resp.OKAY))]

        for reg in self.registers:
            if reg.access is Access.W1C:
                v = getattr(self, reg.name)
                m.d.sync += v.eq((v & ~w1c_clear[reg.name]) | getattr(self, reg.name + "_set"))

        # ---------------- read path ----------------
        # three registers in a row: the held address (AR), the read sample (from every group
        # of ``2**READ_GROUP_BITS`` word slots, the addressed slot's word), and
        # the R register (the group's word picked out). The read values come from all over
        # the design; the sample puts one small multiplexer between each of them and a
        # flip-flop, and the wide part of the tree starts at flip-flops beside the bus.
        ar_full = Signal()
        ar_addr = Signal(self.addr_width)
        smp_full = Signal()
        rvalid = Signal()
        rdata = Signal(dw)
        rresp = Signal(2)
        r_go = Signal()           # the sample moves into the R register this cycle
        smp_load = Signal()       # the sample registers load (whether or not a read is taken)
        take = Signal()           # the held read is sampled this cycle
        m.d.comb += [
            r_go.eq(smp_full & (~rvalid | bus.r.rready)),
            # the samples' clock enable: flip-flops and RREADY only (not ``read_hold``)
            smp_load.eq(~smp_full | ~rvalid | bus.r.rready),
            take.eq(ar_full & ~self.read_hold & smp_load),
            bus.ar.arready.eq(~ar_full | take),
            bus.r.rvalid.eq(rvalid),
            bus.r.rdata.eq(rdata),
            bus.r.rresp.eq(rresp),
        ]
        with m.If(bus.ar.arvalid & bus.ar.arready):
            m.d.sync += [ar_full.eq(1), ar_addr.eq(bus.ar.araddr)]
        with m.Elif(take):
            m.d.sync += ar_full.eq(0)
        with m.If(take):
            m.d.sync += smp_full.eq(1)
        with m.Elif(r_go):
            m.d.sync += smp_full.eq(0)
        with m.If(r_go):
            m.d.sync += rvalid.eq(1)
        with m.Elif(rvalid & bus.r.rready):
            m.d.sync += rvalid.eq(0)
        # a table of every word slot up to the highest mapped one (unmapped slots are
        # constant 0, which synthesis folds), cut into groups of 2**READ_GROUP_BITS slots
        n_slots = max(self._words) + 1
        k = max(1, (n_slots - 1).bit_length())
        slots = []
        for widx in range(1 << k):
            if widx in self._words:
                reg, i = self._words[widx]
                lo, hi = i * dw, min(reg.width, (i + 1) * dw)
                src = store.get(reg.name)
                if src is None:                   # ro
                    src = getattr(self, reg.name)
                slots.append(Cat(src[lo:hi], Const(0, dw - (hi - lo))))
            else:
                slots.append(Const(0, dw))
        mapped = Const(sum(1 << w for w in self._words), 1 << k)
        r_word = ar_addr[lb:]
        r_idx = r_word[:k]
        hit = mapped.bit_select(r_idx, 1)
        if len(r_word) > k:
            hit = hit & (r_word[k:] == 0)
        gk = min(k, self.READ_GROUP_BITS)
        groups = [slots[g:g + (1 << gk)] for g in range(0, len(slots), 1 << gk)]
        smp_group = Signal(max(k - gk, 1))
        smp_hit = Signal()
        sampled = []                      # a group of unmapped slots only is constant 0
        for j, grp in enumerate(groups):
            if all(isinstance(v, Const) for v in grp):
                sampled.append(Const(0, dw))
                continue
            sample = Signal(dw, name=f"read_sample{j}", reset_less=True)
            with m.If(smp_load):
                m.d.sync += sample.eq(_mux_tree(grp, r_idx[:gk]))
            sampled.append(sample)
        with m.If(take):
            m.d.sync += [smp_group.eq(r_idx[gk:]), smp_hit.eq(hit)]
        with m.If(r_go):
            m.d.sync += [
                rdata.eq(Mux(smp_hit, _mux_tree(sampled, smp_group[:k - gk]), 0)),
                rresp.eq(Mux(smp_hit, Resp.OKAY, Resp.SLVERR)),
            ]
        return m
