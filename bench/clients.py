"""Client benchmark: the libraries that could carry our HTTP and Redis traffic, against our own code, one run.

HTTP: GETs of a 662-byte JSON body (a CDR's size) from a server in its own process (uvloop, answers from
memory), 64 requests in flight, through httpx's default transport (httpcore), httpx over `httpx-aiohttp`,
httpx over `workers.fetch.http.Transport` (httpx-aiohttp with our error mapping), and plain aiohttp (and our
hand-written `FastTransport` while it existed). Client CPU per request (this process's
CPU time / requests), then, with the server answering after 100 ms, requests per second (ceiling 640/s).
Redis: one EVALSHA of a three-key script, 64 tasks calling in a loop, against the local Redis: redis-py
(`Redis.evalsha`), our hand-written `service.resp.PipelinedRedis` (while it existed), the receiver's
`contract.redisbatch.BatchedRedis` (redis-py's connection with per-loop-turn batching), and valkey-glide
and coredis when installed (candidates only: never a dependency). CPU per call.

Rounds alternate the candidates (rotated order each round); the figures are medians of the rounds. The
machine is shared: compare within one run, never across runs.

    python -m bench.clients [--rounds 3] [--requests 1500] [--calls 6400]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from bench.results import record
from tests.helpers.servers import free_port

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
IN_FLIGHT = 64
BODY = b'{"uuid":"' + b"0" * 36 + b'","status":"answered"' + b',"x":"' + b"y" * 598 + b'"}'
SCRIPT = "redis.call('SET', KEYS[1], ARGV[1]) redis.call('EXISTS', KEYS[2]) redis.call('EXISTS', KEYS[3]) return 1"
KEYS = ("bench:clients:a", "bench:clients:b", "bench:clients:c")
Call = Callable[[], Awaitable[Any]]
Factory = Callable[[], AbstractAsyncContextManager[Call]]


class _Answer(asyncio.Protocol):
    """Answers every request head on the connection with BODY, after `delay` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay, self.pending = delay, b""
        self.response = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
            len(BODY), BODY)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        data = self.pending + data
        heads = data.count(b"\r\n\r\n")
        self.pending = data[data.rfind(b"\r\n\r\n") + 4:] if heads else data
        if heads and self.delay:
            asyncio.get_running_loop().call_later(self.delay, self._write, self.response * heads)
        elif heads:
            self.transport.write(self.response * heads)

    def _write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)


def serve(port: int, delay: float) -> None:
    import uvloop

    async def run() -> None:
        server = await asyncio.get_running_loop().create_server(lambda: _Answer(delay), "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(run())


def http_candidates(url: str) -> dict[str, Factory]:
    import aiohttp
    import httpx

    from workers.fetch import http as ours

    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    headers = {"Authorization": "Bearer bench", "Accept": "application/json"}
    path = "/v1/cdr/00000000-0000-0000-0000-000000000000"

    def over(transport: Callable[[], httpx.AsyncBaseTransport] | None) -> Factory:
        @asynccontextmanager
        async def make() -> Any:
            kwargs: dict[str, Any] = {"transport": transport()} if transport else {}
            async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30, **kwargs) as c:
                yield lambda: c.get(path, params={"show_transcription": "true"})
        return make

    @asynccontextmanager
    async def plain_aiohttp() -> Any:
        async with aiohttp.ClientSession(url, headers=headers, connector=aiohttp.TCPConnector(limit=IN_FLIGHT)) as s:
            async def get() -> bytes:
                async with s.get(path, params={"show_transcription": "true"}) as response:
                    return await response.read()
            yield get

    from httpx_aiohttp import AiohttpTransport

    out = {"httpx (httpcore)": over(None), "httpx + httpx-aiohttp": over(lambda: AiohttpTransport(limits=limits)),
           "httpx + workers.fetch.http.Transport": over(lambda: ours.Transport(limits=limits)),
           "aiohttp": plain_aiohttp}
    if hasattr(ours, "FastTransport"):  # the hand-written transport, while it existed (until 2026-12)
        out["httpx + FastTransport (hand-written)"] = over(lambda: ours.FastTransport(limits=limits))  # type: ignore[attr-defined]
    return out


def redis_candidates() -> dict[str, Factory]:
    from redis.asyncio import Redis

    from contract.redisbatch import BatchedRedis

    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
    sha = __import__("hashlib").sha1(SCRIPT.encode()).hexdigest()
    out: dict[str, Factory] = {}

    @asynccontextmanager
    async def redis_py() -> Any:
        client = Redis.from_url(url, max_connections=IN_FLIGHT)
        await client.script_load(SCRIPT)
        yield lambda: client.evalsha(sha, 3, *KEYS, "1")
        await client.aclose()
    out["redis-py " + importlib.metadata.version("redis")] = redis_py

    @asynccontextmanager
    async def batched() -> Any:
        client = BatchedRedis(url)
        client.on_connect.append(("SCRIPT", "LOAD", SCRIPT))
        yield lambda: client.call("EVALSHA", sha, 3, *KEYS, "1")
        await client.aclose()
    out["redis-py + BatchedRedis (ours)"] = batched

    if importlib.util.find_spec("service.resp"):  # the hand-written RESP client, while it existed (until 2026-12)
        resp = importlib.import_module("service.resp")

        @asynccontextmanager
        async def hand_written() -> Any:
            client = resp.PipelinedRedis(url)
            client.on_connect.append(resp.pack("SCRIPT", "LOAD", SCRIPT))
            command = resp.pack("EVALSHA", sha, 3, *KEYS, "1")
            yield lambda: client.call(command)
            await client.aclose()
        out["PipelinedRedis (hand-written RESP)"] = hand_written
    out.update(_other_redis_candidates(sha))
    return out


def _other_redis_candidates(sha: str) -> dict[str, Factory]:
    out: dict[str, Factory] = {}
    if importlib.util.find_spec("glide"):
        import glide

        @asynccontextmanager
        async def valkey_glide() -> Any:
            config = glide.GlideClientConfiguration([glide.NodeAddress(REDIS_HOST, REDIS_PORT)])
            client = await glide.GlideClient.create(config)
            script = glide.Script(SCRIPT)  # type: ignore[no-untyped-call]
            yield lambda: client.invoke_script(script, keys=list(KEYS), args=["1"])
            await client.close()
        out["valkey-glide " + importlib.metadata.version("valkey-glide")] = valkey_glide
    if importlib.util.find_spec("coredis"):
        import coredis

        @asynccontextmanager
        async def core_dis() -> Any:
            client: Any = coredis.Redis(REDIS_HOST, REDIS_PORT, max_connections=IN_FLIGHT)
            async with client:
                await client.script_load(SCRIPT)
                yield lambda: client.evalsha(sha, list(KEYS), ["1"])
        out["coredis " + importlib.metadata.version("coredis")] = core_dis
    return out


async def drive(factory: Factory, count: int) -> tuple[float, float]:
    """`count` calls from IN_FLIGHT tasks after a warm-up: (CPU µs per call, calls per second)."""
    async with factory() as call:
        await asyncio.gather(*(call() for _ in range(IN_FLIGHT)))  # connections made, scripts loaded

        async def loop(n: int) -> None:
            for _ in range(n):
                await call()
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(loop(count // IN_FLIGHT) for _ in range(IN_FLIGHT)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = count // IN_FLIGHT * IN_FLIGHT
    return cpu / done * 1e6, done / wall


async def rounds(candidates: dict[str, Factory], count: int, n: int) -> dict[str, list[tuple[float, float]]]:
    seen: dict[str, list[tuple[float, float]]] = {name: [] for name in candidates}
    names = list(candidates)
    for r in range(n):
        for name in names[r % len(names):] + names[: r % len(names)]:
            seen[name].append(await drive(candidates[name], count))
    return seen


def medians(seen: dict[str, list[tuple[float, float]]]) -> dict[str, dict[str, float]]:
    return {name: {"cpu_us": round(statistics.median(c for c, _ in runs), 1),
                   "per_s": round(statistics.median(r for _, r in runs), 1)} for name, runs in seen.items()}


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    fast, slow = free_port(), free_port()
    servers = [subprocess.Popen([sys.executable, "-m", "bench.clients", "--serve", str(port), str(delay)])
               for port, delay in ((fast, 0.0), (slow, 0.1))]
    try:
        await asyncio.sleep(1.0)
        http = medians(await rounds(http_candidates(f"http://127.0.0.1:{fast}"), args.requests, args.rounds))
        at_100ms = medians(await rounds(http_candidates(f"http://127.0.0.1:{slow}"), IN_FLIGHT * 4, 2))
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
    redis = medians(await rounds(redis_candidates(), args.calls, args.rounds))
    return {"http": {name: {"cpu_ms": round(v["cpu_us"] / 1000, 3), "per_s": v["per_s"],
                            "per_s_at_100ms": at_100ms[name]["per_s"]} for name, v in http.items()},
            "redis": {name: {"cpu_us": v["cpu_us"], "per_s": v["per_s"]} for name, v in redis.items()}}


def report(out: dict[str, Any]) -> None:
    print(f"clients (64 in flight, medians of alternating rounds):\n  HTTP GET, 662-byte JSON"
          f"{'CPU/request':>28} {'req/s':>8} {'req/s at 100 ms':>16}")
    for name, v in out["http"].items():
        print(f"    {name:<40} {v['cpu_ms']:>8.3f} ms {v['per_s']:>8.0f} {v['per_s_at_100ms']:>16.0f}")
    print(f"  Redis EVALSHA, three keys{'CPU/call':>25} {'calls/s':>8}")
    for name, v in out["redis"].items():
        print(f"    {name:<40} {v['cpu_us']:>8.1f} µs {v['per_s']:>8.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=768)
    parser.add_argument("--calls", type=int, default=6400)
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "DELAY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(int(args.serve[0]), float(args.serve[1]))
        return 0
    started = time.monotonic()
    out = asyncio.run(measure(args))
    report(out)
    print(f"  [{time.monotonic() - started:.0f}s]")
    record("clients", out)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
