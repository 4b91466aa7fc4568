"""The worker loop: reap -> claim -> run the training in a child -> heartbeat -> finish.

Each database step is its own short, committed transaction; training happens in a
spawned child, outside any transaction, and the worker only supervises it. Every write
after the claim names the lease token, so a worker that lost its lease writes nothing.
A job's ending is written with retries and backoff while the lease lasts, so a database
blip as training ends costs a few seconds, not the training. A ``Reaper`` thread takes
back dead workers' jobs on a timer, busy or not (``worker/reaper.py``).
This module never imports torch: CUDA is only ever initialised in the child.
"""

from __future__ import annotations

import enum
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import TypeVar

import psycopg
import tenacity
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from db import queue
from db.models.tickets import Ticket
from nirvana.states import VerificationState
from db.notifications import ChannelListener
from db.session import engine_from_settings, make_sessionmaker, unit_of_work
from worker.child import DEFAULT_ENTRY, Outcome, WarmChild, describe_exit
from worker.reaper import Reaper
from worker.runs import JobSpec
from worker.settings import WorkerSettings

log = logging.getLogger("worker")

#: Longest the loop blocks on anything, so a stop request is seen promptly.
TICK = 0.1


class Interrupt(enum.Enum):
    """Why supervision ended before the child reported."""

    STOPPED = "the worker is stopping"
    CANCELLED = "cancelled on request"
    LEASE_LOST = "the lease was lost"


T = TypeVar("T")


@dataclass
class Lease:
    """When this worker's lease on its job lapses, by its own clock (``monotonic``):
    pushed forward by every heartbeat the database accepted. The database, not this
    clock, decides who may write; this only says how long a write is worth retrying."""

    seconds: float
    until: float = 0.0

    def renewed(self, at: float) -> None:
        self.until = at + self.seconds

    def left(self) -> float:
        return self.until - time.monotonic()


def run_worker(
    settings: WorkerSettings,
    *,
    stop: threading.Event | None = None,
    once: bool = False,
    entry: str = DEFAULT_ENTRY,
) -> None:
    """Run jobs until ``stop`` is set or (with ``once``) the queue is empty.

    Without a ``stop`` event, the worker owns its signals: SIGTERM and SIGINT set one
    (main thread only). A caller that passes ``stop`` decides itself which signals stop
    the worker (``nirvana serve`` ignores SIGINT in its workers, for instance).

    On stop, a job in progress is handed back to the queue (its attempt not counted)
    after its child is stopped. ``entry`` (``module:function``) is what the child
    runs; tests substitute one, production never does.
    """
    own_signals = stop is None
    stop = stop if stop is not None else threading.Event()
    engine = engine_from_settings(settings, pool_size=2)
    factory = make_sessionmaker(engine)
    log.info("worker %s started (lease %ss, heartbeat %ss)", settings.worker_id,
             settings.lease_seconds, settings.heartbeat_seconds)
    child = WarmChild(entry)  # kept across jobs; stopped whenever a job ends abnormally
    try:
        with (
            _stop_on_signals(stop, enabled=own_signals),
            _Listener(settings.database_url) as listener,
            Reaper(factory, interval=settings.reap_seconds),
        ):
            while not stop.is_set():
                try:
                    claim = _reap_and_claim(factory, settings)
                except SQLAlchemyError as exc:
                    log.warning("database unavailable (%s); retrying in %ss", exc.__class__.__name__,
                                settings.poll_seconds)
                    stop.wait(settings.poll_seconds)
                    continue
                if claim is None:
                    if once:
                        return
                    listener.wait(settings.poll_seconds, stop)
                    continue
                _run_job(factory, settings, claim, stop, child)
    finally:
        child.stop(settings.kill_grace_seconds)
        engine.dispose()
        log.info("worker %s stopped", settings.worker_id)


def _reap_and_claim(factory: sessionmaker[Session], settings: WorkerSettings) -> queue.Claim | None:
    # The Reaper thread reaps on its timer; reaping here too lets an idle worker take
    # a lapsed job at once rather than at the next pass.
    with unit_of_work(factory) as session:
        reaped = queue.reap_expired(session)
    if reaped:
        log.info("reaped %d job(s) whose worker stopped heartbeating", reaped)
    with unit_of_work(factory) as session:
        claim = queue.claim_next(session, worker_id=settings.worker_id, lease_seconds=settings.lease_seconds)
    if claim is not None:
        log.info("verification %s claimed (attempt %d of %d, ticket %s on %s)", claim.verification_id,
                 claim.attempts, claim.max_attempts, claim.ticket_id[:12], claim.task)
    return claim


def _job_spec(factory: sessionmaker[Session], settings: WorkerSettings, claim: queue.Claim) -> JobSpec:
    with unit_of_work(factory) as session:
        ticket = session.get(Ticket, claim.ticket_id)
        # The foreign key cascades, so a claimed job always has its ticket.
        assert ticket is not None, claim.ticket_id
        return JobSpec(
            verification_id=str(claim.verification_id),
            ticket_id=ticket.id,
            architecture=ticket.architecture,
            init_scheme=ticket.init_scheme,
            task=claim.task,
            recipe=claim.recipe,
            claimed_accuracy=claim.claimed_accuracy,
            mask_sha256=ticket.mask_sha256,
            init_sha256=ticket.init_sha256,
            blob=settings.blob_config,
            data_dir=settings.task_data_dir,
            device=settings.device,
            threads=settings.threads,
            batching=settings.verify_batch,
            max_batch=settings.verify_max_batch,
            compile=settings.verify_compile,
            replicates=settings.verify_replicates,
            claimed_at=str(ticket.manifest.get("claimed", {}).get("at", "final")),
        )


def _run_job(
    factory: sessionmaker[Session], settings: WorkerSettings, claim: queue.Claim, stop: threading.Event,
    child: WarmChild,
) -> None:
    """Run one claimed job to its end (or hand it back); never raises for the job's sake."""
    lease = Lease(settings.lease_seconds)
    # Claimed a moment ago: counting from now errs by that moment, on the safe side
    # only because the database checks the lease token on every write anyway.
    lease.renewed(time.monotonic())
    try:
        spec = _job_spec(factory, settings, claim)
        child.submit(spec)
        log.info("verification %s running in child pid %s", claim.verification_id, child.pid)
        ended: Outcome | Interrupt | None = Interrupt.STOPPED
        exitcode: int | None = None
        try:
            ended = _supervise(factory, settings, claim, child, stop, lease)
        finally:
            # Only a child that reported, and not a failure of its own, stays warm.
            if ended is None or isinstance(ended, Interrupt) or ended[0] == "error":
                exitcode = child.stop(settings.kill_grace_seconds)
        if ended is Interrupt.STOPPED:
            # Stopping: hand the job back once; if the database is away, the lease lapses.
            _record(factory, claim, ended, exitcode)
        else:
            _write_while_leased(lease, claim, lambda: _record(factory, claim, ended, exitcode))
    except queue.LeaseLostError:
        log.warning("verification %s: lease lost; another worker owns it now", claim.verification_id)
    except SQLAlchemyError:
        # The lease will lapse and the job be reaped and retried: nothing is lost.
        log.exception("verification %s: database error; leaving it to lease expiry", claim.verification_id)
    except Exception as exc:
        # A bug of ours (say, the child could not be started): count it as an attempt,
        # so a job that always trips it ends failed instead of looping forever.
        log.exception("verification %s: the worker failed to run it", claim.verification_id)
        try:
            with unit_of_work(factory) as session:
                queue.release_for_retry(session, claim, error=f"worker error: {exc!r}")
        except (queue.LeaseLostError, SQLAlchemyError):
            # Keep the worker alive: the lease lapses and the reaper retries the job.
            log.exception("verification %s: could not hand it back; leaving it to lease expiry", claim.verification_id)


def _supervise(
    factory: sessionmaker[Session],
    settings: WorkerSettings,
    claim: queue.Claim,
    child: WarmChild,
    stop: threading.Event,
    lease: Lease,
) -> Outcome | Interrupt | None:
    """Wait for the child's outcome (``None`` if it died without one), heartbeating
    every ``heartbeat_seconds`` (each accepted one renews ``lease``); return early with
    an ``Interrupt``."""
    next_beat = time.monotonic() + settings.heartbeat_seconds
    while True:
        reported, outcome = child.poll(TICK)
        if reported:
            return outcome
        child.drain_progress()
        if stop.is_set():
            return Interrupt.STOPPED
        if time.monotonic() < next_beat:
            continue
        next_beat = time.monotonic() + settings.heartbeat_seconds
        sent = time.monotonic()
        try:
            with unit_of_work(factory) as session:
                cancel = queue.heartbeat(session, claim, progress=child.fraction,
                                         lease_seconds=settings.lease_seconds)
        except queue.LeaseLostError:
            return Interrupt.LEASE_LOST
        except SQLAlchemyError as exc:
            # A blip is survivable while the lease lasts; the next beat tries again.
            log.warning("verification %s: heartbeat failed (%s)", claim.verification_id, exc.__class__.__name__)
            continue
        lease.renewed(sent)
        if cancel:
            return Interrupt.CANCELLED


def _record(
    factory: sessionmaker[Session], claim: queue.Claim, ended: Outcome | Interrupt | None, exitcode: int | None
) -> None:
    """Write how the job ended, under the lease (``LeaseLostError`` propagates)."""
    vid = claim.verification_id
    if ended is Interrupt.LEASE_LOST:
        raise queue.LeaseLostError(str(vid))
    with unit_of_work(factory) as session:
        if ended is Interrupt.STOPPED:
            queue.release(session, claim)
            log.info("verification %s released to the queue (worker stopping)", vid)
        elif ended is Interrupt.CANCELLED:
            queue.finish(session, claim, state=VerificationState.CANCELLED)
            log.info("verification %s cancelled", vid)
        elif ended is None:
            state = queue.release_for_retry(session, claim, error=describe_exit(exitcode))
            log.warning("verification %s: %s; now %s", vid, describe_exit(exitcode), state.value)
        elif ended[0] == "ok":
            queue.finish(session, claim, state=VerificationState.SUCCEEDED, result=ended[1])
            log.info("verification %s succeeded (verdict %s)", vid, ended[1].get("verdict"))
        elif ended[0] == "user_error":
            queue.finish(session, claim, state=VerificationState.FAILED, error=ended[2])
            log.info("verification %s failed: %s (%s)", vid, ended[2], ended[1])
        else:
            state = queue.release_for_retry(session, claim, error=ended[1])
            log.warning("verification %s: %s; now %s", vid, ended[1], state.value)


def _transient(exc: BaseException) -> bool:
    """A database error that passes with time: the server away, restarting, frozen and
    cut off, a statement or pool timeout. Never ``LeaseLostError``: that one is final."""
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeoutError)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _write_while_leased(lease: Lease, claim: queue.Claim, write: Callable[[], T]) -> T:
    """``write()``, retried with exponential backoff (and jitter) on transient database
    errors for as long as ``lease`` lasts; then the last error propagates and the job is
    left to the reaper. ``LeaseLostError`` and other errors propagate at once."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log.warning("verification %s: could not record its end (%s); retrying in %.1fs, lease left %.1fs",
                    claim.verification_id, error.__class__.__name__, state.upcoming_sleep, lease.left())

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_transient),
        # Exponential from 0.2 s up to 5 s, plus jitter (APIs every tenacity release has).
        wait=tenacity.wait_exponential(multiplier=0.2, max=5.0) + tenacity.wait_random(0, 0.2),
        stop=tenacity.stop_before_delay(max(0.0, lease.left())),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(write)


class _Listener:
    """``ChannelListener`` that degrades to plain polling while the database is
    unreachable (it reconnects on the next wait)."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.listener: ChannelListener | None = None

    def wait(self, seconds: float, stop: threading.Event) -> None:
        """Return after ``seconds``, or sooner when work is queued or ``stop`` is set."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            try:
                if self.listener is None:
                    self.listener = ChannelListener(self.url)
                # Short slices: a signal handler's stop request is seen within TICK*5.
                if self.listener.wait(min(left, TICK * 5)):
                    return
            except psycopg.Error:
                self.close()
                stop.wait(left)

    def close(self) -> None:
        if self.listener is not None:
            try:
                self.listener.close()
            finally:
                self.listener = None

    def __enter__(self) -> _Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def _stop_on_signals(stop: threading.Event, *, enabled: bool) -> Iterator[None]:
    """Turn SIGTERM/SIGINT into ``stop`` while running (only in the main thread, where
    Python delivers signals)."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
