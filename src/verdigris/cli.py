"""The ``verdigris`` command: serve, demo, instances, migrate."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import orjson
import typer

from verdigris.config import Settings
from verdigris.logs import configure as configure_logs

app = typer.Typer(
    help="Verdigris: self-hosted messenger API platform (GREEN-API wire-compatible).", no_args_is_help=True
)
instances_app = typer.Typer(help="Create and list instances.", no_args_is_help=True)
app.add_typer(instances_app, name="instances")

T = TypeVar("T")

DataDir = typer.Option(None, "--data-dir", help="Data directory (default ./var or $VERDIGRIS_DATA_DIR)")
DatabaseUrl = typer.Option(None, "--database-url", help="SQLAlchemy URL (default SQLite in the data dir)")


def _settings(data_dir: Path | None, database_url: str | None = None, **extra: Any) -> Settings:
    values: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    if database_url is not None:
        values["database_url"] = database_url
    return Settings(**values)


def _run_with_core(settings: Settings, action: Callable[[Any], Awaitable[T]]) -> T:
    from verdigris.app import build_core, prepare, use_served_urls

    async def main() -> T:
        core = build_core(settings)
        await prepare(core)
        if not {"public_url", "port"} & settings.model_fields_set:
            await use_served_urls(core)  # print the URLs of the server that runs on this store
        try:
            return await action(core)
        finally:
            await core.db.dispose()

    return asyncio.run(main())


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


@app.command()
def serve(
    host: str = typer.Option(None, "--host", help="Address to listen on (default 127.0.0.1)"),
    port: int = typer.Option(None, "--port", help="Port to listen on (default 7700)"),
    data_dir: Path = DataDir,
    database_url: str = DatabaseUrl,
    public_url: str = typer.Option(None, "--public-url", help="URL clients use to reach this server"),
    no_demo: bool = typer.Option(
        False,
        "--no-demo",
        help="A production start: never create the demo workspace (also VERDIGRIS_DEMO=false)",
    ),
    role: str = typer.Option(
        None,
        "--role",
        help="all (default), api (accept and answer) or worker (send, push webhooks, run sweeps); "
        "api and worker need PostgreSQL (also VERDIGRIS_ROLE; docs/scaling.md)",
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        help="Server processes on this port (PostgreSQL only): the first has --role, the others "
        "are api processes (docs/scaling.md)",
    ),
    fd: int = typer.Option(None, "--fd", hidden=True, help="Serve on this inherited socket (--workers)"),
    banner: bool = typer.Option(True, "--banner/--no-banner", hidden=True),
) -> None:
    """Run the server: wire API, media, sandbox control API and docs on one port."""
    import uvicorn

    from verdigris.app import create_app

    settings = _settings(
        data_dir,
        database_url,
        host=host,
        port=port,
        public_url=public_url,
        demo=False if no_demo else None,
        role=role,
    )
    configure_logs(settings.log_level, settings.log_format)
    if bool(settings.tls_certfile) != bool(settings.tls_keyfile):
        raise typer.BadParameter("give both VERDIGRIS_TLS_CERTFILE and VERDIGRIS_TLS_KEYFILE, or neither")
    for path in (settings.tls_certfile, settings.tls_keyfile):
        if path and not Path(path).is_file():
            raise typer.BadParameter(f"TLS file not found: {path}")
    if settings.role != "all" and settings.resolved_database_url().startswith("sqlite"):
        raise typer.BadParameter(
            f"--role {settings.role} needs PostgreSQL (VERDIGRIS_DATABASE_URL): with SQLite one process does all"
        )
    if workers > 1:
        if settings.resolved_database_url().startswith("sqlite"):
            raise typer.BadParameter(
                "--workers needs PostgreSQL (VERDIGRIS_DATABASE_URL): SQLite has one writer, so one process does all"
            )
        from verdigris.workers import supervise

        passed = _passed_on(sys.argv[sys.argv.index("serve") + 1 :])
        raise typer.Exit(supervise(settings, workers, passed))
    application = create_app(settings, print_banner=banner)
    where: dict[str, Any] = {"fd": fd} if fd is not None else {"host": settings.host, "port": settings.port}
    uvicorn.run(
        application,
        **where,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=75,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        ssl_certfile=settings.tls_certfile or None,
        ssl_keyfile=settings.tls_keyfile or None,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


def _passed_on(args: list[str]) -> list[str]:
    """``serve``'s command-line options without ``--workers`` and ``--role`` (the supervisor sets
    them per child)."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in ("--workers", "--role"):
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


@app.command()
def demo(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (stable keys, for CI)"),
    data_dir: Path = DataDir,
    database_url: str = DatabaseUrl,
    public_url: str = typer.Option(None, "--public-url"),
    port: int = typer.Option(None, "--port", help="Port the server runs on (for the printed URLs)"),
    new_passwords: bool = typer.Option(
        False, "--new-passwords", help="Give the demo accounts new passwords and print them (this once)"
    ),
) -> None:
    """Print the demo workspace (creating it if the data dir has none). Passwords are printed only
    when they are made: at creation, or with --new-passwords."""
    from verdigris.demo import banner, ensure_demo

    settings = _settings(data_dir, database_url, public_url=public_url, port=port)
    configure_logs("warning")
    info = _run_with_core(settings, partial(ensure_demo, new_passwords=new_passwords))
    if as_json:
        _print_json(info)
    else:
        sys.stdout.write(banner(info))


@app.command()
def migrate(data_dir: Path = DataDir, database_url: str = DatabaseUrl) -> None:
    """Apply database migrations (serve does this on start too)."""
    from verdigris.store.migrate import upgrade

    settings = _settings(data_dir, database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url())
    typer.echo("database is up to date")


@instances_app.command("create")
def instances_create(
    instance_id: int = typer.Option(
        None, "--id", help="Use this idInstance (e.g. 1101000001 from SDK examples)"
    ),
    token: str = typer.Option(None, "--token", help="Use this apiTokenInstance"),
    link: str = typer.Option(
        None, "--link", help="Link at once to this sandbox phone number (created if missing)"
    ),
    name: str = typer.Option("", "--name"),
    channel: str = typer.Option("sandbox", "--channel", help="The messenger network it connects through"),
    account: str = typer.Option("demo", "--account", help="Username of the owning account"),
    webhooks: bool = typer.Option(
        True,
        "--message-notifications/--no-message-notifications",
        help="Switch on incoming/outgoing/status notifications",
    ),
    data_dir: Path = DataDir,
    database_url: str = DatabaseUrl,
) -> None:
    """Create an instance and print its credentials as JSON."""
    from verdigris.accounts import service as accounts
    from verdigris.channels.sandbox import network
    from verdigris.instances import service as instances
    from verdigris.instances.settings import MESSAGE_FLAGS

    settings = _settings(data_dir, database_url)
    configure_logs("warning")

    async def action(core: Any) -> dict[str, Any]:
        owner = await accounts.get_by_username(core, account)
        if owner is None:
            raise typer.BadParameter(
                f"no account {account!r} (run `verdigris demo` to create the demo accounts)"
            )
        flags = {flag: "yes" for flag in MESSAGE_FLAGS} if webhooks else {}
        try:
            rec = await instances.create(
                core,
                account_id=owner["id"],
                instance_id=instance_id,
                token=token,
                name=name,
                channel=channel,
                settings=flags,
            )
        except instances.InstanceError as exc:
            raise typer.BadParameter(str(exc)) from None
        if link:
            try:
                await network.create_phone(core, link)
            except network.SandboxError as exc:
                raise typer.BadParameter(str(exc)) from None
            await instances.link(core, rec, network.wid_of(link))
        return {
            "idInstance": rec.id,
            "apiTokenInstance": rec.token,
            "wid": rec.wid,
            "stateInstance": rec.state,
            "apiUrl": core.public_url,
            "mediaUrl": core.media_url,
        }

    _print_json(_run_with_core(settings, action))


@app.command("partner-token")
def partner_token(
    token: str = typer.Option(
        None,
        "--token",
        help="Use this token (e.g. gac.abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrst from the SDK examples)",
    ),
    account: str = typer.Option("demo", "--account", help="Username of the owning account"),
    data_dir: Path = DataDir,
    database_url: str = DatabaseUrl,
) -> None:
    """Issue a partner API token for an account (idempotent for a given token) and print it as JSON."""
    from verdigris.accounts import service as accounts

    settings = _settings(data_dir, database_url)
    configure_logs("warning")

    async def action(core: Any) -> dict[str, Any]:
        owner = await accounts.get_by_username(core, account)
        if owner is None:
            raise typer.BadParameter(
                f"no account {account!r} (run `verdigris demo` to create the demo accounts)"
            )
        if token:
            if not 8 <= len(token) <= 100 or "/" in token or token.strip() != token:
                raise typer.BadParameter("a partner token has 8..100 characters, no '/' and no spaces")
            holder = await accounts.partner_account(core, token)
            if holder is not None and holder != owner["id"]:
                raise typer.BadParameter("this token already belongs to another account")
            issued = (
                token if holder is not None else await accounts.issue_partner_token(core, owner["id"], token)
            )
        else:
            issued = await accounts.issue_partner_token(core, owner["id"])
        return {"partnerToken": issued, "account": account, "apiUrl": core.public_url}

    _print_json(_run_with_core(settings, action))


@instances_app.command("list")
def instances_list(data_dir: Path = DataDir, database_url: str = DatabaseUrl) -> None:
    """List instances as JSON."""
    from verdigris.instances import service as instances

    settings = _settings(data_dir, database_url)
    configure_logs("warning")

    async def action(core: Any) -> list[dict[str, Any]]:
        return [
            {
                "idInstance": r.id,
                "wid": r.wid,
                "stateInstance": r.state,
                "name": r.name,
                "accountId": r.account_id,
            }
            for r in await instances.list_for_account(core, None)
        ]

    _print_json(_run_with_core(settings, action))


wa_gateway_app = typer.Typer(help="The WhatsApp Web gateway (docs/whatsapp-web.md).")
app.add_typer(wa_gateway_app, name="wa-gateway")


@wa_gateway_app.callback(invoke_without_command=True)
def wa_gateway(
    ctx: typer.Context,
    data_dir: Path = DataDir,
    socket: Path = typer.Option(None, "--socket", help="Unix socket to listen on"),
    secret_file: Path = typer.Option(None, "--secret-file", help="The shared secret of the handshake"),
    store_dir: Path = typer.Option(None, "--store-dir", help="Where the session stores are kept"),
    parent: int = typer.Option(
        0, "--exit-with-parent", help="Stop when this process (the server that started it) ends"
    ),
    qr_wait: float = typer.Option(20.0, "--qr-wait-seconds", help="How long a qr request waits for WhatsApp"),
    max_sessions: int = typer.Option(
        0,
        "--max-sessions",
        help="Sessions this gateway runs at most (default: VERDIGRIS_WHATSAPP_WEB_MAX_SESSIONS)",
    ),
    open_spacing: float = typer.Option(
        0.5, "--open-spacing-seconds", help="The pause between resuming sessions after a start"
    ),
) -> None:
    """Run the WhatsApp Web gateway (docs/whatsapp-web.md; needs the whatsapp-web extra).
    `verdigris serve` starts it by itself when VERDIGRIS_WHATSAPP_WEB_ENABLED is on."""
    if ctx.invoked_subcommand is not None:
        return
    import asyncio
    import signal

    from verdigris.channels.whatsapp_web import channel as web

    settings = _settings(data_dir)
    configure_logs(settings.log_level, settings.log_format)
    try:
        from verdigris.channels.whatsapp_web import gateway
    except ImportError as exc:
        raise typer.BadParameter(f"the gateway needs the whatsapp-web extra ({exc})") from None

    if parent:
        gateway.exit_with_parent(parent)
    store_url = ""
    if settings.whatsapp_web_session_store == "postgres":
        database = settings.resolved_database_url()
        if not database.startswith("postgresql"):
            raise typer.BadParameter(
                "VERDIGRIS_WHATSAPP_WEB_SESSION_STORE=postgres needs the server on PostgreSQL (VERDIGRIS_DATABASE_URL)"
            )
        store_url = gateway.store_url_of(database)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await gateway.serve(
            socket or web.socket_path(settings),
            secret_file or web.secret_path(settings),
            store_dir or web.store_dir(settings),
            stop,
            qr_wait=qr_wait,
            max_sessions=max_sessions or settings.whatsapp_web_max_sessions,
            open_spacing=open_spacing,
            history=(settings.whatsapp_web_history_days, settings.whatsapp_web_history_messages),
            store_url=store_url,
        )

    asyncio.run(run())


@wa_gateway_app.command("check")
def wa_gateway_check(
    phone: str = typer.Option(
        "", "--phone", help="Link by pairing code for this number (digits) instead of a QR code"
    ),
    wait: float = typer.Option(120.0, "--wait-seconds", help="How long each step may wait for WhatsApp"),
) -> None:
    """The live check, run once by an operator with internet: link a number (QR code in the terminal,
    or a pairing code), send that number a message from itself, wait for WhatsApp's receipt, unlink."""
    import asyncio
    import tempfile

    try:
        from verdigris.channels.whatsapp_web import gateway
    except ImportError as exc:
        raise typer.BadParameter(f"the gateway needs the whatsapp-web extra ({exc})") from None
    with tempfile.TemporaryDirectory(prefix="wa-check-") as work:
        passed = asyncio.run(gateway.live_check(Path(work), phone, wait, typer.echo))
    if not passed:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
