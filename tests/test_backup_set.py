"""The backup set (plugins/module_utils/backup_set.py) and the host script that streams it into
restic (roles/lernmanager/files/lernmanager_backup.py), on real files, as root with `nobody` as the
service user. restic itself runs in the Molecule scenario `default`; here: what goes into the
stream, and that nothing the service user planted gets root to read what it should not."""

import importlib.machinery
import importlib.util
import io
import json
import os
import pathlib
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile

import pytest
import yaml

from helpers import REPO, load_plugin

USER = "nobody"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the set is read as the service user: needs root")
SECRET = b"root-only canary 5f1c"


@pytest.fixture
def host():
    """A host's files: a live WAL database, uploads with a binary file and planted links and a
    FIFO, reports, root's config and live state, and a root-only canary."""
    top = pathlib.Path(tempfile.mkdtemp(prefix="lm-set-test-", dir="/var/tmp"))
    os.chmod(top, 0o755)
    data, instance, config = top / "data", top / "instance", top / "config"
    for path in (data, instance / "uploads" / "class-7a", instance / "reports", config):
        path.mkdir(parents=True)
    db = sqlite3.connect(data / "mbi_tracker.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE pupils (id INTEGER PRIMARY KEY, name TEXT)")
    db.executemany("INSERT INTO pupils (name) VALUES (?)", [(f"pupil {i}",) for i in range(300)])
    db.commit()
    (data / "migrations_done.txt").write_text("migrate_001.py\n")
    (instance / "uploads" / "class-7a" / "drawing.png").write_bytes(bytes(range(256)) * 40)
    (instance / "uploads" / "notes.txt").write_text("Hausaufgabe\n")
    (instance / "reports" / "week.pdf").write_bytes(b"%PDF-1.4 report")
    canary = top / "canary"
    canary.write_bytes(SECRET)
    os.chmod(canary, 0o600)
    os.symlink(canary, instance / "uploads" / "planted-link")
    os.symlink(top, instance / "uploads" / "planted-dir")
    os.mkfifo(instance / "uploads" / "planted-fifo")
    for path in [data, instance, *data.iterdir(), *instance.rglob("*")]:
        os.chown(path, pwd_uid(USER), -1, follow_symlinks=False)
    (config / "secret_key").write_text("s3cret")
    (config / "lernmanager.env").write_text('SECRET_KEY="s3cret"\n')
    (top / "live.json").write_text(json.dumps({"release": "abc123"}))
    yield top, db
    db.close()
    shutil.rmtree(top)


def pwd_uid(name):
    import pwd
    return pwd.getpwnam(name).pw_uid


# write_set and restore_set each run in a process of their own: a fork of this one would inherit
# the fixture's open SQLite connection (SQLite's locks are per process), as a host's never does.
RUNNER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.lernmanager.deploy.plugins.module_utils import backup_set, service_user
args = json.loads(sys.argv[3])
user = service_user.ServiceUser(args.pop("user"))
try:
    if sys.argv[2] == "write":
        summary = backup_set.write_set(sys.stdout.buffer, user, **args)
    elif sys.argv[2] == "drill":
        summary = backup_set.drill_set(sys.stdin.buffer, user, **args)
    else:
        summary = backup_set.restore_set(sys.stdin.buffer, user, **args)
except service_user.LernmanagerError as error:
    sys.exit(str(error))
print(json.dumps(summary), file=sys.stderr)
"""


def run_set(action, args, stdin=b""):
    """(summary, stdout) of write_set or restore_set; a failure as a RuntimeError with its message."""
    result = subprocess.run([sys.executable, "-c", RUNNER, str(REPO / "collections"), action, json.dumps(args)],
                            input=stdin, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.decode())
    return json.loads(result.stderr.decode().splitlines()[-1]), result.stdout


def write(top, **overrides):
    args = dict(user=USER, database=str(top / "data" / "mbi_tracker.db"), instance_dir=str(top / "instance"),
                config_dir=str(top / "config"), live_state=str(top / "live.json"), host="school-a")
    return run_set("write", {**args, **overrides})


def members(stream):
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        return {m.name: (m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()}


def test_the_set_holds_everything_in_order(host):
    top, _ = host
    summary, stream = write(top)
    found = members(stream)
    names = list(found)
    assert names[:4] == ["set.json", "data/check.json", "data/mbi_tracker.db", "data/migrations_done.txt"], \
        "the database snapshot comes first"
    assert names.index("live.json") < names.index("instance/uploads")
    assert json.loads(found["set.json"][1])["release"] == "abc123" and json.loads(found["set.json"][1])["format"] == 2
    assert found["config/secret_key"][1] == b"s3cret"
    assert found["data/migrations_done.txt"][1] == b"migrate_001.py\n"
    assert found["instance/uploads/class-7a/drawing.png"][1] == bytes(range(256)) * 40
    assert found["instance/reports/week.pdf"][1] == b"%PDF-1.4 report"
    with tempfile.NamedTemporaryFile(suffix=".db") as copy:
        copy.write(found["data/mbi_tracker.db"][1])
        copy.flush()
        rows = sqlite3.connect(copy.name).execute("SELECT count(*) FROM pupils").fetchone()[0]
    assert rows == 300, "the rows still in the WAL are in the snapshot"
    assert summary["integrity"] == "ok" and summary["files"] == 3 and summary["release"] == "abc123"


def test_planted_links_and_fifos_are_left_out_and_counted(host):
    top, _ = host
    summary, stream = write(top)
    assert summary["skipped"] == 3
    assert SECRET not in stream
    assert not any("planted" in name for name in members(stream))
    for member, _ in members(stream).values():
        assert member.isfile() or member.isdir()
        assert member.mode in (0o600, 0o640, 0o750)


def test_names_root_would_refuse_and_sparse_files_are_left_out_and_counted(host):
    """A name with a newline once failed every nightly backup (root refuses it in the stream); a
    sparse terabyte kept one reading zeros for hours and would fill the disk on a restore."""
    top, _ = host
    uploads = top / "instance" / "uploads"
    odd_dir = uploads / "class\n7b"
    odd_dir.mkdir()
    (odd_dir / "inside.txt").write_text("never reached")
    (uploads / "line\nbreak.pdf").write_bytes(b"%PDF-1.4 odd name")
    with open(uploads / "sparse.bin", "wb") as sparse:
        sparse.truncate(2**40)
    for path in (odd_dir, odd_dir / "inside.txt", uploads / "line\nbreak.pdf", uploads / "sparse.bin"):
        os.chown(path, pwd_uid(USER), -1)
    summary, stream = write(top)
    assert summary["skipped"] == 3 + 3, summary  # the planted three, the directory, the name, the sparse file
    names = members(stream)
    assert "instance/uploads/notes.txt" in names and "instance/uploads/class-7a/drawing.png" in names
    assert not [name for name in names if "\n" in name or "sparse" in name or "inside" in name], names


def test_unchanged_files_give_the_same_bytes(host):
    """restic stores an unchanged set as (almost) nothing new only if the stream repeats itself."""
    top, _ = host
    first, second = write(top)[1], write(top)[1]
    assert first == second


def test_a_new_upload_goes_at_the_end_whatever_its_name(host):
    """A day's new files come after every older one, in any directory: the stream up to them is
    byte for byte what it was, so restic stores only the new end (measured: bench --backups)."""
    top, _ = host
    uploads = top / "instance" / "uploads"
    for index, path in enumerate(sorted(p for p in uploads.rglob("*") if p.is_file() and not p.is_symlink())):
        os.utime(path, (1_700_000_000 + index, 1_700_000_000 + index))
    old = write(top)[1]
    new_file = uploads / "class-7a" / "aaa-first-by-name.jpg"
    new_file.write_bytes(b"\xff\xd8 new work")
    os.chown(new_file, pwd_uid(USER), -1)
    new = write(top)[1]
    found = [(name, member) for name, (member, _) in members(new).items() if name.startswith("instance/uploads")]
    files = [name for name, member in found if member.isfile()]
    assert files == ["instance/uploads/class-7a/drawing.png", "instance/uploads/notes.txt",
                     "instance/uploads/class-7a/aaa-first-by-name.jpg"], "oldest first, the new one last"
    assert all(member.isdir() for _, member in found[:-len(files)]), "the directories come first"
    with tarfile.open(fileobj=io.BytesIO(old)) as tar:
        last = [m for m in tar.getmembers() if m.name.startswith("instance/uploads/")][-1]
    end = last.offset_data + -(-last.size // 512) * 512
    assert new[:end] == old[:end], "everything before the new upload is unchanged, directory entries too"


def test_a_missing_database_fails_the_set(host):
    top, _ = host
    with pytest.raises(Exception, match="no database"):
        write(top, database=str(top / "data" / "missing.db"))


def test_a_planted_migration_record_is_left_out_and_flagged_and_its_set_is_not_restored(host, fresh_host):
    """The app's account must not stop the school's backups: the set is written without the record
    (never read through the link) and says so; a restore of it would read as "no migrations ran",
    so it is refused before anything changes."""
    top, _ = host
    (top / "data" / "migrations_done.txt").unlink()
    os.symlink(top / "canary", top / "data" / "migrations_done.txt")
    summary, stream = write(top)
    found = members(stream)
    assert "data/migrations_done.txt" not in found and "data/mbi_tracker.db" in found
    assert summary["anomalies"] and "not a regular file" in summary["anomalies"][0], summary
    assert json.loads(found["data/check.json"][1])["record"] == "left out"
    assert summary["files"] == 3, "everything else is in the set"
    assert SECRET not in stream
    with pytest.raises(RuntimeError, match="taken while the migration record was planted"):
        restore(fresh_host, stream)
    assert tree(fresh_host) == {"data": "dir", "instance": "dir", "instance/uploads": "dir",
                                "instance/reports": "dir", "config": "dir", "backups": "dir"}, "nothing changed"


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", "uploads/../../x", "other/x", "uploads/./x",
                                  "uploads/a\nb", ""])
def test_root_refuses_a_crafted_member_name(name):
    backup_set = load_plugin("plugins/module_utils/backup_set.py")
    with pytest.raises(Exception, match="refused member"):
        backup_set.checked_instance_name(name, backup_set.INSTANCE_PARTS)


def test_root_refuses_a_link_in_the_stream():
    backup_set = load_plugin("plugins/module_utils/backup_set.py")
    crafted = io.BytesIO()
    with tarfile.open(fileobj=crafted, mode="w") as tar:
        link = tarfile.TarInfo("uploads/x")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tar.addfile(link)
    crafted.seek(0)
    with tarfile.open(fileobj=io.BytesIO(), mode="w") as out, pytest.raises(Exception, match="not a file"):
        backup_set.relay_instance(crafted, out, backup_set.INSTANCE_PARTS, {"files": 0, "bytes": 0})


# --- the host script -------------------------------------------------------------------------------

def backup_script():
    path = REPO / "roles" / "lernmanager" / "files" / "lernmanager_backup.py"
    loader = importlib.machinery.SourceFileLoader("lernmanager_backup", str(path))
    spec = importlib.util.spec_from_loader("lernmanager_backup", loader)
    load_plugin("plugins/module_utils/backup_set.py")  # puts the collection on sys.path
    script = importlib.util.module_from_spec(spec)
    loader.exec_module(script)
    return script


@pytest.mark.parametrize("repository, command", [
    ("sftp:backup@storage:/srv/restic/school-a", "ssh -F /c -l backup storage -s sftp"),
    ("sftp://backup@storage:2222//srv/restic", "ssh -F /c -p 2222 -l backup storage -s sftp"),
    ("sftp://backup@[2001:db8::1]:2222//srv/r", "ssh -F /c -p 2222 -l backup 2001:db8::1 -s sftp"),
    ("sftp:storage:/srv/r", "ssh -F /c storage -s sftp"),
])
def test_sftp_repositories_use_the_roles_ssh_settings(repository, command):
    restic = load_plugin("plugins/module_utils/restic.py")
    assert restic.sftp_options(repository, "/c") == ["-o", f"sftp.command={command}"]


def test_the_installed_script_runs_with_its_module_utils_inside(tmp_path):
    """As the role installs it (tasks/steps/host/backups.yml): one file, the module_utils inside, run
    by the system's Python in isolated mode, with no collection on its path."""
    steps = yaml.safe_load((REPO / "roles" / "lernmanager" / "tasks" / "steps" / "host" / "backups.yml").read_text())
    (names,) = [step["vars"]["__names"] for step in steps if "__names" in step.get("vars", {})]
    bundle = {name: (REPO / "plugins" / "module_utils" / f"{name}.py").read_text() for name in names}
    script = tmp_path / "lernmanager-backup"
    files = REPO / "roles" / "lernmanager" / "files"
    script.write_text("#!/usr/bin/python3 -I\nMODULE_UTILS = " + json.dumps(bundle) + "\n"
                      + (files / "bundled_module_utils.py").read_text() + (files / "lernmanager_backup.py").read_text())
    script.chmod(0o700)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"environment": {}}))
    result = subprocess.run([str(script), "no-such-command"], capture_output=True, text=True, check=False,
                            env={"LERNMANAGER_BACKUP_CONFIG": str(config), "PATH": "/usr/bin:/bin"})
    assert (result.returncode, result.stderr.strip()) == (
        1, "lernmanager-backup: unknown command 'no-such-command': run, run-and-check, drill, care, init, latest, on-failure or restic"), result.stderr




def test_the_failure_command_runs_after_a_failed_run_only(tmp_path):
    script = backup_script()
    mark = tmp_path / "ran"
    config = {"host": "school-a", "on_failure": f'echo "$SERVICE_RESULT $LERNMANAGER_HOST it\'s 100%" > {mark}'}
    for result in ("success", "exit-code"):
        os.environ["SERVICE_RESULT"] = result
        try:
            assert script.on_failure(config) == 0
        finally:
            del os.environ["SERVICE_RESULT"]
        assert mark.exists() is (result != "success")
    assert mark.read_text() == "exit-code school-a it's 100%\n"
    assert script.on_failure({"host": "h", "on_failure": ""}) == 0


# --- restoring a set ---------------------------------------------------------------------------------

@pytest.fixture
def fresh_host():
    """A new VPS after the role's layout: empty data/ and instance/ of the service user, root's
    config and backups directories."""
    top = pathlib.Path(tempfile.mkdtemp(prefix="lm-restore-test-", dir="/var/tmp"))
    os.chmod(top, 0o755)
    for path in (top / "data", top / "instance" / "uploads", top / "instance" / "reports"):
        path.mkdir(parents=True)
        os.chown(path, pwd_uid(USER), -1)
    (top / "config").mkdir()
    (top / "backups").mkdir(mode=0o700)
    yield top
    shutil.rmtree(top)


def restore(top, stream, replace=False):
    args = dict(user=USER, database=str(top / "data" / "mbi_tracker.db"), instance_dir=str(top / "instance"),
                config_dir=str(top / "config"), staging_dir=str(top / "backups"), replace=replace)
    return run_set("restore", args, stream)[0]


def tree(top):
    """{relative path: bytes} of the regular files under top, and the directories."""
    found = {}
    for path in sorted(top.rglob("*")):
        if path.is_symlink():
            continue
        found[str(path.relative_to(top))] = path.read_bytes() if path.is_file() else "dir"
    return found


def rows(database):
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return db.execute("SELECT id, name FROM pupils ORDER BY id").fetchall()
    finally:
        db.close()


def test_a_set_restores_onto_a_fresh_host(host, fresh_host):
    top, _ = host
    _, stream = write(top)
    summary = restore(fresh_host, stream)
    assert summary["release"] == "abc123" and summary["files"] == 3 and summary["migrations_record"]
    assert summary["config"] == ["secret_key"]
    assert rows(fresh_host / "data" / "mbi_tracker.db") == rows(top / "data" / "mbi_tracker.db")
    assert (fresh_host / "data" / "migrations_done.txt").read_text() == "migrate_001.py\n"
    planted = {"uploads/planted-fifo"}
    assert tree(fresh_host / "instance") == {k: v for k, v in tree(top / "instance").items() if k not in planted}
    assert (fresh_host / "config" / "secret_key").read_text() == "s3cret"
    assert not (fresh_host / "config" / "lernmanager.env").exists(), "the deploy writes the env file"
    for path in (fresh_host / "instance").rglob("*"):
        assert path.stat().st_uid == pwd_uid(USER), path
    assert os.stat(fresh_host / "config" / "secret_key").st_mode & 0o777 == 0o600


def test_a_restore_over_data_needs_replace_and_then_leaves_none_of_it(host, fresh_host):
    top, _ = host
    _, stream = write(top)
    restore(fresh_host, stream)
    stale = fresh_host / "instance" / "uploads" / "stale.txt"
    stale.write_text("made after the backup")
    os.chown(stale, pwd_uid(USER), -1)
    with pytest.raises(RuntimeError, match="File exists"):
        restore(fresh_host, stream)
    restore(fresh_host, stream, replace=True)
    assert not stale.exists()
    assert (fresh_host / "instance" / "uploads" / "class-7a" / "drawing.png").exists()


def crafted_set(*members):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


HEADER = ("set.json", json.dumps({"format": 1, "host": "x", "database": "mbi_tracker.db"}).encode())


@pytest.mark.parametrize("members, error", [
    ([("data/mbi_tracker.db", b"x")], "no set.json first"),
    ([HEADER, ("config/../../etc/shadow", b"x")], "refused member"),
    ([HEADER, ("data/mbi_tracker.db", b"not a database")], "integrity_check|file is not a database"),
    ([HEADER], "holds no database"),
    ([("set.json", json.dumps({"format": 3, "host": "x", "database": "mbi_tracker.db"}).encode())],
     "a set of format 3; this role reads 1 and 2"),
], ids=["no-header", "path-out", "not-a-database", "no-database", "a-newer-format"])
def test_a_crafted_set_changes_nothing(fresh_host, members, error):
    before = tree(fresh_host)
    with pytest.raises(RuntimeError, match=error):
        restore(fresh_host, crafted_set(*members))
    assert tree(fresh_host) == before


# --- the restore drill ----------------------------------------------------------------------------

def drill(top, stream):
    return run_set("drill", {"user": USER, "data_dir": str(top / "data")}, stream)[0]


def rewritten(stream, change):
    """The set with each member's bytes passed through change(name, data): None leaves it out."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(stream)) as source, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in source:
            data = source.extractfile(member).read() if member.isfile() else None
            if data is not None:
                data = change(member.name, data)
                if data is None:
                    continue
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def one_row_fewer(name, data):
    if name != "data/mbi_tracker.db":
        return data
    with tempfile.NamedTemporaryFile(suffix=".db") as copy:
        copy.write(data)
        copy.flush()
        db = sqlite3.connect(copy.name)
        db.execute("DELETE FROM pupils WHERE id = 7")
        db.commit()
        db.close()
        return pathlib.Path(copy.name).read_bytes()


def test_a_whole_set_passes_the_drill_and_leaves_no_copy(host):
    top, _ = host
    summary, stream = write(top)
    before = sorted(os.listdir(top / "data"))
    verdict = drill(top, stream)
    assert verdict["problems"] == [], verdict
    assert (verdict["tables"], verdict["rows"], verdict["files"]) == (1, 300, summary["files"])
    assert verdict["compared"] == {"rows": True, "files": True}
    assert sorted(os.listdir(top / "data")) == before, "the scratch copy is gone"


@pytest.mark.parametrize("change, problem", [
    (one_row_fewer, "the rows of 1 tables differ from what the set recorded: pupils 300 -> 299"),
    (lambda name, data: None if name == "instance/reports/week.pdf" else data, "the set recorded 3 files"),
    (lambda name, data: b"x" * 4096 if name == "data/mbi_tracker.db" else data, "fails integrity_check: file is not a database"),
    (lambda name, data: None if name == "data/mbi_tracker.db" else data, "holds no database"),
], ids=["a-row-less", "a-file-less", "not-a-database", "no-database"])
def test_a_set_changed_after_it_was_made_fails_the_drill(host, change, problem):
    top, _ = host
    _, stream = write(top)
    verdict = drill(top, rewritten(stream, change))
    assert len(verdict["problems"]) == 1 and problem in verdict["problems"][0], verdict


# --- the database care ----------------------------------------------------------------------------

CARE_RUNNER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.lernmanager.deploy.plugins.module_utils import database_care, service_user
user, database = service_user.ServiceUser(sys.argv[2]), sys.argv[3]
before = user.run(database_care.pages, database)
result = user.run(database_care.care, database, database_care.should_vacuum(before, 1 << 40))
print(json.dumps({"before": before, "care": result, "after": user.run(database_care.pages, database),
                  "vacuum_on_a_full_disk": database_care.should_vacuum(before, before["bytes"])}))
"""


def test_the_care_vacuums_a_database_with_free_pages_and_truncates_its_wal(host):
    top, db = host
    db.execute("CREATE TABLE filler (b BLOB)")
    db.executemany("INSERT INTO filler VALUES (?)", [(os.urandom(4096),) for _ in range(500)])
    db.commit()
    db.execute("DROP TABLE filler")
    db.commit()
    # The app's connection stays open (and never checkpoints): the WAL holds the filler's pages.
    database = top / "data" / "mbi_tracker.db"
    result = subprocess.run([sys.executable, "-c", CARE_RUNNER, str(REPO / "collections"), USER, str(database)],
                            capture_output=True, check=True, text=True)
    found = json.loads(result.stdout)
    before, after, care = found["before"], found["after"], found["care"]
    assert before["free_pages"] > 0.5 * before["pages"] and before["wal_bytes"] > 0, found
    assert care == {"quick_check": "ok", "vacuumed": True, "checkpoint": {"busy": False, "wal_frames": 0}}, found
    assert after["free_pages"] == 0 and after["wal_bytes"] == 0 and after["bytes"] < before["bytes"] / 4, found
    assert not found["vacuum_on_a_full_disk"], "no VACUUM without twice the database free on the disk"
    assert rows(database) == [(i, f"pupil {i - 1}") for i in range(1, 301)]


def test_root_takes_only_numbers_and_short_verdicts_from_the_service_users_answers():
    backup_set = load_plugin("plugins/module_utils/backup_set.py")
    care = load_plugin("plugins/module_utils/database_care.py")
    assert backup_set.counted({"integrity": "ok", "rows": {"pupils": 300}}) == {"integrity": "ok", "rows": {"pupils": 300}}
    for hostile in ({"integrity": "ok", "rows": {"pupils": "300; rm -rf"}}, {"integrity": "ok", "rows": ["pupils"]}, {}):
        assert backup_set.counted(hostile) == {"integrity": "the copy's check did not answer in numbers", "rows": {}}
    assert len(backup_set.counted({"integrity": "x" * 10000, "rows": {"y" * 1000: 1}})["integrity"]) == 200
    assert care.taken({"bytes": 8192, "pages": 2, "free_pages": 1, "wal_bytes": 0, "extra": "dropped"}) == {
        "bytes": 8192, "pages": 2, "free_pages": 1, "wal_bytes": 0}
    assert care.taken({"quick_check": "ok", "vacuumed": "yes", "checkpoint": {"busy": 0, "wal_frames": 3}}) == {
        "quick_check": "ok", "vacuumed": False, "checkpoint": {"busy": False, "wal_frames": 3}}
    for hostile in ({"bytes": "1e9", "pages": 1, "free_pages": 0, "wal_bytes": 0}, {"pages": 1}, ["bytes"],
                    {"quick_check": "ok", "vacuumed": True, "checkpoint": {"busy": False, "wal_frames": None}}):
        with pytest.raises(ValueError, match="the database's account answered"):
            care.taken(hostile)
