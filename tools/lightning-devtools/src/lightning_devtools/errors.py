"""Expected failures of developer tooling: tasks print `ToolError` as one line, exit non-zero."""

from __future__ import annotations


class ToolError(Exception):
    """A precondition of a developer command is not met."""

    def __init__(self, what: str, fix: str) -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what}. Fix: {fix}")
