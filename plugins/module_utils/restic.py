# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""restic on the repository of a host's backup settings (<config dir>/backup/config.json, written
by tasks/steps/host/backups.yml): the command line, its environment, and the snapshots of the set.
Shared by the host's lernmanager-backup script and the backup_set module."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import time

from ansible_collections.lernmanager.deploy.plugins.module_utils.service_user import LernmanagerError

TAG = "lernmanager"
TAG_BEFORE_RESTORE = "lernmanager-before-restore"  # restore.yml's set of the data it overwrites


def load_settings(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise LernmanagerError(f"{path} is missing: deploy the role (it schedules the backups) first") from None


def sftp_options(repository, ssh_config):
    """restic's sftp.command for sftp:user@host:/path or sftp://user@host:port//path, with the
    role's ssh_config (key, known hosts, batch mode): restic's own command has no -F."""
    if repository.startswith("sftp://"):
        authority, port = repository[len("sftp://"):].split("/", 1)[0], None
        user, host = authority.rpartition("@")[::2]
        if host.startswith("["):
            host, tail = host[1:].partition("]")[::2]
            port = tail[1:] or None
        elif ":" in host:
            host, port = host.split(":", 1)
    else:
        user, host = repository[len("sftp:"):].split(":", 1)[0].rpartition("@")[::2]
        port = None
    command = ["ssh", "-F", ssh_config, *(["-p", port] if port else []), *(["-l", user] if user else []),
               host, "-s", "sftp"]
    return ["-o", "sftp.command=" + " ".join(command)]


def command(settings, *args):
    """restic's argv for the settings' repository (run it with environment(settings))."""
    repository = settings["environment"]["RESTIC_REPOSITORY"]
    options = sftp_options(repository, settings["ssh_config"]) if repository.startswith("sftp:") else []
    return ["restic", *options, *args]


def environment(settings):
    return dict(os.environ, **settings["environment"])


def run(settings, *args):
    """restic's stdout; a failure as a LernmanagerError with restic's own words."""
    result = subprocess.run(command(settings, *args), env=environment(settings), capture_output=True, check=False)
    if result.returncode != 0:
        error = result.stderr.decode(errors="replace").strip()
        if "wrong password" in error or "no key found" in error:
            raise LernmanagerError("the backup password does not open the repository "
                                   f"{settings['environment']['RESTIC_REPOSITORY']}: set lernmanager_backup_password "
                                   "to the repository's password")
        raise LernmanagerError(f"restic {args[0]} failed: {error[-1500:]}")
    return result.stdout


def describe(snapshot):
    """A snapshot of the set as JSON-able facts: id, UTC time, age, host, release."""
    # restic writes nanoseconds and the host's offset: Python reads up to microseconds.
    taken = datetime.datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", snapshot["time"]).replace("Z", "+00:00"))
    release = [tag[len("release="):] for tag in snapshot.get("tags") or [] if tag.startswith("release=")]
    return {"id": snapshot["short_id"], "full_id": snapshot["id"],
            "time": taken.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "age_seconds": int(time.time() - taken.timestamp()), "release": release[0] if release else None,
            "host": snapshot.get("hostname")}


def find_snapshot(settings, which="latest", host=None, lock=True):
    """The snapshot `which` (latest, or an id) of the set, of host when given; None if there is none.
    `latest` is the newest regular set; an id may also name a set taken before a restore. Without
    `lock`, restic writes no lock file into the repository (a status read changes nothing)."""
    args = ["snapshots", "--json", "--tag", TAG] + ([] if lock else ["--no-lock"])
    if which != "latest":
        args += ["--tag", TAG_BEFORE_RESTORE]  # two --tag options: either tag matches
    if host:
        args += ["--host", host]
    args += ["--latest", "1"] if which == "latest" else [which]
    snapshots = json.loads(run(settings, *args) or b"[]")
    return describe(snapshots[-1]) if snapshots else None


def restore_from_dump(settings, snapshot, path, consume):
    """consume(stream) on `restic dump snapshot path`, streamed (a set can be larger than memory);
    restic is stopped when consume fails, and its own failure is raised after."""
    dump = subprocess.Popen(command(settings, "dump", snapshot, path), env=environment(settings),  # pylint: disable=consider-using-with
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        result = consume(dump.stdout)
    except Exception as failure:
        # A stream that ended early is most often restic's failure (a pack missing or damaged in
        # the repository): its own words then, not the tar reader's.
        try:
            code = dump.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        if code:
            raise LernmanagerError(f"restic dump failed: {dump.stderr.read().decode(errors='replace')[-1500:]}") from failure
        stop(dump)
        raise
    except BaseException:
        stop(dump)
        raise
    error = dump.stderr.read().decode(errors="replace")
    if dump.wait() != 0:
        raise LernmanagerError(f"restic dump failed: {error[-1500:]}")
    return result


def stop(dump):
    """End a restic dump still running."""
    if dump.poll() is None:
        # SIGTERM, not SIGKILL: restic then removes its lock from the repository, which the next
        # backup's forget (it needs the repository alone) would otherwise stop at.
        dump.terminate()
        try:
            dump.wait(timeout=30)
        except subprocess.TimeoutExpired:
            dump.kill()
            dump.wait()
