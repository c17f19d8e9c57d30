"""What 100 accounts cost (issue #26): the receiver's token lookup, and the worker's account steps per call.

    python -m bench.accounts          (part of `make bench`; writes the `accounts` section of bench/results.json)

Receiver: `Gate.account_for` (one SHA-256 of the token and one dict lookup, service/auth.py) timed over
200,000 webhooks' tokens, with one account and with 100; the ratio says whether the number of accounts shows.
Worker: what a call adds with accounts (workers/fetch/accounts.py): its account's client for the CDR fetch
(`turn`, the in-flight count), its numbers (`numbers`) and its settings (`account`), with 100 accounts
configured, in µs per call; set against one call's worker time at the worker benchmark's CPU-bound rate
(`worker.calls_per_s`, sandbox at 0 ms, measured earlier in the same `make bench`), it is the percentage a
deployment of 100 accounts pays. Medians of 5 rounds.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from bench.results import RESULTS, record
from contract.accounts import Account, Accounts, token_digest
from contract.settings import Settings
from service.auth import Gate
from workers.fetch.accounts import AccountClients

ROUNDS = 5
LOOKUPS = 200_000
CALLS = 100_000


def accounts(count: int) -> Accounts:
    return Accounts([Account(name=f"a{i}", api_key=f"key-{i:04d}" + "k" * 16,
                             token_digests=frozenset({token_digest(_token(i))})) for i in range(count)])


def _token(i: int) -> str:
    return f"token-{i:04d}-" + "t" * 24


def lookup_ns(count: int) -> float:
    """Median ns per `Gate.account_for`, tokens spread over the accounts (one in ten unknown)."""
    gate = Gate(accounts(count), (), ())
    tokens = [_token(i % count) if i % 10 else "unknown-" + "u" * 30 for i in range(1000)]
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter_ns()
        for _ in range(LOOKUPS // len(tokens)):
            for token in tokens:
                gate.account_for(token)
        rounds.append((time.perf_counter_ns() - started) / LOOKUPS)
    return statistics.median(rounds)


def worker_us(count: int) -> float:
    """Median µs per call of the account steps `process_call` takes (client turn, numbers, settings)."""
    settings = Settings.from_env({"WAVIX_API_URL": "http://127.0.0.1:9"})
    clients = AccountClients(settings, accounts(count), concurrency=64)
    names = [f"a{i % count}" for i in range(1000)]
    for name in names:  # clients built once, as after the first calls of a running worker
        clients.wavix(name)
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter_ns()
        for _ in range(CALLS // len(names)):
            for name in names:
                with clients.turn(name):
                    pass
                clients.numbers(name)
                clients.account(name)
        rounds.append((time.perf_counter_ns() - started) / CALLS / 1000)
    return statistics.median(rounds)


def main(argv: list[str] | None = None) -> int:
    one, hundred = lookup_ns(1), lookup_ns(100)
    worker = worker_us(100)
    measured = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    rate = measured.get("worker", {}).get("calls_per_s")
    values = {"lookup_ns_1": round(one), "lookup_ns_100": round(hundred), "lookup_ratio": round(hundred / one, 2),
              "worker_us_per_call_100": round(worker, 2)}
    if isinstance(rate, int | float) and rate > 0:
        values["worker_cost_pct"] = round(worker / (1e6 / rate) * 100, 2)
    record("accounts", values)
    print(f"accounts: lookup {one:.0f} ns (1 account) / {hundred:.0f} ns (100); worker {worker:.2f} µs a call"
          + (f" = {values['worker_cost_pct']}% of a call at {rate} calls/s" if "worker_cost_pct" in values else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
