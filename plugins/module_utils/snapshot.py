# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""A checked snapshot of the live database, streamed as tar from the service user to root.

Shared by the database module (pre-migration and on-demand backups) and the scheduled backup
set (backup_set.py). export() runs as the service user (service_user.ServiceUser.run); the rest
on either side of the pipe."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile

from ansible_collections.lernmanager.deploy.plugins.module_utils.app_runtime import RECORD_NAME, PlantedRecord, read_record
from ansible_collections.lernmanager.deploy.plugins.module_utils.planted import directory, planted_entries
from ansible_collections.lernmanager.deploy.plugins.module_utils.service_user import LernmanagerError

DATABASE_MEMBER = "database"
RECORD_MEMBER = RECORD_NAME
CHECK_MEMBER = "check.json"
RECORD_LEFT_OUT = "left out"  # check.json's "record" when a planted one was not read
FILE_MODE = 0o640  # the service's own files; its UMask would give the same


def integrity_check(path):
    db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        result = db.execute("PRAGMA integrity_check").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    finally:
        db.close()
    return result, tables


def table_rows(path):
    """{table: rows} of every table: what a restore drill compares its copy with."""
    db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        names = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {name: db.execute('SELECT count(*) FROM "%s"' % name.replace('"', '""')).fetchone()[0] for name in names}
    finally:
        db.close()


def drill_of_stream(data_dir, stdin, **_):
    """As the service user: a restore drill's copy of a set's database (fed on stdin) opened the way
    the app would open it: its integrity_check and the rows of every table. The scratch copy lies
    in data/ (the disk the database lives on, not a tmpfs in memory) and is gone when this returns."""
    with copy_of_stream(data_dir, stdin, ".drill-") as copy:
        try:
            result, _tables = integrity_check(copy)
        except sqlite3.DatabaseError as error:  # not a database at all
            result = str(error)
        return {"integrity": result, "rows": table_rows(copy) if result == "ok" else {}}


@contextlib.contextmanager
def copy_of_stream(data_dir, stdin, prefix):
    """As the service user: the bytes on stdin in a file of its own in data_dir, removed after."""
    handle, copy = tempfile.mkstemp(prefix=prefix, suffix=".db", dir=data_dir)
    try:
        with os.fdopen(handle, "wb") as out:
            shutil.copyfileobj(stdin, out, 1024 * 1024)
        yield copy
    finally:
        os.unlink(copy)


def integrity_of_stream(data_dir, stdin, **_):
    """As the service user: the integrity_check of a database fed on stdin (root's copy of bytes
    the service once made or a repository gave back: root never lets SQLite parse them itself).
    The copy lies beside the database it may replace, for the moment of the check."""
    with copy_of_stream(data_dir, stdin, ".check-") as copy:
        return integrity_check(copy)[0]


def feed_file(path):
    """A feed for ServiceUser.run: the bytes of root's file at path."""
    def feed(writer):
        with open(path, "rb") as source:
            shutil.copyfileobj(source, writer, 1024 * 1024)
    return feed


def tar_add_bytes(tar, name, data, mtime=0):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = mtime
    tar.addfile(info, io.BytesIO(data))


def copy_members(stream, sinks):
    """Copy each regular member of a tar stream into sinks[name](), an open binary file.

    Returns the names seen; any other member (a link, a path, a second copy) is refused."""
    seen = []
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if member.name not in sinks or not member.isfile() or member.name in seen:
                raise ValueError(f"unexpected member {member.name!r} in the stream")
            with sinks[member.name]() as out:
                shutil.copyfileobj(tar.extractfile(member), out, 1 << 20)
            seen.append(member.name)
    drain(stream)
    return seen


def drain(stream, limit=1 << 20):
    """Read a tar stream to its end: tarfile stops at the end-of-archive block, and the writer's
    last padding (under 10 KiB), still on its way, would otherwise meet a closed pipe. A writer
    that goes on beyond limit is not a tar writer."""
    while limit > 0:
        data = stream.read(1 << 16)
        if not data:
            return
        limit -= len(data)
    raise LernmanagerError("data after the end of the tar stream")


class Kept(io.BytesIO):
    """An in-memory sink whose bytes survive close()."""

    kept = b""

    def close(self):
        self.kept = self.getvalue()
        super().close()


def export(database, stdout, planted_record_ok=False, **_):
    """As the service user: a checked snapshot of the database and its migration record, as tar
    on stdout (check.json first, then the database, then the record if there is one).

    A record planted as a link or special file fails the export before anything is written;
    with planted_record_ok (the nightly set: the app must not be able to stop the school's backups)
    the record is left out instead, and check.json says so: "record": "left out", "anomalies"."""
    data_dir = os.path.dirname(database)
    if not os.path.exists(database):
        raise LernmanagerError(f"{database}: no database")
    # Read again after the snapshot: a migration that ran in between would leave the two out of step.
    check, record_left_out = {}, False
    try:
        record = read_record(os.path.join(data_dir, RECORD_NAME))
    except PlantedRecord as error:
        if not planted_record_ok:
            raise
        record, record_left_out = None, True
        check = {"record": RECORD_LEFT_OUT, "anomalies": [error.what]}
    handle, temp = tempfile.mkstemp(prefix=".export-", suffix=".db", dir=data_dir)
    os.close(handle)
    try:
        source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        copy = sqlite3.connect(temp)
        with copy:
            source.backup(copy)
        copy.close()
        source.close()
        if not record_left_out and read_record(os.path.join(data_dir, RECORD_NAME)) != record:
            raise LernmanagerError("a migration ran during the snapshot; try again once it is done")
        result, tables = integrity_check(temp)
        if result != "ok":
            raise LernmanagerError(f"integrity_check of the snapshot failed: {result}")
        with tarfile.open(fileobj=stdout, mode="w|") as tar:
            # The rows of every table, for the restore drill (backup_set.drill_set) to compare with.
            check.update(integrity=result, tables=tables, rows=table_rows(temp))
            tar_add_bytes(tar, CHECK_MEMBER, json.dumps(check).encode())
            tar.add(temp, arcname=DATABASE_MEMBER)
            if record is not None:
                tar_add_bytes(tar, RECORD_MEMBER, record)
    finally:
        os.unlink(temp)


# --- putting a snapshot back, as the service user ------------------------------------------------

def write_replacing(path, data, mode=FILE_MODE):
    """Write a file beside path and rename it over path: never half-written."""
    handle, temp = tempfile.mkstemp(prefix=".import-", dir=os.path.dirname(path))
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def restore_database(snapshot, database):
    """Write snapshot into database with the backup API (a WAL database stays one)."""
    source = sqlite3.connect(f"file:{snapshot}?mode=ro&immutable=1", uri=True)
    target = sqlite3.connect(database)
    try:
        mode = target.execute("PRAGMA journal_mode").fetchone()[0]
        # Pages of another size cannot be written into a WAL database: leave WAL for the copy.
        target.execute("PRAGMA journal_mode=DELETE")
        source.backup(target)
        if mode.lower() == "wal":
            target.execute("PRAGMA journal_mode=WAL")
    finally:
        target.close()
        source.close()
    os.chmod(database, FILE_MODE)


def remove_planted(data_dir):
    """Unlink the links and special files in data_dir (planted.py): a database or journal name
    planted as a link would have the restore write through it."""
    with directory(data_dir) as fd:
        for entry in planted_entries(fd):
            os.unlink(entry["name"], dir_fd=fd)


def import_stream(database, stdin, **_):
    """Put a tar of export's members back: database first, then its record. What was planted in
    data/ (links, special files) goes first."""
    data_dir = os.path.dirname(database)
    remove_planted(data_dir)
    record = Kept()
    handle, snapshot = tempfile.mkstemp(prefix=".import-", suffix=".db", dir=data_dir)
    try:
        seen = copy_members(stdin, {DATABASE_MEMBER: lambda: os.fdopen(handle, "wb"), RECORD_MEMBER: lambda: record})
        if DATABASE_MEMBER not in seen:
            raise LernmanagerError("no database in the stream; nothing was restored")
        result = integrity_check(snapshot)[0]
        if result != "ok":
            raise LernmanagerError(f"integrity_check failed ({result}); nothing was restored")
        restore_database(snapshot, database)
    finally:
        os.unlink(snapshot)
    # The record belongs to the database: a restored pre-migration database must not stay marked
    # as migrated. No record in the backup means none before the backup.
    record_path = os.path.join(data_dir, RECORD_NAME)
    if RECORD_MEMBER in seen:
        write_replacing(record_path, record.kept)
    elif os.path.lexists(record_path):
        os.unlink(record_path)
    return True
