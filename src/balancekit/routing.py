"""Request routing: map a :class:`~balancekit.Request` to a target (usually a balancer).

A :class:`Router` holds an ordered list of :class:`Route` rules; the *first* rule that matches
wins, exactly as if the list were scanned in order (nginx ``location`` lists and Envoy route
tables read the same way). The list is compiled once into indexes so a lookup does not scan it:

* hosts: a dict of exact hosts, a dict of ``*.suffix`` wildcards walked label by label, and one
  group for rules without a host (the virtual-host split of Envoy's ``RouteConfiguration``);
* per host group, paths: a dict of exact paths, a dict of prefixes probed only at the prefix
  lengths that occur, and one combined regex (an alternation of named groups whose
  ``lastgroup`` names the first regex rule that matches) over the regex rules;
* the candidates of these indexes are merged in rule order, and the remaining predicates
  (method, header, cookie, query) are tested only on them, so the first candidate that passes
  is the first rule of the list that matches.

A lookup costs O(labels in the host + distinct prefix lengths + candidates), independent of
the number of rules that cannot match. A regex that has capture groups or global flags cannot
join the alternation and is tested on its own (still in rule order).

>>> import balancekit as bk
>>> router = bk.Router([
...     bk.Route("api", host="api.example.com", prefix="/v1/"),
...     bk.Route("static", prefix="/static/", methods=("GET", "HEAD")),
...     bk.Route("beta", headers={"x-beta": True}),
... ], default="web")
>>> router.route(bk.Request(host="api.example.com", path="/v1/users"))
'api'
>>> router.route(bk.Request(method="POST", path="/static/app.js"))
'web'
>>> router.route(bk.Request(path="/", headers={"X-Beta": "1"}))
'beta'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

from ._bounded import bounded
from ._errors import BalancekitError, InvalidOption
from ._options import describe
from ._routing_index import PathIndex, literal_prefix
from .request import Request

__all__ = ["Matcher", "NoRoute", "Route", "Router"]

T = TypeVar("T")
#: A value predicate: ``str`` equal to the value, a compiled regex that must ``fullmatch`` it,
#: ``True`` (present) or ``False`` (absent).
Matcher: TypeAlias = "str | re.Pattern[str] | bool"
_Check: TypeAlias = Callable[[Request], bool]
_HOST_RULE = "a non-empty str or a list of them"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class NoRoute(BalancekitError, LookupError):
    """No route matched the request and the router has no default."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<no default>"


_MISSING = _Missing()


def _value_ok(matcher: Matcher, value: str | None) -> bool:
    if matcher is True:
        return value is not None
    if matcher is False:
        return value is None
    if value is None:
        return False
    if isinstance(matcher, str):
        return value == matcher
    return matcher.fullmatch(value) is not None


def _matchers(
    kind: str, spec: Mapping[str, Matcher] | None, fold: bool
) -> tuple[tuple[str, Matcher], ...]:
    if spec is None:
        return ()
    if not isinstance(spec, Mapping):
        raise InvalidOption(f"{kind} must be a mapping of name to matcher, got {describe(spec)}")
    out: list[tuple[str, Matcher]] = []
    for name, matcher in bounded(kind, spec.items(), MAX_ROUTE_ITEMS):
        if not isinstance(name, str) or not name:
            raise InvalidOption(f"{kind} names must be non-empty str, got {describe(name)}")
        if not isinstance(matcher, str | bool | re.Pattern) or (
            isinstance(matcher, re.Pattern) and not isinstance(matcher.pattern, str)
        ):
            raise InvalidOption(
                f"{kind}[{describe(name)}] must be a str (equal), a compiled str regex "
                f"(fullmatch), True (present) or False (absent), got {describe(matcher)}"
            )
        out.append((name.lower() if fold else name, matcher))
    return tuple(out)


#: The most rules a :class:`Router` takes, and the most hosts or methods one :class:`Route`
#: lists: bounds on configuration time and memory (an endless generator is refused).
MAX_ROUTES = 100_000
MAX_ROUTE_ITEMS = 10_000


def _collection(
    kind: str, value: Any, item: type, what: str, limit: int = MAX_ROUTE_ITEMS
) -> tuple[Any, ...]:
    """``value``'s items as a tuple, each checked to be an ``item`` as it is read, so a huge or
    endless iterable of the wrong things (a ``range``, an IP network) is refused at its first
    item rather than materialised, and one of more than ``limit`` items at item ``limit + 1``.
    Not iterable, or bytes: :class:`InvalidOption`."""
    if isinstance(value, bytes | bytearray):
        raise InvalidOption(f"{kind} must be {what}, got {describe(value)}")
    try:
        iter(value)
    except TypeError:
        raise InvalidOption(f"{kind} must be {what}, got {describe(value)}") from None
    out: list[Any] = []
    for entry in bounded(kind, value, limit):
        if not isinstance(entry, item):
            raise InvalidOption(f"{kind} must be {what}, got an item {describe(entry)}")
        out.append(entry)
    return tuple(out)


def _hosts(host: str | Iterable[str] | None) -> tuple[str, ...]:
    if host is None:
        return ()
    items = (host,) if isinstance(host, str) else _collection("host", host, str, _HOST_RULE)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise InvalidOption(
                f"host must be a non-empty str or a list of them, got {describe(item)}"
            )
        name = item.strip().lower().rstrip(".")
        if name == "*":
            return ()
        bare = name[2:] if name.startswith("*.") else name
        if "*" in bare or "/" in bare or " " in bare or not bare:
            raise InvalidOption(
                f"host {describe(item)}: use an exact name ('api.example.com') or a leading "
                "wildcard ('*.example.com'), without scheme, path or port"
            )
        out.append(name)
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True, slots=True, init=False)
class Route(Generic[T]):
    """One routing rule: ``target`` when every given predicate holds (all keyword-only).

    ``host``: exact names or ``*.suffix`` wildcards (case-insensitive; ``"*"`` = any), any of
    which may match. At most one of ``path`` (equal), ``prefix`` (plain string prefix, as
    nginx and Envoy: ``"/api"`` also matches ``"/apix"``, write ``"/api/"`` for a segment) and
    ``regex`` (``fullmatch`` on the path). ``methods``: allowed methods. ``headers``, ``cookies``,
    ``query``: name -> :data:`Matcher`; a header is compared in its combined value, a cookie or a
    query parameter in its first value. ``name`` labels the rule in ``repr`` and errors.
    """

    target: T
    hosts: tuple[str, ...]
    path: str | None
    prefix: str | None
    regex: re.Pattern[str] | None
    methods: frozenset[str] | None
    headers: tuple[tuple[str, Matcher], ...]
    cookies: tuple[tuple[str, Matcher], ...]
    query: tuple[tuple[str, Matcher], ...]
    name: str

    def __init__(
        self,
        target: T,
        *,
        host: str | Iterable[str] | None = None,
        path: str | None = None,
        prefix: str | None = None,
        regex: str | re.Pattern[str] | None = None,
        methods: str | Iterable[str] | None = None,
        headers: Mapping[str, Matcher] | None = None,
        cookies: Mapping[str, Matcher] | None = None,
        query: Mapping[str, Matcher] | None = None,
        name: str = "",
    ) -> None:
        if sum(x is not None for x in (path, prefix, regex)) > 1:
            raise InvalidOption("give at most one of path=, prefix= and regex= per Route")
        for kind, value in (("path", path), ("prefix", prefix)):
            if value is not None and (not isinstance(value, str) or not value.startswith("/")):
                raise InvalidOption(
                    f"{kind} must be a str starting with '/', got {describe(value)}"
                )
        compiled: re.Pattern[str] | None = None
        if regex is not None:
            try:
                compiled = re.compile(regex) if isinstance(regex, str) else regex
            except re.error as exc:
                raise InvalidOption(f"regex {describe(regex)} does not compile: {exc}") from None
            if not isinstance(compiled, re.Pattern) or not isinstance(compiled.pattern, str):
                raise InvalidOption(
                    f"regex must be a str or a compiled str pattern, got {describe(regex)}"
                )
        allowed: frozenset[str] | None = None
        if methods is not None:
            items = (
                (methods,)
                if isinstance(methods, str)
                else _collection("methods", methods, str, "HTTP method names")
            )
            if not items or not all(isinstance(m, str) and _TOKEN.fullmatch(m) for m in items):
                raise InvalidOption(f"methods must be HTTP method names, got {describe(methods)}")
            allowed = frozenset(m.upper() for m in items)
        setter = object.__setattr__
        setter(self, "target", target)
        setter(self, "hosts", _hosts(host))
        setter(self, "path", path)
        setter(self, "prefix", prefix)
        setter(self, "regex", compiled)
        setter(self, "methods", allowed)
        setter(self, "headers", _matchers("headers", headers, fold=True))
        setter(self, "cookies", _matchers("cookies", cookies, fold=False))
        setter(self, "query", _matchers("query", query, fold=False))
        if not isinstance(name, str):
            raise InvalidOption(f"name must be a str, got {describe(name)}")
        setter(self, "name", name)

    def matches(self, request: Request) -> bool:
        """Evaluate every predicate directly, O(predicates); the router's reference semantics."""
        if self.hosts and not any(
            request.host == h or (h.startswith("*.") and request.host.endswith(h[1:]))
            for h in self.hosts
        ):
            return False
        if self.path is not None and request.path != self.path:
            return False
        if self.prefix is not None and not request.path.startswith(self.prefix):
            return False
        if self.regex is not None and self.regex.fullmatch(request.path) is None:
            return False
        return self._rest_ok(request)

    def _rest_ok(self, request: Request) -> bool:
        if self.methods is not None and request.method not in self.methods:
            return False
        for name, matcher in self.headers:
            values = request.headers.get_all(name)
            if not _value_ok(matcher, ", ".join(values) if values else None):
                return False
        for name, matcher in self.cookies:
            if not _value_ok(matcher, request.cookies.get(name)):
                return False
        return all(_value_ok(m, request.query.get(n)) for n, m in self.query)

    def _rest_check(self) -> _Check | None:
        """The predicates the router's indexes do not decide, as one function (None: none).

        A regex with a literal prefix is indexed under that prefix, so its full match is
        checked here; other regexes are decided by the router's regex set.
        """
        regex = self.regex
        if regex is not None and literal_prefix(regex):
            rest = self._rest_ok
            return lambda request: regex.fullmatch(request.path) is not None and rest(request)
        if self.headers or self.cookies or self.query:
            return self._rest_ok
        if self.methods is not None:
            methods = self.methods
            return lambda request: request.method in methods
        return None


class Router(Generic[T]):
    """First-match routing over compiled indexes (see the module docstring for the method).

    Build once; a router is immutable and safe to share between threads. ``route`` returns the
    first matching rule's target, else ``default``, else raises :class:`NoRoute`.
    """

    __slots__ = ("_any", "_checks", "_default", "_exact", "_routes", "_wild")

    def __init__(self, routes: Iterable[Route[T]], *, default: T | _Missing = _MISSING) -> None:
        self._routes: tuple[Route[T], ...] = _collection(
            "routes", routes, Route, "a list of Route rules", MAX_ROUTES
        )
        self._default = default
        self._exact: dict[str, PathIndex] = {}
        self._wild: dict[str, PathIndex] = {}
        self._any = PathIndex()
        self._checks: list[_Check | None] = [r._rest_check() for r in self._routes]
        for rule_id, route in enumerate(self._routes):
            if not route.hosts:
                self._any.add(rule_id, route.path, route.prefix, route.regex)
            for host in route.hosts:
                table, key = (
                    (self._wild, host[1:]) if host.startswith("*.") else (self._exact, host)
                )
                table.setdefault(key, PathIndex()).add(
                    rule_id, route.path, route.prefix, route.regex
                )
        for group in (*self._exact.values(), *self._wild.values(), self._any):
            group.freeze()

    @property
    def routes(self) -> tuple[Route[T], ...]:
        """The rules, in match order."""
        return self._routes

    def _groups(self, host: str) -> list[PathIndex]:
        groups: list[PathIndex] = []
        group = self._exact.get(host)
        if group is not None:
            groups.append(group)
        if self._wild:
            dot = host.find(".")
            while dot != -1:
                group = self._wild.get(host[dot:])
                if group is not None:
                    groups.append(group)
                dot = host.find(".", dot + 1)
        groups.append(self._any)
        return groups

    def _first(self, request: Request) -> int:
        path = request.path
        candidates: list[int] = []
        heads: list[list[int]] = []  # [rule id, group index, pattern index] per regex stream
        groups = self._groups(request.host)
        for number, group in enumerate(groups):
            group.collect(path, candidates)
            if group.regex is not None:
                found = group.regex.next_match(path, 0)
                if found != -1:
                    heads.append([group.regex.ids[found], number, found])
        candidates.sort()
        checks = self._checks
        if not heads:
            last = -1
            for rule_id in candidates:
                if rule_id != last:
                    last = rule_id
                    check = checks[rule_id]
                    if check is None or check(request):
                        return rule_id
            return -1
        last = -1
        position = 0
        total = len(candidates)
        while True:
            head = min(heads) if heads else None
            if head is not None and (position == total or head[0] < candidates[position]):
                rule_id = head[0]
                regex = groups[head[1]].regex
                assert regex is not None
                found = regex.next_match(path, head[2] + 1)
                if found == -1:
                    heads.remove(head)
                else:
                    head[0], head[2] = regex.ids[found], found
            elif position < total:
                rule_id = candidates[position]
                position += 1
            else:
                return -1
            if rule_id == last:
                continue
            last = rule_id
            check = checks[rule_id]
            if check is None or check(request):
                return rule_id

    def match(self, request: Request) -> Route[T] | None:
        """The first rule that matches ``request``, or ``None``."""
        rule_id = self._first(request)
        return None if rule_id == -1 else self._routes[rule_id]

    def route(self, request: Request) -> T:
        """The first matching rule's target, else the default; O(candidates), see module doc."""
        rule_id = self._first(request)
        if rule_id != -1:
            return self._routes[rule_id].target
        if isinstance(self._default, _Missing):
            raise NoRoute(
                f"no route matches {request.method} {request.host or '<no host>'}{request.path}"
                f" among {len(self._routes)} rules and the router has no default; pass"
                f" default=<target> or end the list with a catch-all Route(target)"
            )
        return self._default

    def _check_invariants(self) -> None:
        """Every rule is indexed exactly once per host key, in its path bucket, in order."""
        seen: dict[int, int] = {}
        for group in (*self._exact.values(), *self._wild.values(), self._any):
            lists = [group.anypath, *group.exact.values(), *group.prefixes.values()]
            if group.regex is not None:
                lists.append(group.regex.ids)
            for ids in lists:
                assert ids == sorted(ids), "index lists must be in rule order"
                for rule_id in ids:
                    seen[rule_id] = seen.get(rule_id, 0) + 1
            assert group.prefix_lengths == tuple(sorted({len(p) for p in group.prefixes}))
        for rule_id, route in enumerate(self._routes):
            assert seen.get(rule_id, 0) == max(1, len(route.hosts)), f"rule {rule_id} mis-indexed"
            if route.regex is not None and literal_prefix(route.regex) and not route.hosts:
                assert rule_id in self._any.prefixes[literal_prefix(route.regex)]

    def __repr__(self) -> str:
        return f"Router({len(self._routes)} routes, default={self._default!r})"
