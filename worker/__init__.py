"""The verification worker: reap -> claim -> run the training in a child -> heartbeat ->
finish. ``worker.main.run_worker`` is the entry point; ``python -m worker`` runs it."""
