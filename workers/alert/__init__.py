"""Alert: Slack for calls that failed or met a machine. `rules.py` says what, `outbox.py` paces, `slack.py` sends."""
