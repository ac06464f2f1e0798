# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""The backup set: everything a school needs back after losing its VPS, as one tar stream.

Members, in this order (the order is the consistency rule: the database first, then the files it
names; uploads are written once, before the row that names them, so every upload a row of the
snapshot names is in the set):
  set.json                  format, host, the live release, the database's name
  data/check.json           the snapshot's integrity_check and table count
  data/mbi_tracker.db       SQLite online-backup snapshot, integrity-checked (snapshot.export)
  data/migrations_done.txt  the migration record, read before and after the snapshot
  config/<name>             root's own files: the secret key, the env file, the admin password
  live.json                 which release served, and which one before it
  instance/uploads/...      pupils' and teachers' files
  instance/reports/...      the generated PDF reports

Root never opens a name in the service's directories: the service user streams the snapshot
and the instance files (ServiceUser.run), and root passes on only what it checked: directories
and regular files under the expected names, with modes it sets itself. Links and special files
the service planted are left out and counted.
"""

from __future__ import annotations

import json
import os
import posixpath
import stat
import tarfile

from ansible_collections.lernmanager.deploy.plugins.module_utils.service_user import LernmanagerError
from ansible_collections.lernmanager.deploy.plugins.module_utils.snapshot import (
    CHECK_MEMBER, DATABASE_MEMBER, RECORD_MEMBER, drain, export, tar_add_bytes)

FORMAT = 1
SET_NAME = "lernmanager.tar"  # the file name of the stream in the restic snapshot
INSTANCE_PARTS = ("uploads", "reports")
CONFIG_FILES = ("secret_key", "lernmanager.env", "admin_password", "adopted.env")
CHUNK = 1 << 20


# --- as the service user ------------------------------------------------------------------------

def export_instance(instance_dir, parts, stdout, **_):
    """The instance's parts as tar on stdout: directories and regular files, in name order (the
    same bytes for the same files, so restic stores an unchanged set as nothing new). Returns how
    many links and special files were left out."""
    skipped = 0
    with tarfile.open(fileobj=stdout, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for part in parts:
            top = os.path.join(instance_dir, part)
            if not os.path.isdir(top) or os.path.islink(top):
                continue
            for path, dirs, files in os.walk(top):  # never into a linked directory
                dirs.sort()
                skipped += sum(1 for name in dirs if os.path.islink(os.path.join(path, name)))
                dirs[:] = [name for name in dirs if not os.path.islink(os.path.join(path, name))]
                name = os.path.relpath(path, instance_dir)
                info = tarfile.TarInfo(name)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o750, int(os.lstat(path).st_mtime)
                tar.addfile(info)
                for file_name in sorted(files):
                    skipped += not _add_regular(tar, os.path.join(path, file_name), f"{name}/{file_name}")
    return skipped


def _add_regular(tar, path, name):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # a link (ELOOP), or gone since the listing
        return False
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = st.st_size, 0o640, int(st.st_mtime)
        tar.addfile(info, handle)
    return True


# --- as root ----------------------------------------------------------------------------------------

def checked_instance_name(name, parts):
    """A member name from the service user's stream, or an error: relative, normalised, in a part."""
    if (not name or name.startswith("/") or posixpath.normpath(name) != name
            or any(c in name for c in "\0\n\r") or name.split("/")[0] not in parts
            or ".." in name.split("/")):
        raise LernmanagerError(f"refused member {name!r} in the instance stream")
    return name


def relay_instance(stream, out, parts, totals):
    """Pass the service user's instance stream on into out, member by member, checked."""
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            name = checked_instance_name(member.name, parts)
            info = tarfile.TarInfo(f"instance/{name}")
            info.mtime = member.mtime
            if member.isdir():
                info.type, info.mode = tarfile.DIRTYPE, 0o750
                out.addfile(info)
            elif member.isfile():
                info.size, info.mode = member.size, 0o640
                out.addfile(info, tar.extractfile(member))
                totals["files"] += 1
                totals["bytes"] += member.size
            else:
                raise LernmanagerError(f"refused member {member.name!r} (not a file) in the instance stream")
    drain(stream)


def relay_snapshot(stream, out, database_name, check):
    """Pass snapshot.export's stream on under data/, keeping its check."""
    names = {CHECK_MEMBER: f"data/{CHECK_MEMBER}", DATABASE_MEMBER: f"data/{database_name}",
             RECORD_MEMBER: f"data/{RECORD_MEMBER}"}
    seen = []
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if member.name not in names or not member.isfile() or member.name in seen:
                raise LernmanagerError(f"unexpected member {member.name!r} in the snapshot stream")
            source = tar.extractfile(member)
            if member.name == CHECK_MEMBER:
                data = source.read(1 << 16)
                check.update(json.loads(data))
                tar_add_bytes(out, names[CHECK_MEMBER], data)
                seen.append(member.name)
                continue
            info = tarfile.TarInfo(names[member.name])
            # mtime 0: the snapshot's is the time it was taken, which would change every set's bytes.
            info.size, info.mode, info.mtime = member.size, 0o600, 0
            out.addfile(info, source)
            seen.append(member.name)
    drain(stream)
    if DATABASE_MEMBER not in seen or CHECK_MEMBER not in seen:
        raise LernmanagerError(f"incomplete snapshot stream: {seen}")


def read_root_file(path):
    """A file of root's own (config, live state): a regular file root owns, or None if missing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != 0:
            raise LernmanagerError(f"{path} must be a regular file owned by root")
        return handle.read()


def write_set(out, user, database, instance_dir, config_dir, live_state, host):
    """The backup set as one tar stream into out (a binary file). Returns a summary."""
    live = read_root_file(live_state)
    release = json.loads(live).get("release") if live else None
    check, totals = {}, {"files": 0, "bytes": 0}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        # No time here (restic's snapshot has it): the same data must give the same bytes.
        header = {"format": FORMAT, "host": host, "release": release, "database": os.path.basename(database)}
        tar_add_bytes(tar, "set.json", json.dumps(header, sort_keys=True).encode())
        try:
            user.run(export, database,
                     read=lambda stream: relay_snapshot(stream, tar, os.path.basename(database), check))
        except LernmanagerError as error:
            raise LernmanagerError(f"the database snapshot as {user.name} failed: {error}") from None
        for name in CONFIG_FILES:
            data = read_root_file(os.path.join(config_dir, name))
            if data is not None:
                tar_add_bytes(tar, f"config/{name}", data)
        if live is not None:
            tar_add_bytes(tar, "live.json", live)
        try:
            skipped = user.run(export_instance, instance_dir, INSTANCE_PARTS,
                               read=lambda stream: relay_instance(stream, tar, INSTANCE_PARTS, totals))
        except LernmanagerError as error:
            raise LernmanagerError(f"reading the uploads and reports as {user.name} failed: {error}") from None
    return {"release": release, "integrity": check.get("integrity"), "tables": check.get("tables"),
            "files": totals["files"], "file_bytes": totals["bytes"], "skipped": skipped}
