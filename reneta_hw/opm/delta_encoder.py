"""The delta encoder: ``Δ = x − x̂``, threshold, non-zero lists and descriptors.

Why: a Delta RNN layer only multiplies the elements of its input (or hidden) vector that
changed by more than a threshold θ since they last fired. This block turns each dense
vector (a timestep of ``x`` or ``h``) into the sparse operand of the next ``MxV_SP``: the
non-zero lists (index row + value row, ``num_pe`` per row, packed across timesteps) and
one SPM descriptor ``(head_row, head_lane, count)`` per vector, updating the memory
``x̂`` of last fired values in block RAM as it goes. The arithmetic is bit-exactly
`sim.delta_ref` (``sub_word``, ``fires``; see there for the definitions):

* ``Δ = sub_word(fmt, x, x̂)`` (fixed point: exact difference then wrap/saturate to the
  word; bfloat16: one rounding, RNE, flush to zero, as the format);
* the element fires when ``|Δ| > θ`` (strict, θ a runtime word of the format);
* a fired element is appended to the lists as (index, Δ) and x̂ takes the raw word ``x``.

Ports (Np = ``cfg.num_pe``, ``w`` = ``cfg.word_bits``)::

    cmd:    In(stream(command_layout))   one "start vector" command per vector
    i:      In(stream(ArrayLayout(unsigned(w), Np)))   the vector, Np elements per beat
    o_rows: Out(stream(row_layout))      list rows to write (row, lane mask, indices, values)
    o_desc: Out(stream(descriptor_layout(cfg)))        one SPM descriptor per vector

Command (`command_layout`): ``n`` (elements, 0 .. max_n; ``ceil(n/Np)`` beats follow on
``i``, lanes ``>= n`` of the last beat are ignored; ``n = 0`` takes no beat and yields a
descriptor with count 0), ``theta``, ``head_row``/``head_lane`` (list position of the first
element, relative to the list region), ``cont`` (continue instead where the previous vector
of the same cursor ended), ``cursor`` (``num_cursors`` list cursors, e.g. 0 for the Δx
lists and 1 for the Δh lists, so x and h vectors can interleave), ``clear`` (take x̂ as +0
words: the first timestep) and ``xhat_base`` (first x̂ row; vector beat ``b`` uses row
``xhat_base + b``). The x̂ memory has ``xhat_regions * max_n / Np`` rows of Np words, so
several vectors (x and h of a layer, or several layers) keep their x̂ side by side; a
vector's rows must lie inside it (addresses wrap at the power of two above).

Row stream (`row_layout`): ``row`` (list row, relative to the region base: the writer adds
``smem_nzl`` for the index row and ``smem_op1`` for the value row), ``mask`` (lanes to
write), ``index``/``value`` (Np words; lanes outside ``mask`` are don't-care). A row is
emitted when its last lane fills and, at the end of a vector, the partially filled row
(only its new lanes set in ``mask``): the next vector continues on the same row at the next
lane, re-emitting that row later with its new lanes only. Exactly `sim.delta_ref.EncoderModel`.

Ordering: a vector's descriptor is offered on ``o_desc`` only after the last of its rows
has been accepted on ``o_rows`` (each queued descriptor carries its number of rows), so a
descriptor means "its lists have left this block"; rows of later vectors keep flowing
meanwhile.

Throughput: one beat per cycle, sustained across vectors (a queued command starts in the
cycle after the previous vector's last beat; an ``n = 0`` vector takes one cycle), one row
and one descriptor per cycle out. Two exceptions, both tested: (1) a vector's last beat that
both fills a row and leaves a partial row has two rows to emit and holds the pipeline one
cycle; (2) the read-after-write hazard on x̂: a beat that reads an x̂ row which one of the
``hazard_window`` beats accepted just before it will still write is held until that write
(only when a vector of at most ``hazard_window`` beats is followed by one reusing its x̂ rows;
at ``hazard_window + 1`` beats distance the memory's transparent read port forwards the
write, no stall). Latency, beat handshake to the handshake of the row it completes, nothing
stalling: `latency` cycles.

Structure (a "stall-everything" pipeline: every register loads only when the merge stage can
move on; that decision and the x̂ hazard are registers computed a cycle ahead, so no
combinational path runs from an output's ready to the pipeline): command queue -> beat
generator (x̂ row read) -> registered x̂ row -> (+0 when ``clear``) Δ and ``|Δ| > θ`` in the
number format (`delta_unit_stages`: fixed point 1 (both differences, then fit/compare), bfloat16 5
(order/specials, align, add, normalize, round, compare)) -> x̂ row write (fired lanes, all
valid lanes when ``clear``) and Kogge-Stone prefix count of the idle lanes -> list cursor
(position, descriptor head/count) and a compaction network (log2 Np levels: each fired lane
moves down by the number of idle lanes below it, LSB first, conflict-free) -> rotation by the
current lane (log2 Np levels) -> merge into a one-row staging buffer, emitting full and final
rows (through a register) into a row queue and descriptors into a descriptor queue
(``out_depth`` entries each) -> ``o_rows``/``o_desc``. ``levels_per_stage`` network levels
sit between registers. Resources grow as ``Np log Np`` (the two networks); the x̂ memory is
one block RAM row per beat.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from ..config import AcceleratorConfig, bits_for
from ..isa import descriptor_layout
from ..numeric.bfloat16 import BFloat16
from ..numeric.fixed_point import FixedPoint

__all__ = ["DeltaEncoder", "DeltaUnit", "command_layout", "row_layout", "delta_unit_stages"]


def command_layout(cfg: AcceleratorConfig, *, xhat_rows: int,
                   num_cursors: int) -> data.StructLayout:
    """The "start vector" command (fields LSB first); see the module docstring."""
    return data.StructLayout({
        "n": unsigned(cfg.n_bits),
        "theta": unsigned(cfg.word_bits),
        "head_row": unsigned(cfg.smem_addr_bits),
        "head_lane": unsigned(cfg.lane_bits),
        "cont": unsigned(1),
        "cursor": unsigned(bits_for(num_cursors - 1)),
        "clear": unsigned(1),
        "xhat_base": unsigned(bits_for(xhat_rows - 1)),
    })


def row_layout(cfg: AcceleratorConfig) -> data.StructLayout:
    """One list row to write: relative row, lane mask, index words, value (Δ) words."""
    P, w = cfg.num_pe, cfg.word_bits
    return data.StructLayout({
        "row": unsigned(cfg.smem_addr_bits),
        "mask": unsigned(P),
        "index": data.ArrayLayout(unsigned(w), P),
        "value": data.ArrayLayout(unsigned(w), P),
    })


def delta_unit_stages(fmt) -> int:
    """Register stages between the registered (x, x̂) pair and the x̂ write (Δ and fire)."""
    if isinstance(fmt, FixedPoint):
        return 1
    if isinstance(fmt, BFloat16):
        return 5
    raise TypeError(f"DeltaEncoder: unsupported number format {fmt!r}")


class _Pipe:
    """Builder of a stall-everything pipeline: named values flow stage to stage.

    ``p[name] = value`` sets a combinational value of the current stage; `stage` registers
    every value (loaded only when ``en``) and makes the registers the next stage's values.
    Lists of values are registered element-wise; Python ints stay constants.
    """

    def __init__(self, m: Module, en, values: dict, first_stage: int = 1):
        self.m = m
        self.en = en
        self.v = dict(values)
        self.n = first_stage
        self.history = {}            # stage number -> its values (for hazard checks)

    def __getitem__(self, k):
        return self.v[k]

    def __setitem__(self, k, val):
        self.v[k] = val

    def __contains__(self, k):
        return k in self.v

    def drop(self, *names):
        for k in names:
            self.v.pop(k, None)

    def _reg(self, name, val, reset_less):
        if isinstance(val, int):
            return val
        if isinstance(val, (list, tuple)):
            return [self._reg(f"{name}{i}", x, reset_less) for i, x in enumerate(val)]
        shape = val.shape() if isinstance(val, data.View) else Value.cast(val).shape()
        sig = Signal(shape, name=name, reset_less=reset_less)
        with self.m.If(self.en):
            self.m.d.sync += sig.eq(val)
        return sig

    def stage(self):
        """Registers every value; only ``valid`` is reset (everything else is read beside
        it, and a reset reaching every data bit would be a net of thousands of loads)."""
        self.history[self.n] = self.v
        self.n += 1
        self.v = {k: self._reg(f"s{self.n}_{k}", val, k != "valid")
                  for k, val in self.v.items()}


# --- Δ units (per lane, inside the pipe) ---------------------------------------------------------
def _fixed_delta(p: _Pipe, fmt: FixedPoint, P: int):
    """Fixed point: stage A: both differences; stage B: fit, |Δ|, compare (fire)."""
    wb = fmt.word_bits
    x, xh = p["x"], p["xh"]
    p["d"] = [x[l].as_signed() - xh[l].as_signed() for l in range(P)]     # signed(wb+1)
    p["e"] = [xh[l].as_signed() - x[l].as_signed() for l in range(P)]
    p.stage()
    theta = p["theta"]
    th_neg = theta[wb - 1]
    th_mag = theta[:wb - 1]
    maxw = (1 << (wb - 1)) - 1
    delta, fire = [], []
    for l in range(P):
        d, e = p["d"][l], p["e"][l]
        neg = d[wb]
        if fmt.overflow == "saturate":
            ovf = d[wb] != d[wb - 1]
            word = Mux(ovf, Mux(neg, 1 << (wb - 1), maxw), d[:wb])
            mag = Mux(neg, Mux(e[wb - 1], 1 << (wb - 1), e[:wb]),
                      Mux(d[wb - 1], maxw, d[:wb]))
        else:
            word = d[:wb]
            mag = Mux(d[wb - 1], e[:wb], d[:wb])
        delta.append(word)
        fire.append(p["lanes"][l] & (th_neg | (mag > th_mag)))
    p["delta"] = delta
    p["fire"] = Cat(*fire)
    p.drop("d", "e")


def _lzc(v):
    """Leading-zero count of ``v`` (width a power of two >= 2): ``(all_zero, count)``."""
    n = len(v)
    if n == 2:
        return ~v[0] & ~v[1], ~v[1]
    zh, ch = _lzc(v[n // 2:])
    zl, cl = _lzc(v[:n // 2])
    return zh & zl, Mux(zh, Cat(cl, Const(1, 1)), Cat(ch, Const(0, 1)))


def _bf16_delta(p: _Pipe, P: int):
    """bfloat16 ``x − x̂`` (sign-flipped sum), one rounding, as `BFloat16("bf16").sub`.

    Stage A: unpack, compare the magnitudes, both exponent differences, special results
    (zeros, infinities and NaN patterns bypass the datapath). B1: order the operands by the
    comparison, align the smaller significand (3 guard bits and a sticky bit). B2: add or
    subtract. C: leading-zero count, normalize, exponent candidates. D: round to nearest
    even, flush/overflow, pack. E: fire.
    """
    x, xh = p["x"], p["xh"]
    ops = []
    for l in range(P):
        a = x[l]
        b = xh[l] ^ 0x8000
        sa, ea = a[15], a[7:15]
        sb, eb = b[15], b[7:15]
        za, zb = ea == 0, eb == 0
        ia, ib = ea == 0xFF, eb == 0xFF
        # both exponent differences, each clamped to the shift range, in parallel with the
        # magnitude comparison; the choices by that comparison are B1's (behind the 15-bit
        # comparison they were the bf16 Δ unit's critical path, 10.5 ns on ECP5)
        def shift(d):                                # an exponent difference, clamped
            return Mux(d[:8] > 12, 12, d[:8])[:4]
        inf_val = Mux(ia & ib & (sa != sb), 0x7F80,
                      Cat(Const(0, 7), Const(0xFF, 8), Mux(ia, sa, sb)))
        spec_val = Mux(ia | ib, inf_val,
                       Mux(za & zb, Cat(Const(0, 15), sa & sb),
                           Mux(za, b, a)))
        ops.append(dict(
            a=a[:15], b=b[:15], s_a=sa, s_b=sb,
            swap=b[:15] > a[:15],                    # order by magnitude: big - small >= 0
            d_ab=shift(ea - eb), d_ba=shift(eb - ea),
            sub=sa ^ sb, spec=ia | ib | za | zb, spec_val=spec_val))
    for k in ops[0]:
        p["A_" + k] = [o[k] for o in ops]
    p.stage()

    # B1: order by magnitude; align: (ms << 3) >> d, keeping whether a non-zero bit was
    # shifted out
    for key in ("B_s", "B_e", "B_mb", "B_sml"):
        p[key] = []
    sticky = []
    for l in range(P):
        a, b, swap = p["A_a"][l], p["A_b"][l], p["A_swap"][l]
        big, small = Mux(swap, b, a), Mux(swap, a, b)
        p["B_s"].append(Mux(swap, p["A_s_b"][l], p["A_s_a"][l]))
        p["B_e"].append(big[7:15])
        p["B_mb"].append(Cat(big[:7], Const(1, 1)))
        dc = Mux(swap, p["A_d_ba"][l], p["A_d_ab"][l])
        wide = Cat(Const(0, 15), small[:7], Const(1, 1))            # (ms << 3) << 12
        t = (wide >> dc)[:23]
        p["B_sml"].append(t[12:23])
        sticky.append(t[:12] != 0)
    p["B_sticky"] = Cat(*sticky)
    p.drop("A_a", "A_b", "A_s_a", "A_s_b", "A_swap", "A_d_ab", "A_d_ba")
    p.stage()

    # B2: add or subtract (with the sticky bit as a borrow: the exact result lies above)
    ms = []
    for l in range(P):
        big = Cat(Const(0, 3), p["B_mb"][l])
        sml_l = p["B_sml"][l]
        ms.append(Mux(p["A_sub"][l], big - sml_l - p["B_sticky"][l], big + sml_l)[:12])
    p["B_m"] = ms
    # C's flush/overflow tests of e1 = e + 1 - lz, turned into compares of the shift lz
    # (4 bits) with limits taken from e here: u0 (e1 < 1): lz > e; u1 (e1 < 0): lz > e + 1;
    # o0 (e1 >= 255): e >= 254 and lz <= e - 254; o1 (e1 >= 254): e >= 253 and
    # lz <= e - 253. A limit of 15 never passes "lz >" (lz <= 15). In C the tests then
    # follow the leading-zero count directly, not an adder and a comparison behind it
    # (o1 was the bf16 Δ unit's slowest path: 11.2 ns on ECP5).
    for key in ("B_u0", "B_u1", "B_o0", "B_o1", "B_o0en", "B_o1en"):
        p[key] = []
    for l in range(P):
        e = p["B_e"][l]
        p["B_u0"].append(Mux(e >= 15, 15, e)[:4])
        p["B_u1"].append(Mux(e >= 14, 15, e + 1)[:4])
        p["B_o0"].append((e - 254)[:4])
        p["B_o1"].append((e - 253)[:4])
        p["B_o0en"].append(e >= 254)
        p["B_o1en"].append(e >= 253)
    p.drop("B_mb", "A_sub", "B_sml")
    p.stage()

    # C: normalize the leading one to bit 11; biased exponent e1 = e_big + 1 - shift (before
    # the rounding carry) and its flush/overflow tests for both carry values
    for key in ("C_v", "C_e1", "C_e1p1"):
        p[key] = []
    flags = {k: [] for k in ("C_cancel", "C_u0", "C_u1", "C_o0", "C_o1")}
    for l in range(P):
        m12 = p["B_m"][l]
        zero, lz = _lzc(Cat(Const(0, 4), m12))
        p["C_v"].append((m12 << lz)[:12])
        e1 = (p["B_e"][l] + 1 - lz).as_signed()               # 10 bits, -14 .. 255
        p["C_e1"].append(e1[:8])
        p["C_e1p1"].append((e1 + 1)[:8])
        flags["C_cancel"].append(zero)
        flags["C_u0"].append(lz > p["B_u0"][l])
        flags["C_u1"].append(lz > p["B_u1"][l])
        flags["C_o0"].append(p["B_o0en"][l] & (lz <= p["B_o0"][l]))
        flags["C_o1"].append(p["B_o1en"][l] & (lz <= p["B_o1"][l]))
    for k, v in flags.items():
        p[k] = Cat(*v)
    p.drop("B_m", "B_e", "B_u0", "B_u1", "B_o0", "B_o1", "B_o0en", "B_o1en")
    p.stage()

    # D: round to nearest even, pack
    delta = []
    for l in range(P):
        v = p["C_v"][l]
        up = v[3] & ((v[:3] != 0) | p["B_sticky"][l] | v[4])
        q = (v[4:12] + up)[:9]
        carry = q[8]
        sign = p["B_s"][l]
        under = Mux(carry, p["C_u1"][l], p["C_u0"][l])
        over = Mux(carry, p["C_o1"][l], p["C_o0"][l])
        normal = Cat(q[:7], Mux(carry, p["C_e1p1"][l], p["C_e1"][l]), sign)
        res = Mux(p["A_spec"][l], p["A_spec_val"][l],
                  Mux(p["C_cancel"][l], 0,
                      Mux(under, Cat(Const(0, 15), sign),
                          Mux(over, Cat(Const(0, 7), Const(0xFF, 8), sign), normal))))
        res16 = Signal(16, name=f"bf_delta{l}")
        p.m.d.comb += res16.eq(res)
        delta.append(res16)
    p["delta"] = delta
    p.drop("C_v", "C_e1", "C_e1p1", "C_cancel", "C_u0", "C_u1", "C_o0", "C_o1", "B_sticky",
           "B_s", "A_spec", "A_spec_val")
    p.stage()

    # E: |Δ| > θ (θ < 0, not a zero: every lane fires; magnitudes compare as patterns)
    theta = p["theta"]
    th_all = theta[15] & (theta[7:15] != 0)
    th_mag = theta[:15]
    p["fire"] = Cat(*[p["lanes"][l] & (th_all | (p["delta"][l][:15] > th_mag))
                      for l in range(P)])


# --- networks ------------------------------------------------------------------------------------
def _prefix_zeros(p: _Pipe, P: int, levels_per_stage: int):
    """Kogge-Stone inclusive prefix count of the idle lanes: ``p["c"][q] = #idle in 0..q``."""
    lg = exact_log2(P)
    c = [(~p["fire"][q])[0:1] for q in range(P)]
    for lvl in range(lg):
        if lvl and lvl % levels_per_stage == 0:
            p["c"] = c
            p.stage()
            c = p["c"]
        s = 1 << lvl
        c = [(c[q] + c[q - s])[:lg + 1] if q >= s else c[q] for q in range(P)]
    p["c"] = [Value.cast(x).as_unsigned() + Const(0, lg + 1) for x in c]


def _compact(p: _Pipe, P: int, levels_per_stage: int, first_level_here: bool):
    """Move fired lane q down by ``shift[q]`` (idle lanes below it), LSB first."""
    lg = exact_log2(P)
    for lvl in range(lg):
        if (lvl or not first_level_here) and lvl % levels_per_stage == 0:
            p.stage()
        s = 1 << lvl
        v, sh, dt = p["cv"], p["csh"], p["cd"]
        nv, nsh, nd = [], [], []
        for y in range(P):
            if y + s < P:
                take = v[y + s] & sh[y + s][lvl]
                keep = v[y] & ~sh[y][lvl]
                nv.append(take | keep)
                nsh.append(Mux(take, sh[y + s], sh[y]))
                nd.append(Mux(take, dt[y + s], dt[y]))
            else:
                nv.append(v[y] & ~sh[y][lvl])
                nsh.append(sh[y])
                nd.append(dt[y])
        p["cv"], p["csh"], p["cd"] = nv, nsh, nd


def _rotate(p: _Pipe, P: int, levels_per_stage: int):
    """Rotate the compacted slots up by the current lane: slot j -> lane (lane + j) % P."""
    lg = exact_log2(P)
    for lvl in range(lg):
        if lvl % levels_per_stage == 0:
            p.stage()
        s = 1 << lvl
        bit = p["lane_b"][lvl]
        v, dt = p["cv"], p["cd"]
        p["cv"] = [Mux(bit, v[(y - s) % P], v[y]) for y in range(P)]
        p["cd"] = [Mux(bit, dt[(y - s) % P], dt[y]) for y in range(P)]


def _delta(p: _Pipe, fmt, P: int):
    if isinstance(fmt, FixedPoint):
        _fixed_delta(p, fmt, P)
    else:
        _bf16_delta(p, P)


class DeltaUnit(wiring.Component):
    """The Δ datapath of the encoder alone: ``Δ = sub_word(x, x̂)``, ``fire = |Δ| > θ``.

    Why separate: the same code builds the encoder's Δ stages; on its own it is tested
    against `sim.delta_ref` on many operand pairs (special bfloat16 patterns included)
    much faster than through the whole encoder.

    Ports: ``en`` (every register loads only when high), ``x``, ``xh`` (``num_lanes`` words,
    lane l in bits ``[l*w, (l+1)*w)``), ``theta`` (word), ``lanes`` (lanes that may fire) ->
    ``delta`` (words, same packing), ``fire`` (bits), ``latency = 1 + delta_unit_stages(fmt)``
    advancing cycles later (inputs registered first). The word vectors are flat unsigned
    ports (not ArrayLayout ones) because Yosys' ABC9 pass trips over the per-element names
    Amaranth emits for ArrayLayout top-level ports.
    """

    def __init__(self, fmt, num_lanes: int):
        try:
            delta_unit_stages(fmt)
            if not (isinstance(num_lanes, int) and num_lanes >= 1):
                raise ValueError(f"DeltaUnit.num_lanes: must be an integer >= 1, "
                                 f"got {num_lanes!r}")
        except (TypeError, ValueError):
            self._MustUse__silence = True        # a refused block is not an unused one
            raise
        self.fmt = fmt
        self.num_lanes = num_lanes
        self.latency = 1 + delta_unit_stages(fmt)
        self.words = data.ArrayLayout(unsigned(fmt.word_bits), num_lanes)
        bits = fmt.word_bits * num_lanes
        super().__init__({
            "en": In(1), "x": In(bits), "xh": In(bits), "theta": In(fmt.word_bits),
            "lanes": In(num_lanes), "delta": Out(bits), "fire": Out(num_lanes),
        })

    def elaborate(self, platform):
        m = Module()
        p = _Pipe(m, self.en, {"x": data.View(self.words, self.x),
                               "xh": data.View(self.words, self.xh),
                               "theta": self.theta, "lanes": self.lanes}, first_stage=1)
        p.stage()
        _delta(p, self.fmt, self.num_lanes)
        m.d.comb += [self.delta.eq(Cat(*p["delta"])), self.fire.eq(p["fire"])]
        return m


class DeltaEncoder(wiring.Component):
    """Delta encoder of the OPM (see the module docstring for the whole contract).

    Parameters: ``cfg`` (`AcceleratorConfig`: num_pe, fmt, max_n, smem_depth, cfg_fifo_depth),
    ``xhat_regions`` (x̂ memory rows = ``xhat_regions * max_n / num_pe``, >= 1),
    ``num_cursors`` (list cursors, >= 1), ``out_depth`` (entries of the row queue and of the
    descriptor queue, >= 3; >= 6 keeps one row per cycle), ``levels_per_stage`` (network
    levels between pipeline registers, >= 1), ``xhat_ram_style`` (``"block"``: the x̂ memory
    in block RAM, ``"distributed"``: LUT RAM, ``None``: the tools choose).

    Attributes: ``xhat_data`` (the x̂ memory's `MemoryData`), ``hazard_window``,
    ``write_stage``, ``merge_stage``, ``latency`` (see the module docstring), the layouts
    ``cmd_layout``, ``row_layout``, ``desc_layout``, ``beat_layout``.
    """

    def __init__(self, cfg: AcceleratorConfig, *, xhat_regions: int = 2, num_cursors: int = 2,
                 out_depth: int = 8, levels_per_stage: int = 1,
                 xhat_ram_style: str | None = "block"):
        try:
            self._validate(cfg, xhat_regions=xhat_regions, num_cursors=num_cursors,
                           out_depth=out_depth, levels_per_stage=levels_per_stage)
            if xhat_ram_style not in (None, "block", "distributed"):
                raise ValueError(f"DeltaEncoder.xhat_ram_style: must be 'block', 'distributed' or "
                                 f"None (the tools choose), got {xhat_ram_style!r}")
        except (TypeError, ValueError):
            self._MustUse__silence = True        # a refused block is not an unused one
            raise
        self.cfg = cfg
        self.fmt = cfg.fmt
        self.num_pe = cfg.num_pe
        self.xhat_regions = xhat_regions
        self.xhat_rows = xhat_regions * cfg.max_blocks
        self.num_cursors = num_cursors
        self.out_depth = out_depth
        self.levels_per_stage = levels_per_stage
        self.xhat_ram_style = xhat_ram_style
        self.cmd_layout = command_layout(cfg, xhat_rows=self.xhat_rows, num_cursors=num_cursors)
        self.row_layout = row_layout(cfg)
        self.desc_layout = descriptor_layout(cfg)
        self.beat_layout = data.ArrayLayout(unsigned(cfg.word_bits), cfg.num_pe)
        #: contents of the x̂ memory (``xhat_rows`` rows of Np words; simulation: ctx.get/set)
        self.xhat_data = MemoryData(shape=self.beat_layout, depth=self.xhat_rows, init=[])
        # x̂ read issued at the edge into stage 1, registered into stage 2, Δ and fire over
        # delta_unit_stages, registered, written in the write stage
        self.write_stage = 3 + delta_unit_stages(cfg.fmt)
        #: a beat reading an x̂ row written by one of the ``hazard_window`` beats accepted
        #: just before it is held until that write; from ``hazard_window + 1`` on: forwarded
        self.hazard_window = self.write_stage - 1
        super().__init__({
            "cmd": In(stream.Signature(self.cmd_layout)),
            "i": In(stream.Signature(self.beat_layout)),
            "o_rows": Out(stream.Signature(self.row_layout)),
            "o_desc": Out(stream.Signature(self.desc_layout)),
        })
        lg = exact_log2(cfg.num_pe)
        net = -(-lg // levels_per_stage)
        #: pipeline stage that merges beats into rows and writes the output queues
        self.merge_stage = self.write_stage + 3 * net
        #: cycles from a beat's handshake on ``i`` to the handshake of the row it completes on
        #: ``o_rows`` when nothing stalls (the row register and the output queue add three)
        self.latency = self.merge_stage + 3

    @staticmethod
    def _validate(cfg, **params):
        if not isinstance(cfg, AcceleratorConfig):
            raise TypeError(f"DeltaEncoder: cfg must be an AcceleratorConfig, got {cfg!r}")
        lows = {"xhat_regions": 1, "num_cursors": 1, "out_depth": 3, "levels_per_stage": 1}
        for name, v in params.items():
            lo = lows[name]
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= lo):
                raise ValueError(f"DeltaEncoder.{name}: must be an integer >= {lo}, got {v!r}")
        delta_unit_stages(cfg.fmt)       # rejects an unknown format

    def elaborate(self, platform):
        m = Module()
        cfg, P, wb = self.cfg, self.num_pe, self.cfg.word_bits
        lg = exact_log2(P)
        lps = self.levels_per_stage
        beat_bits = bits_for(cfg.max_blocks - 1)
        addr_bits = cfg.smem_addr_bits
        pos_bits = addr_bits + lg
        idx_bits = lg + beat_bits

        # every pipeline register loads only when adv; adv and go (the merge stage can push
        # this cycle) are registers, predicted one cycle ahead (see the merge stage)
        adv = Signal(init=1)
        go = Signal(init=1)

        # --- command queue and beat generator (stage 0) ------------------------------------------
        m.submodules.cmdq = cmdq = SyncFIFOBuffered(width=self.cmd_layout.size,
                                                    depth=cfg.cfg_fifo_depth)
        m.d.comb += [cmdq.w_data.eq(self.cmd.payload), cmdq.w_en.eq(self.cmd.valid),
                     self.cmd.ready.eq(cmdq.w_rdy)]
        nxt = data.View(self.cmd_layout, cmdq.r_data)
        cur = Signal(self.cmd_layout)
        active = Signal()
        beat = Signal(beat_bits)
        xaddr = Signal(ceil_log2(self.xhat_rows) or 1)
        last_beat = Signal(beat_bits)
        zero = Signal()
        tail = Signal(P)

        is_last = Signal()       # = (beat == last_beat), kept as a register
        hazard = Signal()
        accept = Signal()
        finish = accept & is_last
        load = cmdq.r_rdy & (~active | finish)
        m.d.comb += [
            accept.eq(adv & active & (zero | self.i.valid) & ~hazard),
            self.i.ready.eq(adv & active & ~zero & ~hazard),
            cmdq.r_en.eq(load),
        ]
        with m.If(accept):
            m.d.sync += [beat.eq(beat + 1), xaddr.eq(xaddr + 1),
                         is_last.eq((beat + 1)[:beat_bits] == last_beat)]
        with m.If(finish):
            m.d.sync += active.eq(0)
        with m.If(load):
            n_m1 = (nxt.n - 1)[:cfg.n_bits]
            rem = nxt.n[:lg]
            m.d.sync += [
                cur.eq(nxt), active.eq(1), beat.eq(0), xaddr.eq(nxt.xhat_base),
                last_beat.eq(Mux(nxt.n == 0, 0, n_m1 >> lg)),
                is_last.eq((nxt.n == 0) | ((n_m1 >> lg) == 0)),
                zero.eq(nxt.n == 0),
                tail.eq(Mux(nxt.n == 0, 0,
                            Mux(rem == 0, (1 << P) - 1, (Const(1, P + 1) << rem) - 1))),
            ]

        # x̂ memory: one row of Np words per beat; the read is transparent for the write port
        # (the write of an older beat in the same cycle is forwarded)
        attrs = {} if self.xhat_ram_style is None else {"ram_style": self.xhat_ram_style}
        m.submodules.xhat = xmem = Memory(data=self.xhat_data, attrs=attrs)
        wr = xmem.write_port(granularity=1)
        rd = xmem.read_port(transparent_for=(wr,))
        m.d.comb += [rd.addr.eq(xaddr), rd.en.eq(accept)]

        # stage 1 registers, loaded from stage 0
        p = _Pipe(m, adv, {})
        s1 = {
            "valid": (accept, 1), "x": (self.i.payload, None), "xaddr": (xaddr, None),
            "beat": (beat, None), "first": (beat == 0, 1), "last": (is_last, 1),
            "lanes": (Mux(is_last, tail, (1 << P) - 1), P),
            "clear": (cur.clear, 1), "theta": (cur.theta, None),
            "head": (Cat(cur.head_lane, cur.head_row), pos_bits), "cont": (cur.cont, 1),
            "cursor": (cur.cursor, None),
        }
        for k, (val, width) in s1.items():
            if isinstance(val, data.View):
                shape = val.shape()
            else:
                shape = width if width is not None else Value.cast(val).shape()
            sig = Signal(shape, name=f"s1_{k}", reset_less=k != "valid")
            with m.If(adv):
                m.d.sync += sig.eq(val)
            p[k] = sig

        # stage 1: x̂ from the memory, registered straight (block RAM outputs are slow);
        # stage 2: +0 words instead when clear
        p["xh"] = rd.data
        p.stage()
        p["xh"] = data.View(self.beat_layout, Mux(p["clear"], 0, p["xh"].as_value()))

        # Δ and fire (registered), then the x̂ row write at the start of the compaction
        _delta(p, self.fmt, P)
        p.stage()
        assert p.n == self.write_stage
        wen = Signal(P)
        m.d.comb += [
            wen.eq(Mux(p["valid"] & adv, p["lanes"] & (p["fire"] | p["clear"].replicate(P)), 0)),
            wr.addr.eq(p["xaddr"]),
            wr.en.eq(wen),
        ]
        for l in range(P):
            m.d.comb += wr.data[l].eq(Mux(p["fire"][l], p["x"][l], 0))

        # hazard: the beat offered now would read a row that an older beat (stages 1 .. W-1)
        # has not written yet. Kept as a register: computed for the next cycle from the
        # current state, once assuming this cycle's beat is accepted and once not.
        hist = [p.history[j] for j in range(1, self.write_stage)]

        def conflict(stages, addr):
            return Cat(*[v & w & (a == addr) for v, w, a in stages]).any()

        older = [(h["valid"], h["lanes"] != 0, h["xaddr"]) for h in hist]
        cur_reads = ~cur.clear & ~zero
        nxt_reads = ~nxt.clear & (nxt.n != 0)
        # accepted: the pipeline shifts in this beat; the next beat is the following row, or
        # the first row of the next command after a vector's last beat
        x_acc = Mux(is_last, nxt.xhat_base, (xaddr + 1)[:len(xaddr)])
        hz_acc = Mux(is_last, nxt_reads, cur_reads) & conflict(
            [(Const(1, 1), ~zero, xaddr)] + older[:-1], x_acc)
        # not accepted: the pipeline shifts in a bubble (adv) or holds; a command may load
        ld_idle = ~active & cmdq.r_rdy
        x_idle = Mux(ld_idle, nxt.xhat_base, xaddr)
        hz_idle = Mux(ld_idle, nxt_reads, cur_reads) & Mux(
            adv, conflict(older[:-1], x_idle), conflict(older, x_idle))
        m.d.sync += hazard.eq(Mux(accept, hz_acc, hz_idle))

        # --- compaction --------------------------------------------------------------------------
        p.drop("x", "xh", "theta", "clear", "xaddr", "lanes")
        p["cd"] = [Cat(p["delta"][q], Const(q, lg), p["beat"]) for q in range(P)]
        p["cv"] = [p["fire"][q] for q in range(P)]
        p.drop("delta")
        _prefix_zeros(p, P, lps)
        p.stage()
        c = p["c"]
        p["csh"] = [Const(0, lg)] + [c[q - 1][:lg] for q in range(1, P)]
        k = Signal(lg + 1)
        m.d.comb += k.eq(P - c[P - 1])
        p.drop("c", "fire", "beat")

        # list cursor: position of this beat's first element, descriptor fields
        cursors = Array(Signal(pos_bits, name=f"cursor{i}") for i in range(self.num_cursors))
        dhead = Signal(pos_bits)
        dcount = Signal(cfg.count_bits)
        pos_b = Mux(p["first"] & ~p["cont"], p["head"], cursors[p["cursor"]])
        end = Signal(pos_bits)
        m.d.comb += end.eq(pos_b + k)
        with m.If(p["valid"] & adv):
            m.d.sync += [cursors[p["cursor"]].eq(end), dcount.eq(Mux(p["first"], 0, dcount) + k)]
            with m.If(p["first"]):
                m.d.sync += dhead.eq(pos_b)
        lane_b = pos_b[:lg]
        lane_end = (lane_b + k)[:lg + 1]
        p["lane_b"] = lane_b
        p["row_b"] = pos_b[lg:]
        p["row_b1"] = (pos_b[lg:] + 1)[:addr_bits]
        p["wrap"] = lane_end[lg]
        p["remainder"] = lane_end[lg] & (lane_end[:lg] != 0)
        p["any"] = k != 0
        p["hi"] = Cat(*[lane_b <= y for y in range(P)])
        p["d_head"] = Mux(p["first"], pos_b, dhead)
        p["d_count"] = (Mux(p["first"], 0, dcount) + k)[:cfg.count_bits]
        p.drop("first", "head", "cont", "cursor")
        _compact(p, P, lps, first_level_here=True)
        p.drop("csh")
        _rotate(p, P, lps)
        p.drop("lane_b")
        before_merge = p.v                # control bits of the stage before the merge
        p.stage()

        # --- merge into the staging row, emit rows and descriptors into their queues -------------
        rentry = data.StructLayout({
            "row": unsigned(addr_bits), "mask": unsigned(P),
            "index": data.ArrayLayout(unsigned(idx_bits), P),
            "value": data.ArrayLayout(unsigned(wb), P),
        })
        # a vector has at most max_blocks + 1 rows; rows accepted ahead of their descriptor
        # are bounded by the vectors the descriptor queue and the pipeline can hold
        nrows_bits = bits_for(cfg.max_blocks + 1)
        acc_bits = bits_for((self.out_depth + 2) * (cfg.max_blocks + 1))
        dentry = data.StructLayout({"desc": self.desc_layout, "nrows": unsigned(nrows_bits)})
        m.submodules.rowq = rowq = SyncFIFOBuffered(width=rentry.size, depth=self.out_depth)
        m.submodules.descq = descq = SyncFIFOBuffered(width=dentry.size, depth=self.out_depth)
        assert p.n == self.merge_stage, (p.n, self.merge_stage)
        st_d = [Signal(wb + idx_bits, name=f"stage{y}", reset_less=True) for y in range(P)]
        st_mask = Signal(P)
        st_any = Signal()                 # = (st_mask != 0), kept as a register
        phase = Signal()
        vrows = Signal(nrows_bits)        # rows of the current vector pushed so far

        valid = p["valid"]
        rv = Mux(phase, 0, Cat(*p["cv"]))
        ewrap = p["wrap"] & ~phase
        last = p["last"]
        need2 = valid & ewrap & last & p["remainder"]
        sel_now = Mux(ewrap, rv & p["hi"], rv)
        row_mask = st_mask | sel_now
        push_row = valid & (ewrap | (last & (st_any | (p["any"] & ~phase))))
        push_desc = valid & last & ~need2
        step = valid & go

        # next cycle's adv/go from the state the merge stage will hold then (exact) and the
        # queue levels (conservative: no read counted; level <= depth-2 guarantees w_rdy)
        nv = {}
        phase_n = Signal()
        st_any_n = Signal()
        m.d.comb += phase_n.eq(Mux(step, need2, phase))
        with m.If(step):
            with m.If(ewrap):
                m.d.comb += st_any_n.eq(p["remainder"])
            with m.Elif(last):
                m.d.comb += st_any_n.eq(0)
            with m.Else():
                m.d.comb += st_any_n.eq(st_any | p["any"])
        with m.Else():
            m.d.comb += st_any_n.eq(st_any)
        for name in ("valid", "wrap", "last", "remainder", "any"):
            nv[name] = Mux(adv, before_merge[name], p[name])
        ewrap_n = nv["wrap"] & ~phase_n
        need2_n = nv["valid"] & ewrap_n & nv["last"] & nv["remainder"]
        push_row_n = nv["valid"] & (ewrap_n | (nv["last"] & (st_any_n | (nv["any"] & ~phase_n))))
        push_desc_n = nv["valid"] & nv["last"] & ~need2_n
        # a row pushed now is written into the queue a cycle later (``row_w``), so the room
        # check counts that pending write too
        row_w_valid = Signal()
        row_w_data = Signal(rentry.size, reset_less=True)
        room_rows = (rowq.level + row_w_valid + (push_row & step)) <= self.out_depth - 2
        room_desc = (descq.level + (push_desc & step)) <= self.out_depth - 2
        go_n = (~push_row_n | room_rows) & (~push_desc_n | room_desc)
        m.d.sync += [go.eq(go_n), adv.eq(~nv["valid"] | (go_n & ~need2_n)),
                     phase.eq(phase_n), st_any.eq(st_any_n)]

        re = Signal(rentry)
        de = Signal(dentry)
        m.d.comb += [
            re.row.eq(Mux(phase, p["row_b1"], p["row_b"])),
            re.mask.eq(row_mask),
            de.desc.head_row.eq(p["d_head"][lg:]),
            de.desc.head_lane.eq(p["d_head"][:lg]),
            de.desc.count.eq(p["d_count"]),
            de.nrows.eq(vrows + push_row),
        ]
        for y in range(P):
            dy = Mux(sel_now[y], p["cd"][y], st_d[y])
            m.d.comb += [re.value[y].eq(dy[:wb]), re.index[y].eq(dy[wb:])]
        # the row is registered before the queue's LUT RAM: its write port then starts at a
        # register instead of at the merge multiplexers
        m.d.sync += [row_w_valid.eq(push_row & step), row_w_data.eq(re.as_value())]
        m.d.comb += [
            rowq.w_data.eq(row_w_data), rowq.w_en.eq(row_w_valid),
            descq.w_data.eq(de.as_value()), descq.w_en.eq(push_desc & step),
        ]
        with m.If(step):
            for y in range(P):
                with m.If(rv[y]):
                    m.d.sync += st_d[y].eq(p["cd"][y])
            with m.If(ewrap):
                m.d.sync += st_mask.eq(rv & ~p["hi"])
            with m.Elif(last):
                m.d.sync += st_mask.eq(0)
            with m.Else():
                m.d.sync += st_mask.eq(st_mask | rv)
            m.d.sync += vrows.eq(Mux(push_desc, 0, vrows + push_row))

        # --- outputs: a descriptor waits until its vector's rows have been accepted --------------
        rq = data.View(rentry, rowq.r_data)
        dq = data.View(dentry, descq.r_data)
        acc_rows = Signal(acc_bits)       # rows accepted, not yet matched by a descriptor
        row_hs = self.o_rows.valid & self.o_rows.ready
        desc_hs = self.o_desc.valid & self.o_desc.ready
        # "the head descriptor's rows have all been accepted", registered: the compare
        # stays off the path from the queue's head to its read enable (with it, that path
        # was bf16's critical one on ECP5, 11.9 ns). It holds a cycle later too (acc_rows
        # only grows until the head leaves; the cycle after a pop is not counted), so a
        # descriptor leaves one cycle later than its rows allow, and at most every second
        # cycle (vectors of two beats or more, one descriptor each, are not held up).
        rows_done = Signal()
        m.d.sync += rows_done.eq(descq.r_rdy & (acc_rows >= dq.nrows) & ~desc_hs)
        m.d.comb += [
            self.o_rows.valid.eq(rowq.r_rdy),
            self.o_rows.payload.row.eq(rq.row),
            self.o_rows.payload.mask.eq(rq.mask),
            rowq.r_en.eq(self.o_rows.ready),
            self.o_desc.valid.eq(descq.r_rdy & rows_done),
            self.o_desc.payload.eq(dq.desc),
            descq.r_en.eq(desc_hs),
        ]
        for y in range(P):
            m.d.comb += [self.o_rows.payload.index[y].eq(rq.index[y]),
                         self.o_rows.payload.value[y].eq(rq.value[y])]
        m.d.sync += acc_rows.eq(acc_rows + row_hs - Mux(desc_hs, dq.nrows, 0))
        return m
