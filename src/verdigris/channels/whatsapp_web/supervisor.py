"""The server keeps its WhatsApp Web gateway running: ``verdigris wa-gateway`` as a child process,
started again with a growing pause (up to a minute) whenever it exits, and stopped with the server.

A gateway that ran for a while before it died starts again at once; one that keeps dying right
after its start (a store it cannot open, a Go panic on resume) is retried ever more slowly, so a
crash loop costs little. Its output goes to the server's own log streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from verdigris.channels.whatsapp_web.protocol import load_secret

if TYPE_CHECKING:
    from verdigris.config import Settings

log = structlog.get_logger("verdigris.waweb")

FIRST_PAUSE = 0.5
MAX_PAUSE = 60.0
# A gateway that lived this long is considered healthy: the next restart is immediate.
HEALTHY_SECONDS = 60.0


class Supervisor:
    def __init__(self, settings: Settings, socket: Path, secret: Path, store: Path) -> None:
        self.settings = settings
        self.command = [
            sys.executable,
            "-m",
            "verdigris",
            "wa-gateway",
            "--socket",
            str(socket),
            "--secret-file",
            str(secret),
            "--store-dir",
            str(store),
            "--exit-with-parent",
            str(os.getpid()),
        ]
        self.secret = secret
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.exits: list[int] = []  # how each gateway ended (negative: killed by that signal), the last 100
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        load_secret(self.secret)  # made before the gateway reads it
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        pause = FIRST_PAUSE
        while not self._stopping:
            began = time.monotonic()
            self.process = await asyncio.create_subprocess_exec(*self.command)
            self.starts += 1
            log.info("WhatsApp Web gateway started", pid=self.process.pid, starts=self.starts)
            code = await self.process.wait()
            self.exits = [*self.exits[-99:], code]
            if self._stopping:
                return
            lived = time.monotonic() - began
            pause = FIRST_PAUSE if lived > HEALTHY_SECONDS else min(pause * 2, MAX_PAUSE)
            log.warning("WhatsApp Web gateway exited; starting it again", code=code, pause_s=pause)
            await asyncio.sleep(pause)

    async def stop(self) -> None:
        self._stopping = True
        process = self.process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
