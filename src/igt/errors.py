"""User-facing errors: one line that names the culprit (file, row, column, SMILES)."""


class IgtError(Exception):
    """An error caused by user input or configuration.

    The CLI prints ``str(error)`` on one line and exits with status 2, never a traceback.
    """
