"""The systemd notification protocol (``sd_notify(3)``), spoken without a library.

A service started with ``Type=notify`` finds a unix datagram socket in ``$NOTIFY_SOCKET``
(a path, or ``@name`` in the abstract namespace) and sends it newline-separated
``KEY=VALUE`` lines: ``READY=1``, ``RELOADING=1``, ``STOPPING=1``, ``STATUS=…``,
``WATCHDOG=1``. With ``WatchdogSec=``, systemd sets ``$WATCHDOG_USEC`` (and
``$WATCHDOG_PID``) and restarts the service when no ``WATCHDOG=1`` arrives in time;
the custom is to ping at half that interval.

Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing. The socket does not
block: a message the manager has no room for is dropped. A send that fails is logged
once and never raised: the daemon must not stop because its supervisor went away.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

__all__ = ["Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    """Sends state changes to the service manager named by the environment."""

    def __init__(self, environ: Mapping[str, str], pid: int | None = None) -> None:
        address = environ.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if address.startswith("@"):
            self.address = b"\0" + address[1:].encode()
        elif address.startswith("/"):
            self.address = address
        self.watchdog_usec = _watchdog_usec(environ, os.getpid() if pid is None else pid)
        self._sock: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_environ(cls) -> Notifier:
        return cls(os.environ)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half of ``WatchdogSec=``), or None if off."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2_000_000

    def notify(self, **fields: str) -> bool:
        """Send ``KEY=VALUE`` lines; keys are upper-cased (``ready="1"`` → ``READY=1``).
        True if a datagram was sent."""
        if self.address is None:
            return False
        lines = []
        for key, value in fields.items():
            text = str(value).replace("\n", " ")
            lines.append(f"{key.upper()}={text}")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # never block the event loop: a full queue drops the message (EAGAIN)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify the service manager: %s", exc.strerror or exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify(ready="1", status=status)

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets systemd (253+, Type=notify-reload) tell this reload apart.
        return self.notify(reloading="1",
                           monotonic_usec=str(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000))

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify(stopping="1", status=status)

    def status(self, status: str) -> bool:
        return self.notify(status=status)

    def watchdog(self, status: str | None = None) -> bool:
        if status is None:
            return self.notify(watchdog="1")
        return self.notify(watchdog="1", status=status)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_usec(environ: Mapping[str, str], pid: int) -> int | None:
    """``$WATCHDOG_USEC`` if it is meant for this process (``$WATCHDOG_PID`` unset or ours)."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(pid):
        return None
    return usec if usec > 0 else None
