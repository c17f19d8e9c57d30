"""The arq side of wavix-events: a call's work after the receiver queued it, laid out as its flow.

    fetch/      the Wavix API: the client (wavix.py) and its HTTP transport (http.py)
    enrich.py   CDR (+ transcript) -> CloudEvent, pure
    deliver/    route the event (route.py), attempt each destination (delivery.py), one module a sink (sinks/)
    alert/      Slack: which calls alert (rules.py), the paced outbox (outbox.py), the transport (slack.py)

and around them the job's life: process.py (the jobs arq runs), retry.py (the only retry policy),
deadletter.py (where work that failed for good lands), queue.py (follow-up jobs), context.py (resources
built at startup), settings.py (arq's WorkerSettings), metrics.py and health.py, dlq.py (the operator's CLI).
Modules import downwards only: no two import each other.
"""
