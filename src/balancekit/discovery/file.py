"""Endpoints from a file that operators or a config agent rewrite: JSON, TOML or plain lines.

>>> import balancekit as bk, tempfile, pathlib
>>> folder = tempfile.TemporaryDirectory()
>>> path = pathlib.Path(folder.name, "orders.txt")
>>> _ = path.write_text("# orders\\n127.0.0.1:8001\\n127.0.0.1:8002 weight=3\\n")
>>> lb = bk.WeightedRoundRobin()
>>> with bk.discovery.Watcher(lb, bk.discovery.File(path, interval=1.0)):
...     [(e.address, e.weight) for e in lb.endpoints]
[('127.0.0.1:8001', 1), ('127.0.0.1:8002', 3)]
>>> folder.cleanup()

Formats, chosen by the file's suffix:

- ``.json``: a list of endpoints, or ``{"endpoints": [...]}``; each a ``"host:port"`` string
  or ``{"address": ..., "weight": ...}``.
- ``.toml``: ``endpoints = [...]`` with the same items.
- anything else: one ``host:port`` per line, optionally followed by ``weight=N``; blank lines
  and ``#`` comments are skipped.

:meth:`File.resolve` answers with ``ttl=interval``, so a :class:`~balancekit.discovery.Watcher`
polls the file every ``interval`` seconds (default 5). Each poll costs one ``stat``; the file is
read only when its inode, mtime, ctime or size changed (or it changed within 2 s of the last
read, where a coarse file system clock can hide a same-size rewrite), and parsed only when its
content's hash (SHA-256) changed, so a rewrite with the same content (or a ``touch``) changes
nothing. A file that is missing, unreadable, not a regular file (a directory; a FIFO or a
device, which is never waited on), larger than ``max_size`` bytes (default 1 MiB), changed
while it was read, not UTF-8, unparsable or holding an invalid endpoint raises
:class:`~balancekit.discovery.DiscoveryError` from ``resolve``: the watcher keeps the last good
membership, logs the error on the ``balancekit.discovery`` logger (WARNING), and tries again.
Writers should replace the file atomically (write a temporary file, then ``os.replace``), as
Consul Template and Kubernetes ConfigMap volumes do; then a half-written file is never seen. A
file rewritten in place is refused while it changes under the read, but a writer that pauses
between two writes can expose a valid prefix of the plain-lines format, which would be
applied. This is the polling that Envoy's filesystem subscription (``path_config_source``) and
NGINX's reload-on-change tools do, without inotify (portable, and no missed events).

Cost per poll: one ``os.stat``; per change, a read and parse linear in the file's size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

from .._endpoint import Endpoint, EndpointLike, as_endpoints
from .._errors import BalancekitError, InvalidOption
from .._files import Signature, read_regular
from .._files import signature as signature_of
from .._options import describe, integer, seconds
from ._source import LONGEST_WAIT, DiscoveryError, Snapshot

__all__ = ["File"]

_log = logging.getLogger("balancekit.discovery")

#: A file modified less than this long (ns) before it was last read is read again even when its
#: mtime and size are unchanged: a same-size rewrite within one timestamp tick of the read
#: would otherwise go unseen (git's "racily clean" index entries; coarse file system clocks).
RACY_NS = 2_000_000_000

#: The default largest file read: a list of endpoints is small; a huge file is a mistake.
MAX_SIZE = 1 << 20


def _item(where: str, item: object) -> EndpointLike:
    """One endpoint of a JSON or TOML list: a string, or a table with address and weight."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and set(item) <= {"address", "weight"} and "address" in item:
        address, weight = item["address"], item.get("weight", 1)
        if isinstance(address, str):
            return Endpoint(address, weight=weight)
    raise DiscoveryError(
        f"{where}: an endpoint is a 'host:port' string or a table of address and weight,"
        f" not {describe(item)}"
    )


def _structured(where: str, data: Any) -> list[EndpointLike]:
    if isinstance(data, dict) and set(data) == {"endpoints"}:
        data = data["endpoints"]
    if not isinstance(data, list):
        raise DiscoveryError(f"{where}: expected a list of endpoints, or endpoints = [...]")
    return [_item(where, item) for item in data]


def _lines(where: str, text: str) -> list[EndpointLike]:
    endpoints: list[EndpointLike] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.partition("#")[0].strip()
        if not line:
            continue
        address, _, rest = line.partition(" ")
        rest = rest.strip()
        if not rest:
            endpoints.append(address)
            continue
        name, _, value = rest.partition("=")
        if name.strip() != "weight" or not value.strip().isdecimal() or len(value) > 10:
            raise DiscoveryError(f"{where} line {number}: expected 'host:port [weight=N]'")
        endpoints.append(Endpoint(address, weight=int(value.strip())))
    return endpoints


class File:
    """A discovery source reading the endpoints listed in ``path`` (see the module docs).

    Options (keyword-only): ``interval``, seconds between polls (default 5, at most a day);
    ``max_size``, the largest file accepted in bytes (default 1 MiB). Thread-safe: a watcher's
    thread and a caller may resolve at once.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        interval: float = 5.0,
        max_size: int = MAX_SIZE,
    ) -> None:
        if not isinstance(path, str | os.PathLike) or isinstance(path, bytes):
            raise InvalidOption(f"path must be a file path, not {describe(path)}")
        try:
            self._path = Path(path)
            str(self._path).encode()
        except (TypeError, ValueError, UnicodeEncodeError) as error:
            raise InvalidOption(f"path must be a file path, not {describe(path)}") from error
        self.interval = seconds("interval", interval, high=LONGEST_WAIT)
        self.max_size = integer("max_size", max_size, 1, 1 << 30)
        self._lock = threading.Lock()
        self._signature: Signature | None = None  # the file's last read
        self._read_at = 0  # time.time_ns() of the last read
        self._digest = b""  # SHA-256 of the content last parsed
        self._endpoints: tuple[Endpoint, ...] | None = None
        self.reads = 0  #: times the file's content was read
        self.parses = 0  #: times a new content was parsed

    @property
    def path(self) -> Path:
        """The file polled."""
        return self._path

    def resolve(self) -> Snapshot:
        """The endpoints the file lists now (DiscoveryError if it cannot be used)."""
        with self._lock:
            try:
                return Snapshot(self._current(), self.interval)
            except DiscoveryError as error:
                _log.warning("balancekit discovery: %s; keeping the last endpoints", error)
                raise

    async def resolve_async(self) -> Snapshot:
        """The same; a ``stat`` and a small read do not block the loop noticeably."""
        return self.resolve()

    def _current(self) -> tuple[Endpoint, ...]:
        where = describe(str(self._path))
        try:
            status = os.stat(self._path)
        except (OSError, ValueError) as error:
            raise DiscoveryError(f"cannot read {where}: {error}") from error
        if (
            signature_of(status) == self._signature
            and self._endpoints is not None
            and status.st_mtime_ns < self._read_at - RACY_NS
        ):
            return self._endpoints  # unchanged since the last read: one stat
        if status.st_size > self.max_size:
            raise DiscoveryError(f"{where} is {status.st_size} bytes, over max_size")
        try:  # never blocks: a FIFO or a device is refused, not waited on
            read = read_regular(self._path, self.max_size)
        except (OSError, ValueError) as error:
            raise DiscoveryError(f"cannot read {where}: {error}") from error
        data, signature = read.data, read.before
        self.reads += 1
        self._read_at = time.time_ns()
        if len(data) > self.max_size:
            raise DiscoveryError(f"{where} is over max_size ({self.max_size} bytes)")
        if read.after != read.before:  # a writer is rewriting it in place: never apply a part
            raise DiscoveryError(f"{where} changed while it was read; trying again")
        digest = hashlib.sha256(data).digest()
        if digest == self._digest and self._endpoints is not None:
            self._signature = signature  # touched or rewritten alike: nothing to parse
            return self._endpoints
        endpoints = self._parse(where, data)
        self.parses += 1
        self._signature, self._digest, self._endpoints = signature, digest, endpoints
        return endpoints

    def _parse(self, where: str, data: bytes) -> tuple[Endpoint, ...]:
        try:
            text = data.decode("utf-8")
            suffix = self._path.suffix.lower()
            if suffix == ".json":
                items = _structured(where, json.loads(text))
            elif suffix == ".toml":
                items = _structured(where, tomllib.loads(text))
            else:
                items = _lines(where, text)
            return tuple(as_endpoints(items))
        except DiscoveryError:
            raise
        except (BalancekitError, ValueError, RecursionError) as error:  # JSON/TOML/endpoints
            raise DiscoveryError(f"{where} is invalid: {error}") from error

    def __repr__(self) -> str:
        return f"File({str(self._path)!r})"
