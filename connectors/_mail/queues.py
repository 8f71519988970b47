"""Which folder is which queue: the one mapping both mail connectors use.

A queue is, in this order: a `queue_folders` entry (queue name -> folder); the inbound folder (named
by its `queue_folders` entry if it has one, else by the folder); or `<queue_root><delimiter><name>`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from connectors.errors import TicketError


@dataclass(frozen=True)
class QueueFolders:
    """Folder names as the transport compares them (`canonical` makes one so)."""

    inbound: str
    mapped: dict[str, str]
    root: str
    delimiter: str
    canonical: Callable[[str], str]

    @classmethod
    def build(
        cls, inbound: str, mapped: dict[str, str], root: str, delimiter: str, canonical: Callable[[str], str]
    ) -> QueueFolders:
        """From configured names; `canonical` may raise ValueError for a name the transport cannot hold."""
        return cls(canonical(inbound), {q: canonical(f) for q, f in mapped.items()}, root, delimiter, canonical)

    @property
    def inbound_queue(self) -> str:
        """The queue name of the inbound folder: its queue_folders name if it has one, else the folder."""
        for name, folder in self.mapped.items():
            if folder == self.inbound:
                return name
        return self.inbound

    def queue_of(self, folder: str) -> str | None:
        """The queue a folder stands for, or None when it is not a queue."""
        for name, mapped in self.mapped.items():
            if mapped == folder:
                return name
        if folder == self.inbound:
            return self.inbound_queue
        prefix = self.root + self.delimiter
        if folder.startswith(prefix) and len(folder) > len(prefix):
            return folder[len(prefix) :]
        return None

    def folder_of(self, queue: str) -> str:
        """The folder a queue's mail goes to; TicketError when the name cannot be a folder."""
        if queue in self.mapped:
            return self.mapped[queue]
        if queue == self.inbound_queue:
            return self.inbound
        try:
            return self.canonical(f"{self.root}{self.delimiter}{queue}")
        except ValueError as exc:
            raise TicketError(f"queue {queue!r} cannot be a folder name: {exc}") from None

    def queues(self, folders: Iterable[str]) -> list[tuple[str, str]]:
        """(queue name, folder) of the folders that are queues, the inbound first, then by name."""
        found = [(name, f) for f in folders if (name := self.queue_of(f)) is not None]
        return sorted(found, key=lambda nf: (nf[1] != self.inbound, nf[0]))

    def describe(self, folder: str) -> str:
        """A folder as a Skipped reason names it."""
        queue = self.queue_of(folder)
        return f"queue {queue!r} (folder {folder!r})" if queue else f"folder {folder!r}"
