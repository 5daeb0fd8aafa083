"""AXI4 and AXI4-Lite interface signatures (master side), with the protocol's constants.

Why: every DRAM access of the accelerator (weights in, results out) and the host's control
path go through AXI, and the blocks that speak it (read/write masters, the register slave,
the simulation DRAM model, a future top level) must agree on one set of names and widths.

Shape of the signatures. One member per AXI channel, each a small `wiring.Signature` whose
signals carry the AXI specification's lower-case names::

    Axi4Signature(data_width=64, addr_width=32, id_width=4)
        ar: araddr arid arlen arsize arburst arlock arcache arprot arqos arvalid | arready
        r:  rready | rdata rid rresp rlast rvalid
        aw: awaddr awid awlen awsize awburst awlock awcache awprot awqos awvalid | awready
        w:  wdata wstrb wlast wvalid | wready
        b:  bready | bid bresp bvalid

(left of ``|``: driven by the master; right: driven by the slave). Every channel member is
``Out`` from the master's point of view, so a master component declares
``axi: Out(Axi4Signature(...))`` and a slave ``axi: In(Axi4Signature(...))``. When such a
component is the Verilog top, the ports flatten to ``axi__ar__araddr``, ``axi__r__rdata``,
... (Amaranth joins the path with ``__``); the last part is always the spec name.

``read=False`` / ``write=False`` leave out the read (AR, R) or write (AW, W, B) channels, so
a read-only master has only ``ar`` and ``r``. AXI4 has no ``WID``; the optional
``AxREGION``/``xUSER`` signals are not modelled. ``AxLOCK``, ``AxCACHE``, ``AxPROT`` and
``AxQOS`` are present (interconnects want them) and our masters drive constants.

`AxiLiteSignature` is the same for AXI4-Lite (no id, len, size, burst, last).
"""

from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "Burst", "Resp", "BOUNDARY", "MAX_BURST_BEATS", "CACHE_NORMAL_BUFFERABLE",
    "size_code", "crosses_boundary", "beats_to_boundary", "check_widths",
    "AxiARSignature", "AxiRSignature", "AxiAWSignature", "AxiWSignature", "AxiBSignature",
    "Axi4Signature",
    "AxiLiteARSignature", "AxiLiteRSignature", "AxiLiteAWSignature", "AxiLiteWSignature",
    "AxiLiteBSignature", "AxiLiteSignature",
]


class Burst(enum.Enum, shape=2):
    """``AxBURST`` encodings."""
    FIXED = 0
    INCR = 1
    WRAP = 2


class Resp(enum.Enum, shape=2):
    """``xRESP`` encodings; SLVERR and DECERR are errors."""
    OKAY = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


#: no burst may cross a 4 KiB address boundary
BOUNDARY = 4096
#: AXI4 INCR bursts carry at most 256 beats (``AxLEN`` = 255)
MAX_BURST_BEATS = 256
#: ``AxCACHE`` our masters drive: normal, non-cacheable, bufferable (``0b0011``)
CACHE_NORMAL_BUFFERABLE = 0b0011

_DATA_WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024)


def size_code(data_width: int) -> int:
    """``AxSIZE`` of a full-width beat: log2 of the bytes per beat."""
    if data_width not in _DATA_WIDTHS:
        raise ValueError(f"data_width: must be one of {_DATA_WIDTHS}, got {data_width!r}")
    return (data_width // 8).bit_length() - 1


def crosses_boundary(addr: int, beats: int, beat_bytes: int) -> bool:
    """True if ``beats`` beats of ``beat_bytes`` starting at ``addr`` cross a 4 KiB boundary."""
    return (addr // BOUNDARY) != ((addr + beats * beat_bytes - 1) // BOUNDARY)


def beats_to_boundary(addr: int, beat_bytes: int) -> int:
    """Beats from the (beat-aligned) ``addr`` up to the next 4 KiB boundary."""
    return (BOUNDARY - addr % BOUNDARY) // beat_bytes


def _need_int(name, value, lo, hi=None):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name}: must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"from {lo} to {hi}"
        raise ValueError(f"{name}: must be {rng}, got {value}")


def check_widths(data_width: int, addr_width: int, id_width: int | None = None, *,
                 lite: bool = False) -> None:
    """Validate AXI widths; raises ValueError naming the parameter."""
    allowed = (32, 64) if lite else _DATA_WIDTHS[2:]
    if data_width not in allowed:
        raise ValueError(f"data_width: must be one of {allowed}, got {data_width!r}")
    _need_int("addr_width", addr_width, 2 if lite else 12, 64)
    if id_width is not None:
        _need_int("id_width", id_width, 1, 32)


# --- AXI4 channels (master view) -----------------------------------------------------------

class AxiARSignature(wiring.Signature):
    """Read address channel (also the template of `AxiAWSignature`)."""
    _prefix = "ar"

    def __init__(self, addr_width: int, id_width: int):
        self.addr_width = addr_width
        self.id_width = id_width
        p = self._prefix
        super().__init__({
            f"{p}id": Out(unsigned(id_width)),
            f"{p}addr": Out(unsigned(addr_width)),
            f"{p}len": Out(unsigned(8)),
            f"{p}size": Out(unsigned(3)),
            f"{p}burst": Out(unsigned(2)),
            f"{p}lock": Out(unsigned(1)),
            f"{p}cache": Out(unsigned(4)),
            f"{p}prot": Out(unsigned(3)),
            f"{p}qos": Out(unsigned(4)),
            f"{p}valid": Out(unsigned(1)),
            f"{p}ready": In(unsigned(1)),
        })

    def __eq__(self, other):
        return (type(self) is type(other) and self.addr_width == other.addr_width
                and self.id_width == other.id_width)

    def __hash__(self):
        return hash((type(self), self.addr_width, self.id_width))

    def __repr__(self):
        return f"{type(self).__name__}(addr_width={self.addr_width}, id_width={self.id_width})"


class AxiAWSignature(AxiARSignature):
    """Write address channel."""
    _prefix = "aw"


class AxiRSignature(wiring.Signature):
    """Read data channel."""

    def __init__(self, data_width: int, id_width: int):
        self.data_width = data_width
        self.id_width = id_width
        super().__init__({
            "rid": In(unsigned(id_width)),
            "rdata": In(unsigned(data_width)),
            "rresp": In(unsigned(2)),
            "rlast": In(unsigned(1)),
            "rvalid": In(unsigned(1)),
            "rready": Out(unsigned(1)),
        })

    def __eq__(self, other):
        return (type(self) is type(other) and self.data_width == other.data_width
                and self.id_width == other.id_width)

    def __hash__(self):
        return hash((type(self), self.data_width, self.id_width))

    def __repr__(self):
        return f"AxiRSignature(data_width={self.data_width}, id_width={self.id_width})"


class AxiWSignature(wiring.Signature):
    """Write data channel (AXI4: no ``WID``)."""

    def __init__(self, data_width: int):
        self.data_width = data_width
        super().__init__({
            "wdata": Out(unsigned(data_width)),
            "wstrb": Out(unsigned(data_width // 8)),
            "wlast": Out(unsigned(1)),
            "wvalid": Out(unsigned(1)),
            "wready": In(unsigned(1)),
        })

    def __eq__(self, other):
        return type(self) is type(other) and self.data_width == other.data_width

    def __hash__(self):
        return hash((type(self), self.data_width))

    def __repr__(self):
        return f"AxiWSignature(data_width={self.data_width})"


class AxiBSignature(wiring.Signature):
    """Write response channel."""

    def __init__(self, id_width: int):
        self.id_width = id_width
        super().__init__({
            "bid": In(unsigned(id_width)),
            "bresp": In(unsigned(2)),
            "bvalid": In(unsigned(1)),
            "bready": Out(unsigned(1)),
        })

    def __eq__(self, other):
        return type(self) is type(other) and self.id_width == other.id_width

    def __hash__(self):
        return hash((type(self), self.id_width))

    def __repr__(self):
        return f"AxiBSignature(id_width={self.id_width})"


class Axi4Signature(wiring.Signature):
    """AXI4 (full) master interface: channels ``ar``/``r`` (if ``read``), ``aw``/``w``/``b``
    (if ``write``)."""

    def __init__(self, data_width: int, addr_width: int, id_width: int = 1, *,
                 read: bool = True, write: bool = True):
        check_widths(data_width, addr_width, id_width)
        if not (read or write):
            raise ValueError("Axi4Signature: needs read=True or write=True (or both)")
        self.data_width = data_width
        self.addr_width = addr_width
        self.id_width = id_width
        self.read = bool(read)
        self.write = bool(write)
        members = {}
        if read:
            members["ar"] = Out(AxiARSignature(addr_width, id_width))
            members["r"] = Out(AxiRSignature(data_width, id_width))
        if write:
            members["aw"] = Out(AxiAWSignature(addr_width, id_width))
            members["w"] = Out(AxiWSignature(data_width))
            members["b"] = Out(AxiBSignature(id_width))
        super().__init__(members)

    @property
    def beat_bytes(self) -> int:
        return self.data_width // 8

    @property
    def size(self) -> int:
        """``AxSIZE`` of a full-width beat."""
        return size_code(self.data_width)

    def __eq__(self, other):
        return (type(self) is type(other)
                and (self.data_width, self.addr_width, self.id_width, self.read, self.write)
                == (other.data_width, other.addr_width, other.id_width, other.read, other.write))

    def __hash__(self):
        return hash((type(self), self.data_width, self.addr_width, self.id_width,
                     self.read, self.write))

    def __repr__(self):
        return (f"Axi4Signature(data_width={self.data_width}, addr_width={self.addr_width}, "
                f"id_width={self.id_width}, read={self.read}, write={self.write})")


# --- AXI4-Lite channels (master view) ------------------------------------------------------

class AxiLiteARSignature(wiring.Signature):
    """AXI4-Lite read address channel (template of the AW one)."""
    _prefix = "ar"

    def __init__(self, addr_width: int):
        self.addr_width = addr_width
        p = self._prefix
        super().__init__({
            f"{p}addr": Out(unsigned(addr_width)),
            f"{p}prot": Out(unsigned(3)),
            f"{p}valid": Out(unsigned(1)),
            f"{p}ready": In(unsigned(1)),
        })

    def __eq__(self, other):
        return type(self) is type(other) and self.addr_width == other.addr_width

    def __hash__(self):
        return hash((type(self), self.addr_width))

    def __repr__(self):
        return f"{type(self).__name__}(addr_width={self.addr_width})"


class AxiLiteAWSignature(AxiLiteARSignature):
    _prefix = "aw"


class AxiLiteRSignature(wiring.Signature):
    def __init__(self, data_width: int):
        self.data_width = data_width
        super().__init__({
            "rdata": In(unsigned(data_width)),
            "rresp": In(unsigned(2)),
            "rvalid": In(unsigned(1)),
            "rready": Out(unsigned(1)),
        })

    def __eq__(self, other):
        return type(self) is type(other) and self.data_width == other.data_width

    def __hash__(self):
        return hash((type(self), self.data_width))


class AxiLiteWSignature(wiring.Signature):
    def __init__(self, data_width: int):
        self.data_width = data_width
        super().__init__({
            "wdata": Out(unsigned(data_width)),
            "wstrb": Out(unsigned(data_width // 8)),
            "wvalid": Out(unsigned(1)),
            "wready": In(unsigned(1)),
        })

    def __eq__(self, other):
        return type(self) is type(other) and self.data_width == other.data_width

    def __hash__(self):
        return hash((type(self), self.data_width))


class AxiLiteBSignature(wiring.Signature):
    def __init__(self):
        super().__init__({
            "bresp": In(unsigned(2)),
            "bvalid": In(unsigned(1)),
            "bready": Out(unsigned(1)),
        })

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(type(self))


class AxiLiteSignature(wiring.Signature):
    """AXI4-Lite master interface (``ar``, ``r``, ``aw``, ``w``, ``b``)."""

    def __init__(self, addr_width: int = 16, data_width: int = 32):
        check_widths(data_width, addr_width, lite=True)
        self.addr_width = addr_width
        self.data_width = data_width
        super().__init__({
            "ar": Out(AxiLiteARSignature(addr_width)),
            "r": Out(AxiLiteRSignature(data_width)),
            "aw": Out(AxiLiteAWSignature(addr_width)),
            "w": Out(AxiLiteWSignature(data_width)),
            "b": Out(AxiLiteBSignature()),
        })

    def __eq__(self, other):
        return (type(self) is type(other) and self.addr_width == other.addr_width
                and self.data_width == other.data_width)

    def __hash__(self):
        return hash((type(self), self.addr_width, self.data_width))

    def __repr__(self):
        return f"AxiLiteSignature(addr_width={self.addr_width}, data_width={self.data_width})"
