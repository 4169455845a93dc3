"""The openssl commands of docs/envelope.md, run verbatim, make an envelope the gateway accepts.

An agency developer builds envelopes from that page alone, so its command blocks are
taken out of the page (the fenced blocks after `<!-- envelope-doc-test: build -->` and
`<!-- envelope-doc-test: check -->`) and run as one bash script in an empty folder, with
the real `openssl`, `zip` and this installation's `tgw`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from shutil import which

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "envelope.md"
MARKED = re.compile(r"<!-- envelope-doc-test: (\w+) -->\s*\n```(?:sh|bash)\n(.*?)\n```", re.DOTALL)

pytestmark = pytest.mark.skipif(which("openssl") is None or which("zip") is None,
                                reason="needs the openssl and zip commands")


def marked_blocks() -> dict[str, str]:
    return dict(MARKED.findall(DOC.read_text(encoding="utf-8")))


def last_json_object(output: str) -> dict:
    """The JSON verdict printed by the block's last command (earlier commands print text)."""
    start = output.rfind("\n{\n")
    start = 0 if output.startswith("{\n") and start < 0 else start + 1
    return json.loads(output[start:])


def test_the_page_has_the_whole_sequence():
    blocks = marked_blocks()
    assert set(blocks) == {"build", "check"}, "docs/envelope.md must mark its build and check blocks"
    build = blocks["build"]
    for step in ("manifest.json", "zip ", "openssl cms -sign", "openssl cms -resign", "openssl cms -encrypt",
                 "rsa_padding_mode:oaep", "rsa_oaep_md:sha256", "-out envelope.p7m"):
        assert step in build, f"the build block lacks {step!r}"
    assert build.index("cms -resign") < build.index("cms -encrypt") < build.rindex("cms -sign")
    assert "tgw envelope open envelope.p7m" in blocks["check"] and "--json" in blocks["check"]


def test_doc_commands_build_an_envelope_the_gateway_accepts(tmp_path):
    blocks = marked_blocks()
    script = tmp_path / "envelope-doc.sh"
    script.write_text(blocks["build"] + "\n" + blocks["check"] + "\n", encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["bash", "-euo", "pipefail", str(script)], cwd=work, env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    verdict = last_json_object(result.stdout)
    assert verdict["accepted"] is True, verdict
    assert verdict["agency"] == "A10001"
    assert verdict["release"]["role"] == "releaser"
    assert sorted(a["role"] for a in verdict["approvals"]) == ["accountant", "head"]
    assert verdict["seal"] == {"content_type": "enveloped_data", "key_transport": "rsaes_oaep",
                               "cipher": "aes256_cbc", "recipients": 1}
    assert verdict["control"] == {"document_count": 1, "total_amount": 12500}
    assert [d["path"] for d in verdict["documents"]] == ["documents/voucher-0001.json"]
