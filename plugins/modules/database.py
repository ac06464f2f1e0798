#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""Backups, restores and trial migrations of the app's SQLite database, across the trust boundary."""

from __future__ import annotations

DOCUMENTATION = r"""
module: database
short_description: Back up, restore and trial-migrate Lernmanager's SQLite database
description:
  - V(backup) takes a consistent snapshot of the live database (WAL mode) with SQLite's online
    backup API, checks it with C(integrity_check), and keeps it with its migration record in the
    root-only O(backup_dir) as C(<UTC time>_<label>.db). The O(keep) newest of its pool stay;
    pre-migration backups (labels C(<from>_to_<to>)) have a pool of their own.
  - V(restore) puts O(backup) back, with its migration record, through the same API (the service
    and its socket must be stopped).
  - V(trial_migrate) runs the release's pending migrations on a copy of O(backup) and fails,
    naming the migration, when one fails; the live database is never touched. The copy (of the
    release and the backup) lies in a new directory in O(work_dir), which is root's and outside
    the service's writable paths, so the running app cannot change the copy's code; the
    migrations run in the service's sandbox O(sandbox) with only that directory writable.
  - V(prune_app_copies) removes the app's own full copies of the database beyond the O(keep)
    newest (regular files C(<database>.backup_<time>) beside it, one per migration the app runs).
  - The database's directory belongs to the service user, who may have planted links there.
    Every read and write in it runs as O(user), in a child process that streams the database to
    or from this module (root) through a pipe; root reads and writes only O(backup_dir), through a
    directory descriptor, never following a link.
  - O(release), O(venv), O(env_file), O(app_environment), O(sandbox) and O(deploy_group) are for
    V(trial_migrate); O(user) is required.
version_added: 0.1.0
author: Lernmanager deployment team (@lernmanager)
extends_documentation_fragment: [lernmanager.deploy.attributes, lernmanager.deploy.app_runtime]
options:
  action:
    description: What to do.
    type: str
    required: true
    choices: [backup, restore, trial_migrate, prune_app_copies]
  database:
    description: The live database (in the service user's C(data/) directory).
    type: path
    required: true
  backup_dir:
    description: (V(backup)) The root-only (0700) directory for backups; created when missing.
    type: path
  label:
    description: (V(backup)) The backup's label, for example C(<from>_to_<to>) or C(<release>_manual).
    type: str
  keep:
    description: (V(backup), V(prune_app_copies)) Backups of the same pool, or app copies, to keep.
    type: int
    default: 10
  backup:
    description: (V(restore), V(trial_migrate)) The backup to restore, or to run the migrations on a copy of.
    type: path
  work_dir:
    description:
      - (V(trial_migrate)) Root's directory for the trial's copies (created 0755 when missing; refused
        unless root's and writable by root alone). Each trial makes a directory of the service user's
        in it and removes it afterwards.
      - Never a directory the service can write (its C(shared/instance/tmp)), where the running app could
        change the copy's code while the trial runs.
    type: path
attributes:
  check_mode:
    support: full
    details:
      - V(backup) and V(restore) report a change and write nothing.
      - V(trial_migrate) only lists the pending migrations.
      - V(prune_app_copies) lists what it would remove.
notes:
  - Fails before any change unless each file system involved has twice the database plus 100 MiB free.
"""

EXAMPLES = r"""
- name: Back up the database before migrating
  lernmanager.deploy.database:
    action: backup
    database: /opt/lernmanager/shared/data/mbi_tracker.db
    user: lernmanager
    backup_dir: /opt/lernmanager/shared/backups
    label: g-1a2b3c_to_g-4d5e6f
    keep: 10
  register: backup

- name: Try the pending migrations on a copy of it
  lernmanager.deploy.database:
    action: trial_migrate
    database: /opt/lernmanager/shared/data/mbi_tracker.db
    user: lernmanager
    backup: "{{ backup.backup }}"
    release: /opt/lernmanager/releases/g-4d5e6f
    venv: /opt/lernmanager/venvs/7a8b9c
    env_file: /etc/lernmanager/lernmanager.env
    work_dir: /opt/lernmanager/trials
    deploy_group: lernmanager-deploy
    sandbox: "{{ lookup('ansible.builtin.template', 'service-sandbox.j2') }}"
    app_environment:
      PYTHONPYCACHEPREFIX: /var/cache/lernmanager/pycache
"""

RETURN = r"""
backup:
  description: (V(backup)) The new backup's path; none when there is no database yet or in check mode.
  type: str
  returned: when action is backup
reason:
  description: (V(backup)) Why no backup was written (C(no database yet)).
  type: str
  returned: when there is no database to back up
restored:
  description: (V(restore)) The backup the database was restored from.
  type: str
  returned: when action is restore
database:
  description: (V(restore)) The database that was restored.
  type: str
  returned: when action is restore
integrity:
  description: (V(backup)) The snapshot's C(integrity_check) result.
  type: str
  returned: when a backup was written
tables:
  description: (V(backup)) Tables in the snapshot.
  type: int
  returned: when a backup was written
removed:
  description: (V(backup)) Older backups removed beyond O(keep); (V(prune_app_copies)) the app copies removed.
  type: list
  elements: str
  returned: when a backup was written, and by prune_app_copies
pending:
  description: (V(trial_migrate)) The migrations the release would run.
  type: list
  elements: str
  returned: when action is trial_migrate
ran:
  description: (V(trial_migrate)) The migrations that succeeded on the copy.
  type: list
  elements: str
  returned: when action is trial_migrate
failed_migration:
  description: (V(trial_migrate)) The migration that failed on the copy, if one did.
  type: str
  returned: when action is trial_migrate
output:
  description: (V(trial_migrate)) The failed migration's output (its end).
  type: str
  returned: when action is trial_migrate
"""

import json
import os
import shutil
import sqlite3
import stat
import tarfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lernmanager.deploy.plugins.module_utils.app_runtime import (
    RECORD_NAME, RUNTIME_ARGUMENT_SPEC, app_environment, pending_migrations)
from ansible_collections.lernmanager.deploy.plugins.module_utils.sandbox import Sandbox, run_migrations
from ansible_collections.lernmanager.deploy.plugins.module_utils.service_user import (
    LernmanagerError, ServiceUser, empty_directory)
from ansible_collections.lernmanager.deploy.plugins.module_utils.snapshot import (
    CHECK_MEMBER, DATABASE_MEMBER, RECORD_MEMBER, Kept, copy_members, export, import_stream, integrity_check)

FREE_MARGIN = 100 << 20


# --- shared by both sides ---------------------------------------------------------------------------

def require_free_space(database, *directories):
    """Fail before any change unless each file system has twice the database plus 100 MiB free."""
    try:
        size = os.stat(database, follow_symlinks=False).st_size
    except FileNotFoundError:
        size = 0
    needed = 2 * size + FREE_MARGIN
    for directory in directories:
        # Through a descriptor opened without following a link: the service owns some of them.
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            space = os.statvfs(fd)
        finally:
            os.close(fd)
        free = space.f_bavail * space.f_frsize
        if free < needed:
            raise LernmanagerError(
                f"not enough free space in {directory}: {free >> 20} MiB free, {needed >> 20} MiB needed "
                f"(twice the database of {size >> 20} MiB plus 100 MiB); nothing was changed")


# --- as the service user (ServiceUser.run) ----------------------------------------------------------

def list_pending(release, **_):
    return pending_migrations(release)


def prepare_trial(release, work, database_name, stdin, **_):
    """The trial's copy in work (the service user's own, made by root): the release and the streamed
    backup. A copy, not links: an app that resolves its own path with realpath must still find the
    trial's data/, not the live one."""
    app = os.path.join(work, "app")
    shutil.copytree(release, app, symlinks=True, ignore=shutil.ignore_patterns("data", "instance", ".venv"))
    for sub in ("data", "instance/uploads", "instance/tmp"):
        os.makedirs(os.path.join(app, sub))
    data = os.path.join(app, "data")
    copy_members(stdin, {DATABASE_MEMBER: lambda: open(os.path.join(data, database_name), "xb"),
                         RECORD_MEMBER: lambda: open(os.path.join(data, RECORD_NAME), "xb")})
    result = integrity_check(os.path.join(data, database_name))[0]
    if result != "ok":
        raise LernmanagerError(f"the backup fails integrity_check ({result}); no migration was tried")
    return app


def prune_copies(data_dir, prefix, keep, dry_run, **_):
    """The app's own database copies (<prefix><time>, regular files) beyond the newest keep, removed."""
    copies = []
    for name in os.listdir(data_dir):
        if name.startswith(prefix):
            st = os.lstat(os.path.join(data_dir, name))
            if stat.S_ISREG(st.st_mode):
                copies.append((st.st_mtime, name))
    old = [name for mtime, name in sorted(copies, reverse=True)[keep:]]
    if not dry_run:
        for name in old:
            os.unlink(os.path.join(data_dir, name))
    return sorted(old)


# --- as root --------------------------------------------------------------------------------------------

def open_roots_dir(path, mode, why):
    """A directory of root's as a file descriptor, created with mode if missing; refused when it is
    not root's or has more permission bits than mode."""
    os.makedirs(path, mode=mode, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    st = os.fstat(fd)
    if st.st_uid != 0 or st.st_mode & 0o777 & ~mode:
        os.close(fd)
        raise LernmanagerError(f"{path} must be root's, mode {mode:04o} at most ({why})")
    return fd


def open_backups_dir(path):
    """The root-only backups directory (created 0700 if missing)."""
    return open_roots_dir(path, 0o700, "it holds the school's data")


class BackupFile:
    """A new 0600 file in the backups directory, written as .<name>.partial, renamed by commit()."""

    def __init__(self, dir_fd, name):
        self.dir_fd, self.name, self.partial = dir_fd, name, f".{name}.partial"
        self.written = False

    def open(self):
        self.discard()
        fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=self.dir_fd)
        self.written = True
        return os.fdopen(fd, "wb")

    def commit(self):
        fd = os.open(self.partial, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=self.dir_fd)
        os.fsync(fd)
        os.close(fd)
        os.rename(self.partial, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)

    def discard(self):
        try:
            os.unlink(self.partial, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass


def record_of(backup_name):
    """A backup's migration record beside it: <name>.migrations_done.txt for <name>.db."""
    return backup_name[:-len(".db")] + ".migrations_done.txt"


def backup_pool(name):
    """Pre-migration backups (<from>_to_<to>) have a pool of their own: no other kind pushes them out."""
    return "pre-migration" if "_to_" in name else "other"


def backup(user, database, backup_dir, label, keep):
    dir_fd = open_backups_dir(backup_dir)
    name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "_" + label
    try:
        require_free_space(database, os.path.dirname(database), backup_dir)
        database_file, record = BackupFile(dir_fd, name + ".db"), BackupFile(dir_fd, record_of(name + ".db"))
        check, seen = Kept(), []

        def read(stream):
            seen.extend(copy_members(stream, {CHECK_MEMBER: lambda: check, DATABASE_MEMBER: database_file.open,
                                              RECORD_MEMBER: record.open}))
        try:
            user.run(export, database, read=read)
            if DATABASE_MEMBER not in seen or CHECK_MEMBER not in seen:
                raise LernmanagerError(f"incomplete stream: {seen}")
        except LernmanagerError as error:
            database_file.discard()
            record.discard()
            raise LernmanagerError(f"the snapshot as {user.name} failed: {error}") from None
        check = json.loads(check.kept)
        # The record first: a .db without its record would read as "no migrations ran".
        if record.written:
            record.commit()
        database_file.commit()
        removed = []
        pool = backup_pool(name)
        names = sorted((n for n in os.listdir(dir_fd) if n.endswith(".db")), reverse=True)
        for old in [n for n in names if backup_pool(n) == pool][keep:]:
            for path in (old, record_of(old)):
                try:
                    os.unlink(path, dir_fd=dir_fd)
                except FileNotFoundError:
                    pass
            removed.append(old)
    finally:
        os.close(dir_fd)
    return {"changed": True, "backup": os.path.join(backup_dir, name + ".db"), "integrity": check["integrity"],
            "tables": check["tables"], "removed": removed}


def feed_backup(backup_path):
    """A feed for ServiceUser.run: the backup (root-only) and its record as a tar stream. The child
    checks the database's integrity before it uses it (import_stream, prepare_trial): root never
    lets SQLite parse bytes the service made."""
    def feed(writer):
        with tarfile.open(fileobj=writer, mode="w|") as tar:
            tar.add(backup_path, arcname=DATABASE_MEMBER)
            if os.path.exists(record_of(backup_path)):
                tar.add(record_of(backup_path), arcname=RECORD_MEMBER)
    return feed


def restore(user, database, backup_path):
    require_free_space(backup_path, os.path.dirname(database))
    try:
        user.run(import_stream, database, feed=feed_backup(backup_path))
    except LernmanagerError as error:
        raise LernmanagerError(f"the restore as {user.name} failed: {error}") from None
    return {"changed": True, "restored": backup_path, "database": database}


def open_trials_dir(path):
    """Root's directory of the trials (created 0755 if missing): the service may look, never write."""
    return open_roots_dir(path, 0o755, "the trials' code lies in it")


def trial_migrate(user, sandbox, database, backup_path, release, venv, app_env, work_dir, dry_run):
    """Run the pending migrations on a copy of a backup first: a failing one never touches live data."""
    pending = user.run(list_pending, release)
    if not pending or dry_run:
        return {"changed": False, "pending": pending, "ran": [], "failed_migration": None, "output": ""}
    dir_fd = open_trials_dir(work_dir)
    try:
        require_free_space(backup_path, work_dir)
        name = f".trial-{os.urandom(6).hex()}"
        os.mkdir(name, 0o700, dir_fd=dir_fd)
        work = os.path.join(work_dir, name)
        try:
            os.chown(name, user.uid, user.gid, dir_fd=dir_fd, follow_symlinks=False)
            app = user.run(prepare_trial, release=release, work=work, database_name=os.path.basename(database),
                           feed=feed_backup(backup_path))
            environment = {**app_environment(app, app_env), "TMPDIR": os.path.join(app, "instance", "tmp")}
            ran, failed, output = run_migrations(sandbox, app, os.path.join(venv, "bin", "python"), pending,
                                                 environment, read_write=[work])
        finally:
            try:
                user.run(empty_directory, work)  # what the trial left; root removes the directory
            finally:
                os.rmdir(name, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    return {"changed": False, "pending": pending, "ran": ran, "failed_migration": failed, "output": output}


REQUIRED = {"backup": ("backup_dir", "label"), "restore": ("backup",), "prune_app_copies": (),
            "trial_migrate": ("backup", "release", "venv", "env_file", "work_dir", "sandbox", "deploy_group")}


def main():
    module = AnsibleModule(
        argument_spec={
            "action": {"type": "str", "required": True, "choices": list(REQUIRED)},
            "database": {"type": "path", "required": True},
            **RUNTIME_ARGUMENT_SPEC,
            "backup_dir": {"type": "path"},
            "label": {"type": "str"},
            "keep": {"type": "int", "default": 10},
            "backup": {"type": "path"},
            "work_dir": {"type": "path"},
        },
        required_if=[("action", action, ("user", *names)) for action, names in REQUIRED.items()],
        supports_check_mode=True,
    )
    p = module.params
    action = p["action"]
    try:
        user = ServiceUser(p["user"])
        if action == "backup":
            if not os.path.lexists(p["database"]):
                module.exit_json(changed=False, backup=None, reason="no database yet")
            if p["keep"] < 1:
                raise LernmanagerError(f"keep must be at least 1 (got {p['keep']})")
            if module.check_mode:
                module.exit_json(changed=True, backup=None)
            result = backup(user, p["database"], p["backup_dir"], p["label"], p["keep"])
        elif action == "prune_app_copies":
            if p["keep"] < 0:
                raise LernmanagerError(f"keep must be at least 0 (got {p['keep']})")
            data_dir = os.path.dirname(p["database"])
            removed = user.run(prune_copies, data_dir, os.path.basename(p["database"]) + ".backup_", p["keep"],
                               module.check_mode)
            result = {"changed": bool(removed), "removed": removed}
        elif action == "restore":
            if module.check_mode:
                module.exit_json(changed=True, restored=p["backup"], database=p["database"])
            result = restore(user, p["database"], p["backup"])
        else:
            sandbox = Sandbox(user.name, p["deploy_group"], p["sandbox"], p["env_file"])
            result = trial_migrate(user, sandbox, p["database"], p["backup"], p["release"], p["venv"],
                                   p["app_environment"], p["work_dir"], module.check_mode)
            if result["failed_migration"]:
                module.fail_json(msg=f"migration {result['failed_migration']} failed on a copy of the database; "
                                     "the live database was not touched", **result)
    except (LernmanagerError, OSError, sqlite3.Error) as error:  # OSError: a path replaced by a link, a full disk
        module.fail_json(msg=str(error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
