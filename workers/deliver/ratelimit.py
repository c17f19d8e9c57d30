"""Rate limit per destination (`max_per_second` in the routing file), one limit across every worker.

A CRM with an API quota must see at most N requests a second from all workers together, so the limit lives
in Redis: GCRA (the generic cell rate algorithm) keeps one number per destination, the time of its next free
slot (`{prefix}rate:{name}`, ms). A try takes the slot if it is due within `max_wait_ms` (and waits for it:
the attempt sleeps at most that long), else it takes nothing and is told when to come back. Requests are
therefore spaced 1/N s apart, without bursts: a quota of "5 per second" is never exceeded in any second.

`GCRA` is a fragment of the ledger's claim script (workers/deliver/ledger.py): the slot is taken in the same
round trip as the delivery's lease, and only when the lease is ours (a duplicate takes no slot).
An event over the rate spends no try: the deliver job comes back when its slot is near (workers/deliver/delivery.py).
"""

from __future__ import annotations

MAX_SLEEP_S = 5.0  # a try waits in place for a slot at most this long; later slots re-queue the job

# KEYS[4] the slot key; ARGV[5] the interval (ms, 0: no limit), ARGV[6] the longest wait in place (ms).
# Sets `wait` (ms to sleep before sending) or returns {-3, ms} (come back later, nothing taken).
GCRA = """
local interval = tonumber(ARGV[5])
local slot, wait = now, 0
if interval > 0 then
  slot = math.max(tonumber(redis.call('GET', KEYS[4]) or '0'), now)
  wait = slot - now
  if wait > tonumber(ARGV[6]) then return {-3, math.ceil(wait)} end
end
"""
# After the lease is taken: the next slot is one interval later.
GCRA_TAKE = """
if interval > 0 then
  redis.call('SET', KEYS[4], string.format('%.3f', slot + interval), 'PX', math.ceil(wait + interval) + 1000)
end
"""


def interval_ms(max_per_second: float) -> float:
    """Milliseconds between two requests at `max_per_second` (0: no limit)."""
    return 1000.0 / max_per_second if max_per_second > 0 else 0.0
