"""File-system events on the inbound folder's `new/`: a delivered mail wakes the daemon at once.

An MTA or Dovecot's LDA writes a mail into `tmp/` and renames it into `new/` (the Maildir rule), so a
file appearing in `new/` is exactly "new mail". watchfiles (inotify on Linux, through the Rust `notify`
crate) reports it; its watcher is in place as soon as `start` returns, and it records events from then
on, so a mail that lands between two waits is reported by the next one. Changes within 50 ms are grouped.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import anyio
from watchfiles import Change, awatch

from connectors.base import Watch
from connectors.errors import TransientError

_STEP_MS = 50  # how long the watcher waits for more changes before it reports a group


def _added(change: Change, path: str) -> bool:
    return change == Change.added


class NewMailWatch(Watch):
    """Waits for files added to `<folder>/new`."""

    def __init__(self, new: Path) -> None:
        self._new = new
        self._stop = anyio.Event()
        self._arrived = asyncio.Event()
        self._failed: BaseException | None = None
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> NewMailWatch:
        """Start watching; the watcher exists when this returns (its constructor runs before its first await)."""
        self._task = asyncio.create_task(self._pump(), name=f"maildir watch {self._new}")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        if self._failed is not None:
            raise self._error()
        return self

    async def _pump(self) -> None:
        try:
            async for _ in awatch(
                self._new, watch_filter=_added, step=_STEP_MS, stop_event=self._stop, recursive=False
            ):
                self._arrived.set()
        except Exception as exc:  # the folder vanished, inotify ran out of watches: the waiter raises it
            self._failed = exc
            self._arrived.set()

    def _error(self) -> TransientError:
        exc = self._failed
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        return TransientError(f"maildir {str(self._new)!r}: cannot watch for new mail: {reason}")

    async def wait(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._arrived.wait(), timeout)
        if self._closed:
            return False
        if self._failed is not None:
            raise self._error()
        if self._task is not None and self._task.done():
            raise TransientError(f"maildir {str(self._new)!r}: the watch on new mail ended")
        arrived = self._arrived.is_set()
        self._arrived.clear()
        return arrived

    async def aclose(self) -> None:
        self._closed = True
        self._stop.set()
        self._arrived.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
