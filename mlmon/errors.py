"""One error hierarchy for everything a user can fix.

Each error carries the exit code the command line uses and a hint that says how to fix it. The CLI turns
these into one plain message on stderr; only ``--debug`` shows a traceback.
"""

from __future__ import annotations

# Exit codes (DESIGN.md): 0 ok, 1 an error mlmon understood, 2 usage error, 3 a requested check failed.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CHECK_FAILED = 3


class MlmonError(Exception):
    """An error mlmon understands: printed as one message with a hint, never as a traceback."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nhint: {self.hint}"


class SpecError(MlmonError):
    """mlmon.yaml is missing, unreadable or invalid. ``where`` is 'FILE:LINE: key.path'."""

    def __init__(self, message: str, hint: str | None = None, where: str | None = None) -> None:
        super().__init__(f"{where}: {message}" if where else message, hint)
        self.where = where


class TemplateError(MlmonError):
    """A template is missing or failed to render."""


class OutputConflict(MlmonError):
    """A generated file was edited by the user since mlmon wrote it."""


class UnsafePath(MlmonError):
    """A path would land outside the folder mlmon was asked to write into."""


class BackendError(MlmonError):
    """A server (Prometheus, Alertmanager, MLflow) could not be reached or answered nonsense."""


class CompareError(MlmonError):
    """The runs asked for cannot be compared as asked (nothing selected, an unknown baseline)."""


class CheckFailed(MlmonError):
    """A check the user asked for found a problem (exit code 3)."""

    exit_code = EXIT_CHECK_FAILED
