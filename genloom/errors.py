"""The one exception type for mistakes a user can fix, and the OS errors that are the user's place's.

The CLI prints a `UserError` as a single line and exits with status 2; everything else is a bug and
keeps its traceback. It subclasses `ValueError` so library callers can catch it the usual way. An
`OSError` whose errno is in `WRITE_ERRNOS` (disk full, read-only, no permission, ...) is about where a
file goes, not about genloom: `genloom.run` turns it into a `UserError` naming the file, and the CLI
prints any that escape as one line too.
"""

import errno

WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR}
)


class UserError(ValueError):
    """Bad input from the user (file, field, flag): the message names it and says what was expected."""
