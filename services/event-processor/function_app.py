"""The root of the Function package (`invoke package-function`): the file the host loads.

The Functions Python worker imports `function_app.py` from the package root and indexes the
`FunctionApp` it finds there; the app lives in the installed lightning_processor.
"""

from lightning_processor.function_app import app

__all__ = ["app"]
