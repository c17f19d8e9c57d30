"""Shared test helpers: webhook bodies, running roles as processes, sink harnesses."""
