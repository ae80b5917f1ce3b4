"""Service discovery: keep a balancer's endpoints current from a registry.

- :class:`Static`: a fixed list (no dependency).
- :class:`DNS`: SRV or A/AAAA records via dnspython (``pip install balancekit[dns]``; imported
  on first use of ``balancekit.discovery.DNS``).
- :class:`Etcd`: the keys under a prefix in etcd, watched, via etcd's JSON gateway and httpx
  (``pip install balancekit[etcd]``; imported on first use of ``balancekit.discovery.Etcd``).
- :class:`File`: a file of endpoints (JSON, TOML or one ``host:port`` per line), polled by
  mtime, size and content hash; a bad file keeps the last membership.
- :class:`Watcher` / :class:`AsyncWatcher`: ask a source again when its answer's TTL runs out,
  in a thread or an asyncio task, and apply it with ``balancer.update(...)``.
- :class:`Source` / :class:`Snapshot`: the interface a Consul or etcd source implements.

>>> import balancekit as bk
>>> lb = bk.LeastConnections()
>>> with bk.discovery.Watcher(lb, bk.discovery.Static(["10.0.0.1:80"])):
...     len(lb)
1
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._source import AsyncSource, DiscoveryError, Snapshot, Source
from .file import File
from .static import Static
from .watch import AsyncWatcher, Watcher

if TYPE_CHECKING:
    from .dns import DNS
    from .etcd import Etcd

__all__ = [
    "DNS",
    "AsyncSource",
    "AsyncWatcher",
    "DiscoveryError",
    "Etcd",
    "File",
    "Snapshot",
    "Source",
    "Static",
    "Watcher",
]


def __getattr__(name: str) -> Any:
    if name == "DNS":  # needs dnspython: import it only when asked for
        from .dns import DNS

        return DNS
    if name == "Etcd":  # needs httpx: import it only when asked for
        from .etcd import Etcd

        return Etcd
    raise AttributeError(f"module 'balancekit.discovery' has no attribute {name!r}")
