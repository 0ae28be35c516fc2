"""Exceptions whose message is shown to users as one line by the CLI (no traceback)."""

from __future__ import annotations


class SrpsaError(Exception):
    """Base class: an expected failure with a message a user can act on."""


class InputError(SrpsaError):
    """Bad input file or argument (missing, unreadable, wrong format, invalid values)."""


class RegistrationError(SrpsaError):
    """Registration cannot be computed or is not trustworthy (too few/collinear points, large residual)."""


class ConfigError(SrpsaError):
    """Unknown or ill-typed configuration key/value."""
