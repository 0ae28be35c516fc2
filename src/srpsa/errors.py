"""Exceptions whose message is shown to users as one line by the CLI (no traceback)."""

from __future__ import annotations


class SrpsaError(Exception):
    """Base class: an expected failure with a message a user can act on."""


class InputError(SrpsaError):
    """Bad input file or argument (missing, unreadable, wrong format, invalid values)."""


class ParameterError(InputError):
    """A bad value of a named library parameter (``pixel_size_um must be > 0, got -1``).

    ``param`` is the Python parameter name; the CLI shows its own flag instead (cli/analyze.py).
    """

    def __init__(self, param: str, problem: str) -> None:
        self.param, self.problem = param, problem
        super().__init__(f"{param} {problem}")

    def __reduce__(self):  # picklable across worker processes, whose errors come back as values
        return (type(self), (self.param, self.problem))


class RegistrationError(SrpsaError):
    """Registration cannot be computed or is not trustworthy (too few/collinear points, large residual)."""


class ConfigError(SrpsaError):
    """Unknown or ill-typed configuration key/value."""
