"""group_pins: a dependency group's requirements at the versions uv.lock holds."""

from pathlib import Path

from lightning_devtools.lock import group_pins

PYPROJECT = """
[dependency-groups]
runners = ["nox>=2025.5.1"]
test = [
    { include-group = "runners" },
    "pytest>=8.3",
    "Pytest_Asyncio[extra]>=1.0; python_version >= '3.11'",
]
"""
LOCK = """
version = 1
[[package]]
name = "nox"
version = "2026.1.1"
[[package]]
name = "pytest"
version = "9.2.0"
[[package]]
name = "pytest-asyncio"
version = "1.5.0"
[[package]]
name = "lightning-core"
source = { editable = "libs/lightning-core" }
"""


def test_pins_each_requirement_of_the_group_and_its_included_groups(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "uv.lock").write_text(LOCK)
    assert group_pins(tmp_path, "test") == [
        "nox==2026.1.1",
        "pytest==9.2.0",
        "Pytest_Asyncio==1.5.0",
    ]


def test_pins_the_repositorys_test_group_from_its_lock() -> None:
    root = Path(__file__).resolve().parents[3]
    pins = group_pins(root, "test")
    assert any(pin.startswith("pytest==") for pin in pins)
    assert all("==" in pin and ">" not in pin for pin in pins)
