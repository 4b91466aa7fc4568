"""The application factory: ``create_app(settings)`` builds everything at startup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from api.backpressure import InFlightLimitMiddleware, install_backpressure, size_thread_pool
from api.callers import CallerIdentity
from api.deps import get_caller
from api.errors import install_error_handlers, install_outage_handlers
from api.limits import BodySizeLimitMiddleware
from api.ratelimit import RateLimitMiddleware
from api.pages import routes as pages
from api.routes import architectures, downloads, health, tasks, tickets, verifications
from api.routes.downloads import DigestCache
from api.settings import ApiSettings
from api.tickets import TicketCounts
from db.blobs import make_storage
from db.liveness import DatabaseMonitor
from db.session import engine_from_settings, make_sessionmaker

API_PREFIX = "/api/v1"
STATIC_DIR = Path(__file__).parent / "pages" / "static"


def create_app(settings: ApiSettings) -> FastAPI:
    """A ready-to-serve app. The engine, sessions and blob storage are built in the
    lifespan and kept on ``app.state``; nothing is read from the environment here."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Every connection stays pooled (no overflow to open and close under load).
        engine = engine_from_settings(
            settings, pool_size=settings.db_pool_size, max_overflow=0, pre_ping=settings.db_pre_ping
        )
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.read_sessionmaker = make_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))
        size_thread_pool(settings.max_in_flight)
        app.state.storage = make_storage(settings.blob_config)
        app.state.validation_limiter = anyio.CapacityLimiter(settings.validation_threads)
        app.state.digest_cache = DigestCache()
        app.state.ticket_counts = TicketCounts()
        monitor = DatabaseMonitor(engine, probe_timeout=settings.db_probe_timeout)
        if settings.db_probe_timeout > 0:
            monitor.start()
        try:
            yield
        finally:
            monitor.stop()
            engine.dispose()

    # FastAPIOffline serves Swagger UI and ReDoc from the package, not a CDN: /docs
    # works on machines that reach nothing but this server.
    app = FastAPIOffline(
        title="Nirvana",
        summary="An open database of winning lottery tickets, verified by retraining.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.callers = CallerIdentity(settings.trusted_proxies)
    install_error_handlers(app)
    install_backpressure(app)
    install_outage_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_upload_bytes)
    # Added last, so it runs first: a refused request costs no body read and no query.
    app.add_middleware(
        RateLimitMiddleware,
        api_per_minute=settings.rate_limit_api_per_minute,
        downloads_per_minute=settings.rate_limit_downloads_per_minute,
        identify=app.state.callers.key,
    )
    # Outermost: a request over the in-flight bound costs nothing but its 503.
    app.add_middleware(InFlightLimitMiddleware, max_in_flight=settings.max_in_flight)
    for module in (health, tasks, architectures, tickets, downloads, verifications):
        # get_caller on every route: a bad token is 401 on reads too.
        app.include_router(module.router, prefix=API_PREFIX, dependencies=[Depends(get_caller)])
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
