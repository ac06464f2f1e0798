"""The app module (plugins/modules/app.py) on a tiny app of upstream's shape, and the one way the
modules drop to the service user (plugins/module_utils/service_user.py). No containers; needs root."""

import ctypes
import os
import pathlib
import shutil
import sqlite3
import tempfile

import pytest

from helpers import load_plugin, run_module

USER = "nobody"
PYTHON = "/usr/bin/python3"  # one the service user may run (the tools venv lies below root's home)
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the module switches users: needs root")

# upstream's shape: init_app() makes the schema and admin/admin; models.verify_admin returns the
# row; update_admin_password(id, password). Plain text here: only the protocol matters.
APP = {
    "app.py": (
        "import os, sqlite3\n"
        "def init_app():\n"
        "    db = sqlite3.connect('data/mbi_tracker.db')\n"
        "    db.execute('CREATE TABLE IF NOT EXISTS admin (id INTEGER PRIMARY KEY, user TEXT, pw TEXT)')\n"
        "    if not db.execute('SELECT 1 FROM admin').fetchone():\n"
        "        db.execute(\"INSERT INTO admin (user, pw) VALUES ('admin', 'admin')\")\n"
        "    db.commit()\n"
        "    open('data/init_uid', 'w').write(f'{os.geteuid()} {os.getgroups()} {os.environ.get(\"SCHOOL\")}')\n"),
    "models.py": (
        "import sqlite3\n"
        "def _db():\n"
        "    return sqlite3.connect('data/mbi_tracker.db')\n"
        "def verify_admin(user, pw):\n"
        "    return _db().execute('SELECT id FROM admin WHERE user = ? AND pw = ?', (user, pw)).fetchone()\n"
        "def update_admin_password(admin_id, pw):\n"
        "    db = _db(); db.execute('UPDATE admin SET pw = ? WHERE id = ?', (pw, admin_id)); db.commit()\n"),
    "migrate/migrate_001_add.py": "import sqlite3\nsqlite3.connect('data/mbi_tracker.db').execute('CREATE TABLE t1 (x)')\n",
    "migrate/migrate_002_add.py": "import sqlite3\nsqlite3.connect('data/mbi_tracker.db').execute('CREATE TABLE t2 (x)')\n",
}


@pytest.fixture
def release():
    """A release (root-owned code, its data/ the service user's) with a venv whose python it may run."""
    top = pathlib.Path(tempfile.mkdtemp(prefix="lm-app-test-", dir="/var/tmp"))
    os.chmod(top, 0o755)
    code = top / "release"
    for name, text in APP.items():
        (code / name).parent.mkdir(parents=True, exist_ok=True)
        (code / name).write_text(text)
    (code / "data").mkdir()
    shutil.chown(code / "data", USER)
    (top / "venv" / "bin").mkdir(parents=True)
    (top / "venv" / "bin" / "python").symlink_to(PYTHON)
    (top / "env").write_text('SCHOOL="Gym \\"Nord\\""\n')
    yield top
    shutil.rmtree(top)


def app(action, top, check=False, **args):
    return run_module("app", {"action": action, "release": str(top / "release"), "venv": str(top / "venv"),
                              "env_file": str(top / "env"), "user": USER, **args}, check=check, python=PYTHON)


def test_init_runs_once_as_the_service_user_with_the_env_file(release):
    assert app("init", release, check=True)["changed"]
    assert not (release / "release/data/mbi_tracker.db").exists(), "check mode runs nothing"
    result = app("init", release)
    assert result["changed"] and result["created"]
    uid, groups, school = (release / "release/data/init_uid").read_text().split(" ", 2)
    assert (int(uid), groups) == (65534, "[]"), "the service user, without supplementary groups"
    assert school == 'Gym "Nord"'
    assert (release / "release/data/mbi_tracker.db").stat().st_uid == 65534
    assert not app("init", release)["changed"], "init_app() is idempotent; the database existed"


def test_migrations_are_listed_run_and_recorded(release):
    app("init", release)
    assert app("pending_migrations", release)["pending"] == ["migrate_001_add.py", "migrate_002_add.py"]
    check = app("migrate", release, check=True)
    assert check["changed"] and check["ran"] == [] and not (release / "release/data/migrations_done.txt").exists()
    assert app("migrate", release)["ran"] == ["migrate_001_add.py", "migrate_002_add.py"]
    assert (release / "release/data/migrations_done.txt").read_text() == "migrate_001_add.py\nmigrate_002_add.py\n"
    assert not app("migrate", release)["changed"]
    (release / "release/migrate/migrate_003_broken.py").write_text("raise SystemExit('no such column')\n")
    failed = app("migrate", release)
    assert failed["_failed"] and "migrate_003_broken.py failed" in failed["msg"] and "no such column" in failed["msg"]


def test_the_admin_password_is_set_once_and_never_over_a_hand_made_one(release):
    app("init", release)
    assert app("admin_password", release)["state"] == "default"
    check = app("admin_password", release, check=True, admin_password="s3cret")
    assert check["changed"] and check["state"] == "set"
    assert app("admin_password", release)["state"] == "default", "check mode set nothing"
    assert app("admin_password", release, admin_password="s3cret")["state"] == "set"
    again = app("admin_password", release, admin_password="s3cret")
    assert not again["changed"] and again["state"] == "unchanged"
    db = sqlite3.connect(release / "release/data/mbi_tracker.db")
    db.execute("UPDATE admin SET pw = 'chosen-by-a-person'")
    db.commit()
    assert app("admin_password", release, admin_password="s3cret")["state"] == "changed-by-hand"


def test_read_env_and_bad_input(release):
    env = run_module("app", {"action": "read_env", "env_file": str(release / "env")}, python=PYTHON)
    assert env["env"] == {"SCHOOL": 'Gym "Nord"'}
    assert run_module("app", {"action": "read_env", "env_file": str(release / "none")}, python=PYTHON)["env"] == {}
    missing = run_module("app", {"action": "migrate", "release": str(release / "release")}, python=PYTHON)
    assert missing["_failed"] and "venv" in missing["msg"]
    assert app("init", release, user="no-such-user")["msg"] == "no such user: no-such-user"
    assert "unprivileged" in app("init", release, user="root")["msg"]


# --- the one way down to the service user ------------------------------------------------------------

def service_user_module():
    return load_plugin("plugins/module_utils/service_user.py")


def child_view(root_fd, stdin, stdout):
    """(In the child, which imports nothing: the tools venv lies below root's home.) What it sees: its ids, whether root's descriptor is still open, its dumpable flag."""
    try:
        os.fstat(root_fd)
        leaked = True
    except OSError:
        leaked = False
    with open("/proc/self/status", "rb") as status:
        ids = {line.split(b":")[0].decode(): [f.decode() for f in line.split()[1:]]
               for line in status if line.startswith((b"Uid", b"Gid", b"Groups"))}
    dumpable = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
    data = stdin.read()
    stdout.write(data.upper())
    return {"ids": ids, "leaked": leaked, "dumpable": dumpable, "umask": os.umask(0o077), "cwd": os.getcwd()}


def test_the_child_keeps_nothing_of_root(tmp_path):
    service_user = service_user_module()
    secret = tmp_path / "root-only"
    secret.write_text("x")
    secret.chmod(0o600)
    root_fd = os.open(secret, os.O_RDONLY)
    received = []
    try:
        view = service_user.ServiceUser(USER).run(
            child_view, root_fd, feed=lambda w: w.write(b"stream"), read=lambda r: received.append(r.read()))
    finally:
        os.close(root_fd)
    assert view["ids"]["Uid"] == ["65534"] * 4 and view["ids"]["Gid"] == ["65534"] * 4
    assert view["ids"]["Groups"] == [], "no supplementary groups (root's would stay otherwise)"
    assert not view["leaked"], "root's open descriptors are closed before the drop"
    assert view["dumpable"] == 0, "the service user cannot attach to the child"
    assert (view["umask"], view["cwd"]) == (0o027, "/")
    assert received == [b"STREAM"]


def test_a_failing_child_reports_its_error():
    service_user = service_user_module()

    def fails(**_):
        raise service_user.LernmanagerError("planted link refused")

    def crashes(**_):
        return {}["missing"]

    with pytest.raises(service_user.LernmanagerError, match="planted link refused"):
        service_user.ServiceUser(USER).run(fails)
    with pytest.raises(service_user.LernmanagerError, match="KeyError"):
        service_user.ServiceUser(USER).run(crashes)
