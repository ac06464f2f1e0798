"""v1 with data made through the app → v2 (with a migration) → rollback.yml → restore on demand
→ v2 again, with a constraints file (a new venv) → rollback.yml to v2's old venv → backup.yml,
all with links to a root-only canary planted by the service user.

The tests run in file order and share one module fixture per step: each step is one playbook run.

Changes the host: v2, a rollback, a restore, v2 again with a new venv, a rollback and a backup.
"""

import json

import pytest

from lm_testlib import (CANARY, DATABASE, ROOT, SANDBOX_SCRIPTS, as_service_user, backup, canary_is_intact, converge,
                        db_state, http, plant_canary_links, put_script, release_of, rollback, run_client, sql)

BACKUPS = f"{ROOT}/shared/backups"


def columns(host, table):
    return sql(host, f"SELECT group_concat(name) FROM pragma_table_info('{table}')").split(",")


@pytest.fixture(scope="module")
def canary(host):
    """Planted on v1 before every playbook run below."""
    return plant_canary_links(host)


WATCH_LOG = "/root/lm-watch.log"


@pytest.fixture(scope="module")
def upgraded(host, canary):
    """Data made through the app on v1 (login, page views, an upload), then a deploy of v2, watched
    by root (files/lm_watch.py): the deploy's app processes as they run. (A compromised app racing
    such a deploy: molecule/adopt/tests/test_hostile_app.py.)"""
    client = run_client(host, "exercise")
    assert client["logged_in"] and client["download_sha256"] == client["upload_sha256"]
    before = {"release": release_of(host), "state": db_state(host), "client": client}
    host.run("rm -f %s", WATCH_LOG)
    watch = host.run("install -d -m 0755 %s && install -m 0644 %s %s/ && "
                     "systemd-run --quiet --unit lm-watch /usr/bin/python3 %s/lm_watch.py %s 900",
                     SANDBOX_SCRIPTS, put_script(host, "lm_watch.py"), SANDBOX_SCRIPTS, SANDBOX_SCRIPTS, WATCH_LOG)
    assert watch.rc == 0, watch.stderr
    try:
        run = converge({"standin_version": "v2"})
    finally:
        host.run("systemctl stop lm-watch")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    # The links planted in data/ (none at the migration record) are named, and the deploy goes on.
    said = " ".join(run.stdout.split())
    assert "WARNING: /opt/lernmanager/shared/data holds " in said, run.stdout[-4000:]
    assert f"'migrations_done.txt.tmp' (a link to '{CANARY}')" in said
    before["watched"] = [json.loads(line) for line in host.file(WATCH_LOG).content_string.splitlines()]
    return before


def test_the_deploys_app_code_runs_in_the_services_sandbox(host, upgraded):
    """The trial's and the live migrations' processes, as root saw them while they ran."""
    watched = upgraded["watched"]
    assert len(watched) >= 2, f"a trial and the live migration, each a runner and a migration: {watched}"
    uid = host.user("lernmanager").uid
    deploy_gid = host.group("lernmanager-deploy").gid
    for process in watched:
        assert (process["no_new_privs"], process["seccomp"]) == ("1", "2"), process
        assert int(process["cap_eff"], 16) == 0, process
        assert process["own_mount_namespace"] in (True, None), process  # None: the container's root may not look
        assert (process["uid"], process["gid"]) == (str(uid), str(deploy_gid)), process
        assert "/system.slice/lernmanager-deploy-" in process["cgroup"], process


def test_v2_serves_with_the_data_migrated(host, upgraded):
    assert release_of(host) != upgraded["release"]
    assert 'name="standin-version" content="2"' in http(host, "/login").body
    assert "color" in columns(host, "classes"), "migration 002 ran"
    done = host.file(f"{ROOT}/shared/data/migrations_done.txt").content_string.split()
    assert done == ["migrate_001_add_admin_created_at.py", "migrate_002_add_class_color.py"]
    counts, _ = db_state(host)
    before_counts, _ = upgraded["state"]
    assert counts == before_counts, "no row lost or added by the upgrade"


def test_upload_made_on_v1_is_still_served(host, upgraded):
    stored = upgraded["client"]["stored_name"]
    f = host.file(f"{ROOT}/shared/instance/uploads/{stored}")
    assert f.exists and f.sha256sum == upgraded["client"]["upload_sha256"]


def test_backup_of_the_pre_migration_database(host, upgraded):
    name = f"_{upgraded['release']}_to_{release_of(host)}.db"
    backups = host.check_output("ls %s", BACKUPS).split()
    matching = [b for b in backups if b.endswith(name)]
    assert len(matching) == 1, backups
    backup = f"{BACKUPS}/{matching[0]}"
    f = host.file(backup)
    assert (f.user, f.group, f.mode) == ("root", "root", 0o600)
    check = ("import sqlite3, sys; db = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro&immutable=1', uri=True); "
             "print(db.execute('PRAGMA integrity_check').fetchone()[0], "
             "'color' in [r[1] for r in db.execute('PRAGMA table_info(classes)')])")
    assert host.check_output("python3 -c %s %s", check, backup) == "ok False", "intact, taken before migration 002"
    done = host.file(backup[:-3] + ".migrations_done.txt").content_string.split()
    assert done == ["migrate_001_add_admin_created_at.py"]


@pytest.fixture(scope="module")
def rolled_back(host, upgraded):
    v2 = release_of(host)
    run = rollback()
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return v2


def test_rollback_returns_to_v1_and_keeps_the_database(host, upgraded, rolled_back):
    assert release_of(host) == upgraded["release"]
    assert host.check_output(f"readlink {ROOT}/previous").endswith(rolled_back)
    assert 'name="standin-version" content="1"' in http(host, "/login").body
    # Without lernmanager_rollback_restore_db the data stays as v2 left it (v1 copes with it).
    assert "color" in columns(host, "classes")
    assert run_client(host, "exercise")["logged_in"]


def test_rollback_to_an_unknown_release_changes_nothing(host, rolled_back):
    before = release_of(host)
    run = rollback({"lernmanager_rollback_to": "p-0123456789abcdef"})
    assert run.returncode != 0
    assert "release p-0123456789abcdef does not exist" in run.stdout + run.stderr
    assert release_of(host) == before


def test_rollback_restores_the_database_only_when_asked(host, upgraded, rolled_back):
    since = host.check_output("date +%s")
    run = rollback({"lernmanager_rollback_to": upgraded["release"], "lernmanager_rollback_restore_db": "true"})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "color" not in columns(host, "classes"), "the pre-migration backup is back"
    # The database as the rollback found it is kept, so the rollback can be undone.
    undo = host.check_output(f"ls {BACKUPS}/*_{upgraded['release']}_pre_rollback.db")
    check = ("import sqlite3, sys; db = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro&immutable=1', uri=True); "
             "print('color' in [r[1] for r in db.execute('PRAGMA table_info(classes)')])")
    assert host.check_output("python3 -c %s %s", check, undo) == "True"
    # No request could start the app during the restore: its socket was closed.
    socket_log = host.check_output(f"journalctl -u lernmanager.socket --since @{since} -o cat --no-pager")
    assert "Closed" in socket_log, socket_log
    done = host.file(f"{ROOT}/shared/data/migrations_done.txt")
    assert done.content_string.split() == ["migrate_001_add_admin_created_at.py"]
    assert (done.user, done.mode) == ("lernmanager", 0o640)
    db = host.file(DATABASE)
    assert (db.user, db.group) == ("lernmanager", "lernmanager")
    assert http(host, "/login").status == 200
    assert run_client(host, "exercise")["logged_in"], "the service can write to the restored database"


# Another Flask than the open `Flask>=3.0` of the stand-in's requirements resolves to today.
PINNED_FLASK = "3.0.3"


def venv_of(host, release=None):
    return host.check_output(f"readlink -f {ROOT}/{'releases/' + release if release else 'current'}/.venv")


def flask_in(host, release=None):
    # -B: no bytecode written by this look.
    return host.check_output(f"{venv_of(host, release)}/bin/python -B -c "
                             "'import importlib.metadata as m; print(m.version(\"flask\"))'")


def service_venv(host):
    pid = host.check_output("systemctl show -P MainPID lernmanager.service")
    return host.check_output(f"tr '\\0' ' ' < /proc/{pid}/cmdline").split()[0].rsplit("/bin/", 1)[0]


@pytest.fixture(scope="module")
def constrained(host, rolled_back, tmp_path_factory):
    """v2 again over the restored v1 database, now with a constraints file (on the controller) that
    pins another Flask: the v2 code of `rolled_back` with another dependency set."""
    constraints = tmp_path_factory.mktemp("constraints") / "constraints.txt"
    constraints.write_text(f"# the school's pins\nFlask=={PINNED_FLASK}\n")
    before = {"live": release_of(host), "venv": venv_of(host, rolled_back), "flask": flask_in(host, rolled_back)}
    assert before["flask"] != PINNED_FLASK, "the pin must change something"
    run = converge({"standin_version": "v2", "lernmanager_pip_constraints": str(constraints)})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return before


def test_deploying_v2_again_migrates_again(host, constrained):
    assert "color" in columns(host, "classes")
    assert run_client(host, "exercise")["logged_in"]


def test_a_constraints_file_is_a_new_release_of_the_same_code_with_its_own_venv(host, rolled_back, constrained):
    release = release_of(host)
    assert release != rolled_back
    assert release.rsplit("-", 1)[0] == rolled_back.rsplit("-", 1)[0], "the same code"
    assert venv_of(host) != constrained["venv"]
    assert flask_in(host) == PINNED_FLASK
    assert host.file(f"{ROOT}/current/.pip-constraints.txt").content_string.endswith(f"Flask=={PINNED_FLASK}\n")
    assert service_venv(host) == venv_of(host), "the service runs from the new venv"
    assert 'name="standin-version" content="2"' in http(host, "/login").body
    assert host.check_output(f"readlink {ROOT}/previous").endswith(constrained["live"])
    assert host.file(f"{constrained['venv']}/.complete").exists, "the old venv is kept for a rollback"


def test_rollback_to_the_same_code_goes_back_to_its_old_venv(host, rolled_back, constrained):
    run = rollback({"lernmanager_rollback_to": rolled_back})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert release_of(host) == rolled_back
    assert venv_of(host) == constrained["venv"] == service_venv(host)
    assert flask_in(host) == constrained["flask"]
    assert run_client(host, "exercise")["logged_in"]


def test_backup_playbook_keeps_the_pre_migration_pool(host, upgraded):
    pre_migration = sorted(b for b in host.check_output(f"ls {BACKUPS}").split() if "_to_" in b)
    run = backup({"lernmanager_keep_backups": 1})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    names = host.check_output(f"ls {BACKUPS}").split()
    manual = [n for n in names if n.endswith(f"_{release_of(host)}_manual.db")]
    assert len(manual) == 1, names
    assert not [n for n in names if n.endswith("_pre_rollback.db")], "keep=1 in the pool of the others"
    assert sorted(n for n in names if "_to_" in n) == pre_migration, "pre-migration backups kept"
    assert not [n for n in names if n.startswith(".")], "no partial file left"


def test_a_planted_migration_record_fails_the_backup_and_leaks_nothing(host, canary):
    record = f"{ROOT}/shared/data/migrations_done.txt"
    host.run(as_service_user(f"mv {record} {record}.real"))
    host.run(as_service_user(f"ln -s {CANARY} {record}"))
    try:
        run = backup()
        assert run.returncode != 0
        assert "migrations_done.txt is not a regular file" in run.stdout + run.stderr, (run.stdout + run.stderr)[-3000:]
    finally:
        host.run(as_service_user(f"mv -f {record}.real {record}"))
    assert not [n for n in host.check_output(f"ls -A {BACKUPS}").split() if n.startswith(".")]


def test_a_planted_uploads_link_stops_the_deploy_before_root_follows_it(host, canary):
    uploads = f"{ROOT}/shared/instance/uploads"
    host.run("install -d -m 0700 /root/lm-canary-dir")
    before = host.check_output("stat -c '%u %g %a %i' /root/lm-canary-dir")
    host.run(as_service_user(f"mv {uploads} {uploads}.real"))
    host.run(as_service_user(f"ln -s /root/lm-canary-dir {uploads}"))
    try:
        # Every step (lernmanager_full_run): the one that would follow the link is the point.
        run = converge({"standin_version": "v2", "lernmanager_full_run": True})
        assert run.returncode != 0
        assert f"{uploads} is not a directory" in run.stdout + run.stderr, (run.stdout + run.stderr)[-3000:]
    finally:
        host.run(as_service_user(f"rm {uploads}"))
        host.run(as_service_user(f"mv {uploads}.real {uploads}"))
    assert host.check_output("stat -c '%u %g %a %i' /root/lm-canary-dir") == before
    assert http(host, "/login").status == 200


def test_the_canary_is_untouched_after_every_run(host, canary):
    canary_is_intact(host, canary)
