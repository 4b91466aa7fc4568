"""Groups of ``nirvana`` commands; each module has ``register(app)``.

- :mod:`.server`: serve, api, worker, migrate, token create (run the service).
- :mod:`.tickets`: push, pull, tickets, show, tasks, status, wait (talk to one).
"""
