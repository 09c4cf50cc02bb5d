"""The exceptions dtdcert raises; each carries the message the command line prints."""

from __future__ import annotations


class DtdcertError(Exception):
    """Base class of dtdcert's errors."""

    filename: str | None = None


class InvalidInputError(DtdcertError, ValueError):
    """Bad input or arguments: a malformed or unsupported model, inputs of the wrong width or
    dtype, a NaN, a rule that does not parse, a layer the model does not have, a model file
    that changed since it was loaded."""


class MissingFileError(DtdcertError, FileNotFoundError):
    """A file that does not exist (the model, the inputs, the weights a description names)."""


class WriteError(DtdcertError, OSError):
    """Results could not be written."""
