"""Deliver: an event to every destination that wants it. `route.py` picks, `delivery.py` attempts, `sinks/` speak."""
