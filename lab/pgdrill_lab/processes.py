"""What the lab's servers share: free loopback ports, and stopping a server's whole process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from typing import List, Optional


def free_ports(count: int) -> List[int]:
    """``count`` distinct free TCP ports on loopback, chosen by the kernel (all held until chosen)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def stop_group(proc: Optional[subprocess.Popen], grace: float = 10.0) -> None:
    """SIGTERM to the process group, SIGKILL after ``grace`` seconds, and reap it."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
