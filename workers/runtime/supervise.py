"""Keeps the arq worker running through Redis outages, and its jobs re-running promptly after a crash.

Measured on arq 0.28 (a chaos run: Redis stopped for 2 s under two workers): every worker process exited
with status 1, because any Redis error out of arq's poll loop ends `Worker.main()`; and jobs a worker held
kept their `arq:in-progress:<id>` mark for JOB_TIMEOUT + 10 s (310 s by default), so after a crash or an
outage no one ran them for five minutes. `SupervisedWorker` is arq's Worker with four changes:

- **Outage.** A Redis connection error in the poll loop no longer ends the worker: it logs one warning
  (`worker.redis_lost`), pings Redis with backoff (0.1 s doubling to 5 s, however long it takes), logs one
  line when it answers (`worker.redis_back`, with the outage's length) and resumes. Jobs whose bookkeeping
  failed meanwhile get their in-progress mark deleted at once, so they run again within a poll; jobs
  still running get their mark back (a restarted Redis may have lost or expired it).
- **Lease.** The in-progress mark is a lease of LEASE_S seconds that a background task renews for every
  running job each RENEW_S seconds (one pipelined PEXPIRE), not a JOB_TIMEOUT + 10 s block: a job held
  by a worker that died (kill -9, OOM) runs again about LEASE_S later, on whichever worker is alive.
- **Start.** The jobs of one poll start in one script call per group of free slots (`_START`: the checks
  arq makes, and the lease), where arq made four sequential round trips a job (16% of a busy worker's
  CPU in a py-spy profile, most of it socket writes); and a job the poll read while every slot was busy
  starts as soon as one frees, where arq waited for its next poll. 3,000 calls in one process, A/B: 535-547
  calls/s before, 687-715 after.
- **Finish.** A job's end (its result, the queue entry and the marks gone, or a retry's new score) is one
  script (`_FINISH`, the commands of arq's `finish_job` transaction, atomically), and both scripts go
  through the batching client the jobs' own scripts use (contract/redisbatch.py): arq's transaction through
  redis-py cost ~82 µs of the worker's CPU a job, the script ~7-8 µs (64 concurrent callers, this
  machine), about 5% of a real job's CPU. The job's notes for the per-call record (workers/operate/record.py) ride in
  the same script (`_FINISH_RECORDED`: workers/operate/observe.py leaves them in `ctx["record_at_finish"]`), the
  record's part under pcall so a refused record never keeps a job from ending: one round trip a job run less.
- **Start-up.** Redis unreachable at start is one error (the CLI prints one line, exit 1), not five
  retries and a traceback. `/readyz` on the worker's health port answers 503 during an outage (from the
  first failed poll or lease renewal, so within RENEW_S even while every slot is busy), while `/healthz`
  keeps answering (the loop turns; an outage should not get a worker restarted).

A re-run job may repeat work already done: the sinks' idempotency marks and the alerts' dedup keys make
that harmless (workers/deliver/, workers/alert/), as they already did for arq's own retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from arq.connections import ArqRedis, log_redis_info
from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, result_key_prefix, retry_key_prefix
from arq.utils import poll, timestamp_ms, to_ms
from arq.worker import Worker
from redis.asyncio.connection import BlockingConnectionPool, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from contract import logs, redisurl
from contract.redisbatch import BatchedRedis
from workers.operate import record
from workers.runtime import queue

log = logs.get("workers.runtime.supervise")
T = TypeVar("T")

# Errors that mean "Redis is not answering" (BusyLoadingError, a Redis loading its AOF, is a ConnectionError).
OUTAGE = (RedisConnectionError, RedisTimeoutError, OSError)
LEASE_S = 10.0  # a dead worker's jobs wait this long; a live worker renews well within it
RENEW_S = 1.0
POOL_CONNECTIONS = 8  # redis-py connections of one worker process (the job's hot scripts use their own)
POOL_WAIT_S = 30  # the longest a command waits for one of them before it fails (and its job retries)
BACKOFF_S = (0.1, 5.0)  # first and longest wait between two pings during an outage
RIDE_BACKOFF_S = (0.05, 1.0)  # first and longest wait between two tries of a step that waits an outage out
REDIS_TIMEOUT_S = 5.0  # one batch of the worker's scripts, its own and its jobs' (connect, or write and read)

# KEYS: the queue, then each job's in-progress key; ARGV: now (ms), the lease (ms), then the job ids.
# Answers {job id, score, ...} of the jobs it started, in order.
_START = """
local now, started = tonumber(ARGV[1]), {}
for i = 2, #KEYS do
  local job_id = ARGV[i + 1]
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local score = redis.call('ZSCORE', KEYS[1], job_id)
    if score and tonumber(score) <= now then
      redis.call('SET', KEYS[i], '1', 'PX', ARGV[2])
      started[#started + 1] = job_id
      started[#started + 1] = score
    end
  end
end
return started
"""


# KEYS: the job's in-progress, result, retry and job keys, arq's abort set, the queue. ARGV: the job id, how long
# to keep the in-progress mark in ms ('' deletes it), '1' when the job is over, its result ('' for none), the
# result's lifetime in ms ('' keeps it for ever), the score to add for a retry ('' for none).
_FINISH = """
local job_id, gone = ARGV[1], {}
if ARGV[2] == '' then gone[#gone + 1] = KEYS[1] else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if ARGV[3] == '1' then
  if ARGV[4] ~= '' then
    if ARGV[5] == '' then
      redis.call('SET', KEYS[2], ARGV[4])
    else
      redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
    end
  end
  gone[#gone + 1] = KEYS[3]
  gone[#gone + 1] = KEYS[4]
  redis.call('ZREM', KEYS[5], job_id)
  redis.call('ZREM', KEYS[6], job_id)
elseif ARGV[6] ~= '' then
  redis.call('ZINCRBY', KEYS[6], ARGV[6], job_id)
end
if #gone > 0 then redis.call('DEL', unpack(gone)) end
"""
# The job's end and its notes for the per-call record (workers/operate/record.py `WRITE`: KEYS from 7, ARGV from 7) in
# one call; the record's part under pcall, so a record Redis refuses never keeps a job from finishing (0: unwritten).
_FINISH_RECORDED = record.WRITE + _FINISH + """
if pcall(record, {unpack(KEYS, 7)}, 6) then return 1 end
return 0
"""
_FINISH += "return 1\n"


async def until_answered(attempt: Callable[[], Awaitable[T]], *, what: str, **fields: Any) -> T:
    """`attempt()`'s result, tried again with backoff (RIDE_BACKOFF_S) for as long as Redis does not answer:
    for a step that must not be dropped or done twice, after a peer already took its effect (a delivery's
    ledger mark, an alert's acknowledgement), so the step itself must be safe to repeat. One warning when
    the outage begins, one line when it is over."""
    delay, lost_at = RIDE_BACKOFF_S[0], 0.0
    while True:
        try:
            result = await attempt()
        except OUTAGE as e:
            if not lost_at:
                lost_at = time.monotonic()
                log.warning("redis.waiting", step=what, error=str(e) or type(e).__name__, **fields)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RIDE_BACKOFF_S[1])
            continue
        if lost_at:
            log.info("redis.answered", step=what, waited_s=round(time.monotonic() - lost_at, 1), **fields)
        return result


async def _bound_connections(pool: ArqRedis) -> None:
    """Gives the worker's redis-py client a pool of at most POOL_CONNECTIONS connections that waits for a free
    one (redis-py's BlockingConnectionPool, same connection settings), where arq's pool opened one more for
    every command that found all busy and never closed it: with jobs starting together (the start script)
    it grew to 21 connections over 4,000 calls and the worker's RSS by 14% over 20,000 (8-9% before). A
    Sentinel pool is left as it is (its connections find the master through it)."""
    current = pool.connection_pool
    if type(current) is not ConnectionPool:
        return
    pool.connection_pool = BlockingConnectionPool(
        connection_class=current.connection_class, max_connections=POOL_CONNECTIONS, timeout=POOL_WAIT_S,
        **current.connection_kwargs,
    )
    await current.disconnect()  # the one connection create_pool's ping opened


class SupervisedWorker(Worker):
    """arq's Worker that survives Redis outages and holds its jobs with a short, renewed lease."""

    def __init__(self, *, redis_url: str | None = None, **kwargs: Any) -> None:
        """`redis_url`: the queue's Redis (any REDIS_URL form, Sentinel too): arq's pool, and the batching client
        of the start and finish scripts, which the jobs' own scripts share through `ctx["batch"]` (without it the
        start and finish go through arq's redis-py pool, and the jobs' resources make their own)."""
        super().__init__(**kwargs)
        self._redis_url = redis_url or "redis://127.0.0.1:6379/0"
        self._batch = (BatchedRedis(redis_url, connect_timeout=REDIS_TIMEOUT_S, timeout=REDIS_TIMEOUT_S)
                       if redis_url else None)
        self._finish = self._batch.register_script(_FINISH) if self._batch is not None else None
        self._recorded: dict[str, record.Parts] = {}  # job id -> its notes, written with its end (`finish_job`)
        if self._batch is not None:
            self.ctx["batch"] = self._batch  # the jobs' scripts share it (runtime/context.py); closed in `close`
            self.ctx["record_at_finish"] = self._recorded  # workers/operate/observe.py leaves a job's notes here
            self._finish_recorded = self._batch.register_script(_FINISH_RECORDED)
            self._flush = self._batch.register_script(record.FLUSH)
        self.in_progress_timeout_s = LEASE_S
        self.redis_ready = False
        self._lost: set[str] = set()  # jobs whose end could not be written: released once Redis answers
        self.ctx.setdefault("health_pages", {})["/readyz"] = self._readyz
        self._start: Any = None  # the _START script, registered on the pool once it exists
        self._riding_out = False
        self._slot_freed = asyncio.Event()  # set each time a job ends (start_jobs waits on it when full)

    def _readyz(self) -> tuple[int, str, bytes]:
        return (200, "text/plain", b"ready\n") if self.redis_ready else (503, "text/plain", b"redis unreachable\n")

    async def main(self) -> None:
        if self._pool is None:
            self._pool = await queue.connect(self._redis_url, queue_name=self.queue_name, timeout_s=REDIS_TIMEOUT_S)
            await _bound_connections(self._pool)
        self._start = (self._batch or self.pool).register_script(_START)
        self.redis_ready = True
        await log_redis_info(self.pool, logging.getLogger("arq.worker").info)
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        leases = asyncio.create_task(self._renew_leases())
        try:
            while True:
                try:
                    return await self._poll_until_done()
                except OUTAGE as e:
                    await self._ride_out(e)
        finally:
            leases.cancel()

    async def _poll_until_done(self) -> None:
        """arq's poll loop (Worker.main), returning when a burst run has emptied the queue."""
        async for _ in poll(self.poll_delay_s):
            await self._poll_iteration()
            if self.burst:
                if 0 <= self.max_burst_jobs <= self._jobs_started():
                    await asyncio.gather(*self.tasks.values())
                    return
                if await self.pool.zcard(self.queue_name) == 0:
                    await asyncio.gather(*self.tasks.values())
                    return

    async def _poll_iteration(self) -> None:
        if self._lost:
            await self._release_lost()
        await super()._poll_iteration()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's start_jobs with one script call per group of free slots: the same checks and lease, atomically.

        arq takes four sequential round trips a job (WATCH, EXISTS, ZSCORE, then MULTI/PSETEX/EXEC), so
        starting a poll's 64 jobs took 256; the script checks each job as arq does (not running anywhere,
        still queued, due) and sets its in-progress lease. Where arq returns at the first full slot and leaves
        the rest of the poll's jobs to its next poll, this waits for a slot to free while jobs are left.
        """
        waiting = [job_id.decode() for job_id in job_ids]
        while waiting:
            free = self.max_jobs - self.job_counter
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()  # a job ended: its slot is free again
                continue
            group, waiting = waiting[:free], waiting[free:]
            keys = [self.queue_name, *(in_progress_key_prefix + job_id for job_id in group)]
            started = await self._start(keys=keys, args=[timestamp_ms(), int(self.in_progress_timeout_s * 1000),
                                                         *group])
            for job_id, score in zip(started[::2], started[1::2], strict=True):
                await self.sem.acquire()  # arq's count of running jobs (it releases it when the job ends)
                self.job_counter += 1
                name = job_id.decode()
                task = self.loop.create_task(self.run_job(name, int(float(score))))
                task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
                self.tasks[name] = task

    async def finish_job(
        self, job_id: str, finish: bool, result_data: bytes | None, result_timeout_s: float | None,
        keep_result_forever: bool, incr_score: int | None, keep_in_progress: float | None,
    ) -> None:
        """arq's finish_job, the same commands as one script call through the batching client."""
        if self._finish is None:
            await super().finish_job(job_id, finish, result_data, result_timeout_s, keep_result_forever, incr_score,
                                     keep_in_progress)
            return
        lifetime = to_ms(None if keep_result_forever else result_timeout_s)
        keys = [in_progress_key_prefix + job_id, result_key_prefix + job_id, retry_key_prefix + job_id,
                job_key_prefix + job_id, abort_jobs_ss, self.queue_name]
        kept = "" if keep_in_progress is None else to_ms(keep_in_progress)
        args = [job_id, kept, "1" if finish else "", result_data or "", "" if lifetime is None else lifetime,
                incr_score or ""]
        notes = self._recorded.pop(job_id, None)
        if notes is None:
            await self._finish(keys=keys, args=args)
        elif not await self._finish_recorded(keys=[*keys, *notes[0]], args=[*args, *notes[1]]):
            record.unwritten(notes, "refused")

    async def close(self) -> None:
        pool = self._pool
        await super().close()
        if pool is not None:
            await redisurl.close(pool)  # and its Sentinels' connections, for a Sentinel URL
        if self._batch is not None:
            await self._batch.aclose()

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._slot_freed.set()

    async def run_job(self, job_id: str, score: int) -> None:
        try:
            await super().run_job(job_id, score)
        except OUTAGE as e:
            self._lost.add(job_id)
            log.warning("worker.job_bookkeeping_lost", job_id=job_id, error=str(e) or type(e).__name__)
        finally:
            notes = self._recorded.pop(job_id, None)  # the job never reached its finish: its notes alone
            if notes is not None:
                await record.write(self._flush, notes)

    async def _release_lost(self) -> None:
        if not self._lost:
            return
        lost, self._lost = self._lost, set()
        try:
            await self.pool.delete(*(in_progress_key_prefix + job_id for job_id in lost))
        except OUTAGE:
            self._lost |= lost
            raise

    async def _ride_out(self, error: BaseException) -> None:
        """Waits, with backoff, until Redis answers; then gives back the marks of the jobs in flight."""
        self.redis_ready, self._riding_out = False, True
        started = time.monotonic()
        log.warning("worker.redis_lost", error=str(error) or type(error).__name__, jobs_running=self._running())
        delay = BACKOFF_S[0]
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_S[1])
            with contextlib.suppress(*OUTAGE):
                await self.pool.ping()
                await self._renew(recreate=True)
                released = len(self._lost)
                await self._release_lost()
                break
        self.redis_ready, self._riding_out = True, False
        log.info("worker.redis_back", outage_s=round(time.monotonic() - started, 1), jobs_released=released,
                 jobs_running=self._running())

    def _running(self) -> list[str]:
        return [job_id for job_id, task in self.tasks.items() if not task.done()]

    async def _renew(self, *, recreate: bool = False) -> bool:
        """Extends the lease of every running job; `recreate` sets marks a restarted Redis no longer has.
        Whether Redis was asked (no job running: nothing to renew)."""
        running = self._running()
        if not running:
            return False
        lease_ms = int(LEASE_S * 1000)
        async with self.pool.pipeline(transaction=False) as pipe:
            for job_id in running:
                if recreate:
                    pipe.set(in_progress_key_prefix + job_id, b"1", px=lease_ms)
                else:
                    pipe.pexpire(in_progress_key_prefix + job_id, lease_ms)
            await pipe.execute()
        return True

    async def _renew_leases(self) -> None:
        """Renews the leases; a renewal that fails marks the worker unready at once, even while every slot is
        busy and the poll loop has no reason to ask Redis anything (the loop rides the outage out and says
        when Redis is back)."""
        while True:
            await asyncio.sleep(RENEW_S)
            try:
                answered = await self._renew()
            except OUTAGE:
                self.redis_ready = False
                continue
            if answered and not self._riding_out:
                self.redis_ready = True
