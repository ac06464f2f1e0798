"""The app and database modules run the app's own code on a real host: in a transient unit with
the service's sandbox (module_utils/sandbox.py), as the service user with the deploy group. A tiny
app of upstream's shape, beside the deployed one; the module calls go through `ansible -m`.

Changes the host and puts it back: a tiny app in a directory of its own, removed after each test."""

import json

import pytest

from lm_testlib import run_module_on_host

TOP = "/srv/lm-app-test"  # not in /tmp or /var/tmp: PrivateTmp= hides those
CANARY = "/root/lm-app-test-canary"
RELEASE = f"{TOP}/release"
# upstream's shape: init_app() makes the schema and admin/admin; models.verify_admin returns the
# row; update_admin_password(id, password). Plain text here: only the protocol matters. init_app
# also reports who ran it, with what, and whether it could read root's canary or write beside
# its data.
APP = {
    "app.py": (
        "import json, os, sqlite3\n"
        "def init_app():\n"
        "    db = sqlite3.connect('data/mbi_tracker.db')\n"
        "    db.execute('CREATE TABLE IF NOT EXISTS admin (id INTEGER PRIMARY KEY, user TEXT, pw TEXT)')\n"
        "    if not db.execute('SELECT 1 FROM admin').fetchone():\n"
        "        db.execute(\"INSERT INTO admin (user, pw) VALUES ('admin', 'admin')\")\n"
        "    db.commit()\n"
        "    def can(action):\n"
        "        try:\n            action(); return True\n        except OSError:\n            return False\n"
        f"    canary = can(lambda: open({CANARY!r}).read())\n"
        "    outside = can(lambda: open('/srv/lm-app-test-outside', 'w'))\n"
        "    nnp = [l.split()[1] for l in open('/proc/self/status') if l.startswith('NoNewPrivs')][0]\n"
        "    json.dump({'uid': os.geteuid(), 'gid': os.getegid(), 'groups': os.getgroups(), 'nnp': nnp,\n"
        "               'school': os.environ.get('SCHOOL'), 'canary': canary, 'outside': outside},\n"
        "              open('data/init_report', 'w'))\n"),
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
SANDBOX = f"""
# the service's sandbox, in short: everything read-only but the data
ProtectSystem=strict
ReadWritePaths={TOP}/data
PrivateTmp=true
NoNewPrivileges=true
ProtectProc=invisible
"""


@pytest.fixture(scope="module")
def tiny_app(host):
    """The release root's, its data/ (a link to the data, as in a release) the service user's, a venv
    whose python the service user may run, an env file, and a root-only canary."""
    host.run("rm -rf %s /srv/lm-app-test-outside %s", TOP, CANARY)
    host.run("install -d -m 0755 %s %s/migrate %s/venv/bin", RELEASE, RELEASE, TOP)
    host.run("install -d -m 2750 -o lernmanager -g lernmanager %s/data", TOP)
    host.run("ln -s %s/data %s/data && ln -s /usr/bin/python3 %s/venv/bin/python", TOP, RELEASE, TOP)
    for name, text in APP.items():
        host.run("printf '%%s' %s > %s/%s", text, RELEASE, name)
    host.run("""printf '%%s\\n' 'SCHOOL="Gym \\"Nord\\""' > %s/env""", TOP)
    host.run("umask 077 && printf canary > %s", CANARY)
    yield TOP
    host.run("rm -rf %s /srv/lm-app-test-outside %s", TOP, CANARY)


def app(action, check=False, **args):
    return run_module_on_host("app", {"action": action, "release": RELEASE, "venv": f"{TOP}/venv",
                                      "env_file": f"{TOP}/env", "user": "lernmanager", "sandbox": SANDBOX,
                                      "deploy_group": "lernmanager-deploy", **args}, check=check)


def test_init_runs_once_in_the_sandbox_as_the_service_user_with_the_deploy_group(host, tiny_app):
    assert app("init", check=True)["changed"]
    assert not host.file(f"{TOP}/data/mbi_tracker.db").exists, "check mode runs nothing"
    result = app("init")
    assert result["changed"] and result["created"]
    report = json.loads(host.file(f"{TOP}/data/init_report").content_string)
    service_gid = host.group("lernmanager").gid
    assert (report["uid"], report["gid"]) == (host.user("lernmanager").uid, host.group("lernmanager-deploy").gid)
    assert service_gid not in report["groups"], "the running app's group: it could attach to the deploy's code"
    assert (report["nnp"], report["canary"], report["outside"]) == ("1", False, False), report
    assert report["school"] == 'Gym "Nord"', "the env file, as systemd reads it for the service"
    database = host.file(f"{TOP}/data/mbi_tracker.db")
    assert (database.user, database.group) == ("lernmanager", "lernmanager"), "the data directory's setgid group"
    assert not app("init")["changed"], "init_app() is idempotent; the database existed"


def test_migrations_are_listed_run_and_recorded(host, tiny_app):
    assert app("pending_migrations")["pending"] == ["migrate_001_add.py", "migrate_002_add.py"]
    check = app("migrate", check=True)
    assert check["changed"] and check["ran"] == []
    assert app("migrate")["ran"] == ["migrate_001_add.py", "migrate_002_add.py"]
    assert host.file(f"{TOP}/data/migrations_done.txt").content_string == "migrate_001_add.py\nmigrate_002_add.py\n"
    assert not app("migrate")["changed"]
    host.run("printf %s \"raise SystemExit('no such column')\" > " + f"{RELEASE}/migrate/migrate_003_broken.py")
    failed = app("migrate")
    assert failed["_failed"] and "migrate_003_broken.py failed" in failed["msg"] and "no such column" in failed["msg"]
    host.run("rm %s/migrate/migrate_003_broken.py", RELEASE)


def test_the_admin_password_is_set_once_and_never_over_a_hand_made_one(host, tiny_app):
    assert app("admin_password")["state"] == "default"
    check = app("admin_password", check=True, admin_password="s3cret")
    assert check["changed"] and check["state"] == "set"
    assert app("admin_password")["state"] == "default", "check mode set nothing"
    assert app("admin_password", admin_password="s3cret")["state"] == "set"
    again = app("admin_password", admin_password="s3cret")
    assert not again["changed"] and again["state"] == "unchanged"
    host.run("runuser -u lernmanager -- sqlite3 %s/data/mbi_tracker.db %s", TOP,
             "UPDATE admin SET pw = 'chosen-by-a-person'")
    assert app("admin_password", admin_password="s3cret")["state"] == "changed-by-hand"


def test_no_sandbox_no_app_code(host, tiny_app):
    for sandbox, why in [("", "sandbox and deploy_group are required"),
                         ("NoNewPrivileges=true", "sets no ProtectSystem="),
                         ("ProtectSystem=strict\nUser=root", "sets User=")]:
        result = app("init", sandbox=sandbox)
        assert result["_failed"] and why in result["msg"], result


def test_trial_migrations_run_in_the_sandbox_on_a_copy_in_roots_directory(host, tiny_app):
    """The probe migration reports who runs it, what it could read and write, then breaks the copy."""
    backups, trials = f"{TOP}/backups", f"{TOP}/trials"
    backup = run_module_on_host("database", {"action": "backup", "database": f"{TOP}/data/mbi_tracker.db",
                                             "user": "lernmanager", "backup_dir": backups, "label": "a_to_b"})
    assert not backup["_failed"], backup
    probe = ("import os, sqlite3, sys\n"
             f"try:\n    open({CANARY!r}).read(); readable = True\nexcept OSError:\n    readable = False\n"
             "try:\n    open('/srv/lm-app-test/data/planted', 'w'); live = True\nexcept OSError:\n    live = False\n"
             "nnp = [l.split()[1] for l in open('/proc/self/status') if l.startswith('NoNewPrivs')][0]\n"
             "sys.stderr.write(f'uid={os.geteuid()} gid={os.getegid()} nnp={nnp} canary={readable} live={live}\\n')\n"
             "sqlite3.connect('data/mbi_tracker.db').execute('DROP TABLE admin')\n"
             "sys.exit(3)\n")
    host.run("printf %%s %s > %s/migrate/migrate_004_probe.py", probe, RELEASE)
    args = {"action": "trial_migrate", "database": f"{TOP}/data/mbi_tracker.db", "user": "lernmanager",
            "backup": backup["backup"], "release": RELEASE, "venv": f"{TOP}/venv", "env_file": f"{TOP}/env",
            "work_dir": trials, "sandbox": SANDBOX, "deploy_group": "lernmanager-deploy"}
    try:
        check = run_module_on_host("database", args, check=True)
        assert check["pending"] == ["migrate_004_probe.py"] and check["ran"] == [], "check mode only lists them"
        report = run_module_on_host("database", args)
    finally:
        host.run("rm %s/migrate/migrate_004_probe.py", RELEASE)
    assert report["_failed"] and report["failed_migration"] == "migrate_004_probe.py", report
    uid, gid = host.user("lernmanager").uid, host.group("lernmanager-deploy").gid
    assert f"uid={uid} gid={gid} nnp=1 canary=False live=False" in report["output"], report["output"]
    count = host.run("runuser -u lernmanager -- sqlite3 %s/data/mbi_tracker.db %s", TOP, "SELECT count(*) FROM admin")
    assert count.stdout.strip() == "1", "the live database was not touched"
    assert not host.file(f"{TOP}/data/planted").exists
    d = host.file(trials)
    assert (d.user, d.group, d.mode) == ("root", "root", 0o755)
    assert host.check_output("ls -A %s", trials) == "", "the trial's copy is gone"
    assert report["ran"] == []
