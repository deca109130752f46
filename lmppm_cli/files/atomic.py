"""Atomic file output: write beside the target, then rename over it, so no reader sees half a file."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from pathlib import Path

IN_FLIGHT: set[str] = set()  # this process's temporary files not yet renamed or removed
_TERM = {signal.SIGTERM}


@contextlib.contextmanager
def atomic_path(target: str | Path):
    """Yield a temporary path in the target's folder (same suffix, so writers that pick a format by
    extension still work); on success it replaces `target` in one rename, on failure it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, _TERM)  # a SIGTERM lands before the file or after it is known
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=target.parent)
        IN_FLIGHT.add(tmp)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _TERM)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp (and some writers) make 0600; give the usual mode
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        IN_FLIGHT.discard(tmp)


def remove_in_flight() -> None:
    """Remove the temporary files of writes still in progress (a process told to stop at once)."""
    for tmp in list(IN_FLIGHT):
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
