"""The several-host chaos run's pure parts (chaos/ha/): its hosts' names and addresses, the balancer in front of the
two receivers, and how a run is counted and judged. The run itself needs root and builds network namespaces:
`make chaos-ha`, not `make test`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from chaos.ha import hosts
from chaos.ha.balancer import Balancer
from chaos.ha.cluster import HOSTS
from chaos.ha.faults import Fault
from chaos.ha.report import drained, fault_line, reconciled, split, untouched, verdict
from sandbox.webhooks import Result, Variant

A, B = "http://10.231.7.30:8000", "http://10.231.7.31:8000"


def test_every_host_of_the_run_has_its_own_prefixed_namespace_an_address_in_the_subnet_and_short_link_names():
    """Each host is a namespace named with the run's prefix (so leftovers are found by it alone), has its own
    address inside the run's subnet, never the bridge's, and link names Linux accepts (15 characters, the peer's
    too)."""
    all_hosts = [hosts.Host(name, octet) for name, octet in HOSTS.items()]
    hosts.check(all_hosts)
    assert all(h.netns.startswith(f"{hosts.PREFIX}-") and h.veth.startswith(f"{hosts.PREFIX}-") for h in all_hosts)
    assert all(h.address.startswith(f"{hosts.SUBNET}.") and h.address != hosts.CONTROL for h in all_hosts)
    assert len({h.address for h in all_hosts}) == len(all_hosts) == 12
    assert hosts.Host("worker-1", 40).place.wrap == ("ip", "netns", "exec", "wxha-worker-1")
    assert hosts.ours(["wxha-redis-0", "wxha-v10", "eth0", "wxhaz", "docker0"]) == ["wxha-redis-0", "wxha-v10"]


@pytest.mark.parametrize("bad", [[hosts.Host("a", 10), hosts.Host("b", 10)], [hosts.Host("a", 1)],
                                 [hosts.Host("a", 10), hosts.Host("a", 11)], [hosts.Host("a", 255)]])
def test_hosts_sharing_an_address_or_a_name_or_outside_the_subnet_are_refused(bad: list[hosts.Host]):
    """Two hosts on one address or name, or an address that is the bridge's or outside 2-254, stop the run
    before anything is built."""
    with pytest.raises(ValueError):
        hosts.check(bad)


def _balancer(down: set[str], seen: list[str], clock: list[float], status: int = 200) -> Balancer:
    def answer(request: httpx.Request) -> httpx.Response:
        origin = f"http://{request.url.host}:{request.url.port}"
        seen.append(origin)
        assert request.headers["host"] == f"{request.url.host}:{request.url.port}"
        if origin in down:
            raise httpx.ConnectTimeout("no answer", request=request)
        return httpx.Response(status)

    return Balancer([A, B], transport=lambda: httpx.MockTransport(answer), clock=lambda: clock[0])


async def test_the_balancer_takes_turns_and_passes_a_receiver_that_does_not_answer_over_for_a_while():
    """POSTs alternate between the receivers; one whose host is down costs one failed try, the POST goes to the
    other, and the down one is not asked again until its pause is over."""
    seen: list[str] = []
    clock, down = [0.0], set[str]()
    balancer = _balancer(down, seen, clock)
    async with httpx.AsyncClient(transport=balancer) as client:
        for _ in range(4):
            assert (await client.post(f"{A}/webhooks/wavix/t", content=b"{}")).status_code == 200
        assert seen == [A, B, A, B]
        seen.clear()
        down.add(A)
        for _ in range(4):
            assert (await client.post(f"{A}/webhooks/wavix/t", content=b"{}")).status_code == 200
        assert seen == [A, B, B, B, B]  # A tried once, then paused
        seen.clear()
        down.clear()
        clock[0] += balancer.pause_s + 0.1
        for _ in range(2):
            await client.post(f"{A}/webhooks/wavix/t", content=b"{}")
        assert sorted(seen) == [A, B]
    assert balancer.stats() == {"answered": {A: 3, B: 7}, "rerouted": 1, "unanswered": 0}


async def test_an_answer_is_final_and_a_post_no_receiver_answers_is_an_error():
    """A 503 goes back to the sender as it is (Wavix does not retry; reconciliation recovers the call), and a
    POST neither receiver answers raises a transport error, counted as unanswered."""
    seen: list[str] = []
    balancer = _balancer(set(), seen, [0.0], status=503)
    async with httpx.AsyncClient(transport=balancer) as client:
        assert (await client.post(f"{A}/x", content=b"{}")).status_code == 503
    assert seen == [A] and balancer.rerouted == 0

    dead = _balancer({A, B}, [], [0.0])
    async with httpx.AsyncClient(transport=dead) as client:
        with pytest.raises(httpx.ConnectTimeout):
            await client.post(f"{A}/x", content=b"{}")
    assert dead.stats() == {"answered": {}, "rerouted": 1, "unanswered": 1}


def _result(call: str, status: int | None, at: float) -> Result:
    return Result(call_id=call, kind="post_call", event="answered", variant=Variant.SPEC, duplicate=False,
                  status=status, error=None, sent_at=at, elapsed_ms=1.0)


def test_a_fault_touches_the_calls_in_flight_at_its_start_and_those_first_sent_while_it_lasted():
    """The time printed for a fault runs from its start to the last event of the calls it touched: those held or
    queued when it began, and those whose first webhook went out before it was over; a call none of it
    touched does not count, however late its event."""
    fault = Fault("kill_primary", at=100.0, over=103.0, in_flight=["held"], notes={"promoted": "10.231.7.11"})
    first = {"held": 90.0, "during": 101.0, "after": 110.0}
    line = fault_line(fault, first, {"held": 104.0, "during": 170.5, "after": 500.0})
    assert line == {"fault": "kill_primary", "lasted_s": 3.0, "in_flight": 1, "sent_during": 1, "never_arrived": 0,
                    "to_last_event_s": 70.5, "promoted": "10.231.7.11"}
    assert fault_line(fault, first, {"held": 104.0})["never_arrived"] == 1
    assert untouched([fault], first, {"held": 104.0, "during": 170.5, "after": 112.5}) == {
        "calls": 1, "p99_s": 2.5, "max_s": 2.5}  # the baseline: only the call no fault touched


def test_reconciled_calls_are_read_from_the_workers_logs_and_split_by_what_their_webhooks_met(tmp_path: Path):
    """A call reconciliation queued is one of: its webhook never sent, its webhooks all refused or unanswered,
    or acknowledged and then lost (a primary killed before it replicated)."""
    log = tmp_path / "worker-1.log"
    lines = [{"event": "reconcile.missed_webhook", "call_id": c} for c in ("never", "refused", "lost")]
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json reconcile.missed_webhook\n")
    back = reconciled([log, tmp_path / "absent.log"])
    assert back == {"never", "refused", "lost"}
    results = [_result("refused", 503, 1.0), _result("lost", 200, 1.0), _result("fine", 200, 1.0)]
    assert split(back, results) == {"total": 3, "never_sent": 1, "refused_or_unanswered": 1,
                                    "acknowledged_then_lost": 1}


def _figures(**changes: Any) -> dict[str, Any]:
    line = {"received": 2, "distinct": 2, "duplicates": 0, "missing": 0, "duplicate_ids": [], "expected": 2}
    figures = {"calls_placed": 2, "placed_missing": [], "placed_missing_count": 0, "duplicate_event_ids": 0,
               "alerts_sent": 1, "alerts_expected": 1, "calls_alerted_twice": 0, "unexpected_exits": {},
               "down_at_end": [], "pending_deliveries": 0,
               "destinations": {"redis": dict(line), "webhook": {**line, "bad_signatures": 0, "redelivered": 1,
                                                                 "redelivered_changed": 0}, "nats": dict(line)}}
    return figures | changes


def test_the_bar_holds_every_placed_call_to_one_event_at_each_destination_and_every_role_to_stay_up():
    """A run passes with every placed call at every destination once, each alert once, nothing pending and no
    process exited unasked or down at the end; a redelivery under the same webhook-id is reported, not failed.
    Each shortfall fails it in words."""
    assert verdict(_figures()) == [] and drained(_figures())
    missing = _figures(placed_missing=["c1"], placed_missing_count=1)
    missing["destinations"]["nats"]["missing"] = 1
    assert not drained(missing)
    assert [f.split(":")[0] for f in verdict(missing)] == ["placed calls without exactly one completed event",
                                                           "nats"]
    assert verdict(_figures(unexpected_exits={"worker-1": 1}, down_at_end=["sentinel-0"], pending_deliveries=None))
    assert len(verdict(_figures(unexpected_exits={"worker-1": 1}, down_at_end=["sentinel-0"],
                                pending_deliveries=None))) == 3
    assert not drained(_figures(alerts_sent=0)) and verdict(_figures(calls_alerted_twice=1))
