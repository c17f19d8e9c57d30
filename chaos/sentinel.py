"""A Redis that fails over: a primary, a replica and Sentinels, as redis-server processes.

The Sentinel test in `make test` (tests/test_sentinel.py) and the demo of a failover use it on loopback; the
several-host chaos run (chaos/ha/) puts each server and each Sentinel on a host of its own (a `Place`: an
address, and the `ip netns exec` prefix that starts the process there), each on Redis's own ports. Each
server is a `PrivateRedis` (chaos/redis.py: AOF on, a directory of its own); each Sentinel a
`redis-server FILE --sentinel` with a configuration written here: a primary is judged down after
DOWN_AFTER_MS without an answer, so a `kill -9` of it is followed by a promotion of the replica within a few
seconds. A killed Sentinel can be started again on its own file (which it rewrote with what it learned), and a
killed primary can come back as a replica of the promoted one. Every process started here is ended by
`close()` (or leaving the `with` block), whatever state it is in.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis

from chaos.procs import LOOPBACK, Place, terminate
from chaos.redis import PrivateRedis, free_port

MASTER = "wavix"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
NODE_PORT, SENTINEL_PORT = 6379, 26379  # on a host of its own, each listens where Redis does by default

Address = tuple[str, int]


def _port(place: Place, own_host: int) -> int:
    return free_port() if place.loopback else own_host


class SentinelGroup:
    """A primary, replicas and Sentinels (quorum: a majority): on 127.0.0.1, or each on its own host."""

    def __init__(self, directory: Path, *, replicas: int = 1, sentinels: int = 3, master: str = MASTER,
                 node_places: Sequence[Place] = (), sentinel_places: Sequence[Place] = ()) -> None:
        """Without places: `replicas + 1` nodes and `sentinels` Sentinels on loopback, on free ports. With them:
        one node (the first the primary) or one Sentinel per place."""
        self.directory, self.master = directory, master
        nodes = list(node_places) or [LOOPBACK] * (replicas + 1)
        self.sentinel_places = list(sentinel_places) or [LOOPBACK] * sentinels
        first = PrivateRedis(directory / "node-0", port=_port(nodes[0], NODE_PORT), place=nodes[0])
        follow = ["--replicaof", first.address, str(first.port)]
        self.nodes = [first, *(PrivateRedis(directory / f"node-{i}", port=_port(place, NODE_PORT), extra=follow,
                                            place=place) for i, place in enumerate(nodes[1:], 1))]
        self.sentinel_ports = [_port(place, SENTINEL_PORT) for place in self.sentinel_places]
        self.sentinels: list[subprocess.Popen[bytes] | None] = [None] * len(self.sentinel_places)

    @property
    def sentinel_addresses(self) -> list[Address]:
        return [(place.address, port) for place, port in zip(self.sentinel_places, self.sentinel_ports, strict=True)]

    @property
    def url(self) -> str:
        """REDIS_URL for every role: the Sentinels, and the primary's name."""
        return f"redis+sentinel://{','.join(f'{h}:{p}' for h, p in self.sentinel_addresses)}/{self.master}/0"

    def start(self, timeout_s: float = 30.0) -> SentinelGroup:
        """Starts the nodes and the Sentinels; returns when the replicas are in sync and every Sentinel knows the
        primary, the replicas and each other (a failover before that could find no majority)."""
        for node in self.nodes:
            node.start()
        for i in range(len(self.sentinels)):
            self.start_sentinel(i)
        _until(self._settled, timeout_s, "the Sentinels did not settle")
        return self

    def start_sentinel(self, i: int) -> None:
        """Starts Sentinel `i` on its configuration file (written once; Sentinel rewrites it with what it learns)."""
        config = self.directory / f"sentinel-{i}" / "sentinel.conf"
        if not config.exists():
            self._sentinel_config(i)
        binary = shutil.which("redis-server") or "redis-server"
        self.sentinels[i] = subprocess.Popen(
            [*self.sentinel_places[i].wrap, binary, str(config), "--sentinel"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill_sentinel(self, i: int) -> None:
        """`kill -9` of Sentinel `i`."""
        process = self.sentinels[i]
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self.sentinels[i] = None

    def primary(self) -> Address:
        """The primary's address as the first Sentinel that answers sees it."""
        for host, port in self.sentinel_addresses:
            try:
                with redis.Redis(host=host, port=port, socket_timeout=1, socket_connect_timeout=1) as s:
                    address, primary = s.sentinel_get_master_addr_by_name(self.master)
                    return address.decode() if isinstance(address, bytes) else str(address), int(primary)
            except redis.RedisError:
                continue
        raise RuntimeError("no Sentinel answers")

    def primary_port(self) -> int:
        return self.primary()[1]

    def node(self, address: Address) -> PrivateRedis:
        return next(n for n in self.nodes if (n.address, n.port) == address)

    def kill_primary(self, timeout_s: float = 30.0) -> tuple[PrivateRedis, PrivateRedis]:
        """`kill -9` of the primary; returns it and the node the Sentinels promoted, once that takes writes."""
        old = self.node(self.primary())
        old.kill()
        _until(lambda: self.primary() != (old.address, old.port) and _role(self.primary()) == "master", timeout_s,
               "no replica was promoted")
        return old, self.node(self.primary())

    def rejoin(self, node: PrivateRedis) -> None:
        """Starts a killed node again as a replica of the current primary (its AOF is replaced by a full sync)."""
        host, port = self.primary()
        node.extra = ["--replicaof", host, str(port)]
        node.start()

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

    def _sentinel_config(self, i: int) -> Path:
        directory = self.directory / f"sentinel-{i}"
        directory.mkdir(parents=True, exist_ok=True)
        quorum = len(self.sentinel_ports) // 2 + 1
        first = self.nodes[0]
        path = directory / "sentinel.conf"  # Sentinel rewrites it (what it learns): a file of its own
        path.write_text(
            f"port {self.sentinel_ports[i]}\nbind {self.sentinel_places[i].address}\nprotected-mode no\n"
            f"dir {directory}\nlogfile {directory / 'sentinel.log'}\n"
            f"sentinel monitor {self.master} {first.address} {first.port} {quorum}\n"
            f"sentinel down-after-milliseconds {self.master} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {self.master} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {self.master} 1\n")
        return path

    def _settled(self) -> bool:
        if any(_info((n.address, n.port)).get("master_link_status") != "up" for n in self.nodes[1:]):
            return False
        others = len(self.sentinel_ports) - 1
        for host, port in self.sentinel_addresses:
            try:
                with redis.Redis(host=host, port=port, socket_timeout=1) as s:
                    state = s.sentinel_master(self.master)
                    if int(state["num-slaves"]) < len(self.nodes) - 1 or int(state["num-other-sentinels"]) < others:
                        return False
            except redis.RedisError:
                return False
        return True


def _info(address: Address) -> dict[str, str]:
    try:
        with redis.Redis(host=address[0], port=address[1], socket_timeout=1, decode_responses=True) as r:
            return {k: str(v) for k, v in r.info("replication").items()}
    except redis.RedisError:
        return {}


def _role(address: Address) -> str:
    return _info(address).get("role", "")


def _until(condition: Callable[[], bool], timeout_s: float, message: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(message)
        time.sleep(0.1)
