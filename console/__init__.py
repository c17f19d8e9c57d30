"""The console: a separate role (`wavix-events console`) that shows, in a browser, what happened to calls.

    app.py       the Litestar app: login, pages, dead-letter actions (CSRF-protected)
    session.py   who is let in: the token for scripts, a browser's login session (random id in Redis, 12 h)
    destinations.py  the destinations page: health, pause, resume, replay since (workers/deliver/admin.py)
    web.py       what pages share: the options, rendering, the actions' switch
    data.py      its reads: the call index and summaries, the dead-letter stream
    charts.py    SVG charts drawn on the server
    trace.py     one call's timeline from its record; also `wavix-events trace CALL_ID`
    asgi.py      the entry point the ASGI server imports; serve.py starts it
    templates/   Jinja templates; no JavaScript, nothing fetched from the internet

It reads what the receiver and the workers write (contract/record.py) and replays dead letters through
workers/dlq.py, pauses, resumes and replays destinations through workers/deliver/admin.py; nothing of
ours imports it.
"""
