"""A progress bar on stderr in the manner of tqdm, drawn where a person watches: a terminal or
a notebook (Jupyter redraws a line ended by a carriage return)."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

#: Seconds a call runs before its bar is drawn.
DELAY = 0.5


def watched() -> bool:
    """Whether stderr is a terminal or the call runs in a notebook kernel."""
    try:
        if sys.stderr is not None and sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):
        pass
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except AttributeError:
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    minutes, s = divmod(seconds, 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m:02d}:{s:02d}"


class Bar:
    """`Bar(unit, wanted)` is called with `(done, total)` while a call runs; `close()` ends the
    line. With `wanted` None the bar is drawn where a person watches ([`watched`])."""

    def __init__(self, unit: str, wanted: Optional[bool], stream: Optional[TextIO] = None):
        self.unit = unit
        self.shown = watched() if wanted is None else bool(wanted)
        self.stream = stream
        self.started = time.monotonic()
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        if not self.shown:
            return
        elapsed = time.monotonic() - self.started
        # Calls that end within half a second draw nothing.
        if not self.drawn and elapsed < DELAY:
            return
        stream = self.stream or sys.stderr
        width = 30
        filled = width * done // total if total else width
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        pct = 100 * done // total if total else 100
        stream.write(
            f"\r{pct:3d}%|{'█' * filled}{' ' * (width - filled)}| {done}/{total} {self.unit} "
            f"[{_duration(elapsed)}<{_duration(eta)}, {rate:.1f} {self.unit}/s]"
        )
        stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            stream = self.stream or sys.stderr
            stream.write("\n")
            stream.flush()
