"""Reading a user's data file safely: a regular file, small enough for this machine's memory.

A FIFO or a device as `--data` would block or read forever, and a corpus larger than memory would be
read for minutes before the machine runs out (a 2 GB sparse file reached 6.4 GB of RSS), so both are
refused before the first byte is read, with one line naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from genloom.errors import UserError

# bytes of memory one byte of corpus takes at the peak of preprocessing: the raw bytes, the decoded and
# normalized strings (up to 4 bytes a character each) and the int64 token ids (8 bytes a character)
MEMORY_PER_BYTE = 16


def memory_bytes() -> int:
    """Physical memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_data_file(path: Path, size_so_far: int = 0) -> int:
    """The size of `path` once it is known to be a regular file that fits in memory (with `size_so_far`
    bytes of other files of the same corpus)."""
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if not path.is_file():
        raise UserError(f"{path}: not a regular file (a FIFO, device or socket cannot be read as data)")
    size = path.stat().st_size
    total = size_so_far + size
    if total * MEMORY_PER_BYTE > memory_bytes():
        raise UserError(
            f"{path}: {total / 1e9:,.2f} GB of data needs about {MEMORY_PER_BYTE}x that in memory to prepare, "
            f"more than this machine's {memory_bytes() / 1e9:,.1f} GB; use a smaller corpus"
        )
    return size


def read_data_file(path: Path, size_so_far: int = 0) -> bytes:
    """The bytes of a data file checked by `check_data_file`, with read errors as one line."""
    check_data_file(path, size_so_far)
    try:
        return path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror or e})") from None
