"""Every role of the several-host run on a host of its own, started, watched as a supervisor would, and stopped.

    redis-0, redis-1          the Redis primary and its replica (AOF on), `redis-server` on 6379
    sentinel-0..2             three Sentinels (quorum 2) on 26379: REDIS_URL=redis+sentinel://... for every role
    receiver-1, receiver-2    `wavix-events serve` on 8000, behind the Wavix host's balancer
    worker-1..3               `wavix-events worker` (health on 8001), RECONCILE_INTERVAL short enough for the run
    wavix                     the Wavix host (chaos/ha/wavix.py) on 8100
    dest                      the destinations' own Redis (the Stream) and NATS JetStream (`nats-server -js`)
    10.231.7.1 (the bridge)   this process: the signed-webhook endpoint and the Slack stand-in, as in `make chaos`

The receivers run with ACK_REPLICAS=0 (the default: a 200 does not wait for the replica), the harder case: a call
acknowledged by a primary killed before it replicated is lost from the queue, and reconciliation must bring it
back. `supervise()` restarts any process that exited when the plan did not kill it, and counts it: the bar is
that none does. The machine's own Redis and NATS are never used.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from chaos import sinks
from chaos.ha.hosts import CONTROL, Host, Network
from chaos.redis import PrivateRedis
from chaos.roles import Role
from chaos.run import API_KEY, SANDBOX_FAULTS, TOKEN, role_env
from chaos.sentinel import SentinelGroup
from sandbox.api import ASGIApp
from sandbox.server import Server
from sandbox.slack import SlackStandIn

HOSTS = {"redis-0": 10, "redis-1": 11, "sentinel-0": 20, "sentinel-1": 21, "sentinel-2": 22, "receiver-1": 30,
         "receiver-2": 31, "worker-1": 40, "worker-2": 41, "worker-3": 42, "wavix": 50, "dest": 60}
RECEIVER_PORT, WORKER_HEALTH_PORT, WAVIX_PORT, NATS_PORT, NATS_MONITOR_PORT = 8000, 8001, 8100, 4222, 8222
NATS_SERVER = "/usr/sbin/nats-server"
STOP_S = 20.0  # a role's graceful stop, then SIGKILL


@dataclass(frozen=True)
class Load:
    """What the Wavix host places and how fast; how often reconciliation runs."""

    calls: int
    rate: float  # calls a second
    seed: int
    reconcile_interval: int


@dataclass
class Cluster:
    workdir: Path
    network: Network
    hosts: dict[str, Host]
    redis: SentinelGroup
    dest: PrivateRedis
    nats: Role
    stream: sinks.NatsStream
    hooks: sinks.HookCounter
    slack: SlackStandIn
    receivers: list[Role] = field(default_factory=list)
    workers: list[Role] = field(default_factory=list)
    wavix: Role | None = None
    unexpected: dict[str, int] = field(default_factory=dict)  # exits nobody asked for, per process

    @property
    def results_path(self) -> Path:
        return self.workdir / "webhooks.ndjson"

    @property
    def roles(self) -> list[Role]:
        return [self.nats, *self.receivers, *self.workers, *([self.wavix] if self.wavix else [])]

    def supervise(self) -> None:
        """Restarts what exited unasked (a killed role's process is None until its fault brings it back)."""
        for role in self.roles:
            before = len(role.unexpected_exits)
            role.check()
            self._count(role.name, len(role.unexpected_exits) - before)
        for node in self.redis.nodes:
            if node.process is not None and node.process.poll() is not None:
                self._count(node.address, 1)
                node.process = None
                self.redis.rejoin(node)
        for i, process in enumerate(self.redis.sentinels):
            if process is not None and process.poll() is not None:
                self._count(f"sentinel-{i}", 1)
                self.redis.start_sentinel(i)

    def alive(self) -> dict[str, bool]:
        """Whether each process is running now: the end of the run must find every one up."""
        up = {role.name: role.process is not None and role.process.poll() is None for role in self.roles}
        up |= {f"redis {n.address}": n.process is not None and n.process.poll() is None for n in self.redis.nodes}
        up |= {f"sentinel-{i}": p is not None and p.poll() is None for i, p in enumerate(self.redis.sentinels)}
        return up

    def _count(self, name: str, exits: int) -> None:
        if exits:
            self.unexpected[name] = self.unexpected.get(name, 0) + exits


def _roles(cluster: Cluster, load: Load, slack_url: str, routing: Path) -> None:
    hosts, workdir = cluster.hosts, cluster.workdir
    wavix = hosts["wavix"]
    env = {**role_env(cluster.redis.url, f"http://{wavix.address}:{WAVIX_PORT}", slack_url, routing),
           "ACK_REPLICAS": "0", "RECONCILE_INTERVAL": str(load.reconcile_interval), "RECONCILE_LOOKBACK": "3600"}
    for name in ("receiver-1", "receiver-2"):
        host = hosts[name]
        cluster.receivers.append(Role(name, ["serve", "--host", host.address, "--port", str(RECEIVER_PORT)], env,
                                      workdir / f"{name}.log", f"http://{host.address}:{RECEIVER_PORT}/healthz",
                                      wrap=host.place.wrap))
    for name in ("worker-1", "worker-2", "worker-3"):
        host = hosts[name]
        cluster.workers.append(Role(name, ["worker"], {**env, "WORKER_HEALTH_PORT": str(WORKER_HEALTH_PORT)},
                                    workdir / f"{name}.log", f"http://{host.address}:{WORKER_HEALTH_PORT}/healthz",
                                    wrap=host.place.wrap))
    origins = ",".join(f"http://{hosts[n].address}:{RECEIVER_PORT}" for n in ("receiver-1", "receiver-2"))
    cluster.wavix = Role("wavix", [
        "--host", wavix.address, "--port", str(WAVIX_PORT), "--api-key", API_KEY, "--seed", str(load.seed),
        "--calls", str(load.calls), "--rate", str(load.rate), "--window", "0", "--receivers", origins,
        "--path", f"/webhooks/wavix/{TOKEN}", "--results", str(cluster.results_path), *SANDBOX_FAULTS,
    ], env, workdir / "wavix.log", f"http://{wavix.address}:{WAVIX_PORT}/_sandbox/stats",
        program=(sys.executable, "-m", "chaos.ha.wavix"), wrap=wavix.place.wrap)


def _nats(workdir: Path, host: Host) -> Role:
    if not Path(NATS_SERVER).exists() and not shutil.which("nats-server"):
        raise RuntimeError(f"nats-server is not installed ({NATS_SERVER})")
    directory = workdir / "nats"
    directory.mkdir(parents=True, exist_ok=True)
    return Role("nats", ["-js", "-a", host.address, "-p", str(NATS_PORT), "-m", str(NATS_MONITOR_PORT),
                         "-sd", str(directory)], {}, workdir / "nats.log",
                f"http://{host.address}:{NATS_MONITOR_PORT}/healthz",
                program=(NATS_SERVER if Path(NATS_SERVER).exists() else "nats-server",), wrap=host.place.wrap)


@contextlib.asynccontextmanager
async def cluster(load: Load, workdir: Path) -> AsyncIterator[Cluster]:
    """Builds the hosts and starts every role but the Wavix host (the run starts it: that starts the load);
    stops every process and removes every host on the way out, however it is left."""
    hosts = {name: Host(name, octet) for name, octet in HOSTS.items()}
    network = Network(list(hosts.values()))
    sentinels = [hosts[f"sentinel-{i}"].place for i in range(3)]
    group = SentinelGroup(workdir / "redis", node_places=[hosts["redis-0"].place, hosts["redis-1"].place],
                          sentinel_places=sentinels)
    dest = PrivateRedis(workdir / "dest-redis", port=6379, place=hosts["dest"].place)
    nats = _nats(workdir, hosts["dest"])
    stream = sinks.NatsStream(url=f"nats://{hosts['dest'].address}:{NATS_PORT}")
    c = Cluster(workdir, network, hosts, group, dest, nats, stream, sinks.HookCounter(host=CONTROL), SlackStandIn())
    try:
        await asyncio.to_thread(network.up)
        await asyncio.gather(asyncio.to_thread(group.start), asyncio.to_thread(dest.start),
                             asyncio.to_thread(nats.start))
        await stream.create()
        await c.hooks.start()
        routing = sinks.routing_file(workdir / "sinks.yaml", dest.url, c.hooks.url, stream.name, stream.subject,
                                     nats_url=stream.url)
        # the sandbox's own server, not uvicorn (sandbox.slack.serve): uvicorn takes SIGINT and SIGTERM for itself,
        # and Ctrl-C would stop the Slack stand-in instead of the run
        slack = Server(cast(ASGIApp, c.slack), CONTROL)  # an ASGI app; its scope is typed as a dict
        _roles(c, load, await slack.start(), routing)
        try:
            await asyncio.gather(*(asyncio.to_thread(r.start) for r in (*c.receivers, *c.workers)))
            yield c
        finally:
            await asyncio.gather(*(asyncio.to_thread(r.stop, STOP_S) for r in c.roles if r is not nats))
            await slack.close()
    finally:
        await _close(c)


async def _close(c: Cluster) -> None:
    with contextlib.suppress(Exception):
        await c.stream.delete()
    with contextlib.suppress(Exception):
        await c.hooks.stop()
    await asyncio.to_thread(c.nats.stop, STOP_S)
    c.dest.kill()
    c.redis.close()
    await asyncio.to_thread(c.network.down)
