"""Progress of a ``simulate`` run on stderr: which strategy, how far, so long runs are not silent.

On a terminal one status line is rewritten in place (``\\r``) and erased at the end; into a
file or pipe (``--progress`` with stderr redirected) one plain line per finished run, so a log
has no carriage returns. Nothing is written to stdout: the report stays pipeable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Reports run ``k`` of ``total`` (``start``), its arrivals so far (``update``), ``finish``.

    ``enabled=False`` makes every method a no-op. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        total: int,
        requests: int,
        enabled: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._total = total
        self._requests = max(1, requests)
        self._enabled = enabled
        self._live = enabled and _isatty(stream)
        self._clock = clock
        self._index = 0
        self._label = ""
        self._started = 0.0
        self._width = 0

    def start(self, label: str) -> None:
        """A new run, named ``label``, begins."""
        self._index += 1
        self._label = label
        self._started = self._clock()
        if self._live:
            self._show(0)

    def update(self, arrived: int) -> None:
        """``arrived`` of the run's requests have arrived (the engine's ``progress`` hook)."""
        if self._live:
            self._show(arrived)

    def finish(self) -> None:
        """The current run is over."""
        if not self._enabled:
            return
        elapsed = self._clock() - self._started
        if self._live:
            if self._index == self._total:
                self.close()
        else:
            self._write(
                f"simulate: [{self._index}/{self._total}] {self._label} done in {elapsed:.1f} s\n"
            )

    def close(self) -> None:
        """Erase the status line if one is showing (the end of the run, or an interruption)."""
        if self._live and self._width:
            self._write("\r" + " " * self._width + "\r")
            self._width = 0

    def _show(self, arrived: int) -> None:
        share = min(100, 100 * arrived // self._requests)
        line = f"simulate: [{self._index}/{self._total}] {self._label} {share:3d}%"
        self._write("\r" + line.ljust(self._width))
        self._width = max(self._width, len(line))

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr must not stop the run
            self._enabled = self._live = False


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
