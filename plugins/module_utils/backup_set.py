# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""The backup set: everything a school needs back after losing its VPS, as one tar stream.

Members, in this order (the order is the consistency rule: the database first, then the files it
names; uploads are written once, before the row that names them, so every upload a row of the
snapshot names is in the set):
  set.json                  format, host, the live release, the database's name
  data/check.json           the snapshot's integrity_check and table count (and a planted record
                            left out: "record": "left out", "anomalies")
  data/mbi_tracker.db       SQLite online-backup snapshot, integrity-checked (snapshot.export)
  data/migrations_done.txt  the migration record, read before and after the snapshot
  config/<name>             root's own files: the secret key, the env file, the admin password
  live.json                 which release served, and which one before it
  instance/uploads/...      pupils' and teachers' files
  instance/reports/...      the generated PDF reports
  end.json                  how many files and bytes the instance parts hold (sets made since
                            the restore drill: it tells a set that ends early from a whole one)
In each instance part, its directories come first, then its files oldest first (by their whole
seconds, then name): files are written once, so a day's new ones come at the end of the stream,
and restic's chunks of all the older ones stay as they were. In name order, each new upload among
a thousand older ones made restic store the one or two chunks around it (about 1 MiB each) again.

Root never opens a name in the service's directories: the service user streams the snapshot
and the instance files (ServiceUser.run), and root passes on only what it checked: directories
and regular files under the expected names, with modes it sets itself. Links and special files
the service planted are left out and counted.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile

from ansible_collections.lernmanager.deploy.plugins.module_utils.service_user import LernmanagerError, empty_directory
from ansible_collections.lernmanager.deploy.plugins.module_utils.snapshot import (
    CHECK_MEMBER, DATABASE_MEMBER, RECORD_LEFT_OUT, RECORD_MEMBER, drain, drill_of_stream, export, feed_file, import_stream,
    integrity_of_stream, tar_add_bytes, write_replacing)

# 2: the restore drill's record (check.json's rows, end.json). A set of format 1 restores and is drilled
# for its integrity; a role that reads only 1 refuses a set of 2 by its number, before anything changes.
FORMAT = 2
READABLE_FORMATS = (1, 2)
SET_NAME = "lernmanager.tar"  # the file name of the stream in the restic snapshot
INSTANCE_PARTS = ("uploads", "reports")
CONFIG_FILES = ("secret_key", "lernmanager.env", "admin_password", "adopted.env")
# Put back by a restore; lernmanager.env is not: the deploy after it writes the env file from the
# inventory (with the restored secret key), and the set's copy stays there to compare.
RESTORED_CONFIG = ("secret_key", "admin_password", "adopted.env")
SMALL = 1 << 20  # set.json, check.json, the record, config files: never more
CHUNK = 1 << 20
END_MEMBER = "end.json"


# --- as the service user ------------------------------------------------------------------------

# Holes a regular upload may have (a file system's rounding, a tail not yet allocated).
SPARSE_SLACK = 1024 * 1024


def export_instance(instance_dir, parts, stdout, **_):
    """The instance's parts as tar on stdout: in each part its directories in name order, then its
    regular files oldest first (see the module's docstring). The same files give the same bytes,
    so restic stores an unchanged set as nothing new. Returns how many links, special and sparse
    files and names with a line break were left out."""
    skipped = 0
    with tarfile.open(fileobj=stdout, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for part in parts:
            top = os.path.join(instance_dir, part)
            if not os.path.isdir(top) or os.path.islink(top):
                continue
            files = []
            for path, dirs, names in os.walk(top):  # never into a linked directory
                kept = sorted(name for name in dirs if fits_the_stream(name) and not os.path.islink(os.path.join(path, name)))
                skipped += len(dirs) - len(kept)
                dirs[:] = kept
                name = os.path.relpath(path, instance_dir)
                info = tarfile.TarInfo(name)
                # No time: a restore does not set directories' times, and a new file would change
                # its directory's entry near the start of the part.
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o750, 0
                tar.addfile(info)
                for file_name in names:
                    if not fits_the_stream(file_name):
                        skipped += 1
                        continue
                    try:
                        mtime = int(os.lstat(os.path.join(path, file_name)).st_mtime)
                    except FileNotFoundError:
                        continue  # gone since the listing
                    files.append((mtime, f"{name}/{file_name}"))
            for _mtime, name in sorted(files):
                skipped += not _add_regular(tar, os.path.join(instance_dir, name), name)
    return skipped


def fits_the_stream(name):
    """Whether root takes a name of the service's in the stream (checked_instance_name): one with a
    line break would fail the whole set, every night, so it is left out and counted instead."""
    return not any(char in name for char in "\0\n\r")


def _add_regular(tar, path, name):
    """Add the regular file at path; False (left out) for a link, a special or a sparse file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # a link (ELOOP), or gone since the listing
        return False
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        # A sparse file (a terabyte of holes in a few blocks) is no upload: read, it keeps the
        # backup busy for hours; restored, it fills the disk.
        if st.st_blocks * 512 + SPARSE_SLACK < st.st_size:
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


def pass_member(out, source, member, name, totals):
    """A member of the service user's (or the repository's) stream into out under name: a
    directory or a regular file, with root's own modes; anything else is refused."""
    info = tarfile.TarInfo(name)
    info.mtime = member.mtime
    if member.isdir():
        info.type, info.mode = tarfile.DIRTYPE, 0o750
        out.addfile(info)
    elif member.isfile():
        info.size, info.mode = member.size, 0o640
        out.addfile(info, source.extractfile(member))
        totals["files"] += 1
        totals["bytes"] += member.size
    else:
        raise LernmanagerError(f"refused member {member.name!r} (not a file) in the stream")


def relay_instance(stream, out, parts, totals):
    """Pass the service user's instance stream on into out, member by member, checked."""
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            pass_member(out, tar, member, f"instance/{checked_instance_name(member.name, parts)}", totals)
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
            # A planted record is left out and flagged, not a failure: the app's account must not be
            # able to stop the school's backups.
            user.run(export, database, planted_record_ok=True,
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
        tar_add_bytes(tar, END_MEMBER, json.dumps(totals, sort_keys=True).encode())
    return {"release": release, "integrity": check.get("integrity"), "tables": check.get("tables"),
            "files": totals["files"], "file_bytes": totals["bytes"], "skipped": skipped,
            "anomalies": [str(anomaly) for anomaly in check.get("anomalies", [])]}


# --- restoring: as the service user ----------------------------------------------------------------

def clear_parts(instance_dir, parts):
    """The parts' current content removed (a restore over data the host had; backed up first).
    As the service user: rmtree never follows a link, and a planted one goes like any file."""
    for part in parts:
        top = os.path.join(instance_dir, part)
        if os.path.islink(top) or (os.path.lexists(top) and not os.path.isdir(top)):
            os.unlink(top)
            continue
        if os.path.isdir(top):
            empty_directory(top)


def extract_instance(instance_dir, parts, replace, stdin, **_):
    """The set's instance parts from a tar on stdin (root checked every member). New files only
    (O_EXCL, O_NOFOLLOW); directories inherit the setgid group nginx reads uploads through."""
    if replace:
        clear_parts(instance_dir, parts)
    files = 0
    with tarfile.open(fileobj=stdin, mode="r|") as tar:
        for member in tar:
            path = os.path.join(instance_dir, checked_instance_name(member.name, parts))
            if member.isdir():
                os.makedirs(path, mode=0o750, exist_ok=True)
            elif member.isfile():
                os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(tar.extractfile(member), out, CHUNK)
                os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
                files += 1
            else:
                raise LernmanagerError(f"refused member {member.name!r} (not a file)")
    drain(stdin)
    return files


# --- restoring: as root ----------------------------------------------------------------------------

def _small(tar, member):
    if not member.isfile() or member.size > SMALL:
        raise LernmanagerError(f"refused member {member.name!r} in the set")
    return tar.extractfile(member).read()


def refuse_left_out_record(check):
    """Stop before anything changes when the set left the migration record out (it was planted):
    without it the next deploy would run every migration again on a migrated database."""
    if check.get("record") == RECORD_LEFT_OUT:
        raise LernmanagerError(
            "this set was taken while the migration record was planted ("
            + "; ".join(map(str, check.get("anomalies", []))) + "), so it holds no record of which migrations "
            "its database has; nothing was changed. Restore an earlier set (lernmanager_restore_snapshot) "
            "taken before the app's account was misused.")


def restore_set(stream, user, database, instance_dir, config_dir, staging_dir, replace):
    """Put a set (the tar stream write_set made, read back from the repository) back on this host:
    the database and its record (integrity-checked before anything changes), root's config files,
    then the uploads and reports. The service must be stopped. Returns what was put back."""
    tar = tarfile.open(fileobj=stream, mode="r|")  # pylint: disable=consider-using-with
    header, record, config, live = None, None, {}, None
    staged = tempfile.NamedTemporaryFile(prefix=".restore-", suffix=".db", dir=staging_dir)  # pylint: disable=consider-using-with
    try:
        member = tar.next()
        while member is not None and not member.name.startswith("instance/"):
            if member.name == "set.json":
                header = json.loads(_small(tar, member))
                if header.get("format") not in READABLE_FORMATS:
                    raise LernmanagerError(f"a set of format {header.get('format')!r}; this role reads "
                                           f"{' and '.join(map(str, READABLE_FORMATS))}: restore it with the "
                                           "collection's version that made it, or a newer one")
            elif header is None:
                raise LernmanagerError("not a Lernmanager backup set (no set.json first)")
            elif member.name == f"data/{header['database']}" and member.isfile():
                shutil.copyfileobj(tar.extractfile(member), staged, CHUNK)
                staged.flush()
            elif member.name == f"data/{RECORD_MEMBER}":
                record = _small(tar, member)
            elif member.name == f"data/{CHECK_MEMBER}":
                refuse_left_out_record(json.loads(_small(tar, member)))
            elif member.name.startswith("config/") and member.name[len("config/"):] in CONFIG_FILES:
                config[member.name[len("config/"):]] = _small(tar, member)
            elif member.name == "live.json":
                live = json.loads(_small(tar, member))
            elif member.name == END_MEMBER:  # a set without instance files
                _small(tar, member)
            else:
                raise LernmanagerError(f"refused member {member.name!r} in the set")
            member = tar.next()
        if header is None or not staged.tell():
            raise LernmanagerError("the set holds no database; nothing was changed")
        result = user.run(integrity_of_stream, os.path.dirname(database), feed=feed_file(staged.name))
        if result != "ok":
            raise LernmanagerError(f"the set's database fails integrity_check ({result}); nothing was changed")

        for name in RESTORED_CONFIG:
            if name in config:
                write_replacing(os.path.join(config_dir, name), config[name], mode=0o600)

        def feed_database(writer):
            with tarfile.open(fileobj=writer, mode="w|") as out:
                out.add(staged.name, arcname=DATABASE_MEMBER)
                if record is not None:
                    tar_add_bytes(out, RECORD_MEMBER, record)
        user.run(import_stream, database, feed=feed_database)

        totals = {"files": 0, "bytes": 0}

        def feed_instance(writer):
            current = member
            with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as out:
                while current is not None:
                    if current.name == END_MEMBER:
                        _small(tar, current)
                        current = tar.next()
                        continue
                    if not current.name.startswith("instance/"):
                        raise LernmanagerError(f"refused member {current.name!r} after the instance files")
                    name = checked_instance_name(current.name[len("instance/"):], INSTANCE_PARTS)
                    pass_member(out, tar, current, name, totals)
                    current = tar.next()
        user.run(extract_instance, instance_dir, INSTANCE_PARTS, replace, feed=feed_instance)
    finally:
        staged.close()
        tar.close()
    return {"host": header["host"], "release": (live or {}).get("release") or header.get("release"),
            "config": sorted(name for name in RESTORED_CONFIG if name in config), "files": totals["files"],
            "file_bytes": totals["bytes"], "migrations_record": record is not None}


# --- the restore drill: as root ------------------------------------------------------------------

def counted(found):
    """The service user's answer about its copy, as root takes it: a verdict of at most 200
    characters and rows that are numbers under names that print (a hostile answer is a failed drill)."""
    try:
        rows = {str(name)[:100]: int(count) for name, count in dict(found["rows"]).items()}
        return {"integrity": str(found["integrity"])[:200], "rows": rows}
    except (KeyError, TypeError, ValueError):
        return {"integrity": "the copy's check did not answer in numbers", "rows": {}}


def drill_set(stream, user, data_dir):
    """Read a whole set back the way a restore would (the stream restic dumps from the repository)
    and say whether it would restore: its database copied into data/ as the service user, opened,
    integrity-checked and its rows counted per table (snapshot.drill_of_stream), compared with the
    rows the set recorded when it was made; every upload and report read to its end and counted
    against end.json. Nothing on the host changes. Returns {problems: [...], ...}."""
    problems, recorded, found = [], None, None
    header, end, files, file_bytes = None, None, 0, 0
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if header is None:
                if member.name != "set.json":
                    raise LernmanagerError("not a Lernmanager backup set (no set.json first)")
                header = json.loads(_small(tar, member))
            elif member.name == f"data/{CHECK_MEMBER}":
                recorded = json.loads(_small(tar, member))
                if "rows" in recorded:
                    recorded["rows"] = counted({"integrity": "", "rows": recorded["rows"]})["rows"]
            elif member.name == f"data/{header.get('database')}" and member.isfile() and found is None:
                source = tar.extractfile(member)
                found = counted(user.run(drill_of_stream, data_dir,
                                         feed=lambda writer, source=source: shutil.copyfileobj(source, writer, CHUNK)))
            elif member.name == END_MEMBER:
                end = json.loads(_small(tar, member))
            elif member.name.startswith("instance/"):
                checked_instance_name(member.name[len("instance/"):], INSTANCE_PARTS)
                if member.isfile():
                    source = tar.extractfile(member)
                    while source.read(CHUNK):  # to its end: restic checks each chunk's hash as it gives it
                        pass
                    files, file_bytes = files + 1, file_bytes + member.size
            elif member.isfile():
                _small(tar, member)
    drain(stream)
    if found is None:
        problems.append("the set holds no database")
    elif found["integrity"] != "ok":
        problems.append(f"its database fails integrity_check: {found['integrity'][:200]}")
    elif recorded is not None and "rows" in recorded and found["rows"] != recorded["rows"]:
        differ = sorted(name for name in set(found["rows"]) | set(recorded["rows"])
                        if found["rows"].get(name) != recorded["rows"].get(name))
        problems.append(f"the rows of {len(differ)} tables differ from what the set recorded: "
                        + ", ".join(f"{name} {recorded['rows'].get(name, '-')} -> {found['rows'].get(name, '-')}"
                                    for name in differ[:5]))
    if end is not None and (end.get("files"), end.get("bytes")) != (files, file_bytes):
        problems.append(f"the set recorded {end.get('files')} files ({end.get('bytes')} bytes) of uploads and "
                        f"reports, and holds {files} ({file_bytes} bytes)")
    rows = (found or {}).get("rows") or {}
    return {"problems": problems, "tables": len(rows), "rows": sum(rows.values()), "files": files,
            "file_bytes": file_bytes, "compared": {"rows": bool(recorded and "rows" in recorded), "files": end is not None}}
