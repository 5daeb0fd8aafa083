"""The controller: instruction queue, legality check, issue, pause/fence, performance counters.

Why: the host writes instructions faster or slower than the core executes them and may
write illegal ones; the core must only ever see legal instructions, one after the other,
and the host must be able to stop the machine at chosen points (``pause``), learn where and
why it stopped on an error, and measure what happened (cycles, MAC beats, stalls).

Pipeline: ``push`` (from the register file's INSTR window, or from the DRAM instruction
fetcher `reneta_hw.ctrl.fetch.InstructionFetcher`: the top level merges both) -> ``StreamFIFO`` (``cfg.instr_queue_depth``
instructions) -> `InstructionChecker` (4 cycles) -> ``PingPongBuffer`` (cuts the core's ready
off the checker's stall enable) -> issue stage -> ``core_instr``. From a push into an empty
queue to the core: 8 cycles; then one instruction per cycle while the core takes them.

Issue stage states:

* ``IDLE``: nothing is issued. ``start`` -> ``RUN`` (the instruction index, the issued and
  retired counts since start and the ``done`` flag are cleared).
* ``RUN``: the checked instruction at the head is issued when the core is ready; an
  ``IDLE`` instruction is consumed here and counts as retired without reaching the core.
  An illegal one (rule != 0) is not issued: ``ERROR`` with ``err_rule`` and ``err_index``
  (its index since start). After issuing an instruction with ``pause=1``: ``DRAIN``.
  The run is complete (``done``, back to ``IDLE``) when nothing is in flight, the core is
  idle and either ``instr_count`` (if not 0) instructions were issued since start, or
  (``instr_count == 0``) the queue and the checker are empty. ``instr_count`` is latched at
  ``start``.
* ``DRAIN``: wait for every issued instruction to retire and the core to be idle, then
  ``PAUSED`` (``paused_set``: the interrupt source).
* ``PAUSED``: ``resume`` (or ``start``) -> ``RUN``.
* ``ERROR``: entered on an illegal instruction or on the core's ``error``; nothing is
  issued. ``clear_error`` clears the core's error and goes to ``FLUSH``, which drops every
  queued instruction, then ``IDLE``.

Performance counters (64 bits: a 32-bit low half and a high half fed by a registered carry,
so read them while the machine is not running for a coherent value): ``cycles`` (cycles in
RUN/DRAIN/ERROR, i.e. from start to done, pauses excluded), ``busy`` (cycles the core is
not idle), ``mac_beats``, ``stall_dram``, ``stall_smem``, ``stall_hazard``, ``stall_out``
(the core's per-cycle event bits), ``retired`` (instructions finished, IDLE ones included).
``clear_counters`` zeroes them.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import AcceleratorConfig
from ..isa import instruction_layout
from ..mem.fifo import PingPongBuffer, StreamFIFO
from .checker import InstructionChecker, checked_layout
from .interfaces import events_layout

__all__ = ["State", "COUNTERS", "Controller"]

COUNTERS = ("cycles", "busy", "mac_beats", "stall_dram", "stall_smem", "stall_hazard",
            "stall_out", "retired")


class State(enum.Enum, shape=3):
    IDLE = 0
    RUN = 1
    DRAIN = 2
    PAUSED = 3
    ERROR = 4
    FLUSH = 5


class Controller(wiring.Component):
    """See the module docstring. Ports:

    ``push``: In(stream of the instruction bits); ``core_instr``: Out(stream of
    `instruction_layout`); core status inputs ``core_idle``, ``core_retired``, ``core_error``,
    ``core_error_code``, ``core_events``; ``core_error_clear``: Out(1).
    Host commands (one-cycle strobes): ``start``, ``resume``, ``clear_counters``,
    ``clear_error``; ``instr_count``: In(32).
    Status: ``state``, ``running`` (not IDLE), ``paused``, ``done`` (sticky until start),
    ``error``, ``err_rule`` (4), ``err_core`` (1), ``err_code`` (4), ``err_index`` (32),
    ``issued`` (32, instructions consumed since start), ``queue_level``; interrupt sources
    (one-cycle pulses) ``done_set``, ``paused_set``, ``error_set``; counters: one Out(64)
    per name in ``COUNTERS``.
    """

    def __init__(self, cfg: AcceleratorConfig):
        if not isinstance(cfg, AcceleratorConfig):
            self._MustUse__used = True      # no "never used" warning on top of the error
            raise ValueError(f"Controller.cfg: must be an AcceleratorConfig, got {cfg!r}")
        self.cfg = cfg
        lay = instruction_layout(cfg)
        members = {
            "push": In(stream.Signature(unsigned(lay.size))),
            "core_instr": Out(stream.Signature(lay)),
            "core_idle": In(1),
            "core_retired": In(1),
            "core_error": In(1),
            "core_error_code": In(4),
            "core_error_clear": Out(1),
            "core_events": In(events_layout()),
            "start": In(1), "resume": In(1), "clear_counters": In(1), "clear_error": In(1),
            "instr_count": In(32),
            "state": Out(State),
            "running": Out(1), "paused": Out(1), "done": Out(1), "error": Out(1),
            "err_rule": Out(4), "err_core": Out(1), "err_code": Out(4), "err_index": Out(32),
            "issued": Out(32),
            "queue_level": Out(range(cfg.instr_queue_depth + 1)),
            "done_set": Out(1), "paused_set": Out(1), "error_set": Out(1),
        }
        for c in COUNTERS:
            members[c] = Out(64)
        super().__init__(members)

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        lay = instruction_layout(cfg)
        m.submodules.queue = q = StreamFIFO(lay.size, cfg.instr_queue_depth)
        m.submodules.checker = chk = InstructionChecker(cfg)
        # a two-entry buffer keeps the core's ready off the checker's global stall enable;
        # ping-pong, so that ready reaches its pointer and flags, not the instruction bits
        m.submodules.skid = skid = PingPongBuffer(checked_layout(cfg))
        wiring.connect(m, chk.o, skid.i)
        m.d.comb += [
            q.i.payload.eq(self.push.payload), q.i.valid.eq(self.push.valid),
            self.push.ready.eq(q.i.ready),
            chk.i.payload.eq(q.o.payload), chk.i.valid.eq(q.o.valid), q.o.ready.eq(chk.i.ready),
            self.queue_level.eq(q.level),
        ]
        c = skid.o
        ins = c.payload.ins
        state = Signal(State)
        inflight = Signal(range(2 * cfg.instr_queue_depth + 4))
        issue_core = Signal()      # handshake to the core this cycle
        consume = Signal()         # the checked instruction leaves this cycle
        retire_idle = Signal()
        m.d.comb += [
            self.state.eq(state),
            self.running.eq(state != State.IDLE),
            self.paused.eq(state == State.PAUSED),
            self.error.eq(state == State.ERROR),
            self.core_instr.payload.eq(ins),
        ]
        issued = Signal(32)
        m.d.comb += self.issued.eq(issued)
        m.d.sync += [self.done_set.eq(0), self.paused_set.eq(0), self.error_set.eq(0),
                     self.core_error_clear.eq(0)]
        with m.If(issue_core & ~self.core_retired):
            m.d.sync += inflight.eq(inflight + 1)
        with m.Elif(~issue_core & self.core_retired & (inflight != 0)):
            m.d.sync += inflight.eq(inflight - 1)
        with m.If(consume):
            m.d.sync += issued.eq(issued + 1)
        last_core = Signal(32)        # index of the last instruction issued to the core
        with m.If(issue_core):
            m.d.sync += last_core.eq(issued)
        quiet = (inflight == 0) & self.core_idle
        # INSTR_COUNT is latched at START; a down-counter and registered flags keep the
        # 32-bit compare off the issue path
        limit = Signal()
        left = Signal(32)
        left_zero = Signal()
        at_limit = limit & left_zero
        with m.If((state == State.IDLE) & self.start):
            m.d.sync += [limit.eq(self.instr_count != 0), left.eq(self.instr_count),
                         left_zero.eq(self.instr_count == 0)]
        with m.Elif(consume):
            m.d.sync += [left.eq(left - 1), left_zero.eq(left == 1)]
        empty = (q.level == 0) & ~chk.busy & ~skid.o.valid

        def to_error():
            m.d.sync += [state.eq(State.ERROR), self.error_set.eq(1)]

        with m.Switch(state):
            with m.Case(State.IDLE):
                with m.If(self.start):
                    m.d.sync += [state.eq(State.RUN), issued.eq(0), self.done.eq(0),
                                 self.err_rule.eq(0), self.err_core.eq(0),
                                 self.err_code.eq(0)]
            with m.Case(State.RUN):
                with m.If(self.core_error):
                    m.d.sync += [self.err_core.eq(1), self.err_code.eq(self.core_error_code),
                                 self.err_index.eq(last_core)]
                    to_error()
                with m.Elif(c.valid & ~at_limit):
                    with m.If(c.payload.illegal):
                        m.d.sync += [self.err_rule.eq(c.payload.rule),
                                     self.err_index.eq(issued)]
                        to_error()
                    with m.Elif(c.payload.idle):
                        m.d.comb += [consume.eq(1), retire_idle.eq(1)]
                    with m.Else():
                        m.d.comb += [self.core_instr.valid.eq(1),
                                     issue_core.eq(self.core_instr.ready),
                                     consume.eq(self.core_instr.ready)]
                    with m.If(consume & ins.pause):
                        m.d.sync += state.eq(State.DRAIN)
                with m.Elif(quiet & Mux(limit, at_limit, empty)):
                    m.d.sync += [state.eq(State.IDLE), self.done.eq(1), self.done_set.eq(1)]
            with m.Case(State.DRAIN):
                with m.If(self.core_error):
                    m.d.sync += [self.err_core.eq(1), self.err_code.eq(self.core_error_code),
                                 self.err_index.eq(last_core)]
                    to_error()
                with m.Elif(quiet):
                    m.d.sync += [state.eq(State.PAUSED), self.paused_set.eq(1)]
            with m.Case(State.PAUSED):
                with m.If(self.resume | self.start):
                    m.d.sync += state.eq(State.RUN)
            with m.Case(State.ERROR):
                with m.If(self.clear_error):
                    m.d.sync += [state.eq(State.FLUSH), self.core_error_clear.eq(1)]
            with m.Case(State.FLUSH):
                m.d.comb += c.ready.eq(1)
                with m.If(empty & ~q.o.valid):
                    m.d.sync += state.eq(State.IDLE)
        with m.If(consume):
            m.d.comb += c.ready.eq(1)

        # performance counters
        active = (state == State.RUN) | (state == State.DRAIN) | (state == State.ERROR)
        ev = self.core_events
        incs = {
            "cycles": active, "busy": ~self.core_idle, "mac_beats": ev.mac_beat,
            "stall_dram": ev.stall_dram, "stall_smem": ev.stall_smem,
            "stall_hazard": ev.stall_hazard, "stall_out": ev.stall_out,
            "retired": self.core_retired | retire_idle,
        }
        self._counter_halves = {}     # name -> (lo, hi) of the last elaboration (tests)
        for name in COUNTERS:
            lo, hi, carry = (Signal(32, name=f"{name}_lo"), Signal(32, name=f"{name}_hi"),
                             Signal(name=f"{name}_carry"))
            self._counter_halves[name] = (lo, hi)
            m.d.comb += getattr(self, name).eq(lo | (hi << 32))
            with m.If(self.clear_counters):
                m.d.sync += [lo.eq(0), hi.eq(0), carry.eq(0)]
            with m.Else():
                m.d.sync += carry.eq(incs[name] & (lo == 0xFFFF_FFFF))
                with m.If(incs[name]):
                    m.d.sync += lo.eq(lo + 1)
                with m.If(carry):
                    m.d.sync += hi.eq(hi + 1)
        return m
