"""How a sandbox behaves: one frozen Struct, given to `Sandbox(config)` and built by the CLI from its options.

Everything that decides what the sandbox answers is here, so two sandboxes with equal configs answer
alike: the seed fixes every generated call (ids, numbers, dispositions, prices, transcripts); `start`
fixes their dates (left unset, a call is dated so that it ends when it is placed, which is what a demo
and a reconciliation against "today" need). Faults can be changed while running (`Sandbox.set_faults`).
"""

from __future__ import annotations

import msgspec

from sandbox.faults import Faults


class SandboxConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The sandbox's settings; the defaults give a fast, well-behaved Wavix with realistic calls."""

    seed: int = 0
    api_key: str = "sandbox-api-key"
    # ISO 8601 UTC time of the first call (`2026-07-01T09:00:00Z`); None dates each call when placed.
    start: str | None = None
    spacing_s: float = 3.0  # seconds between call starts when `start` is set
    # Transcripts: which calls get one, when it is ready, how it ends.
    transcript_share: float = 0.6  # of answered calls answered by a person
    transcript_delay_s: float = 0.0  # after the call's first webhook (or its placing) the transcript is ready
    transcript_failed_share: float = 0.1  # of transcripts that end `failed`
    # Of transcripts, the share served in the older docs' shape (turns name the speaker in `phone_number`,
    # no `call_score`/`call_summary`/dates): NOT valid against the spec, so 0 unless asked for.
    legacy_transcript_share: float = 0.0
    machine_share: float = 0.15  # of answered outbound calls that a machine answered
    faults: Faults = msgspec.field(default_factory=Faults)

    def __post_init__(self) -> None:
        for name in ("transcript_share", "transcript_failed_share", "legacy_transcript_share", "machine_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
        if self.transcript_delay_s < 0 or self.spacing_s < 0:
            raise ValueError("transcript_delay_s and spacing_s must not be negative")
        if not self.api_key:
            raise ValueError("api_key must not be empty")
