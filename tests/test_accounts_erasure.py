"""Erasure across accounts (issues #25, #26): `wavix-events forget` tells each account's routes of their own calls.

Two accounts (tests/helpers/accounts.py), three Redis Stream destinations: `events` takes every account,
`alpha-only` and `beta-only` filter on `accounts:`. Each `wavix.call.erased` carries its call's account (envelope
and data), so an account-filtered route receives the erasure of its account's caller and never another's, whether
the erasure knows where the call went (the ledger) or not any more (then: every route that takes the account).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from contract import events as ev
from contract.intake import scoped
from contract.record import record_key
from contract.webhooks import webhooks_key
from sandbox.webhooks import send_webhooks
from tests.conftest import REDIS_URL, forget
from tests.helpers.accounts import IDS, TOKENS, TwoAccounts, two_accounts
from tests.test_erasure import forget as forget_command

STREAMS = ("events", "alpha-only", "beta-only")


@pytest.fixture
async def routed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[TwoAccounts, dict[str, str]]]:
    """The two accounts with one stream for every account and one per account; (deployment, name -> stream)."""
    run = uuid.uuid4().hex
    streams = {name: f"test:events:{run}:{name}" for name in STREAMS}
    routing = tmp_path / "sinks.yaml"
    routing.write_text("destinations:\n" + "".join(
        f"  - name: {name}\n    url: {REDIS_URL}?stream={stream}\n"
        + (f"    filter:\n      accounts: [{name.split('-')[0]}]\n" if name != "events" else "")
        for name, stream in streams.items()))
    try:
        async with two_accounts(tmp_path, monkeypatch, SINKS_CONFIG=str(routing),
                                EVENTS_STREAM=streams["events"]) as d:
            yield d, streams
    finally:
        forget(names=list(streams.values()))


async def erasures(d: TwoAccounts, stream: str) -> dict[str, tuple[str, str]]:
    """The erasures a stream received: call id -> (envelope account, data account)."""
    found = [ev.decode_event(f[b"event"]) for _, f in await d.p.redis.xrange(stream)]
    return {e.subject: (e.account, e.data.account) for e in found if isinstance(e, ev.CallErasedEvent)}


async def test_one_erasure_over_two_accounts_tells_each_accounts_route_of_its_own_call(routed) -> None:
    """A number that called alpha and beta: `forget --number` erases both calls (the summary says one of each
    account, and beta's webhooks kept under its account are gone); `events` is told of both, each erasure carrying
    its call's account; `alpha-only` of alpha's call only, `beta-only` of beta's only."""
    d, streams = routed
    (alpha_call,) = await d.send("alpha", 1)
    beta_call = msgspec.structs.replace(alpha_call, call_id=str(uuid.uuid4()), account=IDS["beta"])
    d.p.sandbox.add([beta_call])
    await send_webhooks([beta_call], f"/webhooks/wavix/{TOKENS['beta']}", client=d.p.receiver,
                        on_first_send=d.p.sandbox.mark_sent)
    await d.p.run_worker()
    prefix = d.p.settings.key_prefix
    assert await d.p.redis.exists(webhooks_key(prefix, scoped("beta", beta_call.call_id)))
    number = "+" + (alpha_call.to if alpha_call.direction == "outbound" else alpha_call.from_).lstrip("+")

    status, out = await forget_command(d.p, "--number", number)
    assert status == 0 and "erased 2 call(s)" in out and "of account(s) alpha (1), beta (1)" in out, out
    await d.p.run_worker()

    assert not await d.p.redis.exists(webhooks_key(prefix, scoped("beta", beta_call.call_id)),
                                      webhooks_key(prefix, scoped("alpha", alpha_call.call_id)))
    assert await erasures(d, streams["events"]) == {alpha_call.call_id: ("alpha", "alpha"),
                                                    beta_call.call_id: ("beta", "beta")}
    assert await erasures(d, streams["alpha-only"]) == {alpha_call.call_id: ("alpha", "alpha")}
    assert await erasures(d, streams["beta-only"]) == {beta_call.call_id: ("beta", "beta")}


async def test_when_no_destination_is_known_any_more_the_routes_of_the_calls_account_are_told(routed) -> None:
    """A beta call whose delivered marks, record and stream copies have ended (only its summary and webhooks are
    left): `forget --call` tells `events` and `beta-only`, the routes that take beta, and not `alpha-only`."""
    d, streams = routed
    (call,) = await d.send("beta", 1)
    await d.p.run_worker()
    prefix, redis = d.p.settings.key_prefix, d.p.redis
    marks = [k async for k in redis.scan_iter(match=f"{prefix}delivered:*")]
    await redis.delete(record_key(prefix, call.call_id), *marks)
    for stream in streams.values():
        ids = [i for i, f in await redis.xrange(stream) if ev.decode_event(f[b"event"]).subject == call.call_id]
        if ids:
            await redis.xdel(stream, *ids)

    status, out = await forget_command(d.p, "--call", call.call_id)
    assert status == 0 and f"erased 1 call(s): {call.call_id}" in out and "of account(s) beta (1)" in out, out
    await d.p.run_worker()

    assert await erasures(d, streams["events"]) == {call.call_id: ("beta", "beta")}
    assert await erasures(d, streams["beta-only"]) == {call.call_id: ("beta", "beta")}
    assert await erasures(d, streams["alpha-only"]) == {}
