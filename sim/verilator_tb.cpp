// Verilator testbench of the whole accelerator: what sim/harness.py run_pysim does, in C++.
//
// Included after a generated prologue (sim/verilator_top.py) that defines the model class
// MODEL, the port accessors and the configuration constants. Why C++: one Python call per
// clock edge is what makes pysim slow; here the AXI4 DRAM slave, the AXI4-Lite host and
// the issue/retire monitor run in the same loop as the model.
//
// Cycle semantics copy Amaranth's simulator exactly, so cycle counts match pysim's:
// * the DRAM model (AxiMemory, an add_process) samples the master's outputs just before a
//   rising edge and its new outputs appear right after that edge (registered outputs);
// * the host (async testbench: ctx.set, await ctx.tick().sample(...)) changes its inputs
//   between edges and sees the slave's outputs as sampled just before each edge;
// * back-pressure draws come from Python's own Mersenne Twister (random.Random(seed)),
//   in the same order and under the same conditions as AxiMemory.process.
//
// Usage: V<top> JOBDIR   (params.txt, program.bin, smem.bin, spm.bin, dram.bin in;
//                         result.txt, smem_out.bin, spm_out.bin, dram_out.bin out)
//        V<top> mt N KEYWORD...   (prints N values of random.Random(seed).random())

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <vector>
#if VM_TRACE
#include "verilated_vcd_c.h"
#endif

// ---------------- Python's random.Random: MT19937 seeded by init_by_array -------------
struct PyRandom {
    uint32_t mt[624];
    int mti = 625;
    void init_genrand(uint32_t s) {
        mt[0] = s;
        for (mti = 1; mti < 624; mti++)
            mt[mti] = 1812433253U * (mt[mti - 1] ^ (mt[mti - 1] >> 30)) + (uint32_t)mti;
    }
    void seed(const std::vector<uint32_t>& key) {   // Python: key = abs(seed) in 32-bit words
        init_genrand(19650218U);
        int i = 1, j = 0;
        const int n = (int)key.size();
        for (int k = 624 > n ? 624 : n; k; k--) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525U)) + key[j] + (uint32_t)j;
            i++; j++;
            if (i >= 624) { mt[0] = mt[623]; i = 1; }
            if (j >= n) j = 0;
        }
        for (int k = 623; k; k--) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941U)) - (uint32_t)i;
            i++;
            if (i >= 624) { mt[0] = mt[623]; i = 1; }
        }
        mt[0] = 0x80000000U;
    }
    uint32_t next() {
        static const uint32_t mag01[2] = {0x0U, 0x9908b0dfU};
        uint32_t y;
        if (mti >= 624) {
            int kk;
            for (kk = 0; kk < 624 - 397; kk++) {
                y = (mt[kk] & 0x80000000U) | (mt[kk + 1] & 0x7fffffffU);
                mt[kk] = mt[kk + 397] ^ (y >> 1) ^ mag01[y & 1U];
            }
            for (; kk < 623; kk++) {
                y = (mt[kk] & 0x80000000U) | (mt[kk + 1] & 0x7fffffffU);
                mt[kk] = mt[kk + (397 - 624)] ^ (y >> 1) ^ mag01[y & 1U];
            }
            y = (mt[623] & 0x80000000U) | (mt[0] & 0x7fffffffU);
            mt[623] = mt[396] ^ (y >> 1) ^ mag01[y & 1U];
            mti = 0;
        }
        y = mt[mti++];
        y ^= (y >> 11);
        y ^= (y << 7) & 0x9d2c5680U;
        y ^= (y << 15) & 0xefc60000U;
        y ^= (y >> 18);
        return y;
    }
    double random() {
        uint32_t a = next() >> 5, b = next() >> 6;
        return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
    }
};

// ---------------- failures: reported in result.txt, Python raises the matching error -----
static std::string g_jobdir;
[[noreturn]] static void fail(const std::string& kind, const std::string& msg);

// ---------------- AXI4 DRAM slave: a transcription of sim/axi_memory.py AxiMemory -------
struct MasterOut {              // the master's outputs, sampled just before an edge
    int arvalid; uint64_t araddr; int arlen, arsize, arburst; uint32_t arid; int rready;
    int awvalid; uint64_t awaddr; int awlen, awsize, awburst; uint32_t awid;
    int wvalid; uint8_t wdata[DATA_BYTES]; uint64_t wstrb; int wlast; int bready;
};

struct AddrPay {
    uint64_t addr; int len, size, burst; uint32_t id;
    bool operator!=(const AddrPay& o) const {
        return addr != o.addr || len != o.len || size != o.size || burst != o.burst || id != o.id;
    }
    std::string str() const {
        char b[160];
        std::snprintf(b, sizeof b, "addr=0x%" PRIx64 " len=%d size=%d burst=%d id=%u", addr, len,
                      size, burst, id);
        return b;
    }
};
struct WPay {
    uint8_t data[DATA_BYTES]; uint64_t strb; int last;
    bool operator!=(const WPay& o) const {
        return std::memcmp(data, o.data, DATA_BYTES) || strb != o.strb || last != o.last;
    }
};
struct ReadBurst { uint64_t addr; int beats, beat; uint32_t id; int resp; int64_t ready_at; };
struct WriteBurst { uint64_t addr; int beats, beat; uint32_t id; int resp; };
struct BResp { int64_t ready_at; uint32_t id; int resp; };

struct Dram {
    std::vector<uint8_t> data;
    int read_latency = 20, write_latency = 4;
    size_t max_reads = 16, max_writes = 16;
    double st_ar = 0, st_aw = 0, st_w = 0, st_r = 0, st_b = 0;
    PyRandom rng;
    std::deque<ReadBurst> reads;
    std::deque<WriteBurst> writes;
    std::deque<WPay> w_early;
    std::deque<BResp> b_queue;
    int arready = 0, awready = 0, wready = 0, rvalid = 0, bvalid = 0;
    bool pend_ar_v = false, pend_aw_v = false, pend_w_v = false;
    AddrPay pend_ar{}, pend_aw{};
    WPay pend_w{};
    int64_t cycle = 0;
    FILE* log = nullptr;             // params "log_dram": AxiMemory(trace=True)'s events
    uint64_t st_cycles = 0, busy_cycles = 0, read_bursts = 0, write_bursts = 0, r_beats = 0,
             w_beats = 0, bytes_read = 0, bytes_written = 0;
    // the slave's outputs (applied to the model right after each edge)
    uint8_t rdata[DATA_BYTES] = {0};
    int rresp = 0, rlast = 0, bresp = 0;
    uint32_t rid = 0, bid = 0;

    void proto(const char* ch, const std::string& rule) {
        char b[64];
        std::snprintf(b, sizeof b, "%s %" PRId64 " ", ch, cycle);
        fail("protocol", std::string(b) + rule);
    }
    void start() {                   // AxiMemory.process before its first edge
        arready = rng.random() >= st_ar;
        awready = rng.random() >= st_aw;
        wready = rng.random() >= st_w;
    }
    int check_addr(const char* ch, const AddrPay& p) {
        const uint64_t beats = (uint64_t)p.len + 1;
        char b[200];
        if (p.burst != 1) {
            std::snprintf(b, sizeof b, "%sburst=%d: only INCR bursts are allowed", ch, p.burst);
            proto(ch, b);
        }
        if (p.size != SIZE_CODE) {
            std::snprintf(b, sizeof b, "%ssize=%d: must be the full bus width (%d = %d bytes)",
                          ch, p.size, SIZE_CODE, DATA_BYTES);
            proto(ch, b);
        }
        if (p.addr % DATA_BYTES) {
            std::snprintf(b, sizeof b, "%saddr=0x%" PRIx64 " is not aligned to the %d-byte beat",
                          ch, p.addr, DATA_BYTES);
            proto(ch, b);
        }
        if (p.addr / 4096 != (p.addr + beats * DATA_BYTES - 1) / 4096) {
            std::snprintf(b, sizeof b, "burst %saddr=0x%" PRIx64 " %slen=%d crosses a 4 KiB "
                          "boundary", ch, p.addr, ch, p.len);
            proto(ch, b);
        }
        return p.addr + beats * DATA_BYTES > data.size() ? 3 : 0;   // DECERR outside
    }
    void w_beat(const WPay& w) {
        WriteBurst& wr = writes.front();
        char b[160];
        if (w.last && wr.beat != wr.beats - 1) {
            std::snprintf(b, sizeof b, "WLAST on beat %d of a %d-beat burst (awaddr=0x%" PRIx64
                          ")", wr.beat, wr.beats, wr.addr);
            proto("w", b);
        }
        if (!w.last && wr.beat == wr.beats - 1) {
            std::snprintf(b, sizeof b, "WLAST missing on the last beat (%d) of a %d-beat burst "
                          "(awaddr=0x%" PRIx64 ")", wr.beat, wr.beats, wr.addr);
            proto("w", b);
        }
        if (wr.resp == 0 && w.strb) {
            const uint64_t off = wr.addr + (uint64_t)wr.beat * DATA_BYTES;
            for (int i = 0; i < DATA_BYTES; i++)
                if ((w.strb >> i) & 1) { data[off + i] = w.data[i]; bytes_written++; }
        }
        if (++wr.beat == wr.beats) {
            b_queue.push_back({cycle + write_latency, wr.id, wr.resp});
            writes.pop_front();
        }
    }
    void step(const MasterOut& v) {  // one rising edge of AxiMemory.process
        st_cycles++;
        bool busy = !reads.empty() || !writes.empty() || !b_queue.empty() || !w_early.empty()
                    || rvalid || bvalid;
        // read address
        if (v.arvalid) {
            busy = true;
            AddrPay p{v.araddr, v.arlen, v.arsize, v.arburst, v.arid};
            if (pend_ar_v && pend_ar != p)
                proto("ar", "payload changed while ARVALID waited for ARREADY: " + pend_ar.str()
                      + " -> " + p.str());
            if (arready) {
                int resp = check_addr("ar", p);
                reads.push_back({p.addr, p.len + 1, 0, p.id, resp, cycle + read_latency});
                read_bursts++;
                if (log) std::fprintf(log, "%" PRId64 " ar %" PRIu64 " %d %u\n", cycle, p.addr,
                                      p.len, p.id);
                pend_ar_v = false;
            } else { pend_ar = p; pend_ar_v = true; }
        } else if (pend_ar_v) {
            proto("ar", "ARVALID dropped before ARREADY (payload " + pend_ar.str() + ")");
        }
        // read data
        if (rvalid && v.rready) {
            ReadBurst& rd = reads.front();
            rd.beat++; r_beats++; bytes_read += DATA_BYTES;
            if (rd.beat == rd.beats) {
                if (log) std::fprintf(log, "%" PRId64 " rlast %" PRIu64 " %d %u\n", cycle,
                                      rd.addr, rd.beats - 1, rd.id);
                reads.pop_front();
            }
            rvalid = 0;
        }
        if (!rvalid && !reads.empty()) {
            ReadBurst& rd = reads.front();
            if (cycle + 1 >= rd.ready_at && !(st_r != 0 && rng.random() < st_r)) {
                const uint64_t a = rd.addr + (uint64_t)rd.beat * DATA_BYTES;
                if (rd.resp == 0) std::memcpy(rdata, &data[a], DATA_BYTES);
                else std::memset(rdata, 0, DATA_BYTES);
                rvalid = 1; rresp = rd.resp; rlast = rd.beat == rd.beats - 1; rid = rd.id;
            }
        }
        arready = reads.size() < max_reads && !(st_ar != 0 && rng.random() < st_ar);
        // write address
        if (v.awvalid) {
            busy = true;
            AddrPay p{v.awaddr, v.awlen, v.awsize, v.awburst, v.awid};
            if (pend_aw_v && pend_aw != p)
                proto("aw", "payload changed while AWVALID waited for AWREADY: " + pend_aw.str()
                      + " -> " + p.str());
            if (awready) {
                int resp = check_addr("aw", p);
                writes.push_back({p.addr, p.len + 1, 0, p.id, resp});
                write_bursts++;
                if (log) std::fprintf(log, "%" PRId64 " aw %" PRIu64 " %d %u\n", cycle, p.addr,
                                      p.len, p.id);
                pend_aw_v = false;
                while (!w_early.empty() && !writes.empty()) {
                    WPay w = w_early.front();
                    w_early.pop_front();
                    w_beat(w);
                }
            } else { pend_aw = p; pend_aw_v = true; }
        } else if (pend_aw_v) {
            proto("aw", "AWVALID dropped before AWREADY (payload " + pend_aw.str() + ")");
        }
        // write data
        if (v.wvalid) {
            busy = true;
            WPay p;
            std::memcpy(p.data, v.wdata, DATA_BYTES); p.strb = v.wstrb; p.last = v.wlast;
            if (pend_w_v && pend_w != p)
                proto("w", "payload changed while WVALID waited for WREADY");
            if (wready) {
                pend_w_v = false;
                w_beats++;
                if (!writes.empty() && w_early.empty()) w_beat(p);
                else w_early.push_back(p);
            } else { pend_w = p; pend_w_v = true; }
        } else if (pend_w_v) {
            proto("w", "WVALID dropped before WREADY");
        }
        // write response
        if (bvalid && v.bready) {
            if (log) std::fprintf(log, "%" PRId64 " b - - %u\n", cycle, b_queue.front().id);
            b_queue.pop_front();
            bvalid = 0;
        }
        if (!bvalid && !b_queue.empty()) {
            if (cycle + 1 >= b_queue.front().ready_at && !(st_b != 0 && rng.random() < st_b)) {
                bvalid = 1; bid = b_queue.front().id; bresp = b_queue.front().resp;
            }
        }
        awready = writes.size() < max_writes && !(st_aw != 0 && rng.random() < st_aw);
        wready = w_early.size() < 1024 && !(st_w != 0 && rng.random() < st_w);
        if (busy) busy_cycles++;
        cycle++;
    }
    void check_quiescent() {
        char b[160];
        if (!w_early.empty()) {
            std::snprintf(b, sizeof b, "%zu W beat(s) were sent without an AW burst to carry "
                          "them (W beyond the bursts)", w_early.size());
            proto("w", b);
        }
        if (!writes.empty()) {
            std::snprintf(b, sizeof b, "burst awaddr=0x%" PRIx64 " got only %d of %d W beats",
                          writes.front().addr, writes.front().beat, writes.front().beats);
            proto("w", b);
        }
        if (!reads.empty()) {
            std::snprintf(b, sizeof b, "burst araddr=0x%" PRIx64 ": %d beat(s) not taken by the "
                          "master", reads.front().addr, reads.front().beats - reads.front().beat);
            proto("r", b);
        }
        if (!b_queue.empty()) {
            std::snprintf(b, sizeof b, "%zu write response(s) not taken", b_queue.size());
            proto("b", b);
        }
    }
};

// ---------------- the bench: model, clock, host, monitor ------------------------------
static VerilatedContext* g_ctx;
static MODEL* top;
static Dram dram;
enum Phase { LOADING, RUNNING, READING_BACK };
static Phase phase = LOADING;        // RUNNING: the DRAM model steps, the monitor counts
static bool counting = false;        // phase == RUNNING
static void sample_master(MasterOut& m);     // generated: the model's AXI4 master outputs
static void set_dram_inputs(const Dram& d);  // generated: the slave's outputs into the model
static uint64_t ticks = 0, load_ticks = 0, readback_ticks = 0, max_cycles = 2000000;
static std::vector<uint64_t> issue_at, retire_at;
static uint64_t n_core_instr = 0;
#if VM_TRACE
static VerilatedVcdC* tfp = nullptr;
#endif
static uint64_t trace_time = 0;     // ps (Verilator's default VCD unit): 10 ns cycles, as pysim

struct Sample { int awready, wready, bvalid, bresp, arready, rvalid, rresp, irq; uint32_t rdata; };

static void apply_dram() {
    set_dram_inputs(dram);
}

static Sample tick() {
    top->eval();                                  // settle the host's input changes
#if VM_TRACE
    if (tfp && counting) tfp->dump(trace_time);
#endif
    Sample s;
    s.awready = top->CTRL_AWREADY; s.wready = top->CTRL_WREADY; s.bvalid = top->CTRL_BVALID;
    s.bresp = top->CTRL_BRESP; s.arready = top->CTRL_ARREADY; s.rvalid = top->CTRL_RVALID;
    s.rresp = top->CTRL_RRESP; s.rdata = top->CTRL_RDATA; s.irq = top->irq;
    MasterOut m;
    if (counting) {
        sample_master(m);
        const int issue = top->probe_issue, retired = top->probe_retired;
        ticks++;
        if (issue) issue_at.push_back(ticks);
        if (retired) retire_at.push_back(ticks);
    }
    top->clk = 1;
    top->eval();                                  // registers take the pre-edge inputs
    if (counting) { dram.step(m); apply_dram(); }  // the slave's registered outputs
#if VM_TRACE
    if (tfp && counting) { top->eval(); tfp->dump(trace_time + 5000); }
#endif
    top->clk = 0;                                 // no negedge logic: this eval only settles
    top->eval();
    if (counting) {
        trace_time += 10000;
        if (ticks >= max_cycles) {
            char b[200];
            std::snprintf(b, sizeof b, "%zu %" PRIu64, issue_at.size(), n_core_instr);
            fail("timeout", b);
        }
    } else if (phase == LOADING) {
        load_ticks++;
    } else {
        readback_ticks++;
    }
    return s;
}

static int axil_write(uint32_t addr, uint32_t value) {
    top->CTRL_AWADDR = addr; top->CTRL_WDATA = value; top->CTRL_WSTRB = 0xF;
    top->CTRL_AWVALID = 1; top->CTRL_WVALID = 1;
    bool aw_left = true, w_left = true;
    while (aw_left || w_left) {
        Sample s = tick();
        if (aw_left && s.awready) { aw_left = false; top->CTRL_AWVALID = 0; }
        if (w_left && s.wready) { w_left = false; top->CTRL_WVALID = 0; }
    }
    top->CTRL_BREADY = 1;
    int resp;
    while (true) { Sample s = tick(); if (s.bvalid) { resp = s.bresp; break; } }
    top->CTRL_BREADY = 0;
    return resp;
}

static uint32_t axil_read(uint32_t addr, int* resp) {
    top->CTRL_ARADDR = addr; top->CTRL_ARVALID = 1;
    while (true) { Sample s = tick(); if (s.arready) break; }
    top->CTRL_ARVALID = 0;
    top->CTRL_RREADY = 1;
    Sample s;
    while (true) { s = tick(); if (s.rvalid) break; }
    top->CTRL_RREADY = 0;
    *resp = s.rresp;
    return s.rdata;
}

static void wr(const char* name, uint32_t addr, uint32_t value) {
    int r = axil_write(addr, value);
    if (r) { char b[120]; std::snprintf(b, sizeof b, "AXI4-Lite write to %s (0x%x) answered %d",
                                        name, addr, r); fail("bus", b); }
}

static uint32_t rd(const char* name, uint32_t addr) {
    int r;
    uint32_t v = axil_read(addr, &r);
    if (r) { char b[120]; std::snprintf(b, sizeof b, "AXI4-Lite read of %s (0x%x) answered %d",
                                        name, addr, r); fail("bus", b); }
    return v;
}

static int irq_now() { top->eval(); return top->irq; }

// ---------------- files ----------------------------------------------------------------
static std::vector<uint8_t> read_file(const std::string& name) {
    std::string p = g_jobdir + "/" + name;
    FILE* f = std::fopen(p.c_str(), "rb");
    if (!f) { std::fprintf(stderr, "cannot open %s\n", p.c_str()); std::exit(2); }
    std::vector<uint8_t> out;
    uint8_t buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + n);
    std::fclose(f);
    return out;
}

static void write_file(const std::string& name, const void* p, size_t n) {
    std::string path = g_jobdir + "/" + name;
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || std::fwrite(p, 1, n, f) != n) {
        std::fprintf(stderr, "cannot write %s\n", path.c_str()); std::exit(2); }
    std::fclose(f);
}

static std::map<std::string, std::string> g_result;   // key -> value line of result.txt

static void result_out() {
    std::string path = g_jobdir + "/result.txt";
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) { std::fprintf(stderr, "cannot write %s\n", path.c_str()); std::exit(2); }
    for (auto& kv : g_result) std::fprintf(f, "%s %s\n", kv.first.c_str(), kv.second.c_str());
    std::fprintf(f, "ticks %" PRIu64 "\nload_ticks %" PRIu64 "\nreadback_ticks %" PRIu64 "\n",
                 ticks, load_ticks, readback_ticks);
    std::fprintf(f, "dram_stats %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %"
                 PRIu64 " %" PRIu64 " %" PRIu64 "\n", dram.st_cycles, dram.busy_cycles,
                 dram.read_bursts, dram.write_bursts, dram.r_beats, dram.w_beats,
                 dram.bytes_read, dram.bytes_written);
    std::fprintf(f, "issue");
    for (auto t : issue_at) std::fprintf(f, " %" PRIu64, t);
    std::fprintf(f, "\nretire");
    for (auto t : retire_at) std::fprintf(f, " %" PRIu64, t);
    std::fprintf(f, "\n");
    std::fclose(f);
}

[[noreturn]] static void fail(const std::string& kind, const std::string& msg) {
#if VM_TRACE
    if (tfp) { tfp->close(); }
#endif
    g_result["fail_" + kind] = msg;
    result_out();
    std::exit(0);
}

static std::map<std::string, std::string> read_params() {
    std::vector<uint8_t> raw = read_file("params.txt");
    std::string s(raw.begin(), raw.end());
    std::map<std::string, std::string> p;
    size_t pos = 0;
    while (pos < s.size()) {
        size_t e = s.find('\n', pos);
        if (e == std::string::npos) e = s.size();
        std::string line = s.substr(pos, e - pos);
        size_t sp = line.find(' ');
        if (sp != std::string::npos) p[line.substr(0, sp)] = line.substr(sp + 1);
        else if (!line.empty()) p[line] = "";
        pos = e + 1;
    }
    return p;
}

static std::vector<uint64_t> numbers(const std::string& s) {
    std::vector<uint64_t> out;
    const char* c = s.c_str();
    char* end;
    while (*c) {
        uint64_t v = std::strtoull(c, &end, 0);
        if (end == c) break;
        out.push_back(v);
        c = end;
    }
    return out;
}

int main(int argc, char** argv) {
    if (argc >= 3 && std::string(argv[1]) == "mt") {      // self-check of PyRandom
        std::vector<uint32_t> key;
        for (int i = 3; i < argc; i++) key.push_back((uint32_t)std::strtoul(argv[i], 0, 0));
        if (key.empty()) key.push_back(0);
        PyRandom r;
        r.seed(key);
        for (long i = 0, n = std::atol(argv[2]); i < n; i++) std::printf("%.17g\n", r.random());
        return 0;
    }
    if (argc != 2) { std::fprintf(stderr, "usage: %s JOBDIR\n", argv[0]); return 2; }
    g_jobdir = argv[1];
    auto P = read_params();
    dram.read_latency = (int)std::stol(P["dram_latency"]);
    dram.write_latency = (int)std::stol(P["write_latency"]);
    dram.max_reads = std::stoul(P["max_reads"]);
    dram.max_writes = std::stoul(P["max_writes"]);
    {
        auto st = P["stall"];
        std::sscanf(st.c_str(), "%lf %lf %lf %lf %lf", &dram.st_ar, &dram.st_aw, &dram.st_w,
                    &dram.st_r, &dram.st_b);
    }
    std::vector<uint32_t> key;
    for (auto k : numbers(P["seed_key"])) key.push_back((uint32_t)k);
    if (key.empty()) key.push_back(0);
    dram.rng.seed(key);
    if (!P["log_dram"].empty()) dram.log = std::fopen((g_jobdir + "/dram_log.txt").c_str(), "w");
    max_cycles = std::stoull(P["max_cycles"]);
    const uint64_t smem_hi = std::stoull(P["smem_hi"]);
    const uint64_t spm_depth = std::stoull(P["spm_depth"]);
    n_core_instr = std::stoull(P["core_instructions"]);
    dram.data = read_file("dram.bin");
    std::vector<uint8_t> prog_raw = read_file("program.bin");
    std::vector<uint8_t> smem_raw = read_file("smem.bin");
    std::vector<uint8_t> spm_raw = read_file("spm.bin");
    const size_t n_instr = prog_raw.size() / (4 * INSTR_WORDS);

    g_ctx = new VerilatedContext;
#if VM_TRACE
    const std::string vcd = P["vcd"];
    if (!vcd.empty()) g_ctx->traceEverOn(true);
#endif
    top = new MODEL{g_ctx};
    top->clk = 0; top->rst = 0;
    dram.start();
    apply_dram();
    top->eval();
#if VM_TRACE
    if (!vcd.empty()) {
        tfp = new VerilatedVcdC;
        top->trace(tfp, 99);
        tfp->open(vcd.c_str());
    }
#endif

    // ---- load SMEM and SPM through the host windows (pysim: memory init contents) ----
    const size_t row_rec = 4 + 4 * ROW_WORDS;
    for (size_t o = 0; o + row_rec <= smem_raw.size(); o += row_rec) {
        uint32_t row, w;
        std::memcpy(&row, &smem_raw[o], 4);
        wr("SMEM_ADDR", REG_SMEM_ADDR, row);
        for (int k = 0; k < ROW_WORDS; k++) {
            std::memcpy(&w, &smem_raw[o + 4 + 4 * k], 4);
            wr("SMEM_WDATA", REG_SMEM_WDATA + 4 * k, w);
        }
    }
    for (size_t o = 0; o + 12 <= spm_raw.size(); o += 12) {
        uint32_t a, lo, hi;
        std::memcpy(&a, &spm_raw[o], 4); std::memcpy(&lo, &spm_raw[o + 4], 4);
        std::memcpy(&hi, &spm_raw[o + 8], 4);
        wr("SPM_ADDR", REG_SPM_ADDR, a);
        wr("SPM_WDATA", REG_SPM_WDATA, lo);
        wr("SPM_WDATA", REG_SPM_WDATA + 4, hi);
    }

    // ---- the program: the same register accesses, in the same order, as run_pysim ----
    auto t0 = std::chrono::steady_clock::now();
    phase = RUNNING; counting = true;
    size_t next = 0;
    auto push = [&](long n) {         // the next n instructions into the queue
        for (long i = 0; i < n; i++, next++)
            for (int k = 0; k < INSTR_WORDS; k++) {
                uint32_t w;
                std::memcpy(&w, &prog_raw[4 * (next * INSTR_WORDS + k)], 4);
                wr("INSTR", REG_INSTR + 4 * k, w);
            }
    };
    const std::string program_in = P["program_in"];
    wr("IRQ_ENABLE", REG_IRQ_ENABLE, 0x7);
    wr("INSTR_COUNT", REG_INSTR_COUNT, (uint32_t)n_instr);
    if (program_in == "dram") {      // started by pointer: the machine fetches the program
        const uint64_t prog_addr = std::stoull(P["prog_addr"]);
        wr("PROG_ADDR", REG_PROG_ADDR, (uint32_t)prog_addr);
        if (ADDR_HI_WORD) wr("PROG_ADDR", REG_PROG_ADDR + 4, (uint32_t)(prog_addr >> 32));
        wr("PROG_COUNT", REG_PROG_COUNT, (uint32_t)n_instr);
        wr("CTRL", REG_CTRL, (1u << CTRL_START) | (1u << CTRL_FETCH));
        next = n_instr;
    } else {
        if (program_in == "queued")  // fill the queue first: START finds it ready
            push(std::min<long>(QUEUE_DEPTH, (long)n_instr));
        wr("CTRL", REG_CTRL, 1u << CTRL_START);
    }
    int pauses = 0;
    while (true) {
        if (next < n_instr) {
            uint32_t st = rd("STATUS", REG_STATUS);
            long free_slots = (long)QUEUE_DEPTH - (long)((st >> 8) & 0xFFFF);
            push(std::min<long>(free_slots, (long)(n_instr - next)));
            if (next < n_instr) {
                for (int i = 0; i < 32; i++) { if (irq_now()) break; tick(); }
                if (!irq_now()) continue;
            }
        }
        if (!irq_now()) while (!tick().irq) {}
        uint32_t irq = rd("IRQ_STATUS", REG_IRQ_STATUS);
        wr("IRQ_STATUS", REG_IRQ_STATUS, irq);
        if (irq & (1u << IRQ_ERROR)) {
            uint32_t e = rd("ERROR", REG_ERROR);
            uint32_t idx = rd("ERROR_INDEX", REG_ERROR_INDEX);
            g_result["error"] = std::to_string(e) + " " + std::to_string(idx);
            break;
        }
        if (irq & (1u << IRQ_PAUSED)) { pauses++; wr("CTRL", REG_CTRL, 1u << CTRL_RESUME); }
        if (irq & (1u << IRQ_DONE)) break;
    }
    g_result["pauses"] = std::to_string(pauses);
    std::string counters;
    for (int k = 0; k < N_COUNTERS; k++) {
        uint64_t lo = rd("counter", REG_COUNTERS[k]);
        uint64_t hi = rd("counter", REG_COUNTERS[k] + 4);
        counters += (k ? " " : "") + std::to_string(lo | (hi << 32));
    }
    g_result["counters"] = counters;
    g_result["status"] = std::to_string(rd("STATUS", REG_STATUS));
    auto t1 = std::chrono::steady_clock::now();
    phase = READING_BACK; counting = false;
    g_result["run_seconds"] = std::to_string(std::chrono::duration<double>(t1 - t0).count());
#if VM_TRACE
    if (tfp) { tfp->dump(trace_time); tfp->close(); delete tfp; tfp = nullptr; }
#endif
    dram.check_quiescent();

    // ---- read the memories back through the host windows (pysim: backdoor) ----
    std::vector<uint32_t> smem_out((size_t)smem_hi * ROW_WORDS);
    for (uint64_t row = 0; row < smem_hi; row++) {
        wr("SMEM_ADDR", REG_SMEM_ADDR, (uint32_t)row);
        for (int k = 0; k < ROW_WORDS; k++)
            smem_out[row * ROW_WORDS + k] = rd("SMEM_RDATA", REG_SMEM_RDATA + 4 * k);
    }
    std::vector<uint32_t> spm_out(2 * spm_depth);
    for (uint64_t a = 0; a < spm_depth; a++) {
        wr("SPM_ADDR", REG_SPM_ADDR, (uint32_t)a);
        spm_out[2 * a] = rd("SPM_RDATA", REG_SPM_RDATA);
        spm_out[2 * a + 1] = SPM_WORDS > 1 ? rd("SPM_RDATA", REG_SPM_RDATA + 4) : 0;
    }
    write_file("smem_out.bin", smem_out.data(), smem_out.size() * 4);
    write_file("spm_out.bin", spm_out.data(), spm_out.size() * 4);
    write_file("dram_out.bin", dram.data.data(), dram.data.size());
    top->final();
    if (dram.log) std::fclose(dram.log);
    result_out();
    delete top;
    delete g_ctx;
    return 0;
}
