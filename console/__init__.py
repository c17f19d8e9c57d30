"""The console: a separate role (`wavix-events console`) that shows, in a browser, what happened to calls.

    app.py       the Litestar app: login, pages, dead-letter actions (CSRF-protected)
    session.py   who is let in: the token for scripts, a browser's login session (random id in Redis, 12 h)
    destinations.py  the destinations page: health, pause, resume, replay since, redeliver what failed
                 (workers/deliver/admin.py)
    web.py       what pages share: the options, rendering, query parameters read as a form, the actions' switch
    errors.py    every failure a page: Redis down (503, since when, a log line), bad requests, bugs
    banner.py    what is wrong now, on every page: a destination failing, the queue stuck, events stopped
    search.py    a call by its id, one of its events' ids, or a phone number
    paging.py    pages of 50 for every list
    letters.py   the dead-letters page: filters, replay or purge all matching after a count (workers/operate/dlq.py)
    attempts.py  a call's delivery attempts: HTTP status, response, payload scrubbed (workers/deliver/attempts.py)
    series.py    each destination's delivered and failed tries over time (SVG)
    data.py      its reads: the call index and summaries, the dead-letter stream
    charts.py    SVG charts drawn on the server
    trace.py     one call's timeline from its record; also `wavix-events trace CALL_ID`
    asgi.py      the entry point the ASGI server imports; serve.py starts it
    templates/   Jinja templates; no JavaScript, nothing fetched from the internet

It reads what the receiver and the workers write (contract/record.py) and replays dead letters through
workers/operate/dlq.py, pauses, resumes and replays destinations through workers/deliver/admin.py; nothing of
ours imports it.
"""
