"""The faults of the several-host run: each one done, undone as a supervisor or an operator would, and recorded.

    kill_primary        the Redis primary killed with -9; the Sentinels promote the replica (over when the
                        promoted node takes writes); REJOIN_S later the killed node starts again, as its replica
    cut_worker          worker-2's host cut off the network (cable pulled) for CUT_S (20 s), then plugged back;
                        its worker process runs on throughout
    kill_sentinel       sentinel-0 killed with -9; RESTART_S later started again on its own file
    kill_receiver_host  receiver-1's host goes down: cable pulled, then its receiver killed with -9 (so no reset
                        leaves the host); RESTART_S later the host is back: cable in, receiver started

Each comes back as a `Fault`: when it began and when it was over (unix seconds), the calls in flight at its
start (process_call jobs queued or held, read from the primary just before), and notes (who was promoted, and
how fast). chaos/ha/report.py adds the calls whose first webhook went out while the fault lasted, and measures
from the fault to the last event of them all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from chaos.ha.cluster import Cluster
from chaos.run import in_flight

REJOIN_S = 10.0
CUT_S = 20.0
RESTART_S = 10.0


@dataclass
class Fault:
    name: str
    at: float = 0.0
    over: float = 0.0
    in_flight: list[str] = field(default_factory=list)
    notes: dict[str, float | str] = field(default_factory=dict)


async def _begin(c: Cluster, name: str) -> Fault:
    fault = Fault(name, in_flight=await in_flight(c.redis.url, queued=True))
    fault.at = time.time()
    return fault


async def kill_primary(c: Cluster) -> Fault:
    fault = await _begin(c, "kill_primary")
    old, new = await asyncio.to_thread(c.redis.kill_primary)
    fault.over = time.time()
    fault.notes = {"killed": old.address, "promoted": new.address, "promoted_after_s": round(fault.over - fault.at, 2)}
    await asyncio.sleep(REJOIN_S)
    await asyncio.to_thread(c.redis.rejoin, old)
    fault.notes["back_as_replica_after_s"] = round(time.time() - fault.at, 2)
    return fault


async def cut_worker(c: Cluster, name: str = "worker-2") -> Fault:
    fault = await _begin(c, "cut_worker")
    host = c.hosts[name]
    await asyncio.to_thread(c.network.cut, host)
    await asyncio.sleep(CUT_S)
    await asyncio.to_thread(c.network.mend, host)
    fault.over = time.time()
    fault.notes = {"host": name}
    return fault


async def kill_sentinel(c: Cluster, i: int = 0) -> Fault:
    fault = await _begin(c, "kill_sentinel")
    await asyncio.to_thread(c.redis.kill_sentinel, i)
    await asyncio.sleep(RESTART_S)
    await asyncio.to_thread(c.redis.start_sentinel, i)
    fault.over = time.time()
    fault.notes = {"host": f"sentinel-{i}"}
    return fault


async def kill_receiver_host(c: Cluster, i: int = 0) -> Fault:
    fault = await _begin(c, "kill_receiver_host")
    receiver = c.receivers[i]
    host = c.hosts[receiver.name]
    await asyncio.to_thread(c.network.cut, host)
    await asyncio.to_thread(receiver.kill, restart=False)
    await asyncio.sleep(RESTART_S)
    await asyncio.to_thread(c.network.mend, host)
    await asyncio.to_thread(receiver.start)
    fault.over = time.time()
    fault.notes = {"host": receiver.name, "back_after_s": round(fault.over - fault.at, 2)}
    return fault


FAULTS: dict[str, Callable[[Cluster], Coroutine[Any, Any, Fault]]] = {
    "kill_primary": kill_primary, "cut_worker": cut_worker, "kill_sentinel": kill_sentinel,
    "kill_receiver_host": kill_receiver_host,
}
