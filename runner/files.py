"""Reading files a person names: regular files only, with errors that say what is wrong.

A FIFO would block the reader forever, a device could stream without end, and a
socket cannot be read at all; each is refused by name before any byte is read,
and a symlink loop is named as such. The file is opened without blocking and
checked on the open descriptor, so it cannot be swapped for a FIFO in between.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from runner.errors import UsageError

# Runbooks, inputs files and the like are small; a larger file is a mistake.
MAX_BYTES = 8 * 1024 * 1024

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


class FileRefused(UsageError):
    """The path is not a regular file that can be read."""


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def check_regular(path: str | os.PathLike[str], what: str = "file") -> None:
    """FileRefused unless `path` is an existing regular file (after its links)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise FileRefused(_reason(path, what, exc)) from None
    if not stat.S_ISREG(mode):
        raise FileRefused(f"{what} {path} is {_kind(mode)}; give a regular file")


def opened_path(fd: int, given: str | os.PathLike[str]) -> str:
    """The real path of what `fd` has open, links resolved: on Linux the kernel's own
    answer, so a link swapped after the open cannot fool it."""
    proc = f"/proc/self/fd/{fd}"
    if os.path.exists(proc):
        return os.path.realpath(proc)
    return os.path.realpath(given)


def read_bytes(
    path: str | os.PathLike[str],
    what: str = "file",
    limit: int = MAX_BYTES,
    confine: Callable[[str], None] | None = None,
) -> bytes:
    """The bytes of a regular file; FileRefused naming the problem otherwise. `confine`
    is given the real path of the file actually opened, and raises to refuse it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FileRefused(_reason(path, what, exc)) from None
    try:
        if confine is not None:
            confine(opened_path(fd, path))
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"{what} {path} is {_kind(info.st_mode)}; give a regular file")
        if info.st_size > limit:
            raise FileRefused(
                f"{what} {path} is {info.st_size:,} bytes, over the {limit:,}-byte limit"
            )
        chunks = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # it grew while being read
                raise FileRefused(f"{what} {path} is over the {limit:,}-byte limit")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike[str], what: str = "file", limit: int = MAX_BYTES) -> str:
    data = read_bytes(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRefused(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None


def _reason(path: str | os.PathLike[str], what: str, exc: OSError) -> str:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        # A socket cannot even be opened (ENXIO): say what it is.
        return f"{what} {path} is {_kind(mode)}; give a regular file"
    if exc.errno == errno.ELOOP:
        return f"{what} {path} is a symlink loop (its links point back at each other)"
    if exc.errno == errno.ENOENT:
        target = Path(path)
        if target.is_symlink():
            return f"{what} {path} is a symlink to {os.readlink(target)}, which does not exist"
        return f"no such file: {path}"
    if exc.errno == errno.EACCES:
        return f"{what} {path} cannot be read: permission denied"
    if exc.errno == errno.EISDIR:
        return f"{what} {path} is a directory; give a regular file"
    return f"{what} {path} cannot be read: {exc.strerror}"
