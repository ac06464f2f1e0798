"""The role's deploy-time helper (files/lernmanager-tool.py) on real SQLite files, no containers.

Backups must be consistent snapshots of a live WAL database, restores must put back the database
with its migration record and no stale WAL, and housekeeping must never remove the live or the
previous release. Needs root (the helper drops to the service user, here `nobody`).
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import pathlib
import tempfile

import pytest

from helpers import ROLE

TOOL = ROLE / "files" / "lernmanager-tool.py"
USER = "nobody"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the helper switches users: needs root")


def tool(*args):
    result = subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def tmp_path():
    """pytest's own tmp_path lies below a root-only directory the service user cannot traverse."""
    path = tempfile.mkdtemp(prefix="lm-tool-test-", dir="/var/tmp")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path)


@pytest.fixture
def live_db(tmp_path):
    """A WAL database with committed rows still in its -wal file, held open as a live app would."""
    data = tmp_path / "data"
    data.mkdir()
    database = data / "mbi_tracker.db"
    db = sqlite3.connect(database)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")  # keep the rows in the WAL: a plain copy misses them
    db.execute("CREATE TABLE pupils (id INTEGER PRIMARY KEY, name TEXT)")
    db.executemany("INSERT INTO pupils (name) VALUES (?)", [(f"pupil {i}",) for i in range(500)])
    db.commit()
    (data / "migrations_done.txt").write_text("migrate_001.py\n")
    shutil.chown(data, USER)
    for path in data.iterdir():
        shutil.chown(path, USER)
    yield database, db
    db.close()


def count(path):
    db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        return db.execute("SELECT count(*) FROM pupils").fetchone()[0]
    finally:
        db.close()


def test_backup_is_a_consistent_snapshot_of_a_live_wal_database(tmp_path, live_db):
    database, _ = live_db
    assert os.path.getsize(str(database) + "-wal") > 0, "the rows are still in the WAL"
    backups = tmp_path / "backups"
    result = tool("backup", f"--database={database}", f"--dest-dir={backups}", "--label=a_to_b", f"--user={USER}")
    backup = result["backup"]
    assert result["changed"] and result["integrity"] == "ok"
    assert count(backup) == 500
    assert (os.stat(backup).st_uid, os.stat(backup).st_mode & 0o777) == (0, 0o600)
    assert open(backup[:-3] + ".migrations_done.txt").read() == "migrate_001.py\n"
    assert [p.name for p in database.parent.iterdir() if p.name.startswith(".backup")] == []


def test_backups_beyond_keep_are_removed(tmp_path, live_db):
    database, _ = live_db
    backups = tmp_path / "backups"
    for label in ("a", "b", "c"):
        tool("backup", f"--database={database}", f"--dest-dir={backups}", f"--label={label}", f"--user={USER}", "--keep=2")
        os.utime(backups, None)
    names = sorted(os.listdir(backups))
    assert len([n for n in names if n.endswith(".db")]) == 2


def test_restore_puts_back_database_and_migration_record(tmp_path, live_db):
    database, db = live_db
    backups = tmp_path / "backups"
    backup = tool("backup", f"--database={database}", f"--dest-dir={backups}", "--label=x", f"--user={USER}")["backup"]
    db.execute("DELETE FROM pupils")
    db.commit()
    db.close()
    (database.parent / "migrations_done.txt").write_text("migrate_001.py\nmigrate_002.py\n")
    tool("restore", f"--backup={backup}", f"--database={database}", f"--user={USER}")
    assert not os.path.exists(str(database) + "-wal")
    assert count(database) == 500
    assert (database.parent / "migrations_done.txt").read_text() == "migrate_001.py\n"
    st = os.stat(database)
    assert (st.st_uid, st.st_mode & 0o777) == (int(subprocess.check_output(["id", "-u", USER])), 0o640)


def make_release(root, name, venv, age):
    release = root / "releases" / name
    release.mkdir(parents=True)
    (release / ".venv").symlink_to(root / "venvs" / venv)
    os.utime(release, (age, age))


def test_cleanup_keeps_newest_live_and_previous(tmp_path):
    root, prefix = tmp_path / "app", tmp_path / "pycache"
    for venv in ("v-old", "v-new"):
        (root / "venvs" / venv).mkdir(parents=True)
    for age, name in enumerate(["r1", "r2", "r3", "r4", "r5"]):
        make_release(root, name, "v-old" if name in ("r1", "r2") else "v-new", 1_000_000 + age)
    (root / "current").symlink_to("releases/r5")
    (root / "previous").symlink_to("releases/r1")  # e.g. after a rollback to an old release
    bytecode = prefix / str(root / "releases" / "r2").lstrip("/")
    bytecode.mkdir(parents=True)
    dry = tool("cleanup", f"--root={root}", f"--prefix={prefix}", "--keep=2", "--dry-run")
    assert dry["changed"] and (root / "releases" / "r2").exists()
    result = tool("cleanup", f"--root={root}", f"--prefix={prefix}", "--keep=2")
    assert result["removed_releases"] == ["r3", "r2"]
    assert sorted(os.listdir(root / "releases")) == ["r1", "r4", "r5"]
    assert result["removed_venvs"] == [], "r1 (previous) still uses v-old"
    assert not bytecode.exists()
    assert tool("cleanup", f"--root={root}", f"--prefix={prefix}", "--keep=2")["changed"] is False
