"""The Wavix host of the several-host run: the sandbox's API, calls placed as they happen, their webhooks sent to
the two receivers through the load balancer (chaos/ha/balancer.py).

    python -m chaos.ha.wavix --receivers http://10.231.7.30:8000,http://10.231.7.31:8000 --path /webhooks/wavix/T \\
        --host 10.231.7.50 --port 8100 --calls 4000 --rate 40 --results DIR/webhooks.ndjson [simulate's options]

`wavix-events simulate` places all its calls at start: reconciliation, which lists the calls that ended
SETTLE_S (60 s) ago or more, would then find every call of a long run before its webhook went out. Wavix lists
a call only once it happened, so this host places each second's `--rate` calls at that second, each ending as
it is placed (`--window 0`), and sends their webhooks (10% sent twice, 1% of calls never, with `--duplicates`
and `--drop-webhooks`) within the second. Every option of `simulate` is read as `simulate` reads it
(sandbox/cli.py) and the sandbox's own code serves the API and sends the webhooks; what is new here is the
pace and the balancer. Once every webhook has its answer it writes, beside `--results`: `placed.txt` (every
call id), `balancer.json` (POSTs per receiver, passed over, unanswered), then `--results` (one line per POST,
`sent_at` in unix seconds), and serves the API on until SIGTERM: workers still fetch CDRs, and
reconciliation lists them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import httpx
import msgspec

from chaos.ha.balancer import Balancer
from contract import logs
from sandbox.api import create_app
from sandbox.calls import SimCall
from sandbox.cli import add_arguments, config_from
from sandbox.server import READY_PREFIX, Server
from sandbox.state import Sandbox
from sandbox.webhooks import Result, send_webhooks

CONNECT_TIMEOUT_S = 1.0  # a receiver host that is down costs this long before the balancer asks the other
ANSWER_TIMEOUT_S = 10.0  # the receiver's own request limit (service/: 10 s)
SPREAD = 0.8  # a second's webhooks go out within this share of the second


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos.ha.wavix")
    add_arguments(parser)
    parser.add_argument("--receivers", required=True, help="the receivers' origins, comma-separated")
    parser.add_argument("--path", required=True, help="the webhook path on every receiver")
    return parser.parse_args(argv)


async def place_and_send(sandbox: Sandbox, args: argparse.Namespace, client: httpx.AsyncClient) -> list[Result]:
    """Each second, places that second's calls and sends their webhooks; returns every POST's result."""
    per_second = max(1, round(args.rate))
    began, batches = time.monotonic(), []
    for k, first in enumerate(range(0, args.calls, per_second)):
        await asyncio.sleep(max(0.0, began + k - time.monotonic()))
        calls = sandbox.place(min(per_second, args.calls - first))
        batches.append(asyncio.create_task(_send(sandbox, calls, args, client, k)))
    return [result for batch in await asyncio.gather(*batches) for result in batch]


async def _send(sandbox: Sandbox, calls: list[SimCall], args: argparse.Namespace, client: httpx.AsyncClient,
                k: int) -> list[Result]:
    wall = time.time()
    results = await send_webhooks(
        calls, args.receivers.split(",")[0] + args.path, rate=len(calls) * (1 + args.duplicates) / SPREAD,
        variants=args.variants, duplicates=args.duplicates, seed=args.seed * 100_000 + k, client=client,
        deadline_s=args.deadline, on_first_send=sandbox.mark_sent, drift=args.drift, transcription_delay_s=None)
    return [msgspec.structs.replace(r, sent_at=round(wall + r.sent_at, 3)) for r in results]


def write(results_path: Path, sandbox: Sandbox, results: list[Result], balancer: Balancer) -> None:
    """placed.txt and balancer.json, then the results (their presence says all three are complete)."""
    directory = results_path.parent
    (directory / "placed.txt").write_text("".join(f"{c.call_id}\n" for c in sandbox.calls()))
    (directory / "balancer.json").write_text(json.dumps(balancer.stats(), indent=2) + "\n")
    partial = results_path.with_suffix(".partial")
    partial.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in results))
    partial.rename(results_path)


async def serve(args: argparse.Namespace) -> int:
    sandbox = Sandbox(config_from(args))
    server = Server(create_app(sandbox), args.host, args.port)
    print(f"{READY_PREFIX}{await server.start()}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    balancer = Balancer(args.receivers.split(","))
    client = httpx.AsyncClient(transport=balancer, timeout=httpx.Timeout(ANSWER_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))
    sending = asyncio.create_task(place_and_send(sandbox, args, client))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({sending, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if sending.done():
            write(Path(args.results), sandbox, sending.result(), balancer)
            await stopping
    finally:
        sending.cancel()
        stopping.cancel()
        await client.aclose()
        await server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    logs.configure("INFO")
    return asyncio.run(serve(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
