"""The few exceptions balancekit raises.

Each is a :class:`BalancekitError` *and* the builtin a caller would already catch, so
``except LookupError`` or ``except ValueError`` keeps working without importing balancekit.
"""

from __future__ import annotations

__all__ = [
    "BalancekitError",
    "DuplicateEndpoint",
    "InvalidEndpoint",
    "InvalidLease",
    "InvalidOption",
    "MissingExtra",
    "NoEndpointAvailable",
    "UnknownEndpoint",
]


class BalancekitError(Exception):
    """Base class of every exception balancekit raises on purpose."""


class NoEndpointAvailable(BalancekitError, LookupError):
    """No endpoint can be selected: the pool is empty, all are down, or all are avoided."""


class UnknownEndpoint(BalancekitError, KeyError):
    """An operation named an address that is not a member of the balancer."""

    def __str__(self) -> str:  # KeyError would repr() the message; keep it readable.
        return str(self.args[0]) if self.args else ""


class DuplicateEndpoint(BalancekitError, ValueError):
    """The same address was given twice, or added while already a member."""


class InvalidEndpoint(BalancekitError, ValueError):
    """An address that cannot be parsed, or a weight that is not a positive integer."""


class InvalidLease(BalancekitError, ValueError):
    """A lease released twice, or one this balancer never issued."""


class InvalidOption(BalancekitError, ValueError):
    """A constructor option or call argument out of its documented range or of the wrong type."""


class MissingExtra(BalancekitError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` to run.

    Also an :class:`ImportError` whose ``name`` is the missing package, as Python's own would be.
    """


def missing_extra(feature: str, package: str, extra: str, module: str) -> MissingExtra:
    """The error for ``feature`` needing ``package`` (imported as ``module``), installed by
    ``pip install 'balancekit[extra]'``."""
    return MissingExtra(
        f"{feature} needs the optional {package!r} package: pip install 'balancekit[{extra}]'",
        name=module,
    )
