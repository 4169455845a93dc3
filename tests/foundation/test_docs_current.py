"""The generated reference docs match the code they describe."""

from pathlib import Path

from tgw_common.docs_gen import config_table_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_configuration_doc_lists_every_key():
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert config_table_markdown() in text, "docs/configuration.md is stale: run `python -m tgw_common.docs_gen`"


def test_every_cli_verb_is_documented():
    """Each `tgw GROUP VERB` appears in docs/cli.md or the part's own doc."""
    import click

    from tgw.cli import main

    docs = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.md"))
    missing = []
    for name, group in main.commands.items():
        if isinstance(group, click.Group):
            missing += [f"tgw {name} {verb}" for verb in group.commands if f"tgw {name} {verb}" not in docs]
        elif f"tgw {name}" not in docs:
            missing.append(f"tgw {name}")
    assert not missing, f"undocumented CLI verbs: {missing}"
