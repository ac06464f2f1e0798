"""The database module (plugins/modules/database.py), run through `ansible localhost -m` on real
SQLite files, no containers.

Backups must be consistent snapshots of a live WAL database, restores must put back the database
with its migration record and no stale WAL, and a hostile service user must get nothing out of
root. Trial migrations run the app's code in the service's sandbox, which needs systemd: they are
tested on a host (molecule/upgrade/tests/test_app_module_in_sandbox.py). Needs root (the module drops to the
service user, here `nobody`).
"""

import os
import shutil
import sqlite3
import subprocess
import pathlib
import tempfile

import pytest

from helpers import run_module

USER = "nobody"
# The module's child (the service user) imports nothing new, but the app's migrations it runs need
# an interpreter that user may run, as Debian's is on a host (the tools venv's lies below root's home).
PYTHON = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the module switches users: needs root")


def database_module(action, check=False, ok=True, **args):
    result = run_module("database", {"action": action, "user": USER, **{k: str(v) if isinstance(v, pathlib.Path)
                                                                           else v for k, v in args.items()}},
                        check=check, python=PYTHON)
    if ok:
        assert not result["_failed"], result.get("msg")
    return result


def backup(database, backups, label="x", **args):
    return database_module("backup", database=database, backup_dir=backups, label=label, **args)


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
    check = backup(database, backups, "a_to_b", check=True)
    assert check["changed"] and not backups.exists(), "check mode writes nothing"
    result = backup(database, backups, "a_to_b")
    backup_path = result["backup"]
    assert result["changed"] and result["integrity"] == "ok"
    assert count(backup_path) == 500
    assert (os.stat(backup_path).st_uid, os.stat(backup_path).st_mode & 0o777) == (0, 0o600)
    assert open(backup_path[:-3] + ".migrations_done.txt").read() == "migrate_001.py\n"
    assert [p.name for p in database.parent.iterdir() if p.name.startswith(".")] == [], "no temp file left"


def test_backups_beyond_keep_are_removed(tmp_path, live_db):
    database, _ = live_db
    backups = tmp_path / "backups"
    for label in ("a", "b", "c"):
        backup(database, backups, label, keep=2)
        os.utime(backups, None)
    names = sorted(os.listdir(backups))
    assert len([n for n in names if n.endswith(".db")]) == 2


def test_restore_puts_back_database_and_migration_record(tmp_path, live_db):
    database, db = live_db
    backups = tmp_path / "backups"
    backup_path = backup(database, backups)["backup"]
    db.execute("DELETE FROM pupils")
    db.commit()
    db.close()
    (database.parent / "migrations_done.txt").write_text("migrate_001.py\nmigrate_002.py\n")
    assert database_module("restore", check=True, database=database, backup=backup_path)["changed"]
    assert count(database) == 0, "check mode restores nothing"
    database_module("restore", database=database, backup=backup_path)
    assert not os.path.exists(str(database) + "-wal")
    assert count(database) == 500
    assert (database.parent / "migrations_done.txt").read_text() == "migrate_001.py\n"
    st = os.stat(database)
    assert (st.st_uid, st.st_mode & 0o777) == (int(subprocess.check_output(["id", "-u", USER])), 0o640)


def test_a_damaged_backup_is_checked_by_the_service_user_and_changes_nothing(tmp_path, live_db):
    """Root never lets SQLite parse bytes the service made: the child checks them, and refuses."""
    database, db = live_db
    db.close()
    backup_path = backup(database, tmp_path / "backups")["backup"]
    with open(backup_path, "r+b") as damaged:
        damaged.write(b"not a database header at all")
    result = database_module("restore", ok=False, database=database, backup=backup_path)
    assert result["_failed"] and f"the restore as {USER} failed" in result["msg"], result["msg"]
    assert "not a database" in result["msg"], result["msg"]
    assert count(database) == 500, "the live database is untouched"


# --- a hostile service user: every name root used to touch in data/ is planted as a link ---------
# From the helper as it was (issue 9): restore wrote data/.restore.tmp and
# data/migrations_done.txt.tmp, then chowned and renamed them; backup copied
# data/migrations_done.txt as root. Planted as links to a root-only file, each handed the file to
# the service user or read it out into a backup.
PLANTED = [".restore.tmp", "migrations_done.txt.tmp", "migrations_done.txt"]
SECRET = b"root-only canary: must never leave this file\n"


@pytest.fixture
def canary(tmp_path):
    path = tmp_path / "canary"
    path.write_bytes(SECRET)
    os.chmod(path, 0o600)
    before = os.stat(path)
    yield path
    after = os.stat(path)
    assert path.read_bytes() == SECRET
    assert (after.st_uid, after.st_gid, after.st_mode, after.st_ino) == (
        before.st_uid, before.st_gid, before.st_mode, before.st_ino)


def plant(directory, names, target):
    """As the service user (it owns the directory), as a compromised app would."""
    for name in names:
        subprocess.run(["setpriv", f"--reuid={USER}", "--regid=nogroup", "--clear-groups",
                        "ln", "-sfn", str(target), str(directory / name)], check=True)


def files_below(*tops):
    for top in tops:
        for root, _, names in os.walk(top):
            for name in names:
                path = os.path.join(root, name)
                if not os.path.islink(path):
                    yield path


def test_a_planted_record_fails_the_backup_and_leaks_nothing(tmp_path, live_db, canary):
    database, _ = live_db
    plant(database.parent, PLANTED, canary)
    backups = tmp_path / "backups"
    result = backup(database, backups, "a_to_b", ok=False)
    assert result["_failed"] and "migrations_done.txt is not a regular file" in result["msg"], result["msg"]
    assert "-e lernmanager_quarantine_planted=true" in result["msg"], "the way on is named"
    assert os.listdir(backups) == [], "no backup, not even a partial one"
    assert not any(SECRET in open(p, "rb").read() for p in files_below(tmp_path / "data", backups))


def test_restore_over_planted_links_writes_as_the_service_user(tmp_path, live_db, canary):
    database, db = live_db
    backups = tmp_path / "backups"
    backup_path = backup(database, backups)["backup"]
    db.close()
    # The journal names SQLite opens beside the database, and a FIFO: unlinked before the restore.
    plant(database.parent, PLANTED + ["mbi_tracker.db-wal", "mbi_tracker.db-journal"], canary)
    subprocess.run(["setpriv", f"--reuid={USER}", "--regid=nogroup", "--clear-groups",
                    "mkfifo", str(database.parent / "planted-fifo")], check=True)
    database_module("restore", database=database, backup=backup_path)
    record = database.parent / "migrations_done.txt"
    assert not record.is_symlink() and record.read_text() == "migrate_001.py\n", "the link was replaced"
    left = sorted(entry.name for entry in os.scandir(database.parent)
                  if entry.is_symlink() or not entry.is_file(follow_symlinks=False))
    assert left == [], f"planted entries left in data/: {left}"
    assert count(database) == 500
    assert not any(SECRET in open(p, "rb").read() for p in files_below(tmp_path / "data", backups))


