# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""lernmanager-backup: the scheduled backup of a Lernmanager host (lernmanager-backup.service
runs `run`). The role installs this file as /usr/local/sbin/lernmanager-backup, with its shebang.

  run        the backup set (module_utils/backup_set.py) into the restic repository as one stream,
             then the retention policy; once a week also prune and a check that reads a subset;
             it waits while a run of the playbooks holds the host lock (--lock-held: the caller is one);
             --before-restore (restore.yml): tagged lernmanager-before-restore, no retention, no check
  drill      the restore drill (lernmanager-restore-drill.service, weekly): the newest set read back
             from the repository as a restore would, its database opened and checked as the service
             user in a scratch copy, compared with what the set recorded (backup_set.drill_set);
             the verdict in <state directory>/drill.json for status and the self-check
  care       the database care (lernmanager-database-care.service, monthly; module_utils/database_care.py):
             quick_check, PRAGMA optimize, a checkpoint that truncates the WAL, and VACUUM when a
             fifth of the pages are free and the disk has room, after a backup set of the data as
             it was; the result in <state directory>/care.json for status
  init       create the repository unless it exists; fail clearly when the password does not open it
  check-password -  fail unless the password on stdin opens the repository (or there is none yet)
  latest     the newest snapshot of this host as JSON (for playbooks/backup.yml)
  on-failure after a failed run (the unit's ExecStopPost=): lernmanager_backup_on_failure
  restic ... restic itself on the repository, e.g. `lernmanager-backup restic snapshots`

Settings, restic's environment among them (repository, password file, credentials), come from
/etc/lernmanager/backup/config.json, written by the role. The role installs the collection's
own module_utils inside this script (bundled_module_utils.py), so the scheduled backup and the
modules share one way of acting as the service user and one backup set.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

from ansible_collections.lernmanager.deploy.plugins.module_utils import database_care, restic
from ansible_collections.lernmanager.deploy.plugins.module_utils.backup_set import SET_NAME, drill_set, read_root_file, write_set
from ansible_collections.lernmanager.deploy.plugins.module_utils.service_user import LernmanagerError, ServiceUser

CONFIG = os.environ.get("LERNMANAGER_BACKUP_CONFIG", "/etc/lernmanager/backup/config.json")


def log(message):
    print(message, flush=True)


def wait_for_deploy(config):
    """A deploy, rollback or restore holds the host lock: its migrations must not run under the
    snapshot (the deploy in turn waits for a running backup, see steps/run/backup_wait.yml)."""
    deadline = time.monotonic() + config.get("lock_wait", 3600)
    announced = False
    while os.path.lexists(config["lock_file"]):
        if time.monotonic() > deadline:
            raise LernmanagerError(f"{config['lock_file']} is still held after {config.get('lock_wait', 3600)} s; "
                                   "no backup was taken")
        if not announced:
            log(f"waiting for the run holding {config['lock_file']} to end")
            announced = True
        time.sleep(5)


@contextlib.contextmanager
def one_at_a_time(state_dir):
    """The backup, the restore drill and the database care of an instance never run beside each
    other (the first two read the whole set, the care may take one; on one vCPU and 1 GB, one after
    the other): whichever comes second waits."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)  # a fresh host's restore runs before the unit ever did
    with open(os.path.join(state_dir, "run.lock"), "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def drill(config, state_dir):
    """The restore drill of the newest set; its verdict kept in drill.json (root's, 0600). Returns
    the verdict; a set that would not restore (or cannot be read) is a failed drill."""
    started, verdict = time.monotonic(), {"time": int(time.time()), "snapshot": None}
    try:
        snapshot = latest(config)
        if snapshot is None:
            raise LernmanagerError("no backup set in the repository to drill")
        verdict["snapshot"], verdict["taken"] = snapshot["id"], snapshot["time"]
        data_dir = os.path.dirname(config["database"])
        verdict.update(restic.restore_from_dump(config, snapshot["id"], "/" + SET_NAME,
                                                lambda stream: drill_set(stream, ServiceUser(config["user"]), data_dir)))
    except (LernmanagerError, OSError, ValueError, tarfile.TarError) as error:
        # restic's last line says what failed (the lines before it are its retries).
        lines = str(error).strip().splitlines() or [type(error).__name__]
        said = lines[0] if len(lines) == 1 else f"{lines[0].split(':', 1)[0]}: {lines[-1]}"
        verdict["problems"] = [f"the set could not be read back: {said[:500]}"]
    verdict["seconds"] = round(time.monotonic() - started, 1)
    verdict["ok"] = not verdict["problems"]
    write_state(state_dir, "drill.json", verdict)
    return verdict


def care(config, state_dir):
    """The database care run; its result kept in care.json (root's, 0600). VACUUM rewrites every page
    of the database: the set taken just before it is the way back should anything go wrong."""
    user, started = ServiceUser(config["user"]), time.monotonic()
    result = {"time": int(time.time())}
    before = database_care.taken(user.run(database_care.pages, config["database"]))
    usage = os.statvfs(os.path.dirname(config["database"]))
    vacuum = database_care.should_vacuum(before, usage.f_bavail * usage.f_frsize)
    result["before"] = before
    if vacuum:
        summary = backup(config)
        result["snapshot"] = summary["snapshot"]
        log(f"backup set {summary['snapshot']} taken before the VACUUM")
    result.update(database_care.taken(user.run(database_care.care, config["database"], vacuum)))
    result["after"] = database_care.taken(user.run(database_care.pages, config["database"]))
    result["seconds"] = round(time.monotonic() - started, 1)
    result["ok"] = result["quick_check"] == "ok"
    write_state(state_dir, "care.json", result)
    return result


def write_state(state_dir, name, value):
    """A verdict for status and the self-check: root's alone, never half-written."""
    path = os.path.join(state_dir, name)
    with open(os.open(path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        json.dump(value, handle, sort_keys=True)
    os.replace(path + ".new", path)


def backup(config, tag=restic.TAG):
    user = ServiceUser(config["user"])
    live = read_root_file(config["live_state"])
    release = json.loads(live).get("release") if live else None
    args = restic.command(config, "backup", "--stdin", "--stdin-filename", SET_NAME, "--host", config["host"],
                          "--tag", tag, "--json", "--quiet")
    if release:
        args += ["--tag", f"release={release}"]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # pylint: disable=consider-using-with
    try:
        summary = write_set(proc.stdin, user, config["database"], config["instance_dir"], config["config_dir"],
                            config["live_state"], config["host"])
        proc.stdin.close()
    except BaseException:
        # Interrupted before the end of the stream: restic must not save a cut-off set.
        proc.send_signal(signal.SIGINT)
        proc.wait()
        raise
    output = proc.stdout.read().decode(errors="replace")
    if proc.wait() != 0:
        raise LernmanagerError(f"restic backup failed (exit {proc.returncode}); no snapshot was saved")
    result = {}
    for line in output.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("message_type") == "summary":
            result = message
    summary.update(snapshot=result.get("snapshot_id"), added=result.get("data_added"),
                   processed=result.get("total_bytes_processed"))
    return summary


def keep(config):
    """Retention of the regular sets. Every set of the last day is kept as well: a backup taken by
    hand in the day must not make the night's set of that day go (--keep-daily keeps one a day)."""
    retention = config["retention"]
    subprocess.run(restic.command(config, "forget", "--host", config["host"], "--tag", restic.TAG, "--quiet",
                                  "--keep-within", "1d",
                                  "--keep-daily", str(retention["daily"]), "--keep-weekly", str(retention["weekly"]),
                                  "--keep-monthly", str(retention["monthly"])), check=True)


def weekly_check(config, state_dir, force=False):
    """Prune and check (reading a subset of the data) once a week: both lock the repository and
    read much of it, so not every night."""
    stamp = os.path.join(state_dir, "last-check")
    try:
        age = time.time() - os.stat(stamp).st_mtime
    except FileNotFoundError:
        age = None
    if not force and age is not None and age < 7 * 86400 - 3600:
        return False
    subprocess.run(restic.command(config, "prune", "--quiet"), check=True)
    subprocess.run(restic.command(config, "check", f"--read-data-subset={config.get('check_subset', '5%')}"), check=True)
    with open(stamp, "w", encoding="utf-8") as handle:
        handle.write(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
    return True


def latest(config):
    return restic.find_snapshot(config, "latest", host=config["host"])


def local_directory():
    """The repository's directory when it is on this host, else None."""
    repository = os.environ["RESTIC_REPOSITORY"]
    return repository.removeprefix("local:") if repository.startswith(("/", "local:")) else None


def init(config):
    """Create the repository once. A marker of the repository and password already opened makes a
    run with nothing new cost no restic call (restic derives its key slowly, on purpose)."""
    with open(os.environ["RESTIC_PASSWORD_FILE"], "rb") as handle:
        opened = hashlib.sha256(os.environ["RESTIC_REPOSITORY"].encode() + b"\0" + handle.read()).hexdigest()
    marker = os.path.join(os.path.dirname(CONFIG), "opened")
    local = local_directory()
    if not local or os.path.exists(os.path.join(local, "config")):  # a local one that is gone is made again
        try:
            with open(marker, encoding="utf-8") as handle:
                if handle.read().strip() == opened:
                    return "unchanged"
        except FileNotFoundError:
            pass
    state = open_or_create(config)
    with open(marker, "w", encoding="utf-8") as handle:
        handle.write(opened + "\n")
    return state


def check_password(config, given):
    """Fail unless the password given (bytes) opens the repository; one for a repository still
    to be made passes (init makes it), and so does the host's own without a restic call."""
    try:
        with open(os.environ["RESTIC_PASSWORD_FILE"], "rb") as handle:
            if handle.read() == given:
                return
    except FileNotFoundError:
        pass
    env = {key: value for key, value in os.environ.items() if key != "RESTIC_PASSWORD_FILE"}
    env["RESTIC_PASSWORD"] = given.decode()
    probe = subprocess.run(restic.command(config, "cat", "config"), capture_output=True, check=False, env=env)
    error = probe.stderr.decode(errors="replace")
    if probe.returncode == 0 or "does not exist" in error or "unable to open config file" in error:
        return
    if "wrong password" in error or "no key found" in error:
        raise LernmanagerError(f"the password does not open the repository {os.environ['RESTIC_REPOSITORY']}: "
                               "set lernmanager_backup_password to its password (the host keeps the one it has)")
    raise LernmanagerError(f"cannot open the repository {os.environ['RESTIC_REPOSITORY']}: {error.strip()[-1000:]}")


def open_or_create(config):
    if local_directory():
        os.makedirs(local_directory(), mode=0o700, exist_ok=True)
    probe = subprocess.run(restic.command(config, "cat", "config"), capture_output=True, check=False)
    if probe.returncode == 0:
        return "exists"
    error = probe.stderr.decode(errors="replace")
    if "wrong password" in error or "no key found" in error:
        raise LernmanagerError("the repository exists, and the backup password does not open it: "
                               "set lernmanager_backup_password to the repository's password")
    created = subprocess.run(restic.command(config, "init"), capture_output=True, check=False)
    if created.returncode != 0:
        raise LernmanagerError("cannot open or create the repository: "
                               + (created.stderr or probe.stderr).decode(errors="replace").strip())
    return "created"


def on_failure(config):
    """The unit's ExecStopPost= (it runs after every run): the admin's command, after a failed one."""
    result = os.environ.get("SERVICE_RESULT", "success")
    if result == "success" or not config.get("on_failure"):
        return 0
    env = dict(os.environ, LERNMANAGER_HOST=config["host"])
    return subprocess.run(["/bin/sh", "-c", config["on_failure"]], env=env, check=False).returncode


def run(config, command, before_restore, state_dir):
    """A backup set (`run`, `run-and-check`); the exit status."""
    started = time.monotonic()
    if before_restore:
        # restore.yml's set of the data it is about to overwrite: a tag of its own, so that
        # neither retention nor `latest` ever picks it, and no forget: that could drop the
        # set being restored (one of the same day, say) between finding it and reading it.
        summary = backup(config, tag=restic.TAG_BEFORE_RESTORE)
        summary["checked"] = False
    else:
        summary = backup(config)
        keep(config)
        summary["checked"] = weekly_check(config, state_dir, force=command == "run-and-check")
    summary["seconds"] = round(time.monotonic() - started, 1)
    log(json.dumps(summary, sort_keys=True))
    if summary["skipped"]:
        log(f"left out {summary['skipped']} links, special or sparse files or names with a line break in "
            "the uploads and reports (the app makes none: look at who did)")
    if summary["anomalies"]:
        # The set is saved; the run still fails, so that the unit's state, the admin's
        # on-failure command and the status show it.
        for anomaly in summary["anomalies"]:
            log(f"ANOMALY: {anomaly}; the app's account may have been misused. The set was saved "
                "without the migration record (a restore refuses it); deploy with "
                "-e lernmanager_quarantine_planted=true to move the planted entry aside")
        if not before_restore:
            return 2
    return 0


def main(argv):
    config = restic.load_settings(CONFIG)
    os.environ.update(config["environment"])
    command = argv[1] if len(argv) > 1 else "run"
    # The backup unit's StateDirectory= (the drill's unit shares it), also when run by hand.
    state_dir = config.get("state_dir") or os.environ.get("STATE_DIRECTORY", "/var/lib/lernmanager-backup")
    try:
        if command == "restic":
            return subprocess.run(restic.command(config, *argv[2:]), check=False).returncode
        if command == "on-failure":
            return on_failure(config)
        if command == "check-password" and argv[2:] == ["-"]:
            check_password(config, sys.stdin.buffer.read())
            return 0
        if command == "init":
            log(init(config))
        elif command == "latest":
            print(json.dumps(latest(config)))
        elif command == "drill":
            wait_for_deploy(config)
            with one_at_a_time(state_dir):
                verdict = drill(config, state_dir)
            log(json.dumps(verdict, sort_keys=True))
            for problem in verdict["problems"]:
                log(f"FAILED: {problem}")
            return 0 if verdict["ok"] else 1
        elif command == "care":
            wait_for_deploy(config)
            with one_at_a_time(state_dir):
                result = care(config, state_dir)
            log(json.dumps(result, sort_keys=True))
            if not result["ok"]:
                log(f"FAILED: quick_check of {config['database']}: {result['quick_check'][:500]}; nothing was changed. "
                    "Restore the newest good set (playbooks/restore.yml)")
            return 0 if result["ok"] else 1
        elif command in ("run", "run-and-check"):
            if "--lock-held" not in argv:  # restore.yml holds it, and backs up before it overwrites
                wait_for_deploy(config)
            with one_at_a_time(state_dir):
                return run(config, command, "--before-restore" in argv, state_dir)
        else:
            raise LernmanagerError(f"unknown command {command!r}: run, run-and-check, drill, care, init, latest, on-failure or restic")
    except (LernmanagerError, OSError, ValueError, subprocess.CalledProcessError) as error:
        print(f"lernmanager-backup: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
