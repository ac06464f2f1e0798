"""Backup and restore on the benchmark VPS (`--backups`): times and repository sizes.

Three data sets, one after the other on the role's deploy (default variables: the local restic
repository under /var/backups/lernmanager/restic, its generated password):
  test      what the tests make: the stand-in's fresh database and about 1 MiB of uploads;
  school    a school: 300 pupils in 12 classes, 100 days of page views, and 200 MiB of uploads;
  day       one school day's change on top of `school`: every pupil's page views, 30 uploads.
For each: a backup as the timer runs it (`systemctl start lernmanager-backup.service`, idle
priority, so nothing else must run), the repository's growth (`du` of its directory and restic's
own `data_added`), a second backup of the unchanged data; for `test` and `school` also
playbooks/restore.yml onto the same host (overwrite: it backs the host's data up first, then puts
the set back, then deploys) with its tasks timed by profile_tasks, `restic dump` alone, and a
check that every row count (page views: at least as many) and upload came back.
"""

import json
import time

from . import stacks
from .containers import VPS, copy_in, exec_sh

DATA = "/usr/local/lib/bench_backup_data.py"
ROOT = "/opt/lernmanager/shared"
DB = f"{ROOT}/data/mbi_tracker.db"
UPLOADS = f"{ROOT}/instance/uploads"
REPOSITORY = "/var/backups/lernmanager/restic"
UNIT = "lernmanager-backup.service"
# Tasks of restore.yml whose times the report names (profile_tasks' lines end in their seconds).
RESTORE_TASKS = {
    "safety_backup_s": "Back up the data this host has, before it is overwritten",
    "put_back_s": "Put the backup set back",
    "deploy_after_s": None,  # the rest: the deploy that follows
}


def make(command):
    """Run backup_data.py as the app's service user (its files, its ownership)."""
    out = exec_sh(VPS, f"cd / && runuser -u lernmanager -- python3 {DATA} {command}", timeout=1800)
    return json.loads(out.strip().splitlines()[-1])


def repository_bytes():
    return int(exec_sh(VPS, f"du -sb {REPOSITORY} | cut -f1"))


def state():
    """What a restore must bring back: row counts and the uploads' checksums (one digest)."""
    script = (f"python3 -c \"import sqlite3; c = sqlite3.connect('file:{DB}?mode=ro', uri=True); "
              "print(*[c.execute(f'SELECT count(*) FROM {t}').fetchone()[0] for t in "
              "('classes', 'students', 'uploads', 'analytics_events')])\"; "
              f"cd {UPLOADS} && find . -type f -print0 | sort -z | xargs -0r sha256sum | sha256sum | cut -c1-16; "
              f"du -sb {UPLOADS} | cut -f1; stat -c %s {DB}")
    rows, uploads, upload_bytes, db_bytes = exec_sh(VPS, script).split("\n")[:4]
    return {"rows": rows, "uploads_digest": uploads, "upload_bytes": int(upload_bytes), "db_bytes": int(db_bytes)}


def backup():
    """One run of the unit, as its timer starts it. Returns wall seconds, restic's summary
    (bytes added and processed), and the repository's growth on disk."""
    before = repository_bytes()
    start = time.monotonic()
    exec_sh(VPS, f"systemctl start {UNIT}", timeout=3600)
    seconds = time.monotonic() - start
    invocation = exec_sh(VPS, f"systemctl show -p InvocationID --value {UNIT}").strip()
    lines = exec_sh(VPS, f"journalctl _SYSTEMD_INVOCATION_ID={invocation} -o cat").splitlines()
    summary = next((json.loads(line) for line in reversed(lines) if line.startswith("{")), {})
    return {"seconds": round(seconds, 1), "script_s": summary.get("seconds"),
            "checked": summary.get("checked"), "added": summary.get("added"),
            "processed": summary.get("processed"), "growth": repository_bytes() - before}


def dump_seconds():
    """restic's part of a restore alone: the newest set read out of the repository."""
    start = time.monotonic()
    size = int(exec_sh(VPS, "lernmanager-backup restic dump latest /lernmanager.tar | wc -c", timeout=1800))
    return {"seconds": round(time.monotonic() - start, 1), "bytes": size}


def restore(ansible, name):
    run = ansible.playbook("playbooks/restore.yml", name, {"lernmanager_restore_overwrite": "true"},
                           env={"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
                                "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all"})
    times = stacks.task_times(run["log"])
    result = {"seconds": run["seconds"]}
    for key, task in RESTORE_TASKS.items():
        if task:
            result[key] = round(times.get(task, 0), 1)
    result["deploy_after_s"] = round(run["seconds"] - result["safety_backup_s"] - result["put_back_s"], 1)
    return result


def measure(bench):
    """The three data sets in order; each step is a section, so one failure loses only itself."""
    copy_in(VPS, bench.bench_files / "backup_data.py", DATA)
    exec_sh(VPS, f"chmod 0644 {DATA}")
    rows = bench.results["backups"]

    def one_set(name, made, restore_too):
        row = {"set": name, "made": made, "data": state()}
        row["backup"] = backup()
        row["unchanged"] = backup()
        if restore_too:
            row["dump"] = bench.section(f"backups: {name}: restic dump", dump_seconds)
            before = row["data"]
            row["restore"] = bench.section(f"backups: {name}: restore.yml", restore, bench.ansible, f"restore-{name}")
            after = state()
            # analytics_events last: every request adds to it, the deploy's health check too.
            counts = [list(map(int, state_["rows"].split())) for state_ in (before, after)]
            row["restored_equal"] = {"rows": counts[1][:3] == counts[0][:3] and counts[1][3] >= counts[0][3],
                                     "uploads_digest": before["uploads_digest"] == after["uploads_digest"]}
        rows.append(row)
        bench.log(f"backups: {name}: {json.dumps(row)}")

    bench.section("backups: test data", lambda: one_set("test", make(f"uploads {DB} {UPLOADS} --mib 1 --seed 7"), True))
    made = {}
    bench.section("backups: school data", lambda: made.update(
        school=make(f"school {DB}"), uploads=make(f"uploads {DB} {UPLOADS} --mib 200 --seed 8")))
    bench.section("backups: school", lambda: one_set("school", made, True))
    bench.section("backups: a day", lambda: one_set("day", make(f"day {DB} {UPLOADS} --seed 9"), False))
