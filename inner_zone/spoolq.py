"""The inbound spool as the runner uses it: tgw_common.spool.SpoolQueue, minus fsyncs it does
not need, which cost more than anything else per envelope but the crypto.

- The try counter is advisory: it only stops a file that keeps killing the runner. After a
  kill -9 the page cache still holds it (no fsync needed); only a power cut can lose the
  last increment, and then the poison file gets one try more. So it is written atomically
  (temporary name, rename) but not fsynced: that saves two fsyncs per claim.
- Finishing a file (its try counter removed) needs no fsync of its own either: the
  envelope's durable state is the database row and the archived or quarantined file, each
  made durable before anything depends on it. The runner fsyncs the spool folders once
  per batch (`sync`).
Claiming, recovery and set-aside stay exactly as in SpoolQueue.
"""

from __future__ import annotations

import os

from tgw_common.spool import Claimed, SpoolQueue, fsync_dir


class IntakeQueue(SpoolQueue):
    def _set_tries(self, name: str, tries: int) -> None:
        tmp = self.tmp / f".{name}.{os.getpid()}.tries"
        with open(tmp, "wb") as fh:
            fh.write(str(tries).encode())
        os.replace(tmp, self.tries_dir / name)

    def set_tries(self, name: str, tries: int) -> None:
        """Give a try back (the failure was the database's or the disk's, not the file's)."""
        self._set_tries(name, tries)

    def forget(self, claimed: Claimed) -> None:
        """Like finish(), with the folder fsync left to the next `sync()`."""
        claimed.path.unlink(missing_ok=True)
        (self.tries_dir / claimed.name).unlink(missing_ok=True)

    def sync(self) -> None:
        for folder in (self.claimed, self.tries_dir):
            fsync_dir(folder)
