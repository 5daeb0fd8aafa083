"""Non-zero list reader: SPM descriptor -> SMEM index/value rows -> one element per cycle.

Why: the sparse procedures walk the non-zeros of a timestep. They are stored packed
(``num_pe`` per SMEM row, a list may start mid-row at ``head_lane``), the index list at
``smem_nzl`` and the value list at ``smem_op1``, with the per-timestep descriptor
(head_row, head_lane, count) in the SPM. This block hides all of that: it takes list jobs
and produces the elements in list order, so the beat generator only sees ``(nzi, nzv)``.

Ports
-----
``job`` (In stream, `list_job_layout`): ``spm_addr`` (descriptor address), ``nzl``,
``op1`` (SMEM base rows of the index and value lists), ``n1`` (indices must be below it).
``el`` (Out stream, `element_layout`): ``nzi``, ``nzv``, ``first``, ``last`` (first/last
element of the list), ``empty`` (the list has no element: one token with first = last = 1
is sent so every job produces at least one item), ``bad`` (the index was >= n1; ``nzi`` is
then forced to 0 so the consumer stays in range).
``spm_addr``/``spm_en`` (Out) and ``spm_data`` (In): a synchronous SPM read port (data
the cycle after ``spm_en``).
``idx_req``/``idx_resp`` and ``val_req``/``val_resp``: two SMEM read ports
(`reneta_hw.mem.smem.SharedMemory`).
``error`` (Out): one-cycle pulse when an element with ``bad`` is sent.

Throughput: one element per cycle once rows arrive; a new list follows the previous one
without a gap (the descriptor of the next job is fetched while the current one is sent).
Elements leave through two register stages (`SkidBuffer`: the lane multiplexers, then the
range check), so ``el``'s valid and payload are flip-flops and ``el.ready`` reaches no
further back than the second stage.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from reneta_hw.config import AcceleratorConfig
from reneta_hw.isa import descriptor_layout
from reneta_hw.mem.fifo import SkidBuffer

__all__ = ["ListReader", "list_job_layout", "element_layout"]


def list_job_layout(cfg: AcceleratorConfig) -> data.StructLayout:
    a = cfg.smem_addr_bits
    return data.StructLayout({"spm_addr": unsigned(cfg.spm_addr_bits), "nzl": unsigned(a),
                              "op1": unsigned(a), "n1": unsigned(cfg.n_bits)})


def element_layout(cfg: AcceleratorConfig) -> data.StructLayout:
    return data.StructLayout({"nzi": unsigned(cfg.word_bits), "nzv": unsigned(cfg.word_bits),
                              "first": 1, "last": 1, "empty": 1, "bad": 1})


class ListReader(wiring.Component):
    """``ListReader(cfg, desc_depth=4)``; see the module docstring."""

    def __init__(self, cfg: AcceleratorConfig, desc_depth: int = 4):
        if not isinstance(cfg, AcceleratorConfig):
            raise TypeError(f"ListReader: cfg must be an AcceleratorConfig, got {cfg!r}")
        if not isinstance(desc_depth, int) or desc_depth < 2:
            raise ValueError(f"ListReader: desc_depth must be an integer >= 2, got "
                             f"{desc_depth!r}")
        self.cfg = cfg
        self.desc_depth = desc_depth
        a = cfg.smem_addr_bits
        super().__init__({
            "job": In(stream.Signature(list_job_layout(cfg))),
            "el": Out(stream.Signature(element_layout(cfg))),
            "spm_addr": Out(cfg.spm_addr_bits),
            "spm_en": Out(1),
            "spm_data": In(descriptor_layout(cfg)),
            "idx_req": Out(stream.Signature(unsigned(a))),
            "idx_resp": In(stream.Signature(unsigned(cfg.row_bits))),
            "val_req": Out(stream.Signature(unsigned(a))),
            "val_resp": In(stream.Signature(unsigned(cfg.row_bits))),
            "error": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        Np, W, lb = cfg.num_pe, cfg.word_bits, cfg.lane_bits
        a = cfg.smem_addr_bits
        cb = cfg.count_bits

        # --- requester: descriptor, then the rows of both lists ---------------------------
        desc_l = data.StructLayout({"lane": unsigned(lb), "count": unsigned(cb),
                                    "n1": unsigned(cfg.n_bits)})
        dfifo = SyncFIFOBuffered(width=desc_l.size, depth=self.desc_depth)
        m.submodules.dfifo = dfifo
        # descriptor prefetch, three one-entry stages that each load only when the next one
        # is free (every handshake starts at flip-flops): A, the SPM read in flight; B, the
        # descriptor in a register (a block RAM's clock-to-output, 4.1 ns on ECP5, leaves
        # no time for adders behind it); C, the job's row counts and first rows, ready for
        # the requester. A job is accepted every other cycle at best, as the requester
        # takes one (IDLE, then at least one REQ cycle).
        valid_a, valid_b, valid_c = Signal(), Signal(), Signal()
        job_a = Signal(list_job_layout(cfg))
        job_b = Signal(list_job_layout(cfg))
        d = Signal(descriptor_layout(cfg))
        prep_l = data.StructLayout({"rows": unsigned(cb + 1), "row_i": unsigned(a),
                                    "row_v": unsigned(a), "desc": desc_l})
        prep = Signal(prep_l)
        accept = Signal()
        m.d.comb += [
            self.job.ready.eq(~valid_a & (~valid_b | ~valid_c)),
            accept.eq(self.job.valid & self.job.ready),
            self.spm_addr.eq(self.job.payload.spm_addr), self.spm_en.eq(accept),
        ]
        m.d.sync += valid_a.eq(accept)
        with m.If(accept):
            m.d.sync += job_a.eq(self.job.payload)
        move_bc = valid_b & ~valid_c
        with m.If(valid_a):                 # B is free or moves on now (see job.ready)
            m.d.sync += [d.eq(self.spm_data), job_b.eq(job_a), valid_b.eq(1)]
        with m.Elif(move_bc):
            m.d.sync += valid_b.eq(0)
        with m.If(move_bc):
            m.d.sync += [
                prep.rows.eq(Mux(d.count == 0, 0, (d.head_lane + d.count + (Np - 1)) >> lb)),
                prep.row_i.eq(job_b.nzl + d.head_row), prep.row_v.eq(job_b.op1 + d.head_row),
                prep.desc.lane.eq(d.head_lane), prep.desc.count.eq(d.count),
                prep.desc.n1.eq(job_b.n1),
                valid_c.eq(1),
            ]

        rows_left_i = Signal(cb + 1)
        rows_left_v = Signal(cb + 1)
        row_i = Signal(a)
        row_v = Signal(a)
        hold = Signal(desc_l)
        pushed = Signal()
        requesting = Signal()
        with m.FSM():
            with m.State("IDLE"):
                with m.If(valid_c):
                    m.d.sync += [
                        rows_left_i.eq(prep.rows), rows_left_v.eq(prep.rows),
                        row_i.eq(prep.row_i), row_v.eq(prep.row_v), hold.eq(prep.desc),
                        pushed.eq(0), valid_c.eq(0),
                    ]
                    m.next = "REQ"
            with m.State("REQ"):
                m.d.comb += [
                    requesting.eq(1),
                    dfifo.w_data.eq(hold),
                    dfifo.w_en.eq(~pushed),
                    self.idx_req.valid.eq(rows_left_i != 0),
                    self.idx_req.payload.eq(row_i),
                    self.val_req.valid.eq(rows_left_v != 0),
                    self.val_req.payload.eq(row_v),
                ]
                with m.If(dfifo.w_en & dfifo.w_rdy):
                    m.d.sync += pushed.eq(1)
                with m.If(self.idx_req.valid & self.idx_req.ready):
                    m.d.sync += [rows_left_i.eq(rows_left_i - 1), row_i.eq(row_i + 1)]
                with m.If(self.val_req.valid & self.val_req.ready):
                    m.d.sync += [rows_left_v.eq(rows_left_v - 1), row_v.eq(row_v + 1)]
                done_i = (rows_left_i == 0) | ((rows_left_i == 1) & self.idx_req.ready)
                done_v = (rows_left_v == 0) | ((rows_left_v == 1) & self.val_req.ready)
                done_d = pushed | dfifo.w_rdy
                with m.If(done_i & done_v & done_d):
                    m.next = "IDLE"

        # --- emitter: one element per cycle ----------------------------------------------
        cur = Signal(desc_l)
        have = Signal()
        nxt = Signal(desc_l)
        m.d.comb += nxt.eq(dfifo.r_data)
        g = Signal(cb)                      # elements already sent of this list
        at_last = Signal()                  # g == cur.count - 1, kept as a register: the
                                            # rows' ready (256 clock enables) waits for it
        # cur.count == 0 and cur.lane == Np - 1, also registers: the rows' ready is the
        # read enable of the SMEM's response queues (with the compares in front it was a
        # path of 9.2 ns into their control on ECP5)
        empty = Signal()
        lane_last = Signal()
        rows_ok = self.idx_resp.valid & self.val_resp.valid
        # two register stages on the way out (timing): the lane multiplexers land in
        # ``picked``, the range check and the forced zero in ``checked`` (= ``el``)
        picked_l = data.StructLayout({"idx": unsigned(W), "nzv": unsigned(W),
                                      "n1": unsigned(cfg.n_bits), "first": 1, "last": 1,
                                      "empty": 1})
        m.submodules.picked = picked = SkidBuffer(picked_l)
        m.submodules.checked = checked = SkidBuffer(element_layout(cfg))
        pk = picked.i.payload
        m.d.comb += [
            picked.i.valid.eq(have & (empty | rows_ok)),
            pk.idx.eq(self.idx_resp.payload.word_select(cur.lane, W)),
            pk.nzv.eq(self.val_resp.payload.word_select(cur.lane, W)),
            pk.n1.eq(cur.n1),
            pk.first.eq(g == 0),
            pk.last.eq(empty | at_last),
            pk.empty.eq(empty),
        ]
        po = picked.o.payload
        bad = po.idx >= po.n1
        ck = checked.i.payload
        m.d.comb += [
            checked.i.valid.eq(picked.o.valid), picked.o.ready.eq(checked.i.ready),
            ck.nzi.eq(Mux(bad | po.empty, 0, po.idx)), ck.nzv.eq(po.nzv),
            ck.first.eq(po.first), ck.last.eq(po.last), ck.empty.eq(po.empty),
            ck.bad.eq(bad & ~po.empty),
        ]
        wiring.connect(m, checked.o, wiring.flipped(self.el))
        m.d.comb += self.error.eq(self.el.valid & self.el.ready & self.el.payload.bad)
        sent = picked.i.valid & picked.i.ready
        finish = sent & pk.last
        row_done = sent & ~empty & (pk.last | lane_last)
        m.d.comb += [self.idx_resp.ready.eq(row_done), self.val_resp.ready.eq(row_done)]
        with m.If(sent):
            m.d.sync += [g.eq(g + 1), cur.lane.eq(cur.lane + 1),
                         at_last.eq(g + 2 == cur.count), lane_last.eq(cur.lane + 1 == Np - 1)]
        load = ~have | finish
        m.d.comb += dfifo.r_en.eq(load)
        with m.If(load):
            m.d.sync += [have.eq(dfifo.r_rdy), cur.eq(nxt), g.eq(0),
                         at_last.eq(nxt.count == 1), empty.eq(nxt.count == 0),
                         lane_last.eq(nxt.lane == Np - 1)]
        busy_out = picked.o.valid | checked.o.valid
        m.d.comb += self.busy.eq(have | dfifo.r_rdy | valid_a | valid_b | valid_c | requesting
                              | busy_out)
        return m
