"""The inbound spool as the runner uses it: tgw_common.spool.SpoolQueue, minus the syncs it
does not need, which cost more than anything else per envelope but the crypto.

- The try counter is advisory: it only stops a file that keeps killing the runner. After a
  kill -9 the page cache still holds it (nothing needs to be synced); only a power cut can
  lose the last increment, and then the poison file gets one try more. So it is published
  (temporary name, rename) without being made durable: that saves two syncs per claim.
- Finishing a file (its try counter removed) needs no sync of its own either: the
  envelope's durable state is the database row and the archived or quarantined file, each
  made durable before anything depends on it. The runner syncs the spool folders once
  per batch (`sync`).
- Every visible name is listed, not only regular files: the receiver publishes nothing
  else, so a directory, FIFO or symbolic link here is a mistake the runner must report
  (see `unreadable`), not a file to step over for ever.
Claiming, recovery and set-aside stay exactly as in SpoolQueue.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from tgw_common.spool import HIDDEN, Claimed, SpoolQueue, publish, sync_folders

_NOT_REGULAR = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket",
                stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}


def _os_error(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno, "") if exc.errno else ""
    return f"{name} ({exc.strerror})" if name else str(exc)


def unreadable(path: Path, *, read: bool = True) -> str | None:
    """Why `path` cannot be read as an envelope, or None when it can.

    Only a regular file is opened, never followed through a link: opening a FIFO blocks until
    someone writes to it, and a link may point at anything (or, once claimed, at nothing, if
    it was relative). With read=False only the file's type is checked (one lstat, cheap
    enough for every claim); with read=True one byte is read too.
    """
    try:
        mode = os.lstat(path).st_mode
    except OSError as exc:
        return f"cannot stat the file: {_os_error(exc)}"
    if stat.S_ISLNK(mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"not a regular file: a symbolic link to {target}"
    if not stat.S_ISREG(mode):
        return f"not a regular file: {_NOT_REGULAR.get(stat.S_IFMT(mode), 'an unknown kind of file')}"
    if not read:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            os.read(fd, 1)
        finally:
            os.close(fd)
    except OSError as exc:
        return f"cannot read the file: {_os_error(exc)}"
    return None


class IntakeQueue(SpoolQueue):
    def ready(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.root) if not e.name.startswith(HIDDEN))
        except FileNotFoundError:
            return []

    def _set_tries(self, name: str, tries: int) -> None:
        tmp = self.tmp / f".{name}.{os.getpid()}.tries"
        tmp.write_bytes(str(tries).encode())
        publish(tmp, self.tries_dir / name, sync=False)

    def set_tries(self, name: str, tries: int) -> None:
        """Give a try back (the failure was the database's or the disk's, not the file's)."""
        self._set_tries(name, tries)

    def give_back(self, claimed: Claimed) -> None:
        """Back to the queue with its try not counted (the trouble was not the file's)."""
        self.release(claimed)
        self._set_tries(claimed.name, claimed.tries - 1)

    leases = 0  # the spool's claims are renames, not leases

    def lost(self, claimed: Claimed) -> None:
        raise AssertionError("a spool claim cannot be lost")

    def forget(self, claimed: Claimed) -> None:
        """Like finish(), with the folder left for the next `sync()` to make durable."""
        claimed.path.unlink(missing_ok=True)
        (self.tries_dir / claimed.name).unlink(missing_ok=True)

    def sync(self) -> None:
        sync_folders(self.claimed, self.tries_dir)
