"""The application factory: ``create_app(settings)`` builds everything at startup."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from api.backpressure import InFlightLimitMiddleware, size_thread_pool
from api.callers import CallerIdentity
from api.deps import get_caller
from api.errors import install_error_handlers, install_outage_handlers
from api.openapi import install_openapi
from api.limits import BodySizeLimitMiddleware
from api.observability import Metrics, ObservabilityMiddleware
from api.observability import router as metrics_router
from api.ratelimit import RateLimitMiddleware
from api.ratestores import make_store
from api.readcache import ChangeListener, ReadCache, ReadCacheMiddleware
from api.pages import routes as pages
from api.routes import architectures, downloads, health, tasks, tickets, verifications
from api.routes.downloads import BlobMemory, DigestCache
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

    rate_limits = make_store(settings)
    read_cache = ReadCache(settings.read_cache_mb * 1024 * 1024) if settings.read_cache_mb > 0 else None

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
        app.state.blob_memory = BlobMemory(settings.blob_memory_mb * 1024 * 1024)
        app.state.ticket_counts = TicketCounts()
        monitor = DatabaseMonitor(engine, probe_timeout=settings.db_probe_timeout)
        if settings.db_probe_timeout > 0:
            monitor.start()
        listener = None
        if read_cache is not None:
            read_cache.database_reachable = lambda: monitor.available
            listener = ChangeListener(settings.database_url, read_cache)
            listener.start()
        # What startup built (torch, the app, the registries) lives as long as the
        # process: out of the collector's sight, a full collection no longer walks it
        # and stops every request for tens of milliseconds.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if listener is not None:
                listener.stop()
            monitor.stop()
            await rate_limits.close()
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
    install_outage_handlers(app)
    if read_cache is not None:
        # Innermost: the limits, the in-flight bound and the metrics count a cached
        # answer like any other.
        app.state.read_cache = read_cache
        app.add_middleware(ReadCacheMiddleware, cache=read_cache)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_upload_bytes)
    # Added last, so it runs first: a refused request costs no body read and no query.
    app.add_middleware(
        RateLimitMiddleware,
        api_per_minute=settings.rate_limit_api_per_minute,
        downloads_per_minute=settings.rate_limit_downloads_per_minute,
        identify=app.state.callers.key,
        store=rate_limits,
    )
    # Outermost: a request over the in-flight bound costs nothing but its 503.
    app.add_middleware(InFlightLimitMiddleware, max_in_flight=settings.max_in_flight)
    # Around everything, so refusals are counted, timed and carry a request id too.
    app.state.metrics = Metrics()
    app.add_middleware(ObservabilityMiddleware, metrics=app.state.metrics)
    for module in (health, tasks, architectures, tickets, downloads, verifications):
        # get_caller on every route: a bad token is 401 on reads too.
        app.include_router(module.router, prefix=API_PREFIX, dependencies=[Depends(get_caller)])
    app.include_router(metrics_router)
    app.include_router(pages.router)
    install_openapi(app, prefix=API_PREFIX)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
