"""The one exception type that the CLI turns into a one-line error and exit code 2."""


class SensorPluginsError(Exception):
    """A user-facing failure: bad input, a missing binary, a failed validation.

    The message must fit on one line and name the file (and entry, field or line)
    at fault, because the CLI prints it as it is.
    """
