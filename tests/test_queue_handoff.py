"""The job the endpoint queues is one the real arq worker runs (burst mode), decoded from msgpack."""

from __future__ import annotations

from arq.jobs import Job

from contract.jobs import job_deserializer
from tests import payloads
from tests.conftest import TOKEN, call_id
from workers.settings import create_worker


async def test_the_real_worker_runs_the_job_the_endpoint_queued(client, redis, settings):
    """A webhook accepted by the app is picked up by arq's Worker with our serializer and completes."""
    cid = call_id()
    body = payloads.encode(payloads.on_call(cid, "completed", legacy=True))
    response = await client.post(f"/webhooks/wavix/{TOKEN}", content=body, headers={"content-type": "application/json"})
    assert response.json()["status"] == "accepted"

    worker = create_worker(settings, burst=True, poll_delay=0, handle_signals=False)
    try:
        await worker.main()
    finally:
        await worker.close()
    assert worker.jobs_complete == 1
    assert worker.jobs_failed == 0
    job = Job(f"call:{cid}", redis, _queue_name=settings.queue_name, _deserializer=job_deserializer)
    info = await job.result_info()
    assert info is not None and info.success
    assert info.result["call_id"] == cid
