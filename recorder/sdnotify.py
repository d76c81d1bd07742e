"""systemd's notify protocol (Type=notify): READY, WATCHDOG and STOPPING from the recorder."""

from __future__ import annotations

import os
import socket


def sd_notify(message: str) -> bool:
    """Send ``message`` to systemd's notify socket if there is one (Type=notify); True if sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        # never blocks: a manager that stops reading must not stop the capture loop
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as s:
            s.connect(address)
            s.send(message.encode())
        return True
    except OSError:  # BlockingIOError included
        return False
