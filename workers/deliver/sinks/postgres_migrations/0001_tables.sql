-- 0001: the tables a PostgreSQL destination writes (workers/deliver/sinks/postgres_rows.py fills them).
-- Run by workers/deliver/sinks/postgres_schema.py inside one transaction, under an advisory lock, with
-- search_path set to the destination's schema: names here are unqualified on purpose.

-- One row per call, from its wavix.call.completed event; a newer event (a later `time`) replaces it,
-- an older or repeated one changes nothing.
CREATE TABLE calls (
    call_id         text PRIMARY KEY,
    event_id        uuid NOT NULL,
    event_time      timestamptz NOT NULL,           -- the event's `time`: decides which event is newer
    date            timestamptz,                    -- the call's date (UTC), null when Wavix sent none
    parent_call_id  text,
    account         text,                           -- the account the call belongs to, when events carry one
    direction       text NOT NULL CHECK (direction IN ('inbound', 'outbound', 'unknown')),
    from_number     text,                           -- E.164 when it parses, else Wavix's text
    from_country    text CHECK (from_country ~ '^[A-Z]{2}$'),
    to_number       text,
    to_country      text CHECK (to_country ~ '^[A-Z]{2}$'),
    outcome         text NOT NULL,                  -- answered_human, answered_machine, no_answer, busy, ...
    disposition     text,
    answered_by     text,
    duration_s      integer CHECK (duration_s >= 0),  -- whole seconds (the exact text is in `event`)
    currency        text NOT NULL,
    per_minute      numeric CHECK (per_minute >= 0),
    charge          numeric CHECK (charge >= 0),
    forward_fee     numeric CHECK (forward_fee >= 0),
    destination     text,                           -- the called country or network, as Wavix names it
    sip_trunk       text,
    recording_url   text,
    alert_reasons   text[] NOT NULL DEFAULT '{}',
    found_by        text NOT NULL,                  -- webhook, reconcile, backfill
    anomalies       integer NOT NULL DEFAULT 0,     -- values published as null (details in event->data)
    event           jsonb NOT NULL,                 -- the whole CloudEvent
    written_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX calls_date ON calls (date);

-- One row per call with a transcript outcome: `transcribed` (turns, speakers, figures) or `unavailable`
-- (reason). A transcribed row is never replaced by an unavailable one (the worker sends them in that order
-- only: workers/process.py); otherwise as `calls`, a later `event_time` wins.
CREATE TABLE call_transcripts (
    call_id             text PRIMARY KEY,
    event_id            uuid NOT NULL,
    event_time          timestamptz NOT NULL,
    status              text NOT NULL CHECK (status IN ('transcribed', 'unavailable')),
    unavailable_reason  text,                       -- failed, not_provisioned, timed_out
    transcription_id    text,
    language            text,
    summary             text,
    score               numeric,                    -- Wavix's call score, 1.0 (negative) .. 5.0 (positive)
    turn_count          integer NOT NULL DEFAULT 0,
    agent_talk_s        numeric,
    client_talk_s       numeric,
    agent_share         numeric,                    -- 0..1 of everyone's talk time
    client_share        numeric,
    sentiment           jsonb NOT NULL DEFAULT '{}', -- turn sentiment -> number of turns
    speakers            jsonb NOT NULL DEFAULT '[]',
    turns               jsonb NOT NULL DEFAULT '[]', -- [{speaker, role, start_ms, end_ms, text, sentiment}]
    event               jsonb NOT NULL,
    written_at          timestamptz NOT NULL DEFAULT now()
);

-- Every event as delivered, first copy kept: for audit, and for replay by SQL.
CREATE TABLE events (
    event_id      uuid PRIMARY KEY,
    type          text NOT NULL,
    call_id       text NOT NULL,
    time          timestamptz NOT NULL,
    event         jsonb NOT NULL,
    delivered_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_call ON events (call_id);
CREATE INDEX events_delivered_at ON events (delivered_at);
