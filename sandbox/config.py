"""How a sandbox behaves: one frozen Struct, given to `Sandbox(config)` and built by the CLI from its options.

Everything that decides what the sandbox answers is here, so two sandboxes with equal configs answer
alike: the seed fixes every generated call (ids, numbers, dispositions, prices, transcripts); `start`
fixes their dates (left unset, each call starts and ends inside the `window_s` before it is placed, so
a reconciliation looking back twice that long finds every one). Faults can be changed while running
(`Sandbox.set_faults`). `drop_webhooks_share` is here rather than with the other webhook options because
it is a fact about the call (the sandbox lists it), not about one sending.
"""

from __future__ import annotations

import msgspec

from sandbox.faults import Faults


class SubAccountConfig(msgspec.Struct, frozen=True, kw_only=True):
    """One sub-account of the sandbox's master account."""

    id: int
    name: str
    api_key: str
    status: str = "enabled"  # enabled | disabled


def check_sub_accounts(subs: tuple[SubAccountConfig, ...], master_key: str) -> None:
    """ValueError when ids or keys repeat, a key is empty or the master's, or a status is unknown."""
    ids, keys = [s.id for s in subs], [s.api_key for s in subs]
    if len(set(ids)) != len(ids) or any(i <= 0 for i in ids):
        raise ValueError("sub-account ids must be unique whole numbers above 0")
    if len(set(keys)) != len(keys) or master_key in keys or not all(keys):
        raise ValueError("sub-account keys must be non-empty, unique and not the master's")
    if any(s.status not in ("enabled", "disabled") for s in subs):
        raise ValueError("a sub-account's status is enabled or disabled")


class SandboxConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The sandbox's settings; the defaults give a fast, well-behaved Wavix with realistic calls."""

    seed: int = 0
    api_key: str = "sandbox-api-key"
    # ISO 8601 UTC time of the first call (`2026-07-01T09:00:00Z`); None dates each call when placed.
    start: str | None = None
    spacing_s: float = 3.0  # seconds between call starts when `start` is set
    # Without `start`: each call lies inside the last `window_s` seconds before it is placed (seeded spread).
    # 0 makes every call end at the moment it is placed.
    window_s: float = 3600.0
    # Transcripts: which calls get one, when it is ready, how it ends.
    transcript_share: float = 0.6  # of answered calls answered by a person
    transcript_delay_s: float = 0.0  # after the call's first webhook (or its placing) the transcript is ready
    transcript_failed_share: float = 0.1  # of transcripts that end `failed`
    # Of transcripts, the share served in the older docs' shape (turns name the speaker in `phone_number`,
    # no `call_score`/`call_summary`/dates): NOT valid against the spec, so 0 unless asked for.
    legacy_transcript_share: float = 0.0
    # Of transcripts, the share with nulls the spec does NOT allow (turns with null `text`, `s` or `e`;
    # some with a null `transcript` or `turns`): what the service must survive, so 0 unless asked for.
    transcript_nulls_share: float = 0.0
    # Of calls, the share whose work-starting webhooks (post-call, terminal on-call, transcription) are
    # never sent: they exist in the API and the CDR list only, as a call whose webhook Wavix lost.
    drop_webhooks_share: float = 0.0
    machine_share: float = 0.15  # of answered outbound calls that a machine answered
    faults: Faults = msgspec.field(default_factory=Faults)
    # The master account's sub-accounts (`api_key` is the master's): each with its own key, calls and webhooks
    # (sandbox/accounts.py).
    sub_accounts: tuple[SubAccountConfig, ...] = ()

    def __post_init__(self) -> None:
        for name in ("transcript_share", "transcript_failed_share", "legacy_transcript_share", "machine_share",
                     "transcript_nulls_share", "drop_webhooks_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
        if self.transcript_delay_s < 0 or self.spacing_s < 0 or self.window_s < 0:
            raise ValueError("transcript_delay_s, spacing_s and window_s must not be negative")
        if not self.api_key:
            raise ValueError("api_key must not be empty")
        check_sub_accounts(self.sub_accounts, self.api_key)  # sandbox/accounts.py serves them
