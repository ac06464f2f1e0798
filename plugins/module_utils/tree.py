# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""Walking an app's tree the way every module of this collection does: regular files only, in a
stable order, never following a link (a release or a static directory may hold one); and the hash
of its code that names a release (the content_hash module on the host, the deploy gate on the
controller)."""

from __future__ import annotations

import hashlib
import os

# Not the code: bytecode, the data a checkout may hold, venvs, VCS metadata.
CODE_SKIP_DIRS = {"__pycache__", ".git", "data", "instance", ".venv", "venv", ".pytest_cache"}


def walk_files(top, skip_dirs=()):
    """Every regular file below top, sorted, without following links or entering skip_dirs."""
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in skip_dirs and not os.path.islink(os.path.join(root, d)))
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield path


def content_hash(directory):
    """(sha256 hex, number of files) of directory's code: paths, executable bits, bytes."""
    digest = hashlib.sha256()
    count = 0
    for path in walk_files(directory, CODE_SKIP_DIRS):
        if path.endswith((".pyc", ".pyo")):
            continue
        digest.update(os.path.relpath(path, directory).encode() + b"\0")
        digest.update(b"x" if os.access(path, os.X_OK) else b"-")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 16), b""):
                digest.update(block)
        digest.update(b"\0")
        count += 1
    return digest.hexdigest(), count
