"""Expected failures of developer tooling: one line saying what, why and how to fix it.

Tasks and sessions catch `ToolError` and print its single line with a non-zero exit, so a
missing Docker engine at 2 a.m. reads as an instruction, not a traceback.
"""

from __future__ import annotations


class ToolError(Exception):
    """A precondition of a developer command is not met."""

    def __init__(self, what: str, fix: str) -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what}. Fix: {fix}")
