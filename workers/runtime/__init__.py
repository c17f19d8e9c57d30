"""The worker process's own running: its arq settings (settings.py), the resources every job shares (context.py),
the supervised arq worker that rides out Redis outages (supervise.py), its health port (health.py) and the
queue's connection (queue.py). The stages (fetch/, deliver/, alert/, privacy/) run inside it."""
