"""The one error every layer raises for bad input from the user."""


class UsageError(ValueError):
    """Bad input from the user: reported as one line, exit status 2."""
