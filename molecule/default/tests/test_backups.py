"""Scheduled backups (tasks/steps/host/backups.yml, files/lernmanager-backup), after the side effect
(molecule/default/side_effect.yml) planted a marker row and a binary upload as the service user,
ran playbooks/backup.yml (it asserts the report of the new snapshot), backed up again the way
the timer does with nothing changed, and made one backup fail. Verify only reads.

Reads the hosts only (side_effect.yml made the backups; a copy of the set's database goes to /tmp)."""

import json

import pytest

from lm_testlib import ROOT, db_state

SETTINGS = "/etc/lernmanager/backup"
REPOSITORY = "/var/backups/lernmanager/restic"
MARKER = "PLAINTEXT-MARKER-7b3d"
# On the host: the newest set from the repository, as {name: sha256}, its database put aside.
READ_SET = """
import hashlib, io, json, subprocess, tarfile
stream = subprocess.run(["lernmanager-backup", "restic", "dump", "latest", "/lernmanager.tar"],
                        capture_output=True, check=True).stdout
found = {}
with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
    for member in tar:
        if member.isfile():
            data = tar.extractfile(member).read()
            found[member.name] = hashlib.sha256(data).hexdigest()
            if member.name == "data/mbi_tracker.db":
                open("/root/lm-set.db", "wb").write(data)
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def newest_set(host):
    return json.loads(host.check_output("python3 -c %s", READ_SET))


def sha256(host, path):
    return host.check_output("sha256sum %s", path).split()[0]


def test_the_timer_is_scheduled_nightly(host):
    timer = host.service("lernmanager-backup.timer")
    assert timer.is_enabled and timer.is_running
    assert "01:30:00" in host.check_output("systemctl show -P TimersCalendar lernmanager-backup.timer")
    assert host.check_output("systemctl show -P RandomizedDelayUSec lernmanager-backup.timer") == "2h"


@pytest.mark.parametrize("name", ["password", "config.json"])
def test_the_password_and_settings_are_roots_alone(host, name):
    assert (host.file(SETTINGS).user, host.file(SETTINGS).mode) == ("root", 0o700)
    f = host.file(f"{SETTINGS}/{name}")
    assert (f.user, f.group, f.mode) == ("root", "root", 0o600)
    assert len(host.file(f"{SETTINGS}/password").content_string) >= 32, "generated"


def test_the_newest_snapshot_is_of_the_live_release(host):
    latest = json.loads(host.check_output("lernmanager-backup latest"))
    assert latest["release"] == host.check_output(f"readlink {ROOT}/current").rsplit("/", 1)[-1]
    assert latest["host"] == host.backend.get_hostname()
    assert 0 <= latest["age_seconds"] < 3600


def test_the_set_holds_the_database_uploads_and_secrets(host, newest_set):
    assert newest_set["config/secret_key"] == sha256(host, "/etc/lernmanager/secret_key")
    assert newest_set["config/lernmanager.env"] == sha256(host, "/etc/lernmanager/lernmanager.env")
    assert newest_set["instance/uploads/marker.bin"] == sha256(host, f"{ROOT}/shared/instance/uploads/marker.bin")
    assert newest_set["data/migrations_done.txt"] == sha256(host, f"{ROOT}/shared/data/migrations_done.txt")
    assert "live.json" in newest_set and "set.json" in newest_set
    # Every table's rows (but the analytics that every request adds to), as db_state reads them.
    live = db_state(host)
    copy = host.run("install -o lernmanager -m 0600 /root/lm-set.db /tmp/lm-set.db")
    assert copy.rc == 0, copy.stderr
    tables = sorted(live[0])
    dump = host.run("runuser -u lernmanager -- sqlite3 /tmp/lm-set.db %s | sha256sum",
                    " ".join(f".dump {t}" for t in tables))
    assert dump.stdout.split()[0] == live[1]


def test_the_repository_holds_no_plaintext(host):
    # The marker is in the live data (the search works) and nowhere in the repository.
    assert host.run(f"grep -qF {MARKER} {ROOT}/shared/instance/uploads/marker.bin").rc == 0
    assert host.run(f"grep -rqF {MARKER} {REPOSITORY}").rc == 1
    assert host.run(f"grep -rqF 'pupil' {REPOSITORY}").rc == 1


def test_a_backup_of_unchanged_data_adds_under_a_mebibyte(host):
    growth = json.loads(host.file("/root/lm-backup-growth.json").content_string)
    assert 0 < growth["after"] - growth["before"] < 1 << 20, growth


def test_a_failed_backup_leaves_the_unit_failed_and_runs_the_hook(host):
    start = host.file("/root/lm-backup-failed-start").content_string.split()
    assert start[:3] == ["start", "rc", "1"] and start[3] == "failed", start
    assert host.file("/root/lm-backup-failed").content_string.split() == ["exit-code", host.backend.get_hostname()]
    assert host.run("systemctl is-failed lernmanager-backup.service").stdout.strip() != "failed", "a good run after"


def test_the_apps_migration_copies_are_removed_and_a_planted_link_is_left(host):
    data = f"{ROOT}/shared/data"
    assert host.run(f"ls {data}/mbi_tracker.db.backup_2026*").rc != 0
    link = host.file(f"{data}/mbi_tracker.db.backup_link")
    assert link.is_symlink and link.linked_to == "/etc/lernmanager/secret_key"
    assert host.file("/etc/lernmanager/secret_key").user == "root"
