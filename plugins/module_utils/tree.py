# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""Walking an app's tree the way every module of this collection does: regular files only, in a
stable order, never following a link (a release or a static directory may hold one)."""

from __future__ import annotations

import os


def walk_files(top, skip_dirs=()):
    """Every regular file below top, sorted, without following links or entering skip_dirs."""
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in skip_dirs and not os.path.islink(os.path.join(root, d)))
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield path
