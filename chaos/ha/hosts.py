"""The several-host run's hosts: Linux network namespaces joined by veth pairs to one bridge.

    wxha-br  bridge, 10.231.7.1/24: the orchestrator's own address on the hosts' network
      ├── wxha-v10 ══ eth0 in namespace wxha-redis-0 (10.231.7.10)
      ├── wxha-v11 ══ eth0 in namespace wxha-redis-1 (10.231.7.11)
      └── ...

A host is a namespace with one address on SUBNET and its own loopback; a process is put on it with
`ip netns exec` (`Host.place`, chaos/procs.py). Every name starts with PREFIX (interface names stay under
Linux's 15 characters), so a run first removes what a crashed one left (its namespaces, with the processes
still in them, and its links) by that prefix alone; LOCK keeps a second run from removing a live one's.
`cut(host)` pulls the host's cable (its bridge-side veth down: its packets are lost, TCP meets silence, not a
reset; a new connection to it fails after ARP's 3 s); `mend(host)` plugs it back. Nothing here touches an
address outside SUBNET or a link it did not create.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from chaos.procs import Place

PREFIX = "wxha"
SUBNET = "10.231.7"
BRIDGE = f"{PREFIX}-br"
CONTROL = f"{SUBNET}.1"  # the bridge's own address: where the orchestrator is reached and reaches the hosts
LOCK = Path(f"/run/{PREFIX}.lock")
IFNAME_MAX = 15


@dataclass(frozen=True)
class Host:
    """One host: `name` (its namespace is PREFIX-name) and the last byte of its address."""

    name: str
    octet: int

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def address(self) -> str:
        return f"{SUBNET}.{self.octet}"

    @property
    def veth(self) -> str:
        """The bridge-side end of the host's cable (the host's end is `eth0` inside its namespace)."""
        return f"{PREFIX}-v{self.octet}"

    @property
    def place(self) -> Place:
        return Place(self.address, ("ip", "netns", "exec", self.netns))


def check(hosts: Sequence[Host]) -> None:
    """Raises ValueError unless the hosts have distinct names and addresses inside SUBNET, bridge aside."""
    octets = [h.octet for h in hosts]
    if len(set(octets)) != len(octets) or any(not 2 <= o <= 254 for o in octets):
        raise ValueError(f"host addresses must be distinct, within {SUBNET}.2-254: {sorted(octets)}")
    if len({h.name for h in hosts}) != len(hosts):
        raise ValueError("host names must be distinct")
    if too_long := [h.veth for h in hosts if len(h.veth) + 1 > IFNAME_MAX]:  # and its peer, `veth` + "p"
        raise ValueError(f"interface names over {IFNAME_MAX} characters: {too_long}")


def ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


class Network:
    """The bridge and one namespace per host; `up()` builds it (after removing leftovers), `down()` removes it."""

    def __init__(self, hosts: Sequence[Host]) -> None:
        check(hosts)
        self.hosts = list(hosts)

    def up(self) -> Network:
        remove_leftovers()
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{CONTROL}/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        for host in self.hosts:
            ip("netns", "add", host.netns)
            ip("link", "add", host.veth, "type", "veth", "peer", "name", f"{host.veth}p")
            ip("link", "set", f"{host.veth}p", "netns", host.netns)
            ip("-n", host.netns, "link", "set", f"{host.veth}p", "name", "eth0")
            ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            ip("-n", host.netns, "link", "set", "eth0", "up")
            ip("-n", host.netns, "link", "set", "lo", "up")
            ip("link", "set", host.veth, "master", BRIDGE, "up")
        return self

    def cut(self, host: Host) -> None:
        ip("link", "set", host.veth, "down")

    def mend(self, host: Host) -> None:
        ip("link", "set", host.veth, "up")

    def down(self) -> None:
        remove_leftovers()


def ours(names: Sequence[str]) -> list[str]:
    return [n for n in names if n.startswith(f"{PREFIX}-")]


def _names(args: Sequence[str], key: str) -> list[str]:
    text = ip("-j", *args).strip()
    return [entry[key] for entry in json.loads(text)] if text else []


def remove_leftovers() -> None:
    """Kills the processes left in our namespaces (only ours run there), then removes the namespaces and links."""
    for netns in ours(_names(["netns", "list"], "name")):
        for pid in ip("netns", "pids", netns).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        ip("netns", "del", netns)
    for link in ours(_names(["link", "show"], "ifname")):
        with contextlib.suppress(RuntimeError):  # a veth goes with its namespace's end
            ip("link", "del", link)


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """Held for a whole run: a second run on the machine stops here instead of removing a live run's hosts."""
    with LOCK.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another chaos-ha run holds {LOCK}") from None
        yield
