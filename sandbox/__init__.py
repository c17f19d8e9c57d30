"""The Wavix sandbox: a local Wavix for the demo, the benchmarks and the end-to-end tests (issue #3).

Built from the official spec and our notes, vendored in `sandbox/spec/` (wavix-api.yaml, FACTS.md). The stages:

    config.py    SandboxConfig (seed, api_key, date window, transcript timing and shares, drops, faults): frozen
    calls.py     SimCall and generate_call(config, index): seeded, pure    (world.py, speech.py: its data)
    state.py     Sandbox(config): placed calls, transcript clocks, live faults, request counters
    wire.py      SimCalls rendered as the spec's response bodies (one CDR, transcript, errors)
    listing.py   the CDR list, the NDJSON export and the account's numbers (numbers.py), with their parameters
    faults.py    Faults: shares of 429 (with/without Retry-After), 5xx, slow answers, drops, 403, wrong and
                 oversized CDRs + latency
    asgi.py      the ASGI plumbing: types, Request, read_body, respond
    api.py       create_app(sandbox): the raw ASGI app (Wavix's API; /_sandbox is admin.py)
    accounts.py  the master account's sub-accounts (keys, calls, call webhooks): /v1/sub-organizations and
                 /v1/calls/webhooks
    server.py    serve(sandbox) in this loop, spawn(config) in a subprocess: both yield the base URL
    bodies.py    Variant and the webhook bodies, drifted on request
    webhooks.py  deliveries(...), send_webhooks(...) -> list[Result], refusals(results)
    cli.py       `wavix-events simulate` / `python -m sandbox`

In a test or benchmark:

    sandbox = Sandbox(SandboxConfig(seed=7, api_key=KEY, transcript_delay_s=2))
    async with serve(sandbox) as wavix_url:
        calls = sandbox.place(100)
        results = await send_webhooks(calls, receiver_url, rate=200, duplicates=0.1, reorder=True,
                                      on_call_events=True, on_first_send=sandbox.mark_sent,
                                      transcription_delay_s=sandbox.config.transcript_delay_s)

Where the spec and FACTS.md differ, the API answers what the spec says:
- `CDRTranscriptionResponse` requires `call_date`, `call_uuid`, `call_score`, `call_summary` and its turns
  allow only `type` (additionalProperties false); the older docs' shape (`phone_number`, last four fields
  missing) is served only for `SandboxConfig.legacy_transcript_share` of transcripts (default 0).
- The spec requires `call_score`/`call_summary` as strings even for a `failed` transcript: they are "".
- `CDR` (list items) has no `recording_url` and no `transcription`; only `CDRResponse` (one CDR) has them.
- `GET /v1/recordings/{call_id}` is documented as "200 ... redirects, URL in Location"; the sandbox answers
  302 with `Location`, as FACTS.md says, so clients that follow redirects get the file.
- The older path family `/v1/cdr/...` is not in the spec; it answers the same bodies as `/v1/cdrs/...`.
- The spec gives the CDR list's `disposition` no default; the list and the export answer answered calls
  only when it is absent (the conservative reading of Wavix): a client must send `disposition=all`.
- The list's 400 uses `ValidationErrorResponse` (what the spec's `BadRequestErrorResponse` points to).
- 429 and 5xx are not in the spec; their bodies use Wavix's `{"success": false, "message"}`.
- Webhooks: only the `spec` variant matches `CallStatusWebhook`/`Call` (and `cdr`'s on-call bodies, which
  merely lack the optional `direction`); the others are FACTS.md's older shapes on purpose (whole CDR,
  JSON numbers with uppercase `ANSWERED`, `uuid`-only, `id`-only, `call_finished`, numeric `sip_trunk`),
  which the spec's `additionalProperties: false` schemas reject. Drifted bodies break the schemas too.
- FACTS.md says transcript turn fields are nullable; the spec's `TranscriptTurn` and the response's
  `transcript`/`turns` allow no null. Such nulls are served only for `transcript_nulls_share` (default 0).
- The spec names no maximum `per_page`, only `int32`; the export (`/v1/cdrs/all`) documents no 400 and
  answers the list's. The transcription-completed webhook's `uuid` is the call's id, as the spec says.
"""
