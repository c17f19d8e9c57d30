"""`make demo` (`python -m demo`): the whole pipeline on one machine in under a minute, no accounts needed.

The service's roles run as real processes (`wavix-events serve` and one `wavix-events worker`); Wavix and
Slack are simulated inside the demo's process (the sandbox and the Slack stand-in); Redis is the one on
127.0.0.1:6379, REDIS_URL's, or a private memory-only `redis-server` started for the run. A few hundred
calls go through (repeats, on-call events, late transcripts, API faults), the run is watched live, then
summed up, and everything it created is removed.

    demo/run.py            the run's life: start, send, watch, stop, clean, report
    demo/redis_server.py   which Redis, and the private one
    demo/processes.py      the roles as processes: settings, start, readiness, stop
    demo/traffic.py        the simulated world and the webhooks it sends
    demo/watch.py          what came out: events stream, dead letters, Slack's inbox
    demo/display.py        the live panel, the summary, the examples, the result line
"""
