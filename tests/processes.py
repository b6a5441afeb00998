"""Stopping the processes tests start (a worker, a server, the demo)."""
from __future__ import annotations

import signal
import subprocess


def stop(process: subprocess.Popen, how: int = signal.SIGINT, patience: float = 20) -> None:
    """Ask a process to stop as its user would (Ctrl+C, or SIGTERM for a server); kill it if it
    is still running after ``patience`` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(how)
    try:
        process.wait(patience)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
