"""The etcd v3 JSON gateway's messages for a prefix of endpoint keys, without any I/O (sans-io).

:class:`PrefixState` holds what a prefix says now (one endpoint per key) and the revision it is
current at. It writes the request bodies of ``POST /v3/kv/range`` and ``POST /v3/watch`` and
reads their answers: a range replaces the whole membership; each watch message applies its
``PUT`` and ``DELETE`` events in order. Keys and values travel base64-encoded and revisions as
decimal strings (protobuf's JSON mapping of ``bytes`` and ``int64``), as etcd's
``api/etcdserverpb/rpc.proto`` defines them for the gRPC gateway.

A key's name after the prefix is the endpoint's address (``services/api/10.0.0.1:8080``); its
value is empty (weight 1) or a JSON object ``{"weight": 3, "metadata": {"zone": "a"}}``. A key
whose address or value is unusable is skipped and logged (``balancekit.discovery``), as if it
were absent: one bad registration never stops the others. Values are checked for size before
``json.loads`` sees them, so a hostile value costs time linear in its size.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from typing import Any

from .._endpoint import Endpoint
from .._errors import BalancekitError, InvalidOption
from .._options import describe
from ._source import DiscoveryError, Snapshot

__all__ = ["MAX_VALUE_BYTES", "PrefixState", "parse_endpoint", "prefix_end"]

_log = logging.getLogger("balancekit.discovery")

#: The largest value read as an endpoint's JSON (bytes); a larger one is skipped.
MAX_VALUE_BYTES = 65_536
#: The longest prefix accepted (bytes of UTF-8); etcd's own default key limit is 1.5 MiB.
MAX_PREFIX_BYTES = 4096
_MAX_REVISION_DIGITS = 20  # an int64 has at most 19 digits
_MAX_REVISION = 2**63 - 1  # etcd's revisions are int64


def prefix_end(prefix: bytes) -> bytes:
    """The ``range_end`` that makes a range or watch cover every key starting with ``prefix``:
    the prefix with its last byte below 0xff incremented and what follows dropped (etcd's
    ``clientv3.GetPrefixRangeEnd``); ``b"\\0"`` (every key) if there is no such byte."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _revision(value: object) -> int:
    """An int64 revision as the gateway writes it (a decimal string), or 0 when absent."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DiscoveryError(f"etcd answered a revision that is no number: {describe(value)}")
    if isinstance(value, str) and not (
        len(value) <= _MAX_REVISION_DIGITS and value.isascii() and value.isdigit()
    ):  # str.isdigit alone takes '²' (which int() refuses) and other scripts' digits
        raise DiscoveryError(f"etcd answered a revision that is no number: {describe(value)}")
    revision = int(value)
    if not 0 <= revision <= _MAX_REVISION:
        raise DiscoveryError(f"etcd answered a revision outside int64: {describe(value)}")
    return revision


def parse_endpoint(address: str, value: bytes) -> Endpoint:
    """The endpoint a key names: ``address`` with the weight and metadata of its JSON ``value``.

    Raises :class:`DiscoveryError` (or the :class:`~balancekit.InvalidEndpoint` of a bad address
    or weight) for a value that is too large, not JSON, not an object, or whose ``weight`` is
    not an int or ``metadata`` not an object.
    """
    if len(value) > MAX_VALUE_BYTES:
        raise DiscoveryError(f"the value is {len(value)} bytes, more than {MAX_VALUE_BYTES}")
    weight: object = 1
    metadata: object = {}
    if value.strip():
        try:
            document = json.loads(value)
        except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
            raise DiscoveryError(f"the value is not JSON: {describe(error)}") from None
        if not isinstance(document, dict):
            raise DiscoveryError(f"the value is not a JSON object: {describe(document)}")
        weight = document.get("weight", 1)
        metadata = document.get("metadata", {})
    if isinstance(weight, bool) or not isinstance(weight, int):
        raise DiscoveryError(f"the weight must be an integer, not {describe(weight)}")
    if not isinstance(metadata, dict):
        raise DiscoveryError(f"the metadata must be a JSON object, not {describe(metadata)}")
    return Endpoint(address, weight, metadata)


class PrefixState:
    """The endpoints under one prefix and the revision they are current at (not thread-safe:
    one resolve at a time, which :class:`~balancekit.discovery.Etcd` ensures)."""

    def __init__(self, prefix: str) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise InvalidOption(f"prefix must be a non-empty str, not {describe(prefix)}")
        try:
            raw = prefix.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidOption(f"prefix must be encodable as UTF-8: {describe(prefix)}") from None
        if len(raw) > MAX_PREFIX_BYTES:
            raise InvalidOption(f"prefix has {len(raw)} bytes, more than {MAX_PREFIX_BYTES}")
        self.prefix = prefix
        self._key = raw
        self._range_end = prefix_end(raw)
        self._members: dict[bytes, Endpoint] = {}  # by key, in no particular order
        #: The revision the membership is current at; None: list the prefix (again) first.
        self.revision: int | None = None
        self._cluster: object = None  # the cluster_id of the last range's header
        self.skipped = 0  #: keys skipped so far for an unusable address or value

    # -- requests ------------------------------------------------------------------------------

    def range_request(self) -> dict[str, Any]:
        """The body of ``POST /v3/kv/range`` for every key under the prefix."""
        return {"key": _b64(self._key), "range_end": _b64(self._range_end)}

    def watch_request(self) -> dict[str, Any]:
        """The body of ``POST /v3/watch`` for every change after :attr:`revision`."""
        assert self.revision is not None, "list the prefix first"
        return {
            "create_request": {
                "key": _b64(self._key),
                "range_end": _b64(self._range_end),
                "start_revision": str(self.revision + 1),
            }
        }

    # -- answers -------------------------------------------------------------------------------

    def apply_range(self, answer: object) -> None:
        """Replace the membership with a range answer (raises DiscoveryError, changing nothing,
        for an answer that is not one)."""
        if not isinstance(answer, Mapping):
            raise DiscoveryError(f"etcd answered the range with {describe(answer)}")
        header = answer.get("header")
        kvs = answer.get("kvs", [])
        if not isinstance(header, Mapping) or not isinstance(kvs, list):
            raise DiscoveryError(f"etcd answered the range without a header: {describe(answer)}")
        revision = _revision(header.get("revision"))
        members: dict[bytes, Endpoint] = {}
        for kv in kvs:
            self._put(members, kv)
        self._members = members
        self.revision = revision
        self._cluster = header.get("cluster_id")

    def apply_watch(self, message: object) -> bool:
        """Apply one watch message; whether the membership may have changed.

        A message saying the start revision was compacted, or coming from another store than
        the one listed (:meth:`_another_store`), clears :attr:`revision` (list the prefix
        again) and returns True; an error or any other cancellation raises
        :class:`DiscoveryError`.
        """
        if not isinstance(message, Mapping):
            raise DiscoveryError(f"etcd's watch sent {describe(message)}")
        if "error" in message:
            raise DiscoveryError(f"etcd's watch failed: {describe(message['error'])}")
        result = message.get("result")
        if not isinstance(result, Mapping):
            raise DiscoveryError(f"etcd's watch sent {describe(message)}")
        if self._another_store(result):
            _log.info(
                "balancekit discovery: etcd at %r is another store than the one listed (a new"
                " cluster, or revisions behind ours); listing again",
                self.prefix,
            )
            self.revision = None
            return True
        if result.get("canceled"):
            compacted = _revision(result.get("compact_revision"))
            if compacted:
                _log.info(
                    "balancekit discovery: etcd compacted %r past revision %s; listing again",
                    self.prefix,
                    self.revision,
                )
                self.revision = None
                return True
            reason = result.get("cancel_reason", "no reason given")
            raise DiscoveryError(f"etcd cancelled the watch: {describe(reason)}")
        events = result.get("events", [])
        if not isinstance(events, list):
            raise DiscoveryError(f"etcd's watch sent events that are no list: {describe(events)}")
        for event in events:
            if not isinstance(event, Mapping):
                raise DiscoveryError(f"etcd's watch sent an event {describe(event)}")
            kv = event.get("kv")
            if event.get("type", "PUT") == "DELETE":
                key = self._key_of(kv)
                if key is not None:
                    self._members.pop(key, None)
            else:
                self._put(self._members, kv)
            if isinstance(kv, Mapping):
                self.revision = max(self.revision or 0, _revision(kv.get("mod_revision")))
        return bool(events)

    def _another_store(self, result: Mapping[str, Any]) -> bool:
        """Whether a watch answers from another store than the listed one: another cluster id,
        or a newly created watch whose store is behind the revision listed (etcd replaced by a
        fresh one, or restored from an older backup, between two resolves). Watching from our
        revision there would wait, silently, until the new store's revisions caught up."""
        header = result.get("header")
        if not isinstance(header, Mapping):
            return False
        cluster = header.get("cluster_id")
        if cluster is not None and self._cluster is not None and cluster != self._cluster:
            return True
        if result.get("created") and self.revision is not None and "revision" in header:
            return _revision(header["revision"]) < self.revision
        return False

    def snapshot(self) -> Snapshot:
        """The membership now, sorted by address, one endpoint per address (``ttl=0``: a
        watcher asks again once its ``min_interval`` has passed)."""
        by_address: dict[str, Endpoint] = {}
        for key in sorted(self._members):  # the first key naming an address wins
            endpoint = self._members[key]
            by_address.setdefault(endpoint.address, endpoint)
        return Snapshot(tuple(by_address[a] for a in sorted(by_address)), 0.0)

    # -- one key -------------------------------------------------------------------------------

    def _key_of(self, kv: object) -> bytes | None:
        if not isinstance(kv, Mapping) or not isinstance(kv.get("key"), str):
            return None
        try:
            key = base64.b64decode(kv["key"], validate=True)
        except (binascii.Error, ValueError):
            return None
        return key if key.startswith(self._key) else None

    def _put(self, members: dict[bytes, Endpoint], kv: object) -> None:
        """Set the endpoint of one key, or drop the key (logged) if it names none."""
        key = self._key_of(kv)
        if key is None:
            self._skip(kv, "the key is not base64 under the prefix")
            return
        assert isinstance(kv, Mapping)
        try:
            address = key[len(self._key) :].decode("utf-8")
            raw = kv.get("value", "")
            if not isinstance(raw, str):
                raise DiscoveryError(f"the value is {describe(raw)}, not base64 text")
            if len(raw) > (MAX_VALUE_BYTES * 4) // 3 + 4:
                raise DiscoveryError(f"the value is larger than {MAX_VALUE_BYTES} bytes")
            value = base64.b64decode(raw, validate=True)
            endpoint = parse_endpoint(address, value)
        except (BalancekitError, binascii.Error, ValueError) as error:
            members.pop(key, None)  # what the key says now is unusable: as if it were gone
            self._skip(key, describe(error))
            return
        members[key] = endpoint

    def _skip(self, key: object, why: str) -> None:
        self.skipped += 1
        shown = key.decode("utf-8", "backslashreplace") if isinstance(key, bytes) else key
        _log.warning(
            "balancekit discovery: skipped etcd key %s under %r: %s",
            describe(shown),
            self.prefix,
            why,
        )
