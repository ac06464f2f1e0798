# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""Entries planted in the service's data/: links and special files. The app makes none there (its
database, journals and migration record are regular files), so one is a sign that the app's
account was used against the deploy. Listing and moving them never follows them: lstat, readlink
and rename act on the name alone, so root may do both on the service's directory."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import time

KINDS = ((stat.S_ISLNK, "link"), (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"),
         (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))


def kind_of(mode):
    """What a planted entry is; None for the regular files and directories the app makes."""
    for test, kind in KINDS:
        if test(mode):
            return kind
    return None


def open_directory(path):
    """path as a directory descriptor, never through a link."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)


@contextlib.contextmanager
def directory(path):
    """open_directory(path) for a with block, closed after it."""
    fd = open_directory(path)
    try:
        yield fd
    finally:
        os.close(fd)


def planted_entries(dir_fd):
    """The links and special files directly in the directory dir_fd, by name: [{name, kind, target}]
    (target: where a link points, as text; it is not followed)."""
    found = []
    for name in sorted(os.listdir(dir_fd)):
        try:
            kind = kind_of(os.lstat(name, dir_fd=dir_fd).st_mode)
            if kind is not None:
                found.append({"name": name, "kind": kind,
                              "target": os.readlink(name, dir_fd=dir_fd) if kind == "link" else ""})
        except FileNotFoundError:
            continue  # gone since the listing
    return found


def describe(entries):
    """The entries for a message: data/x (a link to '/etc/shadow'), ..."""
    return ", ".join(f"{entry['name']!r} (a {entry['kind']}" + (f" to {entry['target']!r})" if entry["target"] else ")")
                     for entry in entries)


def quarantine(data_fd, entries, quarantine_dir):
    """Move entries (planted_entries(data_fd)) into a new root-only directory <time> under
    quarantine_dir, without following them, and describe them in <time>.json beside it (an entry
    may be named like any file). Across file systems a rename cannot move them: they are unlinked
    then, and the description keeps what they were. Returns the directory."""
    os.makedirs(quarantine_dir, mode=0o700, exist_ok=True)
    os.chmod(quarantine_dir, 0o700)
    target = os.path.join(quarantine_dir, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    suffix = 0
    while os.path.lexists(target + (f"-{suffix}" if suffix else "")):
        suffix += 1
    target += f"-{suffix}" if suffix else ""
    os.mkdir(target, 0o700)
    target_fd = open_directory(target)
    quarantine_fd = open_directory(quarantine_dir)
    try:
        for entry in entries:
            try:
                os.rename(entry["name"], entry["name"], src_dir_fd=data_fd, dst_dir_fd=target_fd)
                entry["moved"] = True
            except FileNotFoundError:
                entry["moved"] = False  # gone since the listing
            except OSError as error:
                if error.errno != errno.EXDEV:
                    raise
                os.unlink(entry["name"], dir_fd=data_fd)
                entry["moved"] = False
        description = os.path.basename(target) + ".json"
        fd = os.open(description, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=quarantine_fd)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(entries, out, indent=1)
    finally:
        os.close(target_fd)
        os.close(quarantine_fd)
    return target


def write_new_record(data_fd, name, scripts, uid, gid):
    """A new migration record (never over anything: O_EXCL, no link followed) listing scripts,
    owned by the service. False when something is there already."""
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640, dir_fd=data_fd)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, 0o640)
        out.write("".join(f"{script}\n" for script in scripts))
    return True
