"""`tgw up` puts right what an older version left readable to every local user."""

from __future__ import annotations

import os
import stat

from tgw.appliance.provision import owner_only


def test_owner_only_takes_group_and_other_bits_off_an_old_tree(tmp_path):
    root = tmp_path / "app"
    (root / "var").mkdir(parents=True)
    db = root / "var" / "inner.db"
    db.write_bytes(b"payees")
    (root / "var" / "inner.db-wal").write_bytes(b"")
    script = root / "run.sh"
    script.write_text("#!/bin/sh\n")
    os.chmod(root, 0o755)
    os.chmod(root / "var", 0o2775)
    os.chmod(db, 0o644)
    os.chmod(root / "var" / "inner.db-wal", 0o664)
    os.chmod(script, 0o755)
    (root / "link").symlink_to(db)

    assert owner_only(root) == 5
    modes = {p.name: stat.S_IMODE(p.lstat().st_mode) for p in (root, *root.rglob("*")) if not p.is_symlink()}
    assert modes == {"app": 0o700, "var": 0o2700, "inner.db": 0o600, "inner.db-wal": 0o600, "run.sh": 0o700}
    assert owner_only(root) == 0  # nothing left to do
