#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""What is at several paths, and the text of small files, in one call. Reads only."""

from __future__ import annotations

DOCUMENTATION = r"""
module: paths_info
short_description: Look at several paths and read small files in one call
description:
  - For each of O(paths), whether something is there, what it is, a link's target and a regular
    file's SHA-1 checksum; the text of each of O(read). Links are never followed.
  - One call instead of a C(ansible.builtin.stat) or C(ansible.builtin.slurp) per path; each module
    call costs a host a Python start and the import of Ansible's module_utils.
  - The checksum is the one C(ansible.builtin.stat) gives (C(checksum), SHA-1 of the content).
version_added: 0.1.0
author: Lernmanager deployment team (@lernmanager)
extends_documentation_fragment: [lernmanager.deploy.attributes, lernmanager.deploy.attributes.read_only]
options:
  paths:
    description: The paths to look at.
    type: list
    elements: path
    default: []
  checksum:
    description:
      - Whether to read each regular file of O(paths) for its checksum. V(false) when only the
        type matters (a school's database is read whole otherwise).
    type: bool
    default: true
  mount_points:
    description:
      - Paths to ask whether each is a mount point (as C(mountpoint) answers; listed in the
        mount table, bind mounts too).
    type: list
    elements: path
    default: []
  read:
    description:
      - Files whose text to return (at most 1 MiB each); a missing one gives C(null). A link or
        anything but a regular file there fails the module.
    type: list
    elements: path
    default: []
"""

EXAMPLES = r"""
- name: Read what serves now
  lernmanager.deploy.paths_info:
    paths: [/opt/lernmanager/current, /opt/lernmanager/previous]
    read: [/opt/lernmanager/live.json]
  register: __live
"""

RETURN = r"""
paths:
  description:
    - Per path (as given), C(exists); when it does, C(type) (V(file), V(directory), V(link) or V(other)),
      C(lnk_target) for a link and C(checksum) for a regular file (unless O(checksum=false)).
  type: dict
  returned: always
  sample: {/opt/lernmanager/current: {exists: true, type: link, lnk_target: releases/p-1234}}
mounted:
  description: Per path of O(mount_points), whether it is a mount point.
  type: dict
  returned: always
contents:
  description: Per file of O(read), its text, or C(null) when it is missing.
  type: dict
  returned: always
"""

import hashlib
import os
import stat

from ansible.module_utils.basic import AnsibleModule

READ_LIMIT = 1 << 20


def look(path, checksum=True):
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return {"exists": False}
    if stat.S_ISLNK(st.st_mode):
        return {"exists": True, "type": "link", "lnk_target": os.readlink(path)}
    if stat.S_ISDIR(st.st_mode):
        return {"exists": True, "type": "directory"}
    if not stat.S_ISREG(st.st_mode):
        return {"exists": True, "type": "other"}
    if not checksum:
        return {"exists": True, "type": "file"}
    digest = hashlib.sha1()
    with open_regular(path) as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return {"exists": True, "type": "file", "checksum": digest.hexdigest()}


def open_regular(path):
    """A regular file, opened without following a link or waiting on a FIFO swapped in since a look."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError(f"{path} is not a regular file")
    return os.fdopen(fd, "rb")


def read(path):
    try:
        with open_regular(path) as handle:
            data = handle.read(READ_LIMIT + 1)
    except FileNotFoundError:
        return None
    if len(data) > READ_LIMIT:
        raise ValueError(f"{path} is larger than {READ_LIMIT} bytes")
    return data.decode("utf-8", errors="replace")


def mount_table():
    """The mount points of this mount namespace (/proc/self/mountinfo, field 5, octal escapes undone)."""
    with open("/proc/self/mountinfo", "rb") as handle:
        points = [line.split()[4] for line in handle if line.strip()]
    return {point.decode("unicode_escape").encode("latin-1").decode("utf-8", "replace") for point in points}


def main():
    module = AnsibleModule(
        argument_spec={
            "paths": {"type": "list", "elements": "path", "default": []},
            "checksum": {"type": "bool", "default": True},
            "read": {"type": "list", "elements": "path", "default": []},
            "mount_points": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    try:
        result = {"paths": {path: look(path, module.params["checksum"]) for path in module.params["paths"]},
                  "contents": {path: read(path) for path in module.params["read"]},
                  "mounted": {}}
        if module.params["mount_points"]:
            table = mount_table()
            result["mounted"] = {path: os.path.realpath(path) in table for path in module.params["mount_points"]}
    except (OSError, ValueError) as error:
        module.fail_json(msg=f"cannot read: {error}")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
