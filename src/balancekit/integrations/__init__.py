"""HTTP client integrations: balancekit inside the clients people already use.

- :mod:`balancekit.integrations.httpx`: ``BalancedTransport`` and ``AsyncBalancedTransport``
  (``pip install balancekit[httpx]``), also reachable as ``balancekit.httpx``.
- :mod:`balancekit.integrations.requests`: ``BalancedAdapter`` for a ``requests.Session``
  (``pip install balancekit[requests]``), also reachable as ``balancekit.requests``.
- :mod:`balancekit.integrations.grpc`: ``BalancedChannel`` and ``AsyncBalancedChannel`` for
  grpcio (``pip install balancekit[grpc]``), also reachable as ``balancekit.grpc``.

This package imports neither client library; each submodule imports its own. See
docs/integrations.md for how URLs are rewritten, what is retried and how outcomes are reported.
"""

from ._common import IDEMPOTENT_METHODS, default_ok_status

__all__ = ["IDEMPOTENT_METHODS", "default_ok_status"]
