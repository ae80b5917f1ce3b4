"""The docs site's structure: every page is in the navigation, every public module has API docs.

CI builds the site itself (``mkdocs build --strict`` in .ci/run); these checks keep a new page or
module from silently dropping out of it.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_MODULES = [
    "balancekit",
    "balancekit.config",
    "balancekit.strategies.registry",
    "balancekit.health",
    "balancekit.retry",
    "balancekit.discovery",
    "balancekit.discovery.file",
    "balancekit.integrations.httpx",
    "balancekit.integrations.requests",
    "balancekit.request",
    "balancekit.keys",
    "balancekit.routing",
    "balancekit.sticky",
    "balancekit.guard",
    "balancekit.guard.store",
    "balancekit.integrations.aiohttp",
    "balancekit.integrations.grpc",
    "balancekit.discovery.etcd",
    "balancekit.metrics",
    "balancekit.metrics.otel",
    "balancekit.metrics.prometheus",
    "balancekit.subset",
]


def _nav_pages(nav: object) -> set[str]:
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, list):
        return set().union(*(_nav_pages(item) for item in nav))
    if isinstance(nav, dict):
        return set().union(*(_nav_pages(value) for value in nav.values()))
    return set()


def _config() -> dict[str, object]:
    text = (ROOT / "mkdocs.yml").read_text()
    return yaml.safe_load(text)  # type: ignore[no-any-return]


def test_every_page_is_in_the_navigation() -> None:
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages == _nav_pages(_config()["nav"])


def test_every_public_module_has_an_api_page() -> None:
    documented = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: ([\w.]+)", page.read_text(), re.M))
    assert set(PUBLIC_MODULES) <= documented


def test_the_docs_extra_and_ci_install_the_site_tools() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert {re.split(r"[<>=\[]", r)[0] for r in extras["docs"]} >= {
        "mkdocs",
        "mkdocs-material",
        "mkdocstrings",
    }
    ci = (ROOT / ".ci" / "run").read_text()
    assert "docs]" in ci and "mkdocs build --strict" in ci
