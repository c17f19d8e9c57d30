"""Consumers of our events, one per destination kind, each small enough to copy (see README.md here)."""
