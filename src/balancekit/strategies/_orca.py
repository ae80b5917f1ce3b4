"""ORCA load reports: the :class:`LoadReport` record, its A58 weight, and its header parser.

A report carries the fields gRFC A58 weighs by (``cpu_utilization``, ``application_utilization``,
``qps``, ``eps``; xds ``xds/data/orca/v3/orca_load_report.proto``). Everything a server sends is
hostile input here: every field is checked to be a finite float ``>= 0``, the header is bounded
in size (:data:`MAX_HEADER_LENGTH`) and in JSON nesting (:data:`MAX_JSON_BRACKETS`) before it
reaches :func:`json.loads`, and the weight is clamped to a finite range (:data:`MAX_WEIGHT`), so
no report, however extreme, can make a later pick raise.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from .._errors import InvalidOption
from .._options import describe

__all__ = ["MAX_HEADER_LENGTH", "MAX_JSON_BRACKETS", "MAX_WEIGHT", "MIN_WEIGHT", "LoadReport"]

#: Longest ``endpoint-load-metrics`` header parsed, in characters (a report is a few dozen
#: fields; 8 KiB is the usual per-header limit of HTTP servers and proxies).
MAX_HEADER_LENGTH = 8192
#: Most ``{`` plus ``[`` a JSON report may contain (ORCA nests three maps one level deep): bounds
#: the nesting ``json.loads`` recurses into, checked in linear time with ``str.count``.
MAX_JSON_BRACKETS = 32
#: Largest weight a report can give: a float32's largest finite value. gRPC C-core keeps A58
#: weights as ``float`` (``EndpointWeight::MaybeUpdateWeight``), so this is the range it can
#: represent; clamping here (C-core would carry an infinity into the scheduler) keeps the sum of
#: any number of weights finite in the stride scheduler's double arithmetic.
MAX_WEIGHT = 3.4028234663852886e38
#: Smallest weight a report can give; below it (float32's smallest positive value, which a
#: weight rounds to 0 in C-core's ``float``) the report counts as carrying no load, as a weight
#: of 0 does in A58.
MIN_WEIGHT = 1.401298464324817e-45

_FIELDS = ("cpu_utilization", "qps", "eps", "application_utilization")
#: ORCA ``OrcaLoadReport`` field -> LoadReport field.
_ORCA_FIELDS = {
    "cpu_utilization": "cpu_utilization",
    "application_utilization": "application_utilization",
    "rps_fractional": "qps",
    "eps": "eps",
}
# A decimal number as ORCA's TEXT format writes it (ASCII only: float() would also take "1_0",
# "inf" or full-width digits). Linear: no nested or overlapping repetition.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _short(value: str) -> str:
    """``value`` for an error message: its repr, cut to 80 characters."""
    return repr(value if len(value) <= 80 else value[:80] + "...")


@dataclass(frozen=True, slots=True)
class LoadReport:
    """One load report from a server (the ORCA fields A58 uses).

    ``cpu_utilization`` and ``application_utilization`` are fractions (1.0 = one core busy; may
    exceed 1); the latter, when above 0, is used instead of the former. ``qps`` and ``eps`` are
    the server's queries and errors per second. Each must be a finite number ``>= 0`` that a
    float can hold (``10**400`` is refused) and is stored as a float; anything else raises
    :class:`InvalidOption`.

    >>> LoadReport(cpu_utilization=0.5, qps=100.0)
    LoadReport(cpu_utilization=0.5, qps=100.0, eps=0.0, application_utilization=0.0)
    """

    cpu_utilization: float = 0.0
    qps: float = 0.0
    eps: float = 0.0
    application_utilization: float = 0.0

    def __post_init__(self) -> None:
        for name in _FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidOption(f"LoadReport.{name} must be a number, not {describe(value)}")
            if isinstance(value, int):
                try:
                    value = float(value)
                except OverflowError:  # no repr of a huge int in the message: quadratic
                    raise InvalidOption(
                        f"LoadReport.{name} must be finite and >= 0, not an int of"
                        f" {value.bit_length()} bits"
                    ) from None
            if not 0 <= value < math.inf:
                raise InvalidOption(
                    f"LoadReport.{name} must be finite and >= 0, not {describe(value)}"
                )
            object.__setattr__(self, name, float(value))

    @classmethod
    def from_header(cls, value: str) -> LoadReport:
        """Parse an ORCA ``endpoint-load-metrics`` response header, TEXT or JSON format.

        ``rps_fractional`` is the qps; ``cpu_utilization``, ``application_utilization`` and
        ``eps`` keep their names; other metrics (``mem_utilization``, ``named_metrics.*``) are
        ignored. The BIN format (a base64 protobuf) is not supported. A header longer than
        :data:`MAX_HEADER_LENGTH`, JSON with more than :data:`MAX_JSON_BRACKETS` brackets, a
        TEXT value that is not a decimal number, or a JSON value that is not a number raises
        :class:`InvalidOption`; the time taken is linear in the header's length.

        >>> LoadReport.from_header("TEXT cpu_utilization=0.3, rps_fractional=10, eps=1")
        LoadReport(cpu_utilization=0.3, qps=10.0, eps=1.0, application_utilization=0.0)
        >>> LoadReport.from_header('JSON {"cpu_utilization": 0.5, "rps_fractional": 4}').qps
        4.0
        """
        if not isinstance(value, str):
            raise InvalidOption(f"an endpoint-load-metrics header is a str, not {describe(value)}")
        if len(value) > MAX_HEADER_LENGTH:
            raise InvalidOption(
                f"an endpoint-load-metrics header is at most {MAX_HEADER_LENGTH} characters,"
                f" not {len(value)}"
            )
        kind, _, body = value.strip().partition(" ")
        if kind == "TEXT":
            fields = _text_fields(body, value)
        elif kind == "JSON":
            fields = _json_fields(body, value)
        else:
            raise InvalidOption(
                f"endpoint-load-metrics must start with TEXT or JSON (BIN is not supported),"
                f" not {_short(value)}"
            )
        return cls(**fields)

    def weight(self, error_utilization_penalty: float = 1.0) -> float:
        """A58's weight for this report, 0 when it carries no usable load (UpdateWeight).

        As gRPC C-core's ``EndpointWeight::MaybeUpdateWeight``: ``qps / (utilization +
        eps / qps * penalty)``, the penalty term only when ``eps`` and the penalty are above 0;
        then clamped to at most :data:`MAX_WEIGHT`, and 0 below :data:`MIN_WEIGHT`.
        """
        utilization = self.application_utilization or self.cpu_utilization
        if not (self.qps > 0 and utilization > 0):
            return 0.0
        if self.eps > 0 and error_utilization_penalty > 0:
            utilization += self.eps / self.qps * error_utilization_penalty  # may be inf: weight 0
        weight = self.qps / utilization  # floats: inf on overflow, never an exception
        if weight < MIN_WEIGHT:
            return 0.0
        return min(weight, MAX_WEIGHT)


def _text_fields(body: str, value: str) -> dict[str, float]:
    """The A58 fields of a TEXT report: ``key=value`` pairs separated by commas."""
    fields: dict[str, float] = {}
    for item in body.split(","):
        key, sep, text = item.partition("=")
        if not sep:
            raise InvalidOption(f"cannot parse {_short(item.strip())} in a load report: key=value")
        name = _ORCA_FIELDS.get(key.strip())
        if name is None:
            continue
        text = text.strip()
        if _DECIMAL.fullmatch(text) is None:
            raise InvalidOption(f"{key.strip()} must be a decimal number, not {_short(text)}")
        fields[name] = float(text)  # a decimal string: inf when too large, never an exception
    return fields


def _json_fields(body: str, value: str) -> dict[str, float]:
    """The A58 fields of a JSON report: an object of numbers (nested maps are ignored)."""
    if body.count("[") + body.count("{") > MAX_JSON_BRACKETS:
        raise InvalidOption(
            f"endpoint-load-metrics JSON may hold at most {MAX_JSON_BRACKETS} brackets"
        )
    try:
        parsed = json.loads(body)
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise InvalidOption(f"invalid JSON in endpoint-load-metrics: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidOption(f"endpoint-load-metrics JSON must be an object: {_short(value)}")
    fields: dict[str, float] = {}
    for key, name in _ORCA_FIELDS.items():
        if key not in parsed:
            continue
        number = parsed[key]
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise InvalidOption(f"{key} must be a JSON number, not {describe(number)}"[:200])
        fields[name] = number  # LoadReport checks it (a huge int is refused, not converted)
    return fields
