"""The one rule for outbound requests a tenant can aim: webhooks and sendFileByUrl fetches.

A tenant chooses these URLs, so without a rule they would make the server call its own network
(loopback, private, link-local and reserved addresses: databases, cloud metadata, the server's own
``/sandbox`` and ``/console``). The rule: only globally routable unicast addresses, unless the
operator allows private targets (``VERDIGRIS_OUTBOUND_ALLOW_PRIVATE``; for fetches also the older
``VERDIGRIS_MEDIA_FETCH_ALLOW_PRIVATE``).

It is checked twice: when the URL is set (``url_problem``, so a tenant hears at once), and at every
connection, redirects included, through ``allowed_addresses`` (by :class:`GuardedTransport` for
fetches, by ``webhooks/http.py`` for webhook POSTs): the host is resolved once, every address is
checked and the connection goes to the very address that was checked, so a DNS answer that
changes between the check and the connection (DNS rebinding) cannot slip through. TLS still
verifies the certificate against the URL's host name.

Errors shown to tenants never tell apart internal network states (refused, reset, not HTTP): see
``public_error``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import httpcore
import httpx

if TYPE_CHECKING:
    from verdigris.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ForbiddenTarget(Exception):
    """The URL's host is (or resolves to) an address the rule does not allow."""

    def __init__(self, host: str) -> None:
        super().__init__(f"{host} is not a public internet address")
        self.host = host


def webhooks_may_go_private(settings: Settings) -> bool:
    return settings.outbound_allow_private


def fetches_may_go_private(settings: Settings) -> bool:
    return settings.outbound_allow_private or settings.media_fetch_allow_private


def public(address: IPAddress) -> bool:
    """A globally routable unicast address (IPv4-mapped IPv6 judged by its IPv4 part)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (literal addresses, decimal forms included, too)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]
        if address not in seen:
            seen.append(address)
    return seen


def check_addresses(host: str, addresses: Iterable[str]) -> None:
    for address in addresses:
        if not public(ipaddress.ip_address(address)):
            raise ForbiddenTarget(host)


async def allowed_addresses(host: str, port: int, allow_private: bool, timeout: float | None) -> list[str]:
    """The addresses a connection to ``host`` may use: resolved once, every one checked (raises
    :class:`ForbiddenTarget`). Connect to these very addresses, never to the name again."""
    async with asyncio.timeout(timeout):
        addresses = await resolve(host, port)
    if not allow_private:
        check_addresses(host, addresses)
    return addresses


async def url_problem(url: str, allow_private: bool) -> str | None:
    """Why ``url`` may not be a target (None: it may). Unresolvable names pass here (they may be
    set up later); the connection-time check still applies to them."""
    if allow_private or not url:
        return None
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return "the URL is not valid"
    host = parsed.host
    if not host:
        return "the URL has no host"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        async with asyncio.timeout(5):
            addresses = await resolve(host, port)
    except (OSError, TimeoutError, UnicodeError):
        return None
    try:
        check_addresses(host, addresses)
    except ForbiddenTarget:
        return (
            f"{host} is a loopback, private or reserved address; webhooks and file URLs must be "
            "public internet addresses (the operator may allow private ones)"
        )
    return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the rule allows, and to exactly the address it checked."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await allowed_addresses(host, port, self.allow_private, timeout)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        last: Exception = httpcore.ConnectError(f"no address for {host}")
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not outbound targets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over :class:`GuardedBackend` (no proxy: connections go where checked)."""

    def __init__(self, *, allow_private: bool, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits()
        super().__init__(limits=limits)
        ssl_context = httpx.create_ssl_context()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private),
        )


def public_error(exc: BaseException, timeout_s: float) -> str:
    """What a tenant is told about a failed outbound request: never which network state it met
    (refused, reset, timed out, not HTTP); the server log keeps the detail for the operator."""
    if isinstance(exc, ForbiddenTarget):
        return f"refused: {exc.host} is not a public internet address"
    return f"no HTTP answer from the URL (it failed or took longer than {timeout_s:g} s)"
