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
import pathlib
import tempfile

import pytest

from helpers import ROLE

TOOL = ROLE / "files" / "lernmanager-tool.py"
USER = "nobody"
# The helper re-runs itself as the service user: the interpreter must be one that user may run,
# as Debian's is on a host (the tools venv's lies below root's home).
PYTHON = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the helper switches users: needs root")


def tool(*args):
    result = subprocess.run([PYTHON, str(TOOL), *map(str, args)], capture_output=True, text=True)
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
    result = subprocess.run([PYTHON, str(TOOL), "backup", f"--database={database}", f"--dest-dir={backups}",
                             "--label=a_to_b", f"--user={USER}"], capture_output=True, text=True)
    assert result.returncode != 0 and "migrations_done.txt is not a regular file" in result.stderr, result.stderr
    assert os.listdir(backups) == [], "no backup, not even a partial one"
    assert not any(SECRET in open(p, "rb").read() for p in files_below(tmp_path / "data", backups))


def test_restore_over_planted_links_writes_as_the_service_user(tmp_path, live_db, canary):
    database, db = live_db
    backups = tmp_path / "backups"
    backup = tool("backup", f"--database={database}", f"--dest-dir={backups}", "--label=x", f"--user={USER}")["backup"]
    db.close()
    plant(database.parent, PLANTED, canary)
    tool("restore", f"--backup={backup}", f"--database={database}", f"--user={USER}")
    record = database.parent / "migrations_done.txt"
    assert not record.is_symlink() and record.read_text() == "migrate_001.py\n", "the link was replaced"
    assert count(database) == 500
    assert not any(SECRET in open(p, "rb").read() for p in files_below(tmp_path / "data", backups))


def test_trial_migrations_run_as_the_service_user_on_a_copy(tmp_path, live_db, canary):
    database, db = live_db
    backups = tmp_path / "backups"
    backup = tool("backup", f"--database={database}", f"--dest-dir={backups}", "--label=a_to_b", f"--user={USER}")["backup"]
    release = tmp_path / "release"
    (release / "migrate").mkdir(parents=True)
    (release / "data").symlink_to(database.parent)
    # The migration reports who runs it and whether it could read root's file, then changes the copy.
    (release / "migrate" / "migrate_002_probe.py").write_text(
        "import os, sqlite3, sys\n"
        f"try:\n    open({str(canary)!r}).read(); readable = True\nexcept OSError:\n    readable = False\n"
        "sys.stderr.write(f'uid={os.geteuid()} canary_readable={readable}\\n')\n"
        "sqlite3.connect('data/mbi_tracker.db').execute('DROP TABLE pupils')\n"
        "sys.exit(3)\n")
    os.chmod(release, 0o755)
    env_file = tmp_path / "env"
    env_file.write_text("")
    os.chmod(env_file, 0o644)
    plant(tmp_path / "data", ["tmp"], canary)  # not the work dir: that one is the user's own
    work = tmp_path / "work"
    work.mkdir()
    shutil.chown(work, USER)
    result = subprocess.run([PYTHON, str(TOOL), "trial-migrate", f"--release={release}", f"--env-file={env_file}",
                             f"--backup={backup}", f"--user={USER}", f"--work-dir={work}"],
                            capture_output=True, text=True)
    assert result.returncode != 0, "the probe migration fails on purpose"
    report = json.loads(result.stdout)
    uid = int(subprocess.check_output(["id", "-u", USER]))
    assert report["failed"] == "migrate_002_probe.py"
    assert f"uid={uid} canary_readable=False" in report["stderr"]
    assert db.execute("SELECT count(*) FROM pupils").fetchone()[0] == 500, "the live database was not touched"
    assert os.listdir(work) == [], "the trial's copy is gone"
