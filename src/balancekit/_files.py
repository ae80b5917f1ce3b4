"""Read a small regular file without ever blocking: the configuration and the File source.

``open()`` on a FIFO without a writer (or on a terminal, a socket file) blocks forever, and
a watcher's thread stuck there holds its source's lock; so the file is opened with
``O_NONBLOCK``, refused unless ``fstat`` says it is a regular file, and read through that same
descriptor (no race between the check and the read). ``fstat`` again after the read says
whether a writer changed the file meanwhile (its size or mtime moved): the caller then refuses
the content instead of applying a part of it. Cost: two ``fstat`` and one read of at most
``limit + 1`` bytes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import NamedTuple

__all__ = ["Read", "Signature", "read_regular", "signature"]

#: What says a file changed: device, inode, mtime, ctime (ns) and size. The inode and ctime
#: catch a file replaced by one with the same size and mtime (``cp -p``, ``rsync -t``, ``tar``,
#: a Nix store's mtime of 1): no program can set a ctime, and a rename updates it.
Signature = tuple[int, int, int, int, int]


def signature(status: os.stat_result) -> Signature:
    """The :data:`Signature` of a ``stat`` or ``fstat`` result."""
    return (
        status.st_dev,
        status.st_ino,
        status.st_mtime_ns,
        status.st_ctime_ns,
        status.st_size,
    )


class Read(NamedTuple):
    """The bytes read (at most ``limit + 1``) and the file's :data:`Signature` before and
    after the read."""

    data: bytes
    before: Signature
    after: Signature


def read_regular(path: Path, limit: int) -> Read:
    """At most ``limit + 1`` bytes of the regular file ``path``.

    Raises OSError when it cannot be opened or read or is not a regular file (a directory, a
    FIFO, a device), and ValueError for a path the platform cannot encode (a NUL, a lone
    surrogate); never blocks on a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(path, flags)
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(f"{str(path)!r} is not a regular file")
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(descriptor, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        after = os.fstat(descriptor)
    finally:
        os.close(descriptor)
    return Read(b"".join(chunks), signature(status), signature(after))
