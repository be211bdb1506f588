"""The one exception type for mistakes a user can fix.

The CLI prints a `UserError` as a single line and exits with status 2; everything else is a bug and
keeps its traceback. It subclasses `ValueError` so library callers can catch it the usual way.
"""


class UserError(ValueError):
    """Bad input from the user (file, field, flag): the message names it and says what was expected."""
