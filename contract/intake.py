"""Intake: the one way work enters the queue, for a webhook and for a call found by listing alike.

The receiver (service/enqueue.py, over its pipelined client) and the reconciler and backfill
(workers/fetch/reconcile.py, over redis-py) run the SAME Lua function, so a call queued by one is a
duplicate for the other: a webhook that arrives after its call was reconciled, or a second reconciler,
queues nothing. The function, atomic in Redis:

    record the receipt in the call's list (`webhooks_key`)      always for a webhook; for a listed call
                                                               only when it is queued
    seen within the dedup window?  -> stop (0)
    queue arq's job record and entry (unless the job waits already), then set the dedup mark -> 1

The mark is written last: were a write ever to fail part-way, what remains is a queued job without its
mark (a possible repeat, which the worker tolerates), never a call marked seen but not queued.

Redis runs 8 commands for a new call's webhook (RPUSH, EXPIRE, three EXISTS, SET, ZADD, SET): the list is
trimmed only once it holds more than WEBHOOKS_KEPT (RPUSH answers its length), and a stale result is deleted
only for a transcript job (a call's result was just seen not to exist). 10 before; docs/benchmarks.md.

A transcript job (`MODE_TRANSCRIPT`) shares ONE job id per call between Wavix's transcription webhook and
the worker's own poll (`transcript_job_id`): when the poll already waits, the webhook pulls it forward to
now (`ZADD XX LT`) instead of queueing a second job; when an earlier transcript job finished (its result
is kept), a new one is queued all the same, so a transcript announced after we stopped waiting is fetched.
When the job is RUNNING (arq's in-progress mark), it may have read the call's webhooks already and end
without this one (issue #22: a last poll published `unavailable` and the announced transcript was lost), so
the webhook queues the call's follow-up job (`transcript_follow_up_id`, once while it waits), which
workers/process.py runs after the running job has ended.

`ENQUEUE_ONE` takes KEYS seen, job, result, queue, list, running, follow_up (the job's in-progress mark, the
follow-up's job key: read for a transcript job only) and ARGV ttl_s, expiry_ms, job, job_id, now_ms,
receipt, mode. `ENQUEUE_MANY` takes the same seven keys and seven arguments per call, one call after
another, and answers a list of 0/1: a page of a CDR listing costs one round trip, not one per call.
"""

from __future__ import annotations

from contract.accounts import DEFAULT
from contract.webhooks import WEBHOOKS_KEPT

MODE_WEBHOOK = "webhook"  # record always, queue once per dedup window
MODE_LISTED = "listed"  # record and queue only when not seen
MODE_TRANSCRIPT = "transcript"  # as a webhook, on the call's one transcript job id

KEYS_PER_CALL = 7
ARGS_PER_CALL = 7
FOLLOW_UP_SUFFIX = ":follow_up"  # a transcript job id + this: the follow-up's job id

_FUNCTION = f"""
local function intake(k, a)
  local seen, job, result, queue, list, running, follow_up = k[1], k[2], k[3], k[4], k[5], k[6], k[7]
  local ttl, expiry, record, jid, now, receipt, mode = a[1], a[2], a[3], a[4], a[5], a[6], a[7]
  local function remember()
    if redis.call('RPUSH', list, receipt) > {WEBHOOKS_KEPT} then redis.call('LTRIM', list, -{WEBHOOKS_KEPT}, -1) end
    redis.call('EXPIRE', list, ttl)
  end
  if mode ~= '{MODE_LISTED}' then remember() end
  if redis.call('EXISTS', seen) == 1 then return 0 end
  if mode == '{MODE_LISTED}' then remember() end
  if redis.call('EXISTS', job) == 1 then
    if mode == '{MODE_TRANSCRIPT}' and redis.call('EXISTS', running) == 0 then
      redis.call('ZADD', queue, 'XX', 'LT', now, jid)
    elseif mode == '{MODE_TRANSCRIPT}' and redis.call('EXISTS', follow_up) == 0 then
      -- running: it may have read the list before this webhook; the follow-up runs after it
      redis.call('SET', follow_up, record, 'PX', expiry)
      redis.call('ZADD', queue, now, jid .. '{FOLLOW_UP_SUFFIX}')
    end
  elseif mode == '{MODE_TRANSCRIPT}' or redis.call('EXISTS', result) == 0 then
    if mode == '{MODE_TRANSCRIPT}' then redis.call('DEL', result) end  -- a webhook's: just seen not to exist
    redis.call('SET', job, record, 'PX', expiry)
    redis.call('ZADD', queue, now, jid)
  end
  redis.call('SET', seen, now, 'EX', ttl)
  return 1
end
"""

ENQUEUE_ONE = _FUNCTION + "return intake(KEYS, ARGV)\n"

ENQUEUE_MANY = _FUNCTION + f"""
local answers = {{}}
for i = 0, #KEYS / {KEYS_PER_CALL} - 1 do
  local k, a = {{}}, {{}}
  for j = 1, {KEYS_PER_CALL} do k[j] = KEYS[i * {KEYS_PER_CALL} + j] end
  for j = 1, {ARGS_PER_CALL} do a[j] = ARGV[i * {ARGS_PER_CALL} + j] end
  answers[i + 1] = intake(k, a)
end
return answers
"""


def scoped(account: str, key: str) -> str:
    """A call's key (its id, or a dedup key) under its account: unchanged for the `default` account, as before
    accounts; `<account>/<key>` for the others, so one account's token cannot queue, mark or read another's
    call (contract/accounts.py)."""
    return key if account == DEFAULT else f"{account}/{key}"


def seen_key(key_prefix: str, dedup_key: str) -> str:
    """The dedup mark of one piece of work (`call:{id}`, `transcript:{id}:{status}`)."""
    return f"{key_prefix}seen:{dedup_key}"


def call_job_id(key_prefix: str, call_id: str) -> str:
    """The job id of a call's `process_call` (arq's keys are global: ours are namespaced by the prefix)."""
    return f"{key_prefix}call:{call_id}"


def transcript_job_id(key_prefix: str, call_id: str) -> str:
    """The one job id of a call's transcript work: Wavix's webhook and the worker's poll share it."""
    return f"{key_prefix}transcript:{call_id}"


def transcript_follow_up_id(key_prefix: str, call_id: str) -> str:
    """The job id of the call's follow-up: a transcription webhook that came while its transcript job ran."""
    return transcript_job_id(key_prefix, call_id) + FOLLOW_UP_SUFFIX
