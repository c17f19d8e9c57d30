"""A Redis that fails over on loopback: a primary, a replica and Sentinels, as redis-server processes.

The Sentinel test in `make test` (tests/test_sentinel.py) and the demo of a failover use it; the several-host
chaos run builds the same shape across network namespaces. Each server is a `PrivateRedis` (chaos/redis.py:
AOF on, a directory of its own, a free port); each Sentinel a `redis-server FILE --sentinel` with a
configuration written here: a primary is judged down after DOWN_AFTER_MS without an answer, so a `kill -9`
of it is followed by a promotion of the replica within a few seconds. Only loopback is used, and every
process started here is ended by `close()` (or leaving the `with` block), whatever state it is in.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from chaos.procs import terminate
from chaos.redis import PrivateRedis, free_port

MASTER = "wavix"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


class SentinelGroup:
    """A primary, `replicas` replicas, `sentinels` Sentinels (quorum: a majority), all on 127.0.0.1."""

    def __init__(self, directory: Path, *, replicas: int = 1, sentinels: int = 3, master: str = MASTER) -> None:
        self.directory, self.master = directory, master
        first = PrivateRedis(directory / "node-0")
        follow = ["--replicaof", "127.0.0.1", str(first.port)]
        self.nodes = [first, *(PrivateRedis(directory / f"node-{i}", extra=follow) for i in range(1, replicas + 1))]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.sentinels: list[subprocess.Popen[bytes] | None] = [None] * sentinels

    @property
    def url(self) -> str:
        """REDIS_URL for every role: the Sentinels, and the primary's name."""
        return f"redis+sentinel://{','.join(f'127.0.0.1:{p}' for p in self.sentinel_ports)}/{self.master}/0"

    def start(self, timeout_s: float = 30.0) -> SentinelGroup:
        """Starts the nodes and the Sentinels; returns when the replicas are in sync and every Sentinel knows the
        primary, the replicas and each other (a failover before that could find no majority)."""
        for node in self.nodes:
            node.start()
        binary = shutil.which("redis-server") or "redis-server"
        for i, port in enumerate(self.sentinel_ports):
            self.sentinels[i] = subprocess.Popen(
                [binary, str(self._sentinel_config(i, port)), "--sentinel"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _until(self._settled, timeout_s, "the Sentinels did not settle")
        return self

    def primary_port(self) -> int:
        """The primary's port as the first Sentinel that answers sees it."""
        for port in self.sentinel_ports:
            try:
                with redis.Redis(port=port, socket_timeout=1) as s:
                    _, primary = s.sentinel_get_master_addr_by_name(self.master)
                    return int(primary)
            except redis.RedisError:
                continue
        raise RuntimeError("no Sentinel answers")

    def node(self, port: int) -> PrivateRedis:
        return next(n for n in self.nodes if n.port == port)

    def kill_primary(self, timeout_s: float = 30.0) -> tuple[PrivateRedis, PrivateRedis]:
        """`kill -9` of the primary; returns it and the node the Sentinels promoted, once that takes writes."""
        old = self.node(self.primary_port())
        old.kill()
        _until(lambda: self.primary_port() != old.port and _role(self.primary_port()) == "master", timeout_s,
               "no replica was promoted")
        return old, self.node(self.primary_port())

    def close(self) -> None:
        for process in self.sentinels:
            if process is not None:
                terminate(process, 5)
        for node in self.nodes:
            node.kill()

    def __enter__(self) -> SentinelGroup:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *_: object) -> None:
        self.close()

    def _sentinel_config(self, i: int, port: int) -> Path:
        directory = self.directory / f"sentinel-{i}"
        directory.mkdir(parents=True, exist_ok=True)
        quorum = len(self.sentinel_ports) // 2 + 1
        path = directory / "sentinel.conf"  # Sentinel rewrites it (what it learns): a file of its own
        path.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {directory}\nlogfile {directory / 'sentinel.log'}\n"
            f"sentinel monitor {self.master} 127.0.0.1 {self.nodes[0].port} {quorum}\n"
            f"sentinel down-after-milliseconds {self.master} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {self.master} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {self.master} 1\n")
        return path

    def _settled(self) -> bool:
        if any(_info(n.port).get("master_link_status") != "up" for n in self.nodes[1:]):
            return False
        others = len(self.sentinel_ports) - 1
        for port in self.sentinel_ports:
            try:
                with redis.Redis(port=port, socket_timeout=1) as s:
                    state = s.sentinel_master(self.master)
                    if int(state["num-slaves"]) < len(self.nodes) - 1 or int(state["num-other-sentinels"]) < others:
                        return False
            except redis.RedisError:
                return False
        return True


def _info(port: int) -> dict[str, str]:
    try:
        with redis.Redis(port=port, socket_timeout=1, decode_responses=True) as r:
            return {k: str(v) for k, v in r.info("replication").items()}
    except redis.RedisError:
        return {}


def _role(port: int) -> str:
    return _info(port).get("role", "")


def _until(condition: Callable[[], bool], timeout_s: float, message: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(message)
        time.sleep(0.1)
