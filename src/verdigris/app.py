"""The application factory: one ASGI app serving every face on one port."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import structlog
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from starlette.responses import FileResponse, PlainTextResponse, Response

from verdigris import __version__, mail
from verdigris.accounts import closing as accounts_closing
from verdigris.bodylimit import BodyLimit
from verdigris.channels import registry
from verdigris.compliance import announcements
from verdigris.compliance.moderation import Moderation
from verdigris.config import Settings
from verdigris.console.apidocs import FAVICON, offline_docs
from verdigris.console.routes import build_routes as console_routes
from verdigris.console.routes import root_redirect
from verdigris.core import Core
from verdigris.customers import campaigns
from verdigris.customers import service as customers_service
from verdigris.front import Application, WireFront
from verdigris.greenapi import render
from verdigris.greenapi.openapi import wire_paths
from verdigris.greenapi.partner import partner_paths, partner_routes
from verdigris.greenapi.routes import PathNormalizer, WireEndpoint, wire_routes
from verdigris.hsts import StrictTransportSecurity
from verdigris.instances import service as instances
from verdigris.licensing.enforce import Licensing
from verdigris.licensing.routes import build_router as licensing_router
from verdigris.licensing.worker import LicensingWorker
from verdigris.media.routes import build_router as media_router
from verdigris.media.service import MediaService
from verdigris.messaging import idempotency, notifications
from verdigris.messaging.sender import SendWorker
from verdigris.screening.service import Screening
from verdigris.sendpolicy.service import OutgoingPolicy
from verdigris.store.bus import ClusterBus
from verdigris.store.changes import SyncBeforeRequests
from verdigris.store.clock import now_ms
from verdigris.store.migrate import upgrade
from verdigris.webhooks.dispatcher import WebhookDispatcher
from verdigris.webhooks.routes import build_router as webhooks_router

log = structlog.get_logger("verdigris")

PURGE_EVERY_MS = 10 * 60 * 1000
SEND_SWEEP_MS = 15_000
# What a worker process (``--role worker``) answers: a load balancer's probes only.
WORKER_PATHS = frozenset({"/health", "/ready", "/metrics"})


class WorkerAnswersProbesOnly:
    """ASGI middleware of a worker process: every path but the probes answers 503 in JSON, so a
    balancer that sends API traffic to a worker learns it at once."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] not in WORKER_PATHS:
            body = orjson.dumps(
                {
                    "statusCode": 503,
                    "message": "this process is a worker (--role worker): send API calls to an API process",
                    "path": scope["path"],
                }
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def build_core(settings: Settings) -> Core:
    """A Core with its channels, renderer and send worker installed (not yet started)."""
    core = Core(settings)
    core.channels.update(registry.build(core))
    core.render = render.notification
    core.sender = SendWorker(core)
    core.media = MediaService(core)
    core.dispatcher = WebhookDispatcher(core)
    core.licensing = Licensing(core)
    core.screening = Screening(core)
    core.policy = OutgoingPolicy(core)
    core.event_hooks.append(core.policy.on_event)
    core.incoming_hooks.append(customers_service.on_incoming)
    core.moderation = Moderation(core)
    core.sms = mail.sms_transport(core)
    return core


async def prepare(core: Core) -> None:
    """Migrate the store and check the media store, before anything starts."""
    core.settings.data_dir.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(upgrade, core.settings.resolved_database_url())
    await core.media.store.check()  # a missing bucket or folder stops the start with its reason


async def readiness(core: Core, timeout: float = 5.0) -> dict[str, str]:
    """What keeps this process from serving now: {"database": reason, "media": reason}."""

    async def database() -> None:
        async with core.read() as conn:
            await conn.execute(text("SELECT 1"))

    failed: dict[str, str] = {}
    for name, probe in (("database", database), ("media", core.media.store.check)):
        try:
            await asyncio.wait_for(probe(), timeout)
        except Exception as exc:  # noqa: BLE001 - every failure is a reason to take the process out
            failed[name] = str(exc) or type(exc).__name__
    return failed


async def start(core: Core) -> None:
    core.timers.start()
    await core.changes.start()  # first: what is cached from now on is current
    # Every instance in memory in compact form, so a first request costs what a cached one does.
    await core.instances.load_index()
    await core.licensing.load_index()
    await core.policy.load()
    for channel in core.channels.values():
        await channel.start()
    await core.media.start()
    if core.settings.role != "api":  # sending, webhook pushes and sweeps (docs/scaling.md: roles)
        await start_work(core)
    await core.moderation.start()
    if ClusterBus.wanted(core):
        core.bus = ClusterBus(core)
        await core.bus.start()


async def start_work(core: Core) -> None:
    """What a worker (and an ``all`` process) does besides answering: send, push webhooks, run
    the campaigns, announcements, licence reminders and purges."""
    await core.dispatcher.start()
    # Partitions leased from now on (a process joined, one died): plan the work waiting in them.
    core.leases.on_gained.append(core.sender.plan_queued)
    core.webhook_leases.on_gained.append(core.dispatcher.resume)
    await core.leases.start()
    await core.webhook_leases.start()
    await core.sender.start()
    LicensingWorker(core).start()
    await campaigns.resume_all(core)
    await announcements.resume_all(core)
    if core.settings.role == "worker" or core.leases.shared:

        async def sweep() -> None:
            # A hand-off from another process or a wake-up may have been lost (or arrived while
            # the partition had no holder): look again at what waits in this process's partitions.
            try:
                await core.sender.plan_queued()
                await core.dispatcher.resume()
            except Exception as exc:
                log.warning("could not sweep the queues", error=str(exc))
            core.timers.schedule("send-sweep", now_ms() + SEND_SWEEP_MS, sweep)

        core.timers.schedule("send-sweep", now_ms() + SEND_SWEEP_MS, sweep)

    async def purge() -> None:
        removed = await notifications.purge_expired(core)
        if removed:
            log.info("expired notifications moved to the dead letters", count=removed)
        await idempotency.purge(core)
        core.timers.schedule("purge", now_ms() + PURGE_EVERY_MS, purge)

    core.timers.schedule("purge", now_ms() + PURGE_EVERY_MS, purge)
    await accounts_closing.purge_and_plan(core)  # closed accounts whose grace period is over


def declare_path_parameters(schema: dict[str, Any]) -> None:
    """Declare every ``{name}`` of a path that its operations leave undeclared (routes that read
    ``request.path_params`` themselves), as a required string, so the document is valid."""
    for path, operations in schema["paths"].items():
        names = re.findall(r"{(\w+)}", path)
        for operation in operations.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "path"}
            for name in names:
                if name not in declared:
                    operation.setdefault("parameters", []).append(
                        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                    )


SERVED_URLS = "served_urls"


async def record_served_urls(core: Core) -> None:
    """Remember where this server answers, so offline commands on its store print the real URLs."""
    text = orjson.dumps({"apiUrl": core.public_url, "mediaUrl": core.media_url}).decode()
    try:
        async with core.tx() as tx:
            await instances.meta_set(tx.conn, SERVED_URLS, text)
    except IntegrityError:  # another process of the cluster wrote the first row at the same moment
        async with core.tx() as tx:
            await instances.meta_set(tx.conn, SERVED_URLS, text)


async def use_served_urls(core: Core) -> None:
    """Point ``core`` at the URLs the last server started on this store recorded (if any)."""
    async with core.db.read() as conn:
        text = await instances.meta_get(conn, SERVED_URLS)
    if text:
        urls = orjson.loads(text)
        core.public_url, core.media_url = urls["apiUrl"], urls["mediaUrl"]


def create_app(settings: Settings | None = None, *, print_banner: bool = False) -> Application:
    settings = settings or Settings()
    if settings.role != "all" and settings.resolved_database_url().startswith("sqlite"):
        raise ValueError(
            f"--role {settings.role} needs PostgreSQL (VERDIGRIS_DATABASE_URL): with SQLite one process does all"
        )
    core = build_core(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await prepare(core)
        await record_served_urls(core)
        info = None
        from verdigris.demo import banner, ensure_demo, wanted_at_start

        if await wanted_at_start(core):  # the embedded default's first start only
            info = await ensure_demo(core)
        await start(core)
        if print_banner and info is not None:
            sys.stdout.write(banner(info))
            sys.stdout.flush()
        log.info("started", url=core.public_url, database=core.db.url.split("://", 1)[0])
        yield
        await core.timers.stop()  # cancels in-flight webhook POSTs: they are re-sent after a restart
        if core.bus is not None:
            await core.bus.stop()
        core.changes.stop()
        await core.dispatcher.stop()
        for channel in core.channels.values():
            await channel.stop()
        await core.licensing.flush()  # metered counts survive a clean shutdown
        for leases in (core.leases, core.webhook_leases):
            await leases.stop()  # the other workers take this one's partitions at once
        await core.db.dispose()

    app = Application(
        title="Verdigris",
        version=__version__,
        description=(
            "Self-hosted messenger API platform. The wire API follows the GREEN-API HTTP API "
            "(`/waInstance{idInstance}/{method}/{apiTokenInstance}`); the sandbox control API plays the "
            "other side of the built-in sandbox network."
        ),
        lifespan=lifespan,
        # /docs is served below from vendored Swagger UI files: it renders with no internet.
        docs_url=None,
        redoc_url=None,
    )
    app.state.core = core
    app.router.redirect_slashes = False
    endpoint = WireEndpoint(core)
    wire = wire_routes(endpoint)
    # PathNormalizer hands wire calls straight to their routes, so it is innermost; the change
    # log is applied outside it, so that no request (wire calls above all) skips it.
    app.add_middleware(PathNormalizer, wire=wire)
    app.add_middleware(SyncBeforeRequests, core=core)
    app.add_middleware(BodyLimit, settings=settings)  # before any other work
    app.add_middleware(StrictTransportSecurity)
    if settings.role == "worker":
        app.add_middleware(WorkerAnswersProbesOnly)
    else:
        # Wire calls take all of the above in one step (front.py); the rest goes through the chain.
        app.front = WireFront(core, endpoint)

    @app.get("/docs", include_in_schema=False)
    async def api_docs() -> Response:
        return offline_docs(app.openapi_url or "/openapi.json", app.title)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return FileResponse(FAVICON, media_type="image/png")

    @app.get("/health", tags=["operations"], summary="Liveness and basic facts")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "instancesCached": len(core.instances)}

    @app.get(
        "/ready",
        tags=["operations"],
        summary="Readiness for a load balancer: the database and the media store answer",
        responses={503: {"description": "Not ready: what failed"}},
    )
    async def ready() -> Response:
        failed = await readiness(core)
        body = {"status": "unavailable", "failed": failed} if failed else {"status": "ready"}
        return Response(orjson.dumps(body), status_code=503 if failed else 200, media_type="application/json")

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def prometheus_metrics() -> Response:
        await core.metrics.refresh_health(core)
        return Response(core.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    for channel in core.channels.values():
        for router in channel.routers():
            app.include_router(router)
    app.router.routes.extend(console_routes(core))  # the personal area, under /console
    app.add_route("/", root_redirect, include_in_schema=False)
    app.include_router(media_router(core))
    app.include_router(webhooks_router(core))
    app.include_router(licensing_router(core))
    for route in wire + partner_routes(core):
        app.router.routes.append(route)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schema["paths"].update(wire_paths(schemas))
            schema["paths"].update(partner_paths(schemas))
            declare_path_parameters(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
