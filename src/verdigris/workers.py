"""``verdigris serve --workers N``: N server processes on one port and one PostgreSQL store.

The parent binds the listening socket once and starts N children (``verdigris serve --fd``) that
all accept on it (the kernel hands each new connection to one of them). Every child has the role
asked for (``all`` by default): the sends and webhook pushes are shared among them by partition
leases (store/leases.py), so each instance is still paced by one process and its webhooks stay in
order. The first child starts alone (migrations, the demo workspace) and the others once it
answers ``/health``.

The parent only supervises: SIGTERM or SIGINT is passed on to every child; if a child exits, the
others are stopped and the parent exits with an error, for the service manager to restart.
"""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

from verdigris.config import Settings


def child_roles(role: str, workers: int) -> list[str]:
    """The role of each child: all the same (the work leases share the sends and webhooks)."""
    return [role] * workers


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _healthy(settings: Settings, child: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether ``child`` comes up (answers /health) within ``timeout`` seconds."""
    scheme = "https" if settings.tls_certfile else "http"
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host.strip("[]")
    host = f"[{host}]" if ":" in host else host
    context = ssl._create_unverified_context() if scheme == "https" else None  # our own certificate
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        try:
            with urllib.request.urlopen(
                f"{scheme}://{host}:{settings.port}/health", timeout=2, context=context
            ):
                return True
        except OSError:
            time.sleep(0.1)
    return False


class Supervisor:
    """The parent of ``--workers``: starts the children on one socket, passes signals on."""

    def __init__(self, settings: Settings, argv: list[str]) -> None:
        self.settings = settings
        self.argv = argv  # serve's options to pass on, without --workers and --role
        self.sock = _listen(settings.host, settings.port)
        self.children: list[subprocess.Popen[bytes]] = []
        self.stopping = False

    def stop(self, signum: int = signal.SIGTERM, _frame: object = None) -> None:
        self.stopping = True
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signum)

    def start(self, role: str, first: bool) -> None:
        fd = str(self.sock.fileno())
        command = [sys.executable, "-m", "verdigris", "serve", *self.argv, "--fd", fd, "--role", role]
        if not first:
            command.append("--no-banner")  # one banner is enough
        self.children.append(subprocess.Popen(command, pass_fds=(self.sock.fileno(),)))

    def wait(self) -> int:
        """Until every child has exited; the first that exits unasked stops the others."""
        status = 0
        while self.children:
            for child in list(self.children):
                code = child.poll()
                if code is None:
                    continue
                self.children.remove(child)
                if not self.stopping:
                    status = code or 1
                    self.stop()
            time.sleep(0.2)
        self.sock.close()
        return status


def supervise(settings: Settings, workers: int, argv: list[str]) -> int:
    """Run ``workers`` children of ``verdigris serve`` (``argv``: the options to pass on, without
    ``--workers``/``--role``) on one socket; returns the exit status."""
    parent = Supervisor(settings, argv)
    signal.signal(signal.SIGTERM, parent.stop)
    signal.signal(signal.SIGINT, parent.stop)
    roles = child_roles(settings.role, workers)
    parent.start(roles[0], first=True)
    if not _healthy(settings, parent.children[0], timeout=180):
        parent.stop()
        parent.wait()
        return 1
    for role in roles[1:]:
        if not parent.stopping:
            parent.start(role, first=False)
    return parent.wait()
