"""The one error type the program raises for a stack it cannot deploy."""

from __future__ import annotations

import pulumi


class DeployError(pulumi.RunError):
    """A stack setting or input file the program refuses; the message says what and how to fix.

    A RunError makes Pulumi print the message alone, without a traceback.
    """
