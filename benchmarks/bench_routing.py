"""Routing with 10 vs 1,000 rules, the signature screen and the other guards, in ns/request.

Run from the repository root::

    python benchmarks/bench_routing.py          # full run, about half a minute
    python benchmarks/bench_routing.py --quick  # fewer repeats, a few seconds
    python benchmarks/bench_routing.py --hostile  # only the 8/32/128 KiB hostile-input rows

Method: plain ``time.perf_counter_ns`` loops over a fixed, seeded mix of requests; each figure
is the median of the repeats of (loop time / requests). The naive column scans the rule list
with ``Route.matches`` (the reference semantics), for comparison. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from balancekit import Request, Route, Router
from balancekit.guard import AnomalyDetector, BanList, Guard, RateLimit, SignatureScreen


def make_rules(count: int, rng: random.Random) -> list[Route[int]]:
    """A realistic mix: host+prefix (60 %), prefix only, exact paths, regex, header/method."""
    hosts = [f"svc{i}.example.com" for i in range(max(1, count // 20))]
    rules: list[Route[int]] = []
    for i in range(count):
        kind = rng.random()
        if kind < 0.6:
            rule = Route(i, host=rng.choice(hosts), prefix=f"/api/v{i % 3}/r{i}/")
        elif kind < 0.75:
            rule = Route(i, prefix=f"/static/{i}/")
        elif kind < 0.85:
            rule = Route(i, path=f"/exact/{i}")
        elif kind < 0.95:
            rule = Route(i, regex=rf"/items/{i}/\d+")
        else:
            rule = Route(i, host="*.example.com", prefix=f"/h/{i}/", headers={"x-tenant": str(i)})
        rules.append(rule)
    return rules


def make_requests(rules: Sequence[Route[int]], rng: random.Random, count: int) -> list[Request]:
    """Requests that hit random rules (90 %) or nothing (10 %)."""
    out = []
    for _ in range(count):
        if rng.random() < 0.1:
            out.append(Request(host="nowhere.example.org", path="/missing/path"))
            continue
        rule = rng.choice(rules)
        host = rule.hosts[0].replace("*", "a") if rule.hosts else "www.example.com"
        if rule.path is not None:
            path = rule.path
        elif rule.prefix is not None:
            path = rule.prefix + "x/y"
        else:
            path = f"/items/{rule.target}/123"
        out.append(Request(host=host, path=path, headers={"X-Tenant": str(rule.target)}))
    return out


def per_item_ns(func: Callable[[Request], object], items: Sequence[Request], repeats: int) -> float:
    """Median over ``repeats`` of the loop time divided by the number of items."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for item in items:
            func(item)
        samples.append((time.perf_counter_ns() - start) / len(items))
    return statistics.median(samples)


def naive_route(rules: Sequence[Route[int]]) -> Callable[[Request], object]:
    def route(request: Request) -> object:
        for rule in rules:
            if rule.matches(request):
                return rule.target
        return None

    return route


def screen_requests() -> dict[str, Request]:
    ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"
    browser = {
        "User-Agent": ua,
        "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
        "Accept-Language": "en-GB,en;q=0.9",
        "Cookie": "session=3f9a1c0d; theme=dark",
        "Referer": "https://shop.example/search?q=shoes",
    }
    return {
        "benign GET, 5 headers": Request(
            path="/api/v1/products/42", query="q=red+shoes&page=2", headers=browser
        ),
        "benign POST, 1 KiB JSON body": Request(
            method="POST",
            path="/api/v1/comments",
            headers={**browser, "Content-Type": "application/json"},
            body=b'{"name": "O\'Brien", "text": "' + b"lorem ipsum dolor " * 55 + b'"}',
        ),
        "attack (double-encoded SQLi)": Request(
            path="/search", query="q=1%2527%2520or%2520%25271%2527%253D%25271", headers=browser
        ),
    }


HOSTILE_UNITS = {
    "'<' repeated": "<",
    "'/*' repeated": "/*",
    "'/*x' repeated (unterminated comments)": "/*x",
    "quote repeated": "'",
    "'${' repeated": "${",
    "'<a b' repeated": "<a b",
}
SIZES_KIB = (8, 32, 128)


def best_ms(func: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs, in ms (one call can take long: no inner loop)."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        func()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return min(samples)


def hostile_rows(repeats: int) -> None:
    """Issue 10.3: the screen and Request construction on 8/32/128 KiB of hostile input."""
    whole = SignatureScreen(field_limit=1 << 20)  # screen all of it: shows the linear cost
    default = SignatureScreen()  # field_limit=8192: longer fields are rejected at once
    print("\n| hostile query value, SignatureScreen.check (ms) | 8 KiB | 32 KiB | 128 KiB |")
    print("| --- | ---: | ---: | ---: |")
    for name, unit in HOSTILE_UNITS.items():
        for label, screen in (("whole field screened", whole), ("default limits", default)):
            cells = []
            for kib in SIZES_KIB:
                size = kib * 1024
                value = (unit * (size // len(unit) + 1))[: size - 2]
                request = Request(query="q=" + value)  # raw_query of exactly `size` chars
                cells.append(f"{best_ms(lambda r=request, s=screen: s.check(r), repeats):,.2f}")
            print(f"| {name}, {label} | " + " | ".join(cells) + " |")
    print("\n| Request construction (ms) | 8 KiB | 32 KiB | 128 KiB |")
    print("| --- | ---: | ---: | ---: |")
    cells = []
    for kib in SIZES_KIB:
        headers = [("x", "1")] * (kib * 1024 // 6)  # "x: 1\r\n" is 6 bytes on the wire
        cells.append(f"{best_ms(lambda h=headers: Request(headers=h), repeats):,.2f}")
    print("| repeated same-name header `x: 1` | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and repeats")
    parser.add_argument("--hostile", action="store_true", help="only the hostile-input rows")
    args = parser.parse_args()
    if args.hostile:
        hostile_rows(3)
        return
    repeats, sample = (3, 500) if args.quick else (9, 5000)
    rng = random.Random(20261128)

    print(f"Python {platform.python_version()} on {platform.machine()}, repeats={repeats}\n")
    print("| case | compiled router (ns/route) | naive scan (ns/route) |")
    print("| --- | ---: | ---: |")
    for count in (10, 1000):
        rules = make_rules(count, rng)
        router = Router(rules, default=-1)
        requests = make_requests(rules, rng, sample)
        fast = per_item_ns(router.route, requests, repeats)
        slow = per_item_ns(naive_route(rules), requests[: max(50, sample // 20)], repeats)
        print(f"| {count:,} rules | {fast:,.0f} | {slow:,.0f} |")

    print("\n| other guards, one allowed check | ns/request |")
    print("| --- | ---: |")
    clients = [Request(client_addr=f"10.0.{i % 1000 // 256}.{i % 256}") for i in range(sample)]
    guards: dict[str, Guard] = {
        "RateLimit('1000000/hour'), moving window (limits)": RateLimit("1000000/hour"),
        "RateLimit('1000000/hour'), fixed window (limits)": RateLimit(
            "1000000/hour", strategy="fixed-window"
        ),
        "BanList, key not banned": BanList(),
        "AnomalyDetector": AnomalyDetector(min_count=10**9),
    }
    for name, guard in guards.items():
        print(f"| {name} | {per_item_ns(guard.check, clients, repeats):,.0f} |")

    screen = SignatureScreen()
    print("\n| signature screen, default rules | ns/request |")
    print("| --- | ---: |")
    for name, request in screen_requests().items():
        items = [request] * (sample // 5)
        print(f"| {name} | {per_item_ns(screen.check, items, repeats):,.0f} |")
    hostile_rows(3 if args.quick else 5)


if __name__ == "__main__":
    main()
