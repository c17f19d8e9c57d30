"""Sinks: one module per transport behind one two-method interface (`publish`, `close`).

    from workers.deliver.sinks import SinkOptions, idempotency_key, open_sink

    sink = await open_sink("amqp://guest:guest@127.0.0.1:5672/?exchange=wavix.events", name="rabbit")
    await sink.publish(event, idempotency_key=idempotency_key(event, sink.name))  # or Transient / Permanent
    await sink.close()

`base` holds the interface, the scheme registry and the error mapping; transports are imported lazily.
"""

from workers.deliver.sinks.base import (
    SCHEMES,
    Sink,
    SinkError,
    SinkOptions,
    build_sink,
    check_url,
    idempotency_key,
    open_sink,
    redact,
)

__all__ = [
    "SCHEMES", "Sink", "SinkError", "SinkOptions", "build_sink", "check_url", "idempotency_key", "open_sink", "redact",
]
