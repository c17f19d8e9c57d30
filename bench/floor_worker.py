"""The benchmark's floor worker: our worker's exact options, with a job that does only the unavoidable I/O.

Per call: the same GET of the CDR through the same HTTP client (`create_http_client`, `WavixClient.get_cdr`)
and one Redis script through the same Redis client as the real job's scripts (contract/redisbatch.py: an XADD
of the call id to the events stream). The real job
cannot cost less than this; `worker.floor_ratio` is real / floor.
"""

from __future__ import annotations

import sys
from typing import Any

from arq import func

from contract import logs
from contract.jobs import PROCESS_CALL, receipt_from
from contract.redisbatch import BatchedRedis
from contract.settings import Settings
from workers.fetch.wavix import WavixClient, create_http_client
from workers.runtime.settings import create_worker

_PUBLISH = "return redis.call('XADD', KEYS[1], '*', 'call_id', ARGV[1])"


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    ctx["http"] = create_http_client(settings, settings.worker_concurrency)
    ctx["wavix"] = WavixClient.from_settings(ctx["http"], settings)
    ctx["batch"] = BatchedRedis(settings.redis_url)
    ctx["publish"] = ctx["batch"].register_script(_PUBLISH)


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["http"].aclose()
    await ctx["batch"].aclose()


async def floor(ctx: dict[str, Any], arg: Any) -> str:
    receipt = receipt_from(arg)  # the deserializer yields plain maps, as for the real job
    await ctx["wavix"].get_cdr(receipt.call_id)
    await ctx["publish"](keys=[ctx["settings"].events_stream], args=[receipt.call_id])
    return "ok"


def main() -> int:
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    create_worker(settings, functions=[func(floor, name=PROCESS_CALL)], on_startup=startup, on_shutdown=shutdown).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
