"""User-facing errors.

Every mistake a user can make (bad path, corrupt data, unknown name, impossible option) raises a
`TransferoptError` whose message is one line naming the culprit; the CLI prints it without a traceback.
"""


class TransferoptError(Exception):
    """Base class for errors caused by the user's input, not by a bug."""


class DataError(TransferoptError):
    """The data set cannot be read or cannot support the requested run."""


class ModelError(TransferoptError):
    """A model name cannot be resolved or its weights are missing."""


class ConfigError(TransferoptError):
    """An option value is invalid or inconsistent with the others."""


class RunDirError(TransferoptError):
    """A run directory is missing or incomplete."""
