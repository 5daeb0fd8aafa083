"""`AcceleratorConfig`: every parameter of an accelerator, validated, with derived widths.

One instance elaborates the gateware, sizes the instruction set, drives the golden
model and names the build in caches. It is frozen and hashable; ``to_json`` /
``from_json`` round-trip it and ``content_hash`` is stable across processes and
Python versions (it hashes the canonical JSON, not Python's ``hash``).

Defaults are the reference design's: 16 PEs, ``max_n = max_m = 256``, 16-bit words.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from .numeric.format import NumberFormat, format_from_json
from .numeric.fixed_point import FixedPoint

#: every compute procedure of the instruction set (see `reneta_hw.isa.Proc`)
ALL_PROCEDURES = ("MxV", "MTxV", "VXV", "MxV_SP", "MTxV_SP", "VXV_SP")


class ConfigError(ValueError):
    """An impossible parameter set; the message names the parameter and the rule."""


def bits_for(n: int) -> int:
    """Bits needed to represent the unsigned values ``0 .. n`` (at least 1)."""
    return max(1, int(n).bit_length())


def _is_pow2(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


@dataclass(frozen=True)
class AcceleratorConfig:
    #: multiply-accumulate lanes; also the words in an SMEM row and a DRAM row
    num_pe: int = 16
    #: largest layer size (inputs or outputs) an instruction can name
    max_n: int = 256
    #: largest number of timesteps of a sample
    max_m: int = 256
    #: number format of words and accumulators
    fmt: NumberFormat = field(default_factory=FixedPoint)
    #: rows of the shared memory (each row = ``num_pe`` words)
    smem_depth: int = 8192
    #: banks of the shared memory (bank = row address MSBs)
    smem_banks: int = 2
    #: entries of the sparse-descriptor memory (SPM); two tables (Δx, Δh) by default
    spm_depth: int = 512
    #: depth of the per-block configuration FIFOs
    cfg_fifo_depth: int = 4
    #: depth of the operand data FIFOs (DRAM rows, SMEM words)
    data_fifo_depth: int = 16
    #: depth of the non-zero index FIFOs
    nzi_fifo_depth: int = 256
    #: depth of the instruction queue written over AXI4-Lite
    instr_queue_depth: int = 16
    #: AXI4 data width of the DRAM master, in bits
    axi_data_width: int = 256
    #: DRAM (AXI4) address width, in bits
    axi_addr_width: int = 32
    #: AXI4 ID width of the DRAM master
    axi_id_width: int = 4
    #: compute procedures elaborated into the design
    procedures: tuple = ALL_PROCEDURES

    def __post_init__(self):
        object.__setattr__(self, "procedures", tuple(self.procedures))
        self._validate()

    # --- validation -------------------------------------------------------------
    def _validate(self):
        def need(ok, param, rule):
            if not ok:
                raise ConfigError(f"AcceleratorConfig.{param}: {rule}")

        for name in ("num_pe", "max_n", "max_m", "smem_depth", "smem_banks", "spm_depth",
                     "cfg_fifo_depth", "data_fifo_depth", "nzi_fifo_depth",
                     "instr_queue_depth", "axi_data_width", "axi_addr_width", "axi_id_width"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool),
                 name, f"must be an integer, got {v!r}")
        need(isinstance(self.fmt, NumberFormat), "fmt",
             f"must be a NumberFormat (FixedPoint or BFloat16), got {self.fmt!r}")
        need(_is_pow2(self.num_pe) and 2 <= self.num_pe <= 64, "num_pe",
             f"must be a power of two from 2 to 64, got {self.num_pe}")
        need(self.max_n >= self.num_pe and self.max_n % self.num_pe == 0, "max_n",
             f"must be a positive multiple of num_pe={self.num_pe}, got {self.max_n}")
        need(self.max_n <= 65536, "max_n", f"must be at most 65536, got {self.max_n}")
        need(1 <= self.max_m <= 65536, "max_m", f"must be from 1 to 65536, got {self.max_m}")
        need(self.max_n - 1 < (1 << self.fmt.word_bits), "max_n",
             f"non-zero indices 0..{self.max_n - 1} must fit in a {self.fmt.word_bits}-bit word")
        need(_is_pow2(self.smem_banks) and self.smem_banks <= 16, "smem_banks",
             f"must be a power of two from 1 to 16, got {self.smem_banks}")
        need(_is_pow2(self.smem_depth) and self.smem_depth >= 16 * self.smem_banks, "smem_depth",
             f"must be a power of two of at least 16 rows per bank (smem_banks={self.smem_banks}),"
             f" got {self.smem_depth}")
        need(_is_pow2(self.spm_depth) and self.spm_depth >= self.max_m, "spm_depth",
             f"must be a power of two >= max_m={self.max_m}, got {self.spm_depth}")
        for name in ("cfg_fifo_depth", "data_fifo_depth", "nzi_fifo_depth", "instr_queue_depth"):
            v = getattr(self, name)
            need(_is_pow2(v) and v >= 2, name, f"must be a power of two >= 2, got {v}")
        need(self.axi_data_width in (32, 64, 128, 256, 512, 1024), "axi_data_width",
             f"must be one of 32, 64, 128, 256, 512, 1024, got {self.axi_data_width}")
        row = self.row_bytes * 8
        need(row % self.axi_data_width == 0 or self.axi_data_width % row == 0, "axi_data_width",
             f"must divide or be a multiple of the row width num_pe*word_bytes*8={row}")
        need(16 <= self.axi_addr_width <= 64, "axi_addr_width",
             f"must be from 16 to 64, got {self.axi_addr_width}")
        need(1 <= self.axi_id_width <= 16, "axi_id_width",
             f"must be from 1 to 16, got {self.axi_id_width}")
        need(len(self.procedures) > 0, "procedures", "must name at least one procedure")
        for p in self.procedures:
            need(p in ALL_PROCEDURES, "procedures",
                 f"unknown procedure {p!r} (known: {', '.join(ALL_PROCEDURES)})")
        need(len(set(self.procedures)) == len(self.procedures), "procedures",
             "must not repeat a procedure")

    # --- derived widths -----------------------------------------------------------
    @property
    def word_bits(self) -> int:
        return self.fmt.word_bits

    @property
    def acc_bits(self) -> int:
        return self.fmt.acc_bits

    @property
    def word_bytes(self) -> int:
        return self.fmt.word_bytes

    @property
    def row_bits(self) -> int:
        """Bits of one SMEM row / compute beat (``num_pe`` words)."""
        return self.num_pe * self.word_bits

    @property
    def row_bytes(self) -> int:
        """Bytes one row takes in DRAM (``num_pe`` words of ``word_bytes``)."""
        return self.num_pe * self.word_bytes

    @property
    def lane_bits(self) -> int:
        """Bits of a lane index (``0 .. num_pe-1``)."""
        return max(1, (self.num_pe - 1).bit_length())

    @property
    def max_blocks(self) -> int:
        """Largest number of ``num_pe``-row blocks of a layer."""
        return self.max_n // self.num_pe

    @property
    def n_bits(self) -> int:
        """Bits of a layer size ``0 .. max_n`` (the ``n1`` field)."""
        return bits_for(self.max_n)

    @property
    def count_bits(self) -> int:
        """Bits of a per-timestep non-zero count ``0 .. max_n`` (zero is legal)."""
        return bits_for(self.max_n)

    @property
    def nt_bits(self) -> int:
        """Bits of a number of timesteps ``0 .. max_m``."""
        return bits_for(self.max_m)

    @property
    def t_bits(self) -> int:
        """Bits of a timestep index ``0 .. max_m-1``."""
        return bits_for(self.max_m - 1)

    @property
    def cnt_bits(self) -> int:
        """Bits of a loop bound (iterations - 1) of ``max(max_n, max_m)`` iterations."""
        return bits_for(max(self.max_n, self.max_m) - 1)

    @property
    def smem_addr_bits(self) -> int:
        return bits_for(self.smem_depth - 1)

    @property
    def smem_bank_rows(self) -> int:
        return self.smem_depth // self.smem_banks

    @property
    def spm_addr_bits(self) -> int:
        return bits_for(self.spm_depth - 1)

    @property
    def lmem_depth(self) -> int:
        """Entries of the per-PE local partial-sum memory."""
        return max(self.max_n, self.max_m)

    @property
    def dram_addr_bits(self) -> int:
        return self.axi_addr_width

    # --- serialisation --------------------------------------------------------------
    def to_json(self) -> dict:
        d = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "fmt":
                v = v.to_json()
            elif f.name == "procedures":
                v = list(v)
            d[f.name] = v
        return d

    @classmethod
    def from_json(cls, d) -> "AcceleratorConfig":
        if isinstance(d, str):
            d = json.loads(d)
        if not isinstance(d, dict):
            raise ConfigError(f"AcceleratorConfig: expected a JSON object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"AcceleratorConfig: unknown parameter(s) {', '.join(unknown)}")
        d = dict(d)
        if "fmt" in d:
            try:
                d["fmt"] = format_from_json(d["fmt"])
            except (TypeError, ValueError) as e:
                raise ConfigError(f"AcceleratorConfig.fmt: {e}") from None
        if "procedures" in d:
            d["procedures"] = tuple(d["procedures"])
        return cls(**d)

    def to_json_str(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    def content_hash(self) -> str:
        """SHA-256 (hex, 16 chars) of the canonical JSON: equal configs, equal hashes."""
        return hashlib.sha256(self.to_json_str().encode()).hexdigest()[:16]

    def replace(self, **changes) -> "AcceleratorConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def with_params(cls, base: "AcceleratorConfig | None" = None, **params) -> "AcceleratorConfig":
        """Build from ``key=value`` strings or values (the CLI's ``--param``)."""
        d = (base or cls()).to_json()
        for k, v in params.items():
            if k not in d:
                raise ConfigError(f"AcceleratorConfig: unknown parameter {k!r}")
            if isinstance(v, str):
                try:
                    v = json.loads(v)
                except json.JSONDecodeError:
                    if k == "procedures":
                        v = [p for p in v.split(",") if p]
            d[k] = v
        return cls.from_json(d)
