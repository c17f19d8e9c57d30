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
    alert/      Slack: what an alert says (rules.py), the paced outbox (outbox.py, gate.py), the transcript
                reply in its thread (notes.py), the transport (slack.py), its policy (config.py), an
                account's own channel (accounts.py)

and around them the job's life: process.py (the jobs arq runs), retry.py (the only retry policy),
deadletter.py (where work that failed for good lands), queue.py (follow-up jobs), observe.py and
record.py (each call's steps, for `wavix-events trace` and the console), context.py (resources built
at startup), settings.py and supervise.py (arq's worker, kept alive through Redis outages), metrics.py
and health.py (numbers and probes), dlq.py (the operator's dead-letter commands).
Modules import downwards only: no two import each other.
"""
