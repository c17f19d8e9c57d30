"""The job functions arq runs. Until the worker issue lands they only decode what the receiver queued."""

from __future__ import annotations

from typing import Any

from contract import logs
from contract.jobs import receipt_from

log = logs.get("workers.jobs")


async def process_call(ctx: dict[str, Any], arg: Any) -> dict[str, Any]:
    receipt = receipt_from(arg)
    log.info("job.process_call", call_id=receipt.call_id, kind=receipt.kind, attempt=ctx.get("job_try"))
    return {"call_id": receipt.call_id, "kind": str(receipt.kind), "event": receipt.event}


async def fetch_transcript(ctx: dict[str, Any], arg: Any) -> dict[str, Any]:
    receipt = receipt_from(arg)
    log.info("job.fetch_transcript", call_id=receipt.call_id, status=receipt.event, attempt=ctx.get("job_try"))
    return {"call_id": receipt.call_id, "status": receipt.event}
