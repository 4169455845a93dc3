"""Starting, watching and stopping supervisord over its UNIX socket (no TCP, mode 0700).

The only XML-RPC peer is our own supervisord on that socket, hence the `nosec B411` on
the xmlrpc import (bandit's warning is about parsing XML from untrusted servers).
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
import xmlrpc.client  # nosec B411
from pathlib import Path
from urllib.parse import urlsplit

from .layout import UDP_PORTS, Layout, ports


class ControlError(Exception):
    """supervisord could not be started, reached or stopped; the message says why."""


def rpc(layout: Layout) -> xmlrpc.client.ServerProxy:
    from supervisor.xmlrpc import SupervisorTransport

    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=SupervisorTransport(None, None,
                                                                                      layout.supervisor_url))


def supervisor_pid(layout: Layout) -> int | None:
    """supervisord's pid if its pidfile names a live process."""
    try:
        pid = int(layout.pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def process_info(layout: Layout) -> list[dict] | None:
    """Every program's state from supervisord, or None when it does not answer."""
    if not layout.socket.exists():
        return None
    try:
        return rpc(layout).supervisor.getAllProcessInfo()
    except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
        return None


def busy_ports(port_base: int, *, loss: bool, console: bool) -> list[str]:
    """Ports of the appliance already taken by someone else (checked before anything starts)."""
    taken = []
    for name, port in ports(port_base).items():
        if (name == "relay" and not loss) or (name == "console" and not console):
            continue
        kind = socket.SOCK_DGRAM if name in UDP_PORTS else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:
                # As the servers do: connections of a previous run in TIME_WAIT do not block the port.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError as exc:
                taken.append(f"{name} 127.0.0.1:{port} ({'UDP' if kind == socket.SOCK_DGRAM else 'TCP'}): "
                             f"{exc.strerror}")
    return taken


def start_supervisord(layout: Layout) -> None:
    """Run supervisord on DIR/supervisord.conf; it daemonizes, so this returns once it answers."""
    exe = Path(sys.executable).parent / "supervisord"
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "supervisor.supervisord"]
    layout.log_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    done = subprocess.run([*cmd, "-c", str(layout.supervisor_conf)], cwd=layout.root, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise ControlError(f"supervisord did not start (exit {done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[-2000:]}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process_info(layout) is not None:
            return
        time.sleep(0.2)
    raise ControlError(f"supervisord does not answer on {layout.socket}; see {layout.log_dir / 'supervisord.log'}")


def wait_running(layout: Layout, *, timeout: float, progress=None) -> list[dict]:
    """Until every program is RUNNING; raise with the culprits when one is FATAL or time runs out."""
    deadline = time.monotonic() + timeout
    last: list[dict] = []
    while time.monotonic() < deadline:
        info = process_info(layout)
        if info is not None:
            last = info
            fatal = [p for p in info if p["statename"] in ("FATAL", "EXITED", "STOPPED")]
            if fatal:
                raise ControlError("; ".join(f"{p['name']} is {p['statename']} ({p['description']})" for p in fatal))
            waiting = [p["name"] for p in info if p["statename"] != "RUNNING"]
            if progress:
                progress(waiting)
            if not waiting:
                return info
        time.sleep(0.5)
    waiting = [f"{p['name']} {p['statename']}" for p in last if p["statename"] != "RUNNING"]
    raise ControlError(f"not RUNNING after {timeout:.0f} s: {', '.join(waiting) or 'supervisord silent'}")


def portal_answers(url: str, *, timeout: float) -> bool:
    """True once GET /login answers 200 (the workers are up and read the database)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=5)
        try:
            conn.request("GET", "/login")
            if conn.getresponse().status == 200:
                return True
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(0.3)
    return False


def shutdown(layout: Layout, *, timeout: float) -> bool:
    """Ask supervisord to stop every program (reverse priority, each waited for) and exit.

    True when it was running and is gone now; False when it was not running.
    """
    pid = supervisor_pid(layout)
    if pid is None and process_info(layout) is None:
        return False
    try:
        rpc(layout).supervisor.shutdown()
    except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError) as exc:
        if pid is None:
            raise ControlError(f"supervisord does not answer on {layout.socket}: {exc}") from None
        os.kill(pid, 15)  # SIGTERM makes supervisord do the same orderly shutdown
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if supervisor_pid(layout) is None:
            return True
        time.sleep(0.2)
    raise ControlError(f"supervisord (pid {pid}) still running after {timeout:.0f} s; see {layout.log_dir}")


def log_tail(layout: Layout, program: str, lines: int = 15) -> str:
    path = layout.log_dir / f"{program}.log"
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
