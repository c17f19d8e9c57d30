"""Alert: people told where they are (Slack, Teams, PagerDuty, e-mail) about calls, what was said on them, and the
pipeline's own incidents: routed by rules, paced and never lost (workers/alert/alerting.py draws the flow)."""
