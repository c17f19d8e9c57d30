"""`wavix-events simulate` (also `python -m sandbox`): run the Wavix sandbox from a terminal.

    wavix-events simulate --port 8100 --api-key KEY --seed 7 --calls 300 --rate 50 \\
        --target http://127.0.0.1:8000/webhooks/wavix/TOKEN --duplicates 0.1 --reorder --on-call-events \\
        --transcript-delay 5 --fault-429 0.02

serves Wavix's API, places the calls, sends their webhooks to the target, prints a summary of what the
target answered, and keeps serving until Ctrl-C (or SIGTERM), or for `--linger` seconds. Without
`--target` it only serves: place calls with `POST /_sandbox/calls?count=N`. The first line on stdout is
`SANDBOX_URL=http://HOST:PORT` (useful with `--port 0`); everything else goes to stderr.

Exit status: 0; 2 for contradicting options; 1 when the target refused webhooks (a webhook that got
answers, none of them 2xx; drifted bodies, faults on purpose, do not count) or never answered: one line
on stderr says how many and the first status and body. If it accepted none at all (a wrong URL or
token), the simulator exits at once; otherwise it serves on as asked (workers still fetch the CDRs of
the calls that got through) and exits 1 at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

import msgspec

from contract import logs
from sandbox.api import create_app
from sandbox.calls import SimCall
from sandbox.config import SandboxConfig
from sandbox.faults import Faults
from sandbox.server import READY_PREFIX, Server
from sandbox.state import Sandbox
from sandbox.webhooks import Result, Variant, refusals, send_webhooks, summarize

log = logs.get("sandbox")

_EPILOG = """\
what it does:
  Serves Wavix's API (GET /v1/cdrs/{id}, /v1/cdr/{uuid}, .../transcription, /v1/cdrs?from&to&type,
  /v1/cdrs/all?from&to&type (NDJSON), /v1/numbers, /v1/recordings/{id}) for the calls it places, with
  Bearer auth. With --target it places --calls calls, POSTs their webhooks there at --rate (and each
  transcript's transcription-completed webhook when it is ready), logs what the target answered, then
  keeps serving until Ctrl-C or SIGTERM (or for --linger seconds). Without --target it only serves.
  The first stdout line is SANDBOX_URL=http://HOST:PORT; logs go to stderr.
  Exit status 1 if the target refused webhooks (non-2xx, drifted bodies aside) or never answered.

admin endpoints (no auth, no faults):
  GET /_sandbox/calls                 every call placed, with its facts (direction, webhooks_dropped...)
  POST /_sandbox/calls?count=N        place N more calls (you send their webhooks)
  GET /_sandbox/stats                 answers given, by route and status; faults injected; dropped calls
  GET|PUT /_sandbox/faults            read or replace the fault shares (JSON)
"""


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share within 0..1")
    return value


def _variants(text: str) -> tuple[Variant, ...]:
    try:
        return tuple(Variant(part.strip()) for part in text.split(",") if part.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{e}; known: {', '.join(v.value for v in Variant)}") from e


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `simulate`; every one is explained in `--help`."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = "Run the Wavix sandbox: Wavix's API for simulated calls, and their webhooks."
    parser.epilog = _EPILOG
    _server_options(parser)
    _call_options(parser)
    _webhook_options(parser)
    _fault_options(parser)


def _server_options(parser: argparse.ArgumentParser) -> None:
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    server.add_argument("--port", type=int, default=8100, help="port to listen on; 0 picks a free one (default 8100)")
    server.add_argument("--api-key", default="sandbox-api-key",
                        help="the API key clients must send as 'Authorization: Bearer KEY' (default sandbox-api-key)")
    server.add_argument("--linger", type=float, default=None, metavar="SECONDS",
                        help="after sending, serve this long and exit (default: serve until Ctrl-C or SIGTERM)")
    server.add_argument("--config-json", default=None, metavar="JSON",
                        help="a whole SandboxConfig as JSON (used by sandbox.server.spawn); "
                             "when given, it replaces every call, transcript and fault option below")


def _call_options(parser: argparse.ArgumentParser) -> None:
    calls = parser.add_argument_group("calls")
    calls.add_argument("--seed", type=int, default=0,
                       help="seed of the generated calls: same seed, same calls (default 0)")
    calls.add_argument("--calls", type=int, default=0, metavar="N", help="calls to place at startup (default 0)")
    calls.add_argument("--start", "--start-at", dest="start", default=None, metavar="ISO_TIME",
                       help="date of the first call, e.g. 2026-06-30T23:50:00Z (to straddle midnight UTC), "
                            "the next ones --spacing apart (default: calls spread over the last --window)")
    calls.add_argument("--spacing", type=float, default=3.0, metavar="SECONDS",
                       help="seconds between call starts with --start (default 3)")
    calls.add_argument("--window", type=float, default=3600.0, metavar="SECONDS",
                       help="without --start, each call starts and ends within this long before it is placed; "
                            "0: every call ends as it is placed (default 3600)")
    calls.add_argument("--machine-share", type=_share, metavar="SHARE", default=0.15,
                       help="share of answered outbound calls a machine answered (default 0.15)")
    calls.add_argument("--transcript-share", type=_share, metavar="SHARE", default=0.6,
                       help="share of person-answered calls that get a transcript (default 0.6)")
    calls.add_argument("--transcript-delay", type=float, default=0.0, metavar="SECONDS",
                       help="a transcript answers 404 until this long after the call's first webhook (default 0)")
    calls.add_argument("--transcript-failed", type=_share, metavar="SHARE", default=0.1,
                       help="share of transcripts whose status is 'failed' (default 0.1)")
    calls.add_argument("--legacy-transcripts", type=_share, metavar="SHARE", default=0.0,
                       help="share of transcripts in the older docs' shape (turns with 'phone_number', no score, "
                            "summary or dates); not valid against the spec (default 0)")
    calls.add_argument("--transcript-nulls", type=_share, metavar="SHARE", default=0.0,
                       help="share of transcripts with null turn text/s/e and some null 'transcript' or 'turns'; "
                            "the spec allows none of these nulls (default 0)")


def _webhook_options(parser: argparse.ArgumentParser) -> None:
    hooks = parser.add_argument_group("webhooks (sent only with --target)")
    hooks.add_argument("--target", default=None, metavar="URL", help="URL to POST the calls' webhooks to")
    hooks.add_argument("--rate", type=float, default=50.0, metavar="PER_SECOND",
                       help="webhooks (POSTs) per second (default 50)")
    hooks.add_argument("--variants", type=_variants, default=tuple(Variant), metavar="LIST",
                       help="comma-separated payload variants, one picked per call: "
                            "spec (current spec bodies), cdr (pre-2026 whole-CDR post-call, on-call without "
                            "direction), numeric (JSON numbers, uppercase ANSWERED), uuid (on-call with deprecated "
                            "uuid only), id (on-call with id only), finished (on-call call_finished), cdr-numeric "
                            "(as cdr, sip_trunk a JSON number) (default: all)")
    hooks.add_argument("--duplicates", type=_share, metavar="SHARE", default=0.0,
                       help="share of webhooks sent twice (default 0)")
    hooks.add_argument("--reorder", action="store_true", help="shuffle webhooks with their near neighbours")
    hooks.add_argument("--on-call-events", action="store_true",
                       help="also send on-call events (call_setup, ringing, answered, and the terminal one)")
    hooks.add_argument("--drift", type=_share, metavar="SHARE", default=0.0,
                       help="share of webhook bodies with one unneeded field changed in type or added "
                            "(sip_trunk as a number, machine_detected 'true', event_payload a string...) (default 0)")
    hooks.add_argument("--drop-webhooks", type=_share, metavar="SHARE", default=0.0,
                       help="share of calls whose work-starting webhooks (post-call, terminal on-call, "
                            "transcription) are never sent; the calls stay in the API and the CDR list (default 0)")
    hooks.add_argument("--transcription-webhooks", action=argparse.BooleanOptionalAction, default=True,
                       help="send each transcript's transcription-completed webhook {uuid, status} when it is "
                            "ready, --transcript-delay after the call's first webhook (default: on)")
    hooks.add_argument("--deadline", type=float, default=600.0, metavar="SECONDS",
                       help="stop starting new webhooks after this long (default 600)")
    hooks.add_argument("--results", default=None, metavar="PATH",
                       help="write one JSON line per webhook sent (call, event, variant, duplicate, status)")


def _fault_options(parser: argparse.ArgumentParser) -> None:
    faults = parser.add_argument_group("API latency and faults (shares of API requests, 0..1)")
    faults.add_argument("--latency", type=float, default=0.0, metavar="SECONDS",
                        help="base latency of every API answer, e.g. 0.1 (default 0)")
    faults.add_argument("--fault-429", type=_share, default=0.0, metavar="SHARE",
                        help="share of API requests answered 429 with Retry-After (default 0)")
    faults.add_argument("--fault-429-bare", type=_share, default=0.0, metavar="SHARE",
                        help="share answered 429 without Retry-After (default 0)")
    faults.add_argument("--retry-after", type=int, default=1, metavar="SECONDS", help="Retry-After value (default 1)")
    faults.add_argument("--fault-5xx", type=_share, default=0.0, metavar="SHARE",
                        help="share answered 500, 502 or 503 (default 0)")
    faults.add_argument("--fault-slow", type=_share, default=0.0, metavar="SHARE",
                        help="share answered only after --slow-delay seconds (default 0)")
    faults.add_argument("--slow-delay", type=float, default=30.0, metavar="SECONDS",
                        help="how long a slow answer takes; set it beyond the client's timeout (default 30)")
    faults.add_argument("--fault-drop", type=_share, default=0.0, metavar="SHARE",
                        help="share whose connection is closed without an answer (default 0)")
    faults.add_argument("--fault-403", type=_share, default=0.0, metavar="SHARE",
                        help='share of transcript requests answered 403 "not provisioned" (default 0)')
    faults.add_argument("--fault-wrong-cdr", type=_share, default=0.0, metavar="SHARE",
                        help="share of CDR requests answered 200 with another call's CDR (default 0)")
    faults.add_argument("--fault-oversized-cdr", type=_share, default=0.0, metavar="SHARE",
                        help="share of CDR requests answered 200 with a body over 1 MiB (default 0)")


def config_from(args: argparse.Namespace) -> SandboxConfig:
    """The SandboxConfig the options describe (`--config-json`, when given, is taken whole)."""
    if args.config_json:
        return msgspec.json.decode(args.config_json, type=SandboxConfig)
    return SandboxConfig(
        seed=args.seed, api_key=args.api_key, start=args.start, spacing_s=args.spacing, window_s=args.window,
        transcript_share=args.transcript_share, transcript_delay_s=args.transcript_delay,
        transcript_failed_share=args.transcript_failed, legacy_transcript_share=args.legacy_transcripts,
        transcript_nulls_share=args.transcript_nulls, drop_webhooks_share=args.drop_webhooks,
        machine_share=args.machine_share,
        faults=Faults(
            latency_s=args.latency, drop=args.fault_drop, rate_limit=args.fault_429,
            rate_limit_bare=args.fault_429_bare, server_error=args.fault_5xx, slow=args.fault_slow,
            slow_s=args.slow_delay, retry_after_s=args.retry_after, forbidden_transcript=args.fault_403,
            wrong_cdr=args.fault_wrong_cdr, oversized_cdr=args.fault_oversized_cdr,
        ),
    )


def run(args: argparse.Namespace) -> int:
    """Runs the sandbox until it is told to stop; 2 if the options contradict each other."""
    logs.configure("INFO")
    try:
        config = config_from(args)
    except (ValueError, msgspec.ValidationError) as e:
        print(f"wavix-events simulate: {e}", file=sys.stderr)
        return 2
    with contextlib.suppress(ImportError):
        import uvloop  # optional: about twice the requests per second

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.run(_main(config, args))


async def _main(config: SandboxConfig, args: argparse.Namespace) -> int:
    sandbox = Sandbox(config)
    calls = sandbox.place(args.calls)  # before announcing the URL: whoever reads it may list them at once
    server = Server(create_app(sandbox), args.host, args.port)
    url = await server.start()
    print(f"{READY_PREFIX}{url}", flush=True)
    log.info("sandbox.listening", url=url, seed=config.seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    status = 0
    try:
        if args.target and calls:
            status, none_accepted = _verdict(await _send(sandbox, calls, args))
            if none_accepted:
                return status
        if args.linger is None:
            await stop.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.linger)
    finally:
        await server.close()
    return status


async def _send(sandbox: Sandbox, calls: list[SimCall], args: argparse.Namespace) -> list[Result]:
    """Sends the calls' webhooks as the options say, logs a summary, writes `--results`."""
    config = sandbox.config
    results = await send_webhooks(
        calls, args.target, rate=args.rate, variants=args.variants, duplicates=args.duplicates,
        reorder=args.reorder, on_call_events=args.on_call_events, seed=config.seed, deadline_s=args.deadline,
        on_first_send=sandbox.mark_sent, drift=args.drift,
        transcription_delay_s=config.transcript_delay_s if args.transcription_webhooks else None,
    )
    log.info("sandbox.webhooks_sent", calls=len(calls), webhooks=len(results), answers=summarize(results),
             dropped_calls=sandbox.webhook_stats()["dropped_calls"], drifted=sum(r.drift is not None for r in results),
             transcription=sum(r.kind == "transcription" for r in results))
    if args.results:
        with open(args.results, "wb") as out:
            out.writelines(msgspec.json.encode(r) + b"\n" for r in results)
    return results


def _verdict(results: list[Result]) -> tuple[int, bool]:
    """(exit status, whether the target accepted nothing); prints the one line that explains a 1."""
    refused, first = refusals(results)
    unanswered = [r for r in results if r.status is None and r.error != "deadline"]
    accepted = any(r.status is not None and 200 <= r.status < 300 for r in results)
    if not refused and not unanswered:
        return 0, False
    if first is not None:
        seen = " ".join(f"first: HTTP {first.status} {first.answer or ''}".split())
    else:
        seen = f"first: {unanswered[0].error}"
    print(f"wavix-events simulate: the target refused {refused} webhook(s) and {len(unanswered)} got no answer "
          f"({seen})", file=sys.stderr, flush=True)
    return 1, not accepted
