"""The exception types: one per kind of problem a user can fix.

The library raises them; only the command-line modules turn them into a one-line message and an
exit code. Every type also derives from ``ValueError`` so that callers of the Python API can catch
bad input the usual way.
"""


class TinyMTLError(ValueError):
    """A problem the user can fix. The CLI prints str(err) on one line and exits 1."""


class DataError(TinyMTLError):
    """CSV content or arrays that cannot be used as given (file, line, column in the message)."""


class CheckpointError(TinyMTLError):
    """An unreadable, corrupt or mismatched model file."""


class OptionError(TinyMTLError):
    """An option value that argparse cannot check on its own (names the option)."""


class TrainingDiverged(TinyMTLError):
    """The loss became NaN or infinite: the learning rate is too high for this data."""
