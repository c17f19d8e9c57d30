"""Alert: Slack for calls that failed or met a machine, paced and never lost, and their transcripts in the thread."""
