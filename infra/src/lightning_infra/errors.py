from __future__ import annotations

import pulumi


class DeployError(pulumi.RunError):
    """A stack setting or input the program refuses; Pulumi prints a RunError without traceback."""
