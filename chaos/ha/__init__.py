"""`make chaos-ha` (`python -m chaos.ha`): the service on several hosts of one machine, under host faults.

    hosts.py     the hosts: network namespaces on one bridge, cut and mended; leftovers removed by prefix
    wavix.py     the Wavix host: the sandbox, placing calls as they happen, webhooks through balancer.py
    balancer.py  the two receivers behind one address, as a load balancer would put them
    cluster.py   every role on its host: Redis + Sentinels, receivers, workers, destinations
    faults.py    the faults, what each one touched, and when it was over
    run.py       one run: build, load, faults on a schedule, drain, measure (report.py)
"""
