"""One client process of the shared-guard tests (run as a script by test_redis_guards.py).

``python _guard_worker.py URL MODE ATTEMPTS GO_FILE`` waits (at most 30 s) until GO_FILE
exists, so all workers start together, then makes ATTEMPTS checks and prints how many were
allowed. MODE ``rate``: RateLimit("50/minute", moving window) on one client address; ``strike``:
BanList(strikes=3) strikes (prints 1 if one of its strikes banned the key).
"""

from __future__ import annotations

import os
import sys
import time

import balancekit as bk
from balancekit.guard import BanList, RateLimit, RedisStore


def main() -> None:
    url, mode, attempts, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    store = RedisStore(url, timeout=2.0, on_error="fail_closed")
    request = bk.Request(client_addr="198.51.100.20")
    deadline = time.monotonic() + 30
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.005)
    if mode == "rate":
        guard = RateLimit("50/minute", store=store)
        allowed = 0
        for _ in range(attempts):  # 2 ms apart, so the processes' checks interleave
            allowed += guard.check(request).allowed
            time.sleep(0.002)
        print(allowed, int(store.available))
    else:
        bans = BanList(strikes=3, within=60, ban_for=60, store=store)
        banned = sum(bans.strike(request, "worker") is not None for _ in range(attempts))
        print(banned, int(store.available))


if __name__ == "__main__":
    main()
