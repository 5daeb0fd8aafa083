"""`RenetaCore`: the accelerator's datapath core - every procedure, bit-exact, pipelined.

Why: this is the machine below the controller. It takes legal instructions one at a time
and executes them with the PE array busy as many cycles as possible: list reading, DRAM
and SMEM operand fetches, pairing, compute and write-back are separate blocks joined by
FIFOs, so the requests of a beat run ahead of the beat (hiding the DRAM latency) and
consecutive instructions overlap.

Structure::

    instr -> hazard check -> Sequencer (loop nests, `reneta_hw.ipm.sequencer`) --cmd--> DMX -> PEArray -> WriteBack
               \\-> list jobs -> ListReader (SPM + SMEM lists) --elements--^     ^  ^  ^             |      |
                                          SMEM op0 rows (sreq) ------------------/  |  |      SMEM writes   AxiWriteMaster
                                          SMEM op1 rows (xreq) ---------------------/  |                         |
                                          DRAM rows: AxiReadMaster (dreq) -------------/                      dram

Ports (see the task's interface): ``instr`` (In stream of `instruction_layout`), ``dram``
(Out `Axi4Signature`), ``idle``, ``retired``, ``error``/``error_code``/``error_clear``,
``events`` (`event_layout`, registered twice: each bit is two cycles before), ``smem_host``
(`reneta_hw.mem.smem.smem_host_signature`: fixed latency, ``rdata`` valid the cycle after
``re``), ``spm_host`` (``addr``, ``wdata``, ``we``, ``re``, ``rdata``: same timing).

Backdoors for simulation: ``smem_memories`` (one `Memory` per bank; SMEM row r is entry
``r % smem_bank_rows`` of bank ``r // smem_bank_rows``, lane p in bits
``[p*word_bits, (p+1)*word_bits)``), ``spm_memory`` (one descriptor word per entry).

Instruction overlap: an instruction is accepted as soon as the sequencer can take it,
unless it reads a memory range an in-flight (or not yet acknowledged) instruction writes:
then it waits until the core is idle. `reneta_hw.ipm.hazard.HazardCheck` compares exact
ranges: operand 0 and the dense operand 1 (`reneta_hw.isa.region_rows`) and the non-zero
lists' rows, read from their SPM descriptors (a second SPM read port). A ``DELTA``
(`reneta_hw.opm.delta_proc.DeltaProc`) is accepted only when the core is idle, and nothing
is accepted while it runs: its lists and descriptors need no written-range tracking.

Errors (``error_code``, set two cycles after the event, sticky until ``error_clear``):
1 = a non-zero index >= n1 (the element is computed with index 0 so the instruction still
finishes), 2 = a DRAM bus error (read or write response), 3 = a DELTA list row past the
end of SMEM (`reneta_hw.opm.delta_proc`), 4 = an index repeated within one non-zero list
(`reneta_hw.ipm.dup_index`; the instruction still finishes).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from reneta_hw.bus.axi import Axi4Signature
from reneta_hw.bus.axi_read import AxiReadMaster
from reneta_hw.bus.axi_write import AxiWriteMaster
from reneta_hw.ccm.pe_array import PEArray
from reneta_hw.config import AcceleratorConfig
from reneta_hw.ipm.dmx import DMX
from reneta_hw.ipm.hazard import HazardCheck
from reneta_hw.ipm.list_reader import ListReader
from reneta_hw.ipm.sequencer import Sequencer, beat_layout, wb_layout
from reneta_hw.isa import Proc, descriptor_layout, instruction_layout
from reneta_hw.mem.fifo import (PingPongBuffer, PrefetchFIFO, SkidBuffer, SplitBuffer,
                                StreamFIFO)
from reneta_hw.mem.smem import SharedMemory, smem_host_signature
from reneta_hw.ipm.dup_index import DuplicateIndexMonitor
from reneta_hw.opm.delta_proc import DeltaProc
from reneta_hw.opm.writeback import WriteBack

__all__ = ["RenetaCore", "event_layout", "spm_host_signature", "ErrorCode"]


class ErrorCode:
    NONE = 0
    BAD_INDEX = 1
    BUS = 2
    RANGE = 3
    DUPLICATE = 4


def event_layout() -> data.StructLayout:
    return data.StructLayout({"busy": 1, "mac_beat": 1, "stall_dram": 1, "stall_smem": 1,
                              "stall_hazard": 1, "stall_out": 1})


def spm_host_signature(cfg: AcceleratorConfig) -> wiring.Signature:
    return wiring.Signature({
        "addr": Out(cfg.spm_addr_bits),
        "wdata": Out(descriptor_layout(cfg).size),
        "we": Out(1),
        "re": Out(1),
        "rdata": In(descriptor_layout(cfg).size),
    })


class RenetaCore(wiring.Component):
    """``RenetaCore(cfg, *, dram_outstanding=40, cmd_depth=64, wb_depth=128, chain_slots=8,
    operand_depth=None)``.

    ``dram_outstanding``: single-row DRAM reads in flight (>= DRAM latency + ~8 for one
    beat per cycle); ``operand_depth``: rows the SMEM operand-0/operand-1 response queues
    hold (default ``dram_outstanding + 16``: a beat that needs a DRAM row and an SMEM row
    must be able to run that far ahead); ``cmd_depth``: beat commands queued between the sequencer and the DMX
    (how far requests run ahead); ``wb_depth``: write-back descriptors queued.
    """

    def __init__(self, cfg: AcceleratorConfig, *, dram_outstanding: int = 40,
                 cmd_depth: int = 64, wb_depth: int = 128, chain_slots: int = 8,
                 operand_depth: int | None = None):
        if not isinstance(cfg, AcceleratorConfig):
            raise TypeError(f"RenetaCore: cfg must be an AcceleratorConfig, got {cfg!r}")
        for name, v, lo in (("dram_outstanding", dram_outstanding, 1),
                            ("cmd_depth", cmd_depth, 4), ("wb_depth", wb_depth, 4)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"RenetaCore: {name} must be an integer >= {lo}, got {v!r}")
        self.cfg = cfg
        self.dram_outstanding = dram_outstanding
        self.cmd_depth = cmd_depth
        self.wb_depth = wb_depth
        self.chain_slots = chain_slots
        if operand_depth is None:
            operand_depth = dram_outstanding + 16
        if isinstance(operand_depth, bool) or not isinstance(operand_depth, int) \
                or operand_depth < 2:
            raise ValueError(f"RenetaCore: operand_depth must be an integer >= 2, got "
                             f"{operand_depth!r}")
        self.operand_depth = operand_depth
        # the operand and DELTA rows are registered behind their FIFOs, before the DMX's
        # and DELTA's wide multiplexers. The list reader's are not: with that register its
        # lane multiplexers grew to two rows and were the critical path of two ECP5 runs
        # (10.6 and 11.2 ns), against 8.2 ns for the FIFO clock enable they replaced.
        # Every request is registered in front of the arbiter: from the requesters' logic
        # across the chip to the registered read address was the critical path of the
        # default configuration on ECP5 (8.96 ns). The operand queues (block RAM when
        # deep) are read ahead into registers (`PrefetchFIFO`): their read latch fed the
        # buffer behind them across the chip, 4.3 ns after the clock (8.1 ns paths).
        deep = operand_depth >= PrefetchFIFO.MIN_DEPTH
        self._smem = SharedMemory(cfg, read_ports=5,
                                  resp_depth=[8, 8, operand_depth, operand_depth, 8],
                                  out_reg=[False, False, True, True, True], req_reg=True,
                                  prefetch=[False, False, deep, deep, False])
        self.smem_memories = self._smem.smem_memories
        self.spm_memory = Memory(shape=unsigned(descriptor_layout(cfg).size),
                                 depth=cfg.spm_depth, init=[])
        super().__init__({
            "instr": In(stream.Signature(instruction_layout(cfg))),
            "dram": Out(Axi4Signature(cfg.axi_data_width, cfg.axi_addr_width,
                                      cfg.axi_id_width)),
            "idle": Out(1),
            "retired": Out(1),
            "error": Out(1),
            "error_code": Out(4),
            "error_clear": In(1),
            "events": Out(event_layout()),
            "smem_host": In(smem_host_signature(cfg)),
            "spm_host": In(spm_host_signature(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        sa = cfg.smem_addr_bits

        m.submodules.smem = smem = self._smem
        wiring.connect(m, wiring.flipped(self.smem_host), smem.host)

        # --- SPM -------------------------------------------------------------------------------
        m.submodules.spm = spm = self.spm_memory
        spm_w = spm.write_port()
        spm_r = spm.read_port(domain="sync")
        # DELTA (`reneta_hw.opm.delta_proc`) writes descriptors only while the core is busy,
        # the host only while it is idle: a plain multiplexer
        m.submodules.delta = dp = DeltaProc(cfg)
        m.d.comb += [spm_w.addr.eq(Mux(dp.spm_we, dp.spm_waddr, self.spm_host.addr)),
                     spm_w.data.eq(Mux(dp.spm_we, dp.spm_wdata, self.spm_host.wdata)),
                     spm_w.en.eq(self.spm_host.we | dp.spm_we)]
        spm_host_q = Signal()
        spm_held = Signal.like(self.spm_host.rdata)
        m.d.sync += spm_host_q.eq(self.spm_host.re)
        with m.If(spm_host_q):
            m.d.sync += spm_held.eq(spm_r.data)
        m.d.comb += self.spm_host.rdata.eq(Mux(spm_host_q, spm_r.data, spm_held))

        # --- blocks ------------------------------------------------------------------------------
        m.submodules.lists = lists = ListReader(cfg)
        m.submodules.seq = seq = Sequencer(cfg, chain_slots=self.chain_slots)
        m.submodules.dmx = dmx = DMX(cfg)
        m.submodules.pe = pe = PEArray(cfg)
        m.submodules.wb = wb = WriteBack(cfg)
        # the sub-blocks of the last elaboration, for simulation probes (debugging only)
        self._blocks = dict(lists=lists, seq=seq, dmx=dmx, pe=pe, wb=wb, delta=dp)
        m.submodules.rd = rd = AxiReadMaster(
            cfg.axi_data_width, cfg.axi_addr_width, cfg.axi_id_width, row_bytes=cfg.row_bytes,
            max_burst=1, max_outstanding=self.dram_outstanding, max_rows=1)
        m.submodules.wr = wr = AxiWriteMaster(
            cfg.axi_data_width, cfg.axi_addr_width, cfg.axi_id_width, row_bytes=cfg.row_bytes,
            max_burst=1, max_outstanding=16, max_rows=1, strobe_granularity=cfg.word_bits)
        for ch in ("ar", "r"):
            wiring.connect(m, getattr(rd.axi, ch), wiring.flipped(getattr(self.dram, ch)))
        for ch in ("aw", "w", "b"):
            wiring.connect(m, getattr(wr.axi, ch), wiring.flipped(getattr(self.dram, ch)))

        # SPM read port: host first, else the list reader
        m.d.comb += [
            spm_r.addr.eq(Mux(self.spm_host.re, self.spm_host.addr,
                              Mux(dp.spm_re, dp.spm_raddr, lists.spm_addr))),
            spm_r.en.eq(self.spm_host.re | lists.spm_en | dp.spm_re),
            dp.spm_rdata.eq(spm_r.data),
            lists.spm_data.eq(spm_r.data),
        ]
        wiring.connect(m, lists.idx_req, smem.rreq[0])
        wiring.connect(m, smem.rresp[0], lists.idx_resp)
        wiring.connect(m, lists.val_req, smem.rreq[1])
        wiring.connect(m, smem.rresp[1], lists.val_resp)
        wiring.connect(m, lists.el, seq.el)
        m.submodules.dup = dup = DuplicateIndexMonitor(cfg)
        m.d.comb += [dup.valid.eq(lists.el.valid & lists.el.ready),
                     dup.nzi.eq(lists.el.payload.nzi), dup.first.eq(lists.el.payload.first),
                     dup.empty.eq(lists.el.payload.empty), dup.bad.eq(lists.el.payload.bad)]

        def fifo(name, shape, depth, buffered=True, prefetch=False):
            f = StreamFIFO(shape, depth, buffered=buffered, prefetch=prefetch)
            m.submodules[name] = f
            return f

        # the two deep queues are block RAM, read ahead into registers (see `PrefetchFIFO`)
        cmd_q = fifo("cmd_q", beat_layout(cfg), self.cmd_depth,
                     prefetch=self.cmd_depth >= PrefetchFIFO.MIN_DEPTH)
        wb_q = fifo("wb_q", wb_layout(cfg), self.wb_depth,
                    prefetch=self.wb_depth >= PrefetchFIFO.MIN_DEPTH)
        dreq_q = fifo("dreq_q", unsigned(cfg.axi_addr_width), 4, buffered=False)
        sreq_q = fifo("sreq_q", unsigned(sa), 4, buffered=False)
        xreq_q = fifo("xreq_q", unsigned(sa), 4, buffered=False)
        wreq_q = fifo("wreq_q", wb.dreq.payload.shape(), 4, buffered=False)
        wdat_q = fifo("wdat_q", wb.ddata.payload.shape(), 4, buffered=False)
        # the block-RAM FIFOs' read data (4 ns clock-to-output on ECP5) lands in a register
        # stage before any logic of their consumers sees it (the DMX's command input is one)
        m.submodules.wb_reg = wb_reg = SkidBuffer(wb_layout(cfg))
        wiring.connect(m, seq.cmd, cmd_q.i)
        wiring.connect(m, cmd_q.o, dmx.cmd)
        wiring.connect(m, seq.wb, wb_q.i)
        wiring.connect(m, wb_q.o, wb_reg.i)
        wiring.connect(m, wb_reg.o, wb.wb)
        wiring.connect(m, seq.dreq, dreq_q.i)
        # DRAM row requests (the sequencer's, or DELTA's while it runs) reach the read
        # master through a skid buffer: its AR issue and the write enables of its request
        # FIFOs then start at flip-flops, not at DELTA's request logic across the chip
        m.submodules.dreq_reg = dreq_reg = SkidBuffer(unsigned(cfg.axi_addr_width))
        m.d.comb += [
            dreq_reg.i.valid.eq(dreq_q.o.valid | dp.dreq.valid),
            dreq_reg.i.payload.eq(Mux(dp.busy, dp.dreq.payload, dreq_q.o.payload)),
            dreq_q.o.ready.eq(dreq_reg.i.ready & ~dp.busy),
            dp.dreq.ready.eq(dreq_reg.i.ready & dp.busy),
            rd.req.valid.eq(dreq_reg.o.valid), rd.req.payload.addr.eq(dreq_reg.o.payload),
            rd.req.payload.rows.eq(1), dreq_reg.o.ready.eq(rd.req.ready),
        ]
        wiring.connect(m, seq.sreq, sreq_q.i)
        wiring.connect(m, sreq_q.o, smem.rreq[2])
        wiring.connect(m, seq.xreq, xreq_q.i)
        wiring.connect(m, xreq_q.o, smem.rreq[3])
        # DRAM rows go to the DELTA engine while it runs (it runs alone), else to the DMX,
        # each through a two-entry buffer of its own beside the read master: the read
        # master's take (its FIFO's read enable and credits) starts at their flags and at
        # ``to_delta``, a local copy of DELTA's busy flag, never at logic across the chip
        # (DELTA's own acceptance there was a path of 11.7 ns on ECP5). The DMX's is a
        # ping-pong buffer (its take stays off the rows' clock enables); DELTA's a skid
        # buffer, whose rows leave from flip-flops (through one shared ping-pong buffer,
        # its 256-bit output select had crossed the chip to DELTA's landing buffer).
        # ``to_delta`` is a cycle late, which no row can notice: DELTA starts with the core
        # idle (no row in flight) and its first row comes back at least four cycles after
        # its request; the DMX's first row after DELTA comes later still.
        to_delta = Signal()
        m.d.sync += to_delta.eq(dp.busy)
        m.submodules.drow_reg = drow_reg = PingPongBuffer(rd.data.payload.shape())
        m.submodules.drow_delta = drow_delta = SkidBuffer(rd.data.payload.shape())
        m.d.comb += [drow_reg.i.valid.eq(rd.data.valid & ~to_delta),
                     drow_reg.i.payload.eq(rd.data.payload),
                     drow_delta.i.valid.eq(rd.data.valid & to_delta),
                     drow_delta.i.payload.eq(rd.data.payload),
                     rd.data.ready.eq(Mux(to_delta, drow_delta.i.ready, drow_reg.i.ready))]
        wiring.connect(m, drow_reg.o, dmx.drow)
        wiring.connect(m, drow_delta.o, dp.drow)
        wiring.connect(m, dp.sreq, smem.rreq[4])
        wiring.connect(m, smem.rresp[4], dp.srow)
        wiring.connect(m, smem.rresp[2], dmx.srow)
        wiring.connect(m, smem.rresp[3], dmx.xrow)
        # the PE array's admission (hazard and mode checks on the beat's control fields)
        # decides its ready: a two-entry buffer keeps that off the DMX's take -> DRAM/SMEM
        # row pops -> AXI credits, and off the clock enables of the 2 * num_pe operand
        # words, while the control fields the checks start from come from flip-flops
        m.submodules.beat_reg = beat_reg = SplitBuffer(dmx.o.payload.shape(),
                                                       wide=("w", "x"))
        wiring.connect(m, dmx.o, beat_reg.i)
        wiring.connect(m, beat_reg.o, pe.i)
        wiring.connect(m, pe.o, wb.res)
        # SMEM writes: DELTA runs alone (nothing else writes then), so its busy flag (a
        # register) picks the writer, not the write-back's combinational valid
        m.d.comb += [smem.wreq.valid.eq(Mux(dp.busy, dp.smem_w.valid, wb.smem_w.valid)),
                     smem.wreq.payload.eq(Mux(dp.busy, dp.smem_w.payload, wb.smem_w.payload)),
                     wb.smem_w.ready.eq(smem.wreq.ready & ~dp.busy),
                     dp.smem_w.ready.eq(smem.wreq.ready & dp.busy)]
        # DRAM writes: the write-back's join decides its valid late; a register in front of
        # each queue keeps that decision off the queues' LUT-RAM write enables (272 of them
        # for the data: 8.0 ns on ECP5), and as a skid buffer it gives the join a registered
        # ready (through a pipeline register the queues' fill level reached the PE array's
        # output buffer: 8.6 ns)
        m.submodules.wreq_reg = wreq_reg = SkidBuffer(wb.dreq.payload.shape())
        m.submodules.wdat_reg = wdat_reg = SkidBuffer(wb.ddata.payload.shape())
        wiring.connect(m, wb.dreq, wreq_reg.i)
        wiring.connect(m, wreq_reg.o, wreq_q.i)
        wiring.connect(m, wreq_q.o, wr.req)
        wiring.connect(m, wb.ddata, wdat_reg.i)
        wiring.connect(m, wdat_reg.o, wdat_q.i)
        wiring.connect(m, wdat_q.o, wr.data)

        # --- instruction intake: hazard check, list jobs ----------------------------------
        # exact read-after-write check with its own SPM read port (`reneta_hw.ipm.hazard`)
        m.submodules.hazard = hz = HazardCheck(cfg)
        spm_hz = spm.read_port(domain="sync")
        m.d.comb += [spm_hz.addr.eq(hz.spm_addr), spm_hz.en.eq(hz.spm_en),
                     hz.spm_data.eq(spm_hz.data)]
        # instructions enter through a two-entry buffer: the intake's acceptance (hazards,
        # queue room, DELTA's idle rule) stays out of the controller's queue logic, and
        # (ping-pong) off the clock enables of the instruction bits
        ilay = instruction_layout(cfg)
        m.submodules.instr_reg = instr_reg = PingPongBuffer(ilay)
        wiring.connect(m, wiring.flipped(self.instr), instr_reg.i)
        wiring.connect(m, instr_reg.o, hz.i)
        # checked instructions wait in a second two-entry buffer: the intake's acceptance
        # reaches its flags, not the hazard check's handshake and its instruction registers
        # (the opcode comes from flip-flops, the rest from ping-pong entries). An
        # instruction in it counts as activity: the core is not idle (see ``idle``).
        checked = SplitBuffer(ilay, wide=[n for n in ilay.members if n != "proc"])
        m.submodules.checked = checked
        wiring.connect(m, hz.o, checked.i)
        ins = checked.o.payload
        p = ins.proc
        is_sparse = (p == Proc.MxV_SP) | (p == Proc.MTxV_SP) | (p == Proc.VXV_SP)
        in_flight = Signal(range(64))
        # "room for more": the count was below 59 a cycle ago (it moves by at most one per
        # cycle and lags the acceptance by one, so at most 60 are ever in flight). A
        # register of the registered count: the intake's ready starts at a flip-flop, and
        # the count's adder is off that loop.
        room = Signal(init=1)
        # the write-back's ``retired`` (its handshake logic, from across the array) lands in
        # a flip-flop before it reaches the count and the controller
        wb_retired = Signal()
        m.d.sync += wb_retired.eq(wb.retired)
        # so does the intake's acceptance (it ends the DELTA intake's and the queues' ready
        # logic); an accepted instruction is counted a cycle later (``idle`` waits for it)
        counted = Signal()

        ins_q = fifo("ins_q", ilay, 2, buffered=False)
        # buffered: the list reader addresses the SPM straight from the job (its output
        # register), not through the LUT RAM read of an unbuffered queue
        job_q = fifo("job_q", ilay, 4)
        accept = Signal()
        idle = Signal(init=1)
        m.d.comb += [
            # DELTA: accepted only when the core is idle, and nothing while it runs
            checked.o.ready.eq(Mux(p == Proc.DELTA, idle & dp.instr.ready,
                                   ins_q.i.ready & job_q.i.ready & room & ~dp.busy)),
            accept.eq(checked.o.valid & checked.o.ready),
            ins_q.i.valid.eq(accept & (p != Proc.DELTA)), ins_q.i.payload.eq(ins),
            job_q.i.valid.eq(accept & is_sparse), job_q.i.payload.eq(ins),
            dp.instr.valid.eq(accept & (p == Proc.DELTA)), dp.instr.payload.eq(ins),
        ]
        wiring.connect(m, ins_q.o, seq.instr)

        # ``idle`` is a register (it fans out to the controller, the hazard check and the
        # DELTA intake): it rises a cycle after the last activity ends and falls in the
        # cycle after an instruction is accepted, as the in-flight count does. The hazard
        # check and the controller see ``core_idle``: also nothing checked waiting (a DELTA
        # is taken at the head of that buffer, so its own rule uses ``idle``).
        idle_now = ((in_flight == 0) & ~counted & ~dp.busy & wr.idle & rd.idle
                    & ~dreq_reg.o.valid & (wreq_q.level == 0) & ~wreq_reg.o.valid
                    & ~smem.write_pending & (wdat_q.level == 0) & ~wdat_reg.o.valid)
        m.d.sync += idle.eq(idle_now & ~accept)
        m.d.sync += [counted.eq(accept & (p != Proc.DELTA)),
                     in_flight.eq(in_flight + counted - wb_retired),
                     room.eq(in_flight < 59)]
        core_idle = Signal()
        m.d.comb += [core_idle.eq(idle & ~checked.o.valid), hz.idle.eq(core_idle)]

        # list jobs: one per sparse list the sequencer will walk, in its order (a VXV_SP
        # instruction gives one per (batch, timestep)). The list reader takes a job every
        # other cycle at best, so the step's facts (descriptor address, "last step",
        # "last timestep") are registers computed from the queue head and the step counters
        # a cycle earlier, and a job is offered only while those did not change at the last
        # edge (``stable``): the queue's pop is then flip-flops and the reader's ready, not
        # two compares behind the queue's output (8.0 ns on ECP5).
        jb = Signal(cfg.cnt_bits)
        jt = Signal(cfg.cnt_bits)
        ji = job_q.o.payload
        job = lists.job.payload
        vxv = ji.proc == Proc.VXV_SP
        stable = Signal()
        job_addr = Signal.like(job.spm_addr)
        t_end = Signal()                  # jt is the last timestep of the batch
        job_last = Signal()               # the head's last job
        offer = job_q.o.valid & stable
        handshake = offer & lists.job.ready
        at_t_end = jt == ji.cnt1
        m.d.sync += [
            stable.eq(job_q.o.valid & ~handshake),
            job_addr.eq(ji.spm_addr + Mux(vxv, jt, ji.t)),
            t_end.eq(at_t_end),
            job_last.eq(~vxv | (at_t_end & (jb == ji.cnt2))),
        ]
        m.d.comb += [
            lists.job.valid.eq(offer),
            job.spm_addr.eq(job_addr),
            job.nzl.eq(ji.smem_nzl), job.op1.eq(ji.smem_op1), job.n1.eq(ji.n1),
            job_q.o.ready.eq(lists.job.ready & stable & job_last),
        ]
        with m.If(handshake):
            with m.If(job_last):
                m.d.sync += [jb.eq(0), jt.eq(0)]
            with m.Elif(t_end):
                m.d.sync += [jt.eq(0), jb.eq(jb + 1)]
            with m.Else():
                m.d.sync += jt.eq(jt + 1)

        # --- status, errors, events ---------------------------------------------------------
        m.d.comb += [self.idle.eq(core_idle), self.retired.eq(wb_retired | dp.done),
                     rd.error_clear.eq(self.error_clear), wr.error_clear.eq(self.error_clear)]
        # each block's error lands in a flip-flop first (the blocks' checks end in adders
        # and comparators spread over the chip); the one seen in the cycle of an
        # ``error_clear`` is dropped, as it would be unregistered
        err_index, err_bus, err_range, err_dup, cleared = (Signal(name=n) for n in (
            "err_index", "err_bus", "err_range", "err_dup", "err_cleared"))
        m.d.sync += [err_index.eq(lists.error), err_bus.eq(rd.error | wr.error),
                     err_range.eq(dp.error), err_dup.eq(dup.error),
                     cleared.eq(self.error_clear)]
        with m.If(self.error_clear):
            m.d.sync += [self.error.eq(0), self.error_code.eq(0)]
        with m.Elif(~self.error & ~cleared):
            with m.If(err_index):
                m.d.sync += [self.error.eq(1), self.error_code.eq(ErrorCode.BAD_INDEX)]
            with m.Elif(err_bus):
                m.d.sync += [self.error.eq(1), self.error_code.eq(ErrorCode.BUS)]
            with m.Elif(err_range):
                m.d.sync += [self.error.eq(1), self.error_code.eq(ErrorCode.RANGE)]
            with m.Elif(err_dup):
                m.d.sync += [self.error.eq(1), self.error_code.eq(ErrorCode.DUPLICATE)]
        # registered twice: each bit counts the cycle two before. The first register sits
        # by its sources, the second by the controller's 64-bit counters, so the route
        # across the chip runs between two flip-flops (one register was bf16's path of
        # 10.2 ns on ECP5: the sources' logic plus that route)
        ev_src = Signal.like(self.events, name="events_src")
        m.d.sync += [
            ev_src.busy.eq(~idle),
            ev_src.mac_beat.eq(pe.i.valid & pe.i.ready & ~pe.i.payload.zero),
            ev_src.stall_dram.eq(dmx.stall_dram),
            ev_src.stall_smem.eq(dmx.stall_smem),
            ev_src.stall_hazard.eq(hz.stall),
            ev_src.stall_out.eq((pe.i.valid & ~pe.i.ready) | wb.stall),
            self.events.eq(ev_src),
        ]
        return m


# --- ECP5 figures -----------------------------------------------------------------------------

def report_blocks(cfg: AcceleratorConfig | None = None):
    """(name, factory) of the core and its own blocks at ``cfg`` (default parameters)."""
    from reneta_hw.ipm.dmx import DMX as _DMX
    from reneta_hw.opm.writeback import WriteBack as _WB
    cfg = cfg or AcceleratorConfig()
    return [
        ("ListReader", lambda: ListReader(cfg)),
        ("Sequencer", lambda: Sequencer(cfg)),
        ("DMX", lambda: _DMX(cfg)),
        ("WriteBack", lambda: _WB(cfg)),
        ("SharedMemory", lambda: SharedMemory(cfg, read_ports=5)),
        ("RenetaCore", lambda: RenetaCore(cfg)),
    ]


def ecp5_figures(cfg: AcceleratorConfig | None = None, *, pnr: bool = True, device: str = "85k",
                 speed: int = 8, only=None) -> list[dict]:
    """Synthesize each block (YoWASP Yosys, nextpnr out of context when ``pnr``); rows of
    ``block, luts, ffs, dsps, brams, fmax_mhz``."""
    from platforms.synth import synth_ecp5
    rows = []
    for name, make in report_blocks(cfg):
        if only and name not in only:
            continue
        r = synth_ecp5(make(), name=f"core_{name.lower()}", pnr=pnr, device=device, speed=speed)
        rows.append(dict(block=name, luts=r.luts, ffs=r.ffs, dsps=r.dsps, brams=r.brams,
                         fmax_mhz=r.fmax_mhz))
        print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    import sys
    ecp5_figures(only=sys.argv[1:] or None)
