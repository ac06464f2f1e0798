"""A lost VPS loses nothing (issue 10): `a` makes data through the app, a browser session logs in,
and lernmanager-backup.service runs as its timer would, into the sftp repository on `storage`.
Then `a` is destroyed and playbooks/restore.yml rebuilds the fresh `b` (the other Debian release)
from the repository: every table's rows, every upload, the session and the secret key are back,
and the repository holds none of the data in plain text. A second restore onto `b` is refused
(it has data now), and a wrong repository password fails and changes nothing.

Changes the hosts: data made on a and backed up, a destroyed, b restored from the repository and restored
again over itself."""

import json
import os
import subprocess

import pytest
import testinfra
import yaml

from lm_testlib import DATABASE, REPO, ROOT, SERVER_NAME, db_state, playbook, run_client, said

A, B, STORAGE = "lm-recovery-a", "lm-recovery-b", "lm-recovery-storage"
MARKER = "PLAINTEXT-MARKER-c41d"
RESTORE = os.path.join(REPO, "playbooks", "restore.yml")


def get(name):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


def role_vars(**extra):
    """What converge gave `a` (converge.yml, prepare.yml's backup settings), for restore.yml."""
    with open(os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "backup-vars.yml"), encoding="utf-8") as f:
        backup = yaml.safe_load(f)
    return {"lernmanager_source": "path", "lernmanager_server_name": SERVER_NAME,
            "lernmanager_source_path": os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "app-v1"),
            **backup, **extra}


# Every table's rows as data, not as sqlite3's .dump text: a (Debian 12) and b (Debian 13) have
# sqlite3 shells of different versions, which print the same rows differently.
ROWS = (
    "import hashlib, json, sqlite3, sys\n"
    "db = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True)\n"
    "tables = [r[0] for r in db.execute(\"SELECT name FROM sqlite_master WHERE type = 'table' \"\n"
    "          \"AND name NOT LIKE 'sqlite_%' AND name != 'analytics_events' ORDER BY name\")]\n"
    "print(json.dumps({t: hashlib.sha256(json.dumps(db.execute(f'SELECT * FROM {t} ORDER BY rowid').fetchall(),\n"
    "                  default=bytes.hex).encode()).hexdigest() for t in tables}))\n")


def rows(host):
    """{table: sha256 of its rows} (analytics_events aside: every request adds to it)."""
    return json.loads(host.check_output(f"runuser -u lernmanager -- python3 -c %s {DATABASE}", ROWS))


def uploads(host):
    """{path below instance/: sha256} of every regular file there but the app's temp files."""
    out = host.check_output(f"cd {ROOT}/shared/instance && find . -path ./tmp -prune -o -type f -exec sha256sum {{}} + | sort")
    return {line.split()[1]: line.split()[0] for line in out.splitlines()}


@pytest.fixture(scope="module")
def lost_and_restored():
    """Everything once: the data on `a`, its backup, its loss, the restore onto `b`."""
    a, b = get(A), get(B)
    made = a.run(
        f"runuser -u lernmanager -- sqlite3 {DATABASE} \"INSERT INTO classes (name) VALUES ('{MARKER} 7b')\" && "
        f"runuser -u lernmanager -- sh -c '{{ printf \"{MARKER} \"; head -c 200000 /dev/urandom; }} "
        f"> {ROOT}/shared/instance/uploads/marker.bin'")
    assert made.rc == 0, made.stderr
    browser = run_client(a, "--cookie-jar", "/root/jar", "exercise")
    assert browser["logged_in"] and browser["stored_name"], browser
    backed_up = a.run("systemctl start lernmanager-backup.service")
    assert backed_up.rc == 0, a.run("journalctl -u lernmanager-backup --no-pager -n 30").stdout
    before = {"db": rows(a), "uploads": uploads(a), "jar": a.file("/root/jar").content_string,
              "secret": a.check_output("sha256sum /etc/lernmanager/secret_key").split()[0],
              "release": a.check_output(f"readlink {ROOT}/current").rsplit("/", 1)[-1]}

    subprocess.run(["docker", "rm", "-f", A], check=True, capture_output=True)
    run = playbook(RESTORE, role_vars(lernmanager_restore_host=A), limit=B)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return a, b, before, browser, run


def test_every_row_and_upload_is_back(lost_and_restored):
    _, b, before, browser, _ = lost_and_restored
    assert rows(b) == before["db"]
    assert uploads(b) == before["uploads"]
    assert f"./uploads/{browser['stored_name']}" in uploads(b)
    assert b.check_output(f"runuser -u lernmanager -- sqlite3 {DATABASE} "
                          f"\"SELECT count(*) FROM classes WHERE name LIKE '{MARKER}%'\"") == "1"


def test_the_session_made_on_a_is_valid_on_b(lost_and_restored):
    _, b, before, _, _ = lost_and_restored
    assert b.check_output("sha256sum /etc/lernmanager/secret_key").split()[0] == before["secret"]
    b.run("umask 077 && cat > /root/jar <<'EOF'\n%s\nEOF" % before["jar"])
    assert run_client(b, "--cookie-jar", "/root/jar", "session") == {"dashboard_status": 200}
    assert run_client(b, "--cookie-jar", "/root/jar-none", "session") != {"dashboard_status": 200}, "the jar counts"


def test_b_serves_the_release_the_set_recorded_and_backs_up_itself(lost_and_restored):
    _, b, before, _, run = lost_and_restored
    # The same code; its dependency set differs when B's Python does (Debian 13's 3.13 beside 12's 3.11).
    code = before["release"].rsplit("-", 1)[0]
    assert b.check_output(f"readlink {ROOT}/current").rsplit("/", 1)[-1].startswith(code + "-")
    assert f"taken under release {before['release']}" in run.stdout
    assert b.service("lernmanager-backup.timer").is_running
    assert b.file(f"{ROOT}/shared/instance/uploads/marker.bin").user == "lernmanager"


def test_the_repository_holds_no_plaintext(lost_and_restored):
    _, b, _, _, _ = lost_and_restored
    storage = get(STORAGE)
    assert b.run(f"grep -qF {MARKER} {ROOT}/shared/instance/uploads/marker.bin").rc == 0, "the search works"
    assert storage.run("test -f /srv/restic/school-a/config").rc == 0, "the repository is there"
    assert storage.run(f"grep -rqF {MARKER} /srv/restic/school-a").rc == 1


def test_a_host_with_data_is_not_overwritten_without_asking(lost_and_restored):
    _, b, _, _, _ = lost_and_restored
    state = db_state(b)
    run = playbook(RESTORE, role_vars(lernmanager_restore_host=A), limit=B)
    assert run.returncode != 0
    assert "has data of its own" in run.stdout + run.stderr and "lernmanager_restore_overwrite" in run.stdout + run.stderr
    assert db_state(b) == state


def test_a_wrong_password_fails_clearly_and_changes_nothing(lost_and_restored):
    _, b, _, _, _ = lost_and_restored
    state, password = db_state(b), b.check_output("sha256sum /etc/lernmanager/backup/password")
    run = playbook(RESTORE, role_vars(lernmanager_restore_host=A, lernmanager_restore_overwrite=True,
                                      lernmanager_backup_password="not-the-password"), limit=B)
    assert run.returncode != 0
    assert "does not open the repository" in run.stdout + run.stderr, run.stdout[-3000:]
    assert b.check_output("sha256sum /etc/lernmanager/backup/password") == password
    assert db_state(b) == state
    assert json.loads(b.check_output("lernmanager-backup latest")) is None, "no set of b was backed up"


def test_an_overwrite_restores_the_chosen_set_and_keeps_what_it_replaced(lost_and_restored):
    """-e lernmanager_restore_overwrite=true on a host with data: that data goes into a set of its
    own first (a tag that retention and `latest` leave alone, and no forget that could drop the
    chosen set, here one of the same day), then the chosen set is what the host has."""
    _, b, _, _, _ = lost_and_restored
    assert b.run("systemctl start lernmanager-backup.service").rc == 0
    chosen, state = json.loads(b.check_output("lernmanager-backup latest")), db_state(b)
    b.check_output(f"runuser -u lernmanager -- sqlite3 {DATABASE} \"INSERT INTO classes (name) VALUES ('later')\"")
    b.check_output(f"runuser -u lernmanager -- sh -c 'echo later > {ROOT}/shared/instance/uploads/later.txt'")
    run = playbook(RESTORE, role_vars(lernmanager_restore_overwrite=True), limit=B)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert f"Restored snapshot {chosen['id']}" in run.stdout
    assert db_state(b) == state
    assert not b.file(f"{ROOT}/shared/instance/uploads/later.txt").exists
    replaced = json.loads(b.check_output("lernmanager-backup restic snapshots --json --tag lernmanager-before-restore"))
    assert [snapshot["hostname"] for snapshot in replaced] == [B]
    assert "instance/uploads/later.txt" in b.check_output(
        f"lernmanager-backup restic dump {replaced[0]['id']} /lernmanager.tar | tar -t")
    assert json.loads(b.check_output("lernmanager-backup latest"))["id"] == chosen["id"], "latest is a regular set"


def test_a_planted_record_stops_no_backup_and_is_moved_aside_on_request(lost_and_restored):
    """Issue 37: the app's account plants data/migrations_done.txt as a link to a root-only file.
    The nightly set is still saved, without the record (never read through the link), and the run
    fails loudly; status names the link; a restore of that set is refused and changes nothing; a
    deploy stops and names it; one with lernmanager_quarantine_planted moves it into root's
    quarantine (the link kept as it was) with a record of the live release's migrations, and the
    next backup is whole again."""
    _, b, _, _, _ = lost_and_restored
    record = f"{ROOT}/shared/data/migrations_done.txt"
    migrations = set(b.file(record).content_string.split())
    assert migrations, "the stand-in has migrations, so the record matters"
    b.check_output(f"runuser -u lernmanager -- sh -c 'rm {record} && ln -s /etc/lernmanager/secret_key {record}'")
    before = json.loads(b.check_output("lernmanager-backup latest"))["id"]
    nightly = b.run("systemctl start lernmanager-backup.service")
    journal = b.check_output("journalctl -u lernmanager-backup --no-pager -n 30")
    assert nightly.rc != 0 and "ANOMALY: " in journal and "migrations_done.txt is not a regular file" in journal, journal
    flagged = json.loads(b.check_output("lernmanager-backup latest"))["id"]
    assert flagged != before, "the set was saved all the same"
    names = b.check_output(f"lernmanager-backup restic dump {flagged} /lernmanager.tar | tar -t").split()
    assert "data/mbi_tracker.db" in names and "data/migrations_done.txt" not in names, names

    status = playbook(os.path.join(REPO, "playbooks", "status.yml"), role_vars(), limit=B)
    assert "shared/data holds 'migrations_done.txt' (a link to '/etc/lernmanager/secret_key')" in said(status), \
        status.stdout[-3000:]
    state = db_state(b)
    refused = playbook(RESTORE, role_vars(lernmanager_restore_overwrite=True), limit=B)
    assert refused.returncode != 0 and "taken while the migration record was planted" in said(refused), \
        refused.stdout[-3000:]
    assert db_state(b) == state and b.service("lernmanager.socket").is_running, "nothing changed, the app serves"

    deploy = os.path.join(REPO, "playbooks", "deploy.yml")
    stopped = playbook(deploy, role_vars(), limit=B)
    assert stopped.returncode != 0 and "holds 'migrations_done.txt' (a link to" in said(stopped), stopped.stdout[-3000:]
    assert "-e lernmanager_quarantine_planted=true" in said(stopped)
    moved = playbook(deploy, role_vars(lernmanager_quarantine_planted=True), limit=B)
    assert moved.returncode == 0, moved.stdout[-4000:]
    kept = b.check_output(f"ls -d {ROOT}/shared/quarantine/*/migrations_done.txt")
    assert b.file(kept).linked_to == "/etc/lernmanager/secret_key"
    assert b.check_output(f"stat -c %U {kept}") == "lernmanager", "the link itself, moved as it was"
    assert b.file(f"{ROOT}/shared/quarantine").mode == 0o700
    assert not b.file(record).is_symlink and set(b.file(record).content_string.split()) == migrations
    assert b.check_output(f"stat -c '%U %a' {record}") == "lernmanager 640"
    whole = b.run("systemctl start lernmanager-backup.service")
    assert whole.rc == 0, b.check_output("journalctl -u lernmanager-backup --no-pager -n 30")
    assert "data/migrations_done.txt" in b.check_output(
        "lernmanager-backup restic dump latest /lernmanager.tar | tar -t").split()
    assert db_state(b) == state
