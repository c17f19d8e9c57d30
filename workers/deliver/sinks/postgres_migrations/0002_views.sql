-- 0002: views for the usual questions, over the tables of 0001 (deploy/grafana/wavix-events-calls.json charts
-- them; docs/events.md documents them). Days are UTC days of the call's date (its event's time when Wavix sent
-- none). "Answered" is every outcome answered_*: by a person, a machine, or unknown which.

-- Calls and answer rate per day and direction.
CREATE VIEW calls_per_day AS
SELECT (coalesce(date, event_time) AT TIME ZONE 'UTC')::date AS day,
       direction,
       count(*)::integer AS calls,
       count(*) FILTER (WHERE outcome LIKE 'answered%')::integer AS answered,
       round(count(*) FILTER (WHERE outcome LIKE 'answered%')::numeric / count(*), 4) AS answer_rate
FROM calls
GROUP BY 1, 2;

-- Of the answered calls of a day, the share an answering machine took.
CREATE VIEW machine_share_per_day AS
SELECT (coalesce(date, event_time) AT TIME ZONE 'UTC')::date AS day,
       count(*)::integer AS answered,
       count(*) FILTER (WHERE outcome = 'answered_machine')::integer AS machine,
       round(count(*) FILTER (WHERE outcome = 'answered_machine')::numeric / count(*), 4) AS machine_share
FROM calls
WHERE outcome LIKE 'answered%'
GROUP BY 1;

-- What calls cost per day and destination country (the callee's; 'unknown' when its number did not parse).
-- Cost is charge plus forward fee, in `currency` (USD).
CREATE VIEW cost_per_day_country AS
SELECT (coalesce(date, event_time) AT TIME ZONE 'UTC')::date AS day,
       coalesce(to_country, 'unknown') AS country,
       currency,
       count(*)::integer AS calls,
       sum(coalesce(charge, 0) + coalesce(forward_fee, 0)) AS cost,
       count(*) FILTER (WHERE charge IS NULL)::integer AS calls_without_charge
FROM calls
GROUP BY 1, 2, 3;

-- Talk time of the answered calls per day and direction: median and 90th percentile, in seconds.
CREATE VIEW duration_per_day AS
SELECT (coalesce(date, event_time) AT TIME ZONE 'UTC')::date AS day,
       direction,
       count(duration_s)::integer AS calls,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_s) AS p50_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY duration_s) AS p90_s
FROM calls
WHERE outcome LIKE 'answered%' AND duration_s IS NOT NULL
GROUP BY 1, 2;

-- Transcripts per day: of the answered calls, how many have one, how many never will (and why), how many
-- are still open (no outcome yet).
CREATE VIEW transcripts_per_day AS
SELECT (coalesce(c.date, c.event_time) AT TIME ZONE 'UTC')::date AS day,
       count(*)::integer AS answered,
       count(*) FILTER (WHERE t.status = 'transcribed')::integer AS transcribed,
       count(*) FILTER (WHERE t.status = 'unavailable')::integer AS unavailable,
       count(*) FILTER (WHERE t.call_id IS NULL)::integer AS pending,
       round(count(*) FILTER (WHERE t.status = 'transcribed')::numeric / count(*), 4) AS transcribed_share
FROM calls c
LEFT JOIN call_transcripts t USING (call_id)
WHERE c.outcome LIKE 'answered%'
GROUP BY 1;

-- One row per transcript turn, for full-text search and per-speaker figures.
CREATE VIEW transcript_turns AS
SELECT t.call_id,
       turn.ordinality::integer AS turn,
       turn.value->>'role' AS role,
       turn.value->>'speaker' AS speaker,
       (turn.value->>'start_ms')::integer AS start_ms,
       (turn.value->>'end_ms')::integer AS end_ms,
       turn.value->>'text' AS text,
       turn.value->>'sentiment' AS sentiment
FROM call_transcripts t
CROSS JOIN LATERAL jsonb_array_elements(t.turns) WITH ORDINALITY AS turn(value, ordinality)
WHERE t.status = 'transcribed';
