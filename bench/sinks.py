"""Sink benchmark: our sinks against each broker's own client in a plain loop, same process, same run.

For each transport, N events are published one after another (each awaits its confirm/ack/response, as a
delivery job does) through our sink, and the same N through the broker's client with the least it takes:

    redis      our Lua "mark + XADD"                        vs  redis-py XADD of the same fields
    rabbitmq   our sink (confirms, mandatory, headers)       vs  aio-pika publish on a confirming channel
    nats       our sink (Nats-Msg-Id, expected stream, ack)  vs  nats-py js.publish with Nats-Msg-Id
    webhook    our sink (Standard Webhooks signing)          vs  httpx POST of the same body
    postgres   our sink, 64 deliveries at once (a worker's    vs  asyncpg in a plain loop: per event one transaction
               WORKER_CONCURRENCY), batched                       inserting the same `events` and `calls` rows

Both sides encode the event every time. Rounds alternate (raw, ours, raw, ours, ...); the figure per sink is
the ratio of the medians of the rounds' throughputs (ours / raw: 1.0 means the sink costs nothing). Every sink
but PostgreSQL is driven one publish at a time; PostgreSQL's is driven as the worker drives it, by concurrent
deliveries, because batching them is its design: its ratio (target >= 1.5) and calls/s are also written to
bench/results.json's "postgres" section for `make bench`'s table.
Loopback only, unique names, everything created is removed. Results go to bench/results.json ("sinks").

    python -m bench.sinks [--events 2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aio_pika
import asyncpg
import httpx
import nats
from redis.asyncio import Redis

from bench.results import record
from contract.events import CONTENT_TYPE, CloudEvent, encode_event
from tests.helpers.sinks import WebhookReceiver, make_event
from workers.deliver.sinks import Sink, SinkOptions, open_sink
from workers.deliver.sinks.postgres_rows import CALL_COLUMNS, EVENT_COLUMNS, call_row

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

Publish = Callable[[CloudEvent, str], Awaitable[Any]]
Case = Callable[[str], AbstractAsyncContextManager[tuple[Publish, Publish]]]


def _ours(sink: Sink) -> Publish:
    async def publish(event: CloudEvent, key: str) -> None:
        await sink.publish(event, idempotency_key=key)

    return publish


@asynccontextmanager
async def redis_case(tag: str) -> AsyncIterator[tuple[Publish, Publish]]:
    stream, prefix = f"bench:sinks:{tag}:stream", f"bench:sinks:{tag}:"
    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    sink = await open_sink(f"redis://127.0.0.1:6379/0?stream={stream}", name="redis",
                           options=SinkOptions(key_prefix=prefix, mark_ttl_s=300))

    async def raw(event: CloudEvent, key: str) -> None:
        await redis.xadd(stream, {"event": encode_event(event), "id": event.id, "type": event.type,
                                  "call_id": event.subject}, maxlen=1_000_000, approximate=True)

    try:
        yield _ours(sink), raw
    finally:
        await sink.close()
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start:start + 1000])
        await redis.aclose()


@asynccontextmanager
async def rabbitmq_case(tag: str) -> AsyncIterator[tuple[Publish, Publish]]:
    url = "amqp://guest:guest@127.0.0.1:5672/"
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    exchange = await channel.declare_exchange(f"bench.sinks.{tag}", aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(exclusive=True)  # something bound, or mandatory messages come back
    await queue.bind(exchange, "#")
    sink = await open_sink(f"{url}?exchange={exchange.name}", name="rabbitmq")

    async def raw(event: CloudEvent, key: str) -> None:
        message = aio_pika.Message(encode_event(event), content_type=CONTENT_TYPE, message_id=event.id,
                                   delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await exchange.publish(message, routing_key=event.type, mandatory=True)

    try:
        yield _ours(sink), raw
    finally:
        await sink.close()
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
        await connection.close()


@asynccontextmanager
async def nats_case(tag: str) -> AsyncIterator[tuple[Publish, Publish]]:
    stream, subject = f"BENCH_SINKS_{tag}", f"bench.sinks.{tag}"
    nc = await nats.connect("nats://127.0.0.1:4222")
    js = nc.jetstream()
    sink = await open_sink(f"nats://127.0.0.1:4222/?stream={stream}&subject={subject}", name="nats")

    async def raw(event: CloudEvent, key: str) -> None:
        await js.publish(f"{subject}.{event.type}", encode_event(event), headers={"Nats-Msg-Id": key})

    try:
        yield _ours(sink), raw
    finally:
        await sink.close()
        await js.delete_stream(stream)
        await nc.close()


@asynccontextmanager
async def webhook_case(tag: str) -> AsyncIterator[tuple[Publish, Publish]]:
    receiver = await WebhookReceiver(verify=False).start()  # same work for both sides: read, answer 204
    url = f"http://127.0.0.1:{receiver.port}/hooks/{tag}"
    client = httpx.AsyncClient()
    sink = await open_sink(url, name="webhook", secret=receiver.secret, options=SinkOptions(http=client))

    async def raw(event: CloudEvent, key: str) -> None:
        response = await client.post(url, content=encode_event(event), headers={"content-type": CONTENT_TYPE})
        response.raise_for_status()

    try:
        yield _ours(sink), raw
    finally:
        await sink.close()
        await client.aclose()
        await receiver.stop()


def _one_row(schema: str, table: str, spec: tuple[tuple[str, str], ...], conflict: str) -> str:
    """The single-row INSERT of the same columns our sink's `unnest` statement writes."""
    def value(i: int, name: str) -> str:
        return {"event": f"${i}::jsonb", "alert_reasons": f"string_to_array(${i}, ',')"}.get(name, f"${i}")

    values = ", ".join(value(i, name) for i, (name, _) in enumerate(spec, 1))
    return f'INSERT INTO "{schema}".{table} AS t ({", ".join(n for n, _ in spec)}) VALUES ({values}) {conflict}'


@asynccontextmanager
async def postgres_case(tag: str) -> AsyncIterator[tuple[Publish, Publish]]:
    schema = f"bench_sinks_{tag}"
    conn = await asyncpg.connect(POSTGRES_URL)
    sink = await open_sink(f"{POSTGRES_URL}?schema={schema}", name="postgres")  # migrates the schema
    events_sql = _one_row(schema, "events", EVENT_COLUMNS, "ON CONFLICT (event_id) DO NOTHING")
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name, _ in CALL_COLUMNS[1:])
    calls_sql = _one_row(schema, "calls", CALL_COLUMNS,
                         f"ON CONFLICT (call_id) DO UPDATE SET {updates} WHERE EXCLUDED.event_time > t.event_time")

    async def raw(event: CloudEvent, key: str) -> None:
        text = encode_event(event).decode()
        async with conn.transaction():
            await conn.execute(events_sql, event.id, event.type, event.subject, event.time, text)
            await conn.execute(calls_sql, *call_row(event, text))  # type: ignore[arg-type]

    try:
        yield _ours(sink), raw
    finally:
        await sink.close()
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


CASES: dict[str, Case] = {"redis": redis_case, "rabbitmq": rabbitmq_case, "nats": nats_case, "webhook": webhook_case,
                          "postgres": postgres_case}
CONCURRENT = {"postgres": 64}  # our side's publishers at once (else 1: one after another)


async def _rate(publish: Publish, events: list[CloudEvent], label: str, concurrency: int = 1) -> float:
    queue = iter(events)

    async def publisher() -> None:
        for event in queue:
            await publish(event, f"{event.id}:{label}")

    started = time.perf_counter()
    await asyncio.gather(*(publisher() for _ in range(concurrency)))
    return len(events) / (time.perf_counter() - started)


async def compare(case: Case, count: int, rounds: int, concurrency: int = 1) -> dict[str, Any]:
    """Median publishes/s of each side over alternating rounds, fresh events (and keys) every round."""
    async with case(uuid.uuid4().hex[:12]) as (ours, raw):
        await _rate(ours, [make_event() for _ in range(50)], "warm")  # connections, scripts, JIT-free warm-up
        await _rate(raw, [make_event() for _ in range(50)], "warm")
        rates: dict[str, list[float]] = {"raw": [], "ours": []}
        for n in range(rounds):
            for side, publish in (("raw", raw), ("ours", ours)):
                at_once = concurrency if side == "ours" else 1
                rates[side].append(await _rate(publish, [make_event() for _ in range(count)], f"{side}{n}", at_once))
    raw_rate, our_rate = statistics.median(rates["raw"]), statistics.median(rates["ours"])
    return {"raw_per_s": round(raw_rate, 1), "ours_per_s": round(our_rate, 1), "ratio": round(our_rate / raw_rate, 3),
            "rounds_per_s": {side: [round(r, 1) for r in values] for side, values in rates.items()}}


async def main(count: int, rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {"events": count, "rounds": rounds}
    print(f"{'sink':<10} {'raw/s':>10} {'ours/s':>10} {'ratio':>7}")
    for name, case in CASES.items():
        results[name] = await compare(case, count, rounds, CONCURRENT.get(name, 1))
        r = results[name]
        print(f"{name:<10} {r['raw_per_s']:>10.1f} {r['ours_per_s']:>10.1f} {r['ratio']:>7.3f}")
    record("sinks", results)
    pg = results["postgres"]
    record("postgres", {"ratio": pg["ratio"], "calls_per_s": pg["ours_per_s"], "loop_per_s": pg["raw_per_s"],
                        "concurrency": CONCURRENT["postgres"]})
    return results


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=2000, help="events per side per round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.rounds))


if __name__ == "__main__":
    cli()
