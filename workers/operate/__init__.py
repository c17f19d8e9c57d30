"""The operator's side of the worker: each call's record for the console and `trace` (record.py, written by the
hooks in observe.py), the worker's Prometheus numbers (metrics.py) and the `dlq` commands (dlq.py)."""
