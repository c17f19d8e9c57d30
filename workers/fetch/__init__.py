"""Fetch: what the workers ask Wavix for. `wavix.py` is the API client; `http.py` its transport."""
