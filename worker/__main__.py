"""``python -m worker``: run a worker with settings from the environment.

``DATABASE_URL`` is required; every other setting has a default (``worker.settings``).
The ``nirvana worker`` command does the same after finding the database itself.
"""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError

from worker.main import run_worker
from worker.settings import WorkerSettings


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = WorkerSettings()  # type: ignore[call-arg]  # fields come from the environment
    except ValidationError as exc:
        print(f"worker: invalid settings (is DATABASE_URL set?)\n{exc}", file=sys.stderr)
        return 2
    run_worker(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
