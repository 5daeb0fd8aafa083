"""Amaranth 0.5 testbench helpers for `amaranth.lib.stream` links, with random stalls.

Every valid/ready link in this project is tested with a producer that idles at random
before offering an item and a consumer that idles at random before accepting one, so
nothing may be lost, duplicated or reordered whatever the timing. Use these helpers in
async testbenches (``sim.add_testbench``)::

    async def producer(ctx):
        await feed(ctx, dut.i, items, stall=0.3, rng=rng)

    async def consumer(ctx):
        got.extend(await collect(ctx, dut.o, len(items), stall=0.3, rng=rng))
"""

from __future__ import annotations

import random

from amaranth.sim import Simulator


async def _idle(ctx, stall: float, rng) -> None:
    while stall and rng.random() < stall:
        await ctx.tick()


async def stream_put(ctx, stream, payload) -> None:
    """Offer one item and wait for the handshake."""
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Accept one item; returns its payload (as `ctx.get` gives it)."""
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


async def feed(ctx, stream, items, stall: float = 0.0, rng=None) -> None:
    """Send ``items`` in order, idling before each with probability ``stall`` per cycle."""
    rng = rng or random.Random(0)
    for item in items:
        await _idle(ctx, stall, rng)
        await stream_put(ctx, stream, item)


async def collect(ctx, stream, count: int, stall: float = 0.0, rng=None) -> list:
    """Receive ``count`` items, idling before each with probability ``stall`` per cycle."""
    rng = rng or random.Random(1)
    out = []
    for _ in range(count):
        await _idle(ctx, stall, rng)
        out.append(await stream_get(ctx, stream))
    return out


def simulate(dut, *testbenches, processes=(), vcd: str | None = None, clock: float = 1e-8,
             deadline_cycles: int | None = None) -> None:
    """Run async testbenches (and background processes) on ``dut`` with one ``sync`` clock.

    ``deadline_cycles`` fails the run if the testbenches have not finished by then (a
    hung handshake must not hang the test suite).
    """
    sim = Simulator(dut)
    sim.add_clock(clock)
    for tb in testbenches:
        sim.add_testbench(tb)
    for p in processes:
        sim.add_process(p)
    if deadline_cycles is not None:
        # stop as soon as the testbenches are done (not at the deadline): count edges in a
        # background process and give up once the deadline has passed
        ticks = [0]

        async def watchdog(ctx):
            async for _ in ctx.tick():
                ticks[0] += 1

        sim.add_process(watchdog)

        def run():
            while sim.advance():
                if ticks[0] >= deadline_cycles:
                    raise TimeoutError(
                        f"simulation did not finish within {deadline_cycles} cycles")
    else:
        run = sim.run
    if vcd:
        with sim.write_vcd(vcd):
            run()
    else:
        run()


def sim_unfinished(sim: Simulator) -> bool:
    """True while any critical testbench is still running."""
    return sim.advance()
