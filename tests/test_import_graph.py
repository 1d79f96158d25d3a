"""The import graph between the workspace's packages: every arrow points at lightning-core.

Services, devtools and infra each build on core alone, so any of them can change, ship or be
left out without the others; a new arrow is a design change and belongs in ARROWS below.
"""

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Distribution directory -> the import package it ships.
PACKAGES = {
    "libs/lightning-core": "lightning_core",
    "services/api": "lightning_api",
    "services/event-processor": "lightning_processor",
    "services/ui": "lightning_ui",
    "tools/lightning-devtools": "lightning_devtools",
    "infra": "lightning_infra",
}
ARROWS = {
    ("lightning_api", "lightning_core"),
    ("lightning_processor", "lightning_core"),
    ("lightning_ui", "lightning_core"),
    ("lightning_devtools", "lightning_core"),
    ("lightning_infra", "lightning_core"),
}


def imported_roots(path: Path) -> Iterator[str]:
    """The top-level package of every module `path` imports (typing-only imports included)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.partition(".")[0]


def arrows_from(directory: Path, package: str) -> set[tuple[str, str]]:
    first_party = set(PACKAGES.values())
    return {
        (package, root)
        for path in directory.rglob("*.py")
        for root in imported_roots(path)
        if root in first_party and root != package
    }


def source_arrows() -> set[tuple[str, str]]:
    return {
        arrow
        for member, package in PACKAGES.items()
        for arrow in arrows_from(REPO / member / "src" / package, package)
    }


def test_every_arrow_between_packages_points_at_core() -> None:
    assert source_arrows() == ARROWS


@pytest.mark.parametrize("member", sorted(PACKAGES))
def test_declared_dependencies_are_the_imported_ones(member: str) -> None:
    """A member declares exactly the workspace members its code imports, so installing it
    alone (as its image does) brings everything it runs."""
    project = tomllib.loads((REPO / member / "pyproject.toml").read_text())["project"]
    # A distribution name, normalized, is the package it ships (lightning-core: lightning_core).
    required = {
        requirement.partition(";")[0].partition("[")[0].strip().replace("-", "_")
        for requirement in project.get("dependencies", [])
    }
    declared = required & set(PACKAGES.values())
    package = PACKAGES[member]
    imported = {target for source, target in source_arrows() if source == package}
    assert declared == imported


def test_core_tests_import_only_core() -> None:
    """`pytest libs/lightning-core` runs with lightning-core alone installed."""
    assert arrows_from(REPO / "libs/lightning-core/tests", "lightning_core") == set()


#: What a member's tests import beyond the member and core: the UI's in-process tests put
#: the real API app behind the UI's API client.
TEST_ARROWS = {("lightning_ui", "lightning_api")}


def test_each_members_tests_import_only_it_and_core() -> None:
    """A member's tests run with it and lightning-core installed (the UI's with the API too);
    what spans several services is in tests/, and shared fixtures in lightning_core.testing."""
    arrows = {
        arrow
        for member, package in PACKAGES.items()
        if (REPO / member / "tests").is_dir()
        for arrow in arrows_from(REPO / member / "tests", package)
        if arrow[1] != "lightning_core"
    }
    assert arrows == TEST_ARROWS
