"""The arq side of wavix-events: a call's work after the receiver queued it, laid out as its flow.

    fetch/      what we ask Wavix: the API client (wavix.py) over its transport (http.py); what the call's
                webhooks, the CDR list and the account's numbers say beyond the CDR (hints.py); calls found
                by listing (listed.py), every few minutes (reconcile.py) or for past days (backfill.py);
                each account's client, numbers and limit (accounts.py), sub-account keys and call webhooks
                (subaccounts.py)
    enrich.py   CDR (+ transcript) + hints -> CloudEvent, pure
    deliver/    route the event (route.py), attempt each destination (delivery.py, its job in jobs.py) under
                a ledger (ledger.py: delivered marks, one lease in flight), each on its own schedule, paced
                (ratelimit.py), held (control.py), replayed from the event log (eventlog.py), watched
                (health.py, admin.py), reloaded on SIGHUP (reload.py); one module a transport (sinks/)
    alert/      what an alert says (rules.py; card.py before any service's format), who gets it (config.py,
                alerting.py), one paced outbox for every channel (outbox.py, gate.py, channel.py) and the
                channels (slack.py, teams.py, pagerduty.py, email.py), the transcript reply in its thread
                (notes.py), keyword rules (keywords.py), the pipeline's incidents and their ops events
                (incidents.py, ops.py), an account's own channel (accounts.py)
    privacy/    redaction as each delivery is formed (forming.py), the number index (index.py), erasure of a
                caller (erase.py, erased.py, callkeys.py, streams.py, pgstore.py) and its tombstone

and around them the job's life: process.py (the jobs arq runs), retry.py (the only retry policy),
deadletter.py (where work that failed for good lands). The worker's own running is in runtime/ (settings.py
and supervise.py: arq's worker, kept alive through Redis outages; context.py: resources built at startup;
queue.py: the queue's connection and follow-up jobs; health.py: probes), and the operator's side in operate/
(observe.py and record.py: each call's steps, for `wavix-events trace` and the console; metrics.py: numbers;
dlq.py: the dead-letter commands).
Modules import downwards only: no two import each other.
"""
