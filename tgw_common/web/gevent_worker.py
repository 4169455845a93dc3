"""gunicorn's gevent worker with deadlines on what a client sends.

A gthread worker gives each connection a thread while it reads the request: eight clients
that open a connection and never finish their headers (two workers of four threads) took
the portal offline. Here a connection costs a greenlet, so thousands of them leave the
worker answering, and each still has a deadline so none is held for ever:

- headers: the request line and every header must have arrived within
  `header_timeout_seconds` of the connection opening (or of the previous response on a
  kept-alive connection). gunicorn already reads headers inside `timeout_ctx()`, a silent
  gevent.Timeout: when it fires the connection is closed without an answer, as for a
  client that went away. It is one deadline for the whole header, not per read, so a
  client trickling a byte at a time gains nothing.
- body and response: while the app runs, every read of the body and every write of the
  answer may wait at most `body_timeout_seconds` (a socket timeout); a stalled upload then
  ends in TimeoutError, which the apps answer with 408.

The deadlines come from the app's config section (outer or console), which gunicorn hands
to every worker as `self.app`. The module is imported only when gevent workers are chosen:
importing gevent is harmless, but its monkey-patching happens in the worker after the fork.
"""

from __future__ import annotations

import gevent
from gunicorn.workers.ggevent import GeventWorker


class DeadlineGeventWorker(GeventWorker):
    def _section(self):
        return self.app.section()

    def timeout_ctx(self):
        return gevent.Timeout(self._section().header_timeout_seconds, False)

    def handle_request(self, listener_name, req, sock, addr):
        sock.settimeout(self._section().body_timeout_seconds)
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            # Between requests only the header deadline applies (see timeout_ctx).
            sock.settimeout(None)
