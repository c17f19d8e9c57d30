"""Fetch: what the workers ask Wavix for, and the calls found in Wavix's own list when a webhook never came."""
