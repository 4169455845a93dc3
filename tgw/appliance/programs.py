"""The appliance's programs under supervisord, and the supervisord.conf that runs them.

Priorities follow the envelope's path backwards: what receives starts first and stops last,
so nothing is sent to a hop that is not listening, and at `tgw down` the portal stops taking
uploads before the hops behind it stop (supervisord stops in reverse priority order, one
program at a time, and waits for each). Each program is its own supervisor group for that
reason: inside one group supervisord stops every process at once.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from .layout import Layout, Settings, ports

EVENT_LISTENER = "supervisor-events"
# supervisord waits 1 s more before each new try of a program that died while STARTING and
# gives up (FATAL) after `startretries` tries: 50 tries span about 21 minutes, far beyond any
# burst of kills, while a program that cannot start at all still ends FATAL (with the event
# listener trying again, slower and slower, and the monitor mailing what to run).
START_RETRIES = 50


@dataclass(frozen=True)
class Program:
    name: str
    zone: str  # "outer", "inner" or "appliance" (the link's relay and the mail sink belong to neither)
    hop: str | None  # the envelope hop it runs, for `tgw status`
    priority: int
    args: tuple[str, ...]  # after `tgw`
    stopwaitsecs: int  # above the longest work it finishes after SIGTERM
    startsecs: int = 3


def tgw_command() -> list[str]:
    """The `tgw` of this installation (the venv's entry point, or the interpreter with -m tgw)."""
    script = Path(sys.executable).parent / "tgw"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tgw"]


def programs(layout: Layout, settings: Settings, *, console: bool) -> list[Program]:
    p = ports(settings.port_base)
    outer, inner = str(layout.outer_config), str(layout.inner_config)
    out = [
        Program("smtp-sink", "appliance", None, 10,
                ("appliance", "smtp-sink", "--listen", f"127.0.0.1:{p['smtp']}", "--dir", str(layout.mail_dir)), 10),
        Program("monitor-outer", "outer", None, 100, ("monitor", "run", "--config", outer), 20),
        Program("monitor-inner", "inner", None, 101, ("monitor", "run", "--config", inner), 20),
        # The return link, receiving end first: receipts verified and stored on the outer side.
        Program("outer-receipts", "outer", "outer-receipts", 150, ("outer", "receipts", "run", "--config", outer), 20),
        Program("return-receive", "outer", "return-receive", 160, ("transfer", "receive", "--config", outer), 60),
        # A 200 MB envelope takes about two minutes to open and load on a 2-core machine.
        Program("inner-runner", "inner", "inner-runner", 200, ("inner", "run", "--config", inner), 180),
        # The keeper finishes the publication it is writing (hash check and sync of a large file).
        Program("transfer-receive", "inner", "transfer-receive", 210, ("transfer", "receive", "--config", inner), 60),
    ]
    out += [
        Program("inner-receipts", "inner", "inner-receipts", 215, ("inner", "receipts", "run", "--config", inner), 20),
        Program("return-send", "inner", "return-send", 216, ("transfer", "send", "--config", inner), 30),
    ]
    if console:
        out.append(Program("inner-console", "inner", None, 220, ("inner", "console", "--config", inner), 30))
    if settings.loss is not None:
        out.append(Program("transfer-relay", "appliance", None, 300,
                           ("transfer", "relay", "--listen", f"127.0.0.1:{p['relay']}", "--to",
                            f"127.0.0.1:{p['receive']}", "--loss", f"{settings.loss:g}", "--seed",
                            str(settings.relay_seed)), 10, startsecs=2))
        out.append(Program("return-relay", "appliance", None, 301,
                           ("transfer", "relay", "--listen", f"127.0.0.1:{p['return_relay']}", "--to",
                            f"127.0.0.1:{p['return_receive']}", "--loss", f"{settings.loss:g}", "--seed",
                            str(settings.relay_seed + 1)), 10, startsecs=2))
    out += [
        # A copy in flight ends within its 0.1 s slice; the sender then records and exits.
        Program("transfer-send", "outer", "transfer-send", 400, ("transfer", "send", "--config", outer), 30),
        # gunicorn waits 30 s (graceful_timeout) for uploads in progress.
        Program("outer-web", "outer", "outer-web", 500, ("outer", "serve", "--config", outer), 60),
    ]
    return out


def _command(args: list[str]) -> str:
    # supervisord expands %(name)s in every value and splits the command with shlex.
    return shlex.join(args).replace("%", "%%")


def _path(path: Path) -> str:
    return str(path).replace("%", "%%")


def supervisord_conf(layout: Layout, settings: Settings, *, console: bool) -> str:
    tgw = tgw_command()
    log = layout.log_dir
    lines = [
        "; Written by `tgw up` at every start; edit config/appliance/ or tgw/appliance/programs.py instead.",
        "; docs/appliance.md explains the programs, their order and the folder layout.",
        "[unix_http_server]",
        f"file={_path(layout.socket)}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={_path(log / 'supervisord.log')}",
        "logfile_maxbytes=10MB",
        "logfile_backups=3",
        f"pidfile={_path(layout.pidfile)}",
        f"childlogdir={_path(log)}",
        f"directory={_path(layout.root)}",
        "identifier=tgw-appliance",
        "umask=077",
        "nodaemon=false",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_path(layout.socket)}",
        "",
    ]
    for prog in programs(layout, settings, console=console):
        lines += [
            f"[program:{prog.name}]",
            f"command={_command([*tgw, '--log-level', 'INFO', *prog.args])}",
            f"priority={prog.priority}",
            "autostart=true",
            # Whatever ended it (a crash, kill -9, a stray SIGTERM ending it cleanly) it comes back;
            # only supervisorctl stop (and `tgw down`) keeps it stopped.
            "autorestart=true",
            "exitcodes=0",
            f"startsecs={prog.startsecs}",
            f"startretries={START_RETRIES}",
            "stopsignal=TERM",
            f"stopwaitsecs={prog.stopwaitsecs}",
            # gunicorn's workers and any helper processes go with their parent.
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={_path(log / f'{prog.name}.log')}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=3",
            "",
        ]
    lines += [
        # Exits and FATAL states go to the zones' databases at once (the monitors read them);
        # TICK_5 makes the listener's own heartbeat, so a dead listener is noticed too.
        f"[eventlistener:{EVENT_LISTENER}]",
        f"command={_command([*tgw, '--log-level', 'INFO', 'appliance', 'supervisor-events', '--dir', str(layout.root)])}",
        # It also starts a FATAL program again, after a growing pause (listener.py).
        "events=PROCESS_STATE_EXITED,PROCESS_STATE_FATAL,TICK_5",
        "priority=20",
        "autostart=true",
        "autorestart=true",
        "exitcodes=0",
        "startsecs=1",
        f"startretries={START_RETRIES}",
        "stopsignal=TERM",
        "stopwaitsecs=10",
        "stopasgroup=true",
        "killasgroup=true",
        "buffer_size=100",
        # stdout is the event protocol, not a log.
        "stdout_logfile=NONE",
        f"stderr_logfile={_path(log / f'{EVENT_LISTENER}.log')}",
        "stderr_logfile_maxbytes=10MB",
        "stderr_logfile_backups=3",
        "",
    ]
    return "\n".join(lines)


def zone_of(program: str) -> str:
    """Which zone's database records what happens to a program (see programs())."""
    if program.startswith(("outer-", "monitor-outer", "transfer-send", "return-receive")):
        return "outer"
    if program.startswith(("inner-", "monitor-inner", "transfer-receive", "return-send")):
        return "inner"
    return "appliance"
