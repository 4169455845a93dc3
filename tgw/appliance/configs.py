"""The zones' config files of the appliance, written from the templates in config/appliance/.

The templates are plain YAML with a few ${NAME} values (ports, the sender's target, the
supervisor socket); paths in them are relative to DIR/config, so only what depends on
this run is substituted. They are rewritten at every `tgw up` (they are derived from the
settings), while the PKI, the databases and the credentials are created only once.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from tgw_common.config import ConfigError, load_config
from tgw_common.spool import write_atomic

from .layout import Layout, Settings, ports

# The templates are part of the source tree (the appliance is run from a checkout, after `make setup`).
TEMPLATES = Path(__file__).resolve().parents[2] / "config" / "appliance"
ZONES = ("outer", "inner")


def has_console() -> bool:
    """Whether this installation has the inner operator console (`tgw inner console`)."""
    from inner_zone.cli import inner

    return "console" in inner.commands


def values(layout: Layout, settings: Settings, *, console: bool) -> dict[str, str]:
    p = ports(settings.port_base)
    target = p["relay"] if settings.loss is not None else p["receive"]
    return_target = p["return_relay"] if settings.loss is not None else p["return_receive"]
    return {
        "WEB_BIND": f"127.0.0.1:{p['web']}",
        "CONSOLE_BIND": f"127.0.0.1:{p['console']}",
        "SEND_TARGET": f"127.0.0.1:{target}",
        "RECEIVE_LISTEN": f"127.0.0.1:{p['receive']}",
        "RETURN_TARGET": f"127.0.0.1:{return_target}",
        "RETURN_LISTEN": f"127.0.0.1:{p['return_receive']}",
        "OUTER_FEED": layout.feed("outer"),
        "INNER_FEED": layout.feed("inner"),
        "OUTER_METRICS": f"127.0.0.1:{p['metrics_outer']}",
        "INNER_METRICS": f"127.0.0.1:{p['metrics_inner']}",
        "SMTP_PORT": str(p["smtp"]),
        "SUPERVISOR_URL": layout.supervisor_url,
        "REPEAT_SCHEDULE": "[" + ", ".join(f"{x:g}" for x in settings.repeat_schedule) + "]",
        "CONSOLE_WATCH": ("- {name: inner-console, supervisor_program: inner-console}" if console
                          else "# inner-console: not installed in this version"),
    }


def render(name: str, mapping: dict[str, str], *, templates: Path = TEMPLATES) -> str:
    path = templates / f"{name}.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: template not found (run from a source checkout, after `make setup`)") from None
    try:
        return Template(text).substitute(mapping)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{path}: unknown or malformed placeholder {exc}") from None


def write_configs(layout: Layout, settings: Settings, *, console: bool, templates: Path = TEMPLATES) -> list[Path]:
    """Render both zones' files into DIR/config and check that each loads as a valid config."""
    mapping = values(layout, settings, console=console)
    written = []
    for zone in ZONES:
        dest = layout.config_dir / f"{zone}.yaml"
        write_atomic(dest, render(zone, mapping, templates=templates).encode("utf-8"))
        load_config(dest)  # a template mistake is reported here, naming file and key, not by a dying daemon
        written.append(dest)
    return written
