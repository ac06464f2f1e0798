#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""Directories inside a directory the service user owns, set without following a planted link."""

from __future__ import annotations

DOCUMENTATION = r"""
module: service_dirs
short_description: Create and set directories inside one the service user owns
description:
  - Creates each of O(directories) inside O(parent) when missing and sets its owner, group and mode.
  - O(parent) belongs to the service user, who may have replaced any name in it with a link. The
    C(ansible.builtin.file) module would follow such a link as root and change the target; this
    module works through directory file descriptors opened with C(O_NOFOLLOW) and fails on a name
    that is not a directory, changing nothing.
version_added: 0.1.0
author: Lernmanager deployment team (@lernmanager)
extends_documentation_fragment: [lernmanager.deploy.attributes]
options:
  parent:
    description: The directory that holds them. It must not be a link itself.
    type: path
    required: true
  directories:
    description: The directories, each a name (no slash) with its owner, group and mode.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The directory's name inside O(parent).
        type: str
        required: true
      owner:
        description: Its owning user.
        type: str
        required: true
      group:
        description: Its group.
        type: str
        required: true
      mode:
        description: Its mode, in octal (for example C("2750")).
        type: str
        required: true
attributes:
  check_mode:
    support: full
    details: Reports the directories that would be created or changed (all of them while O(parent) does not exist).
"""

EXAMPLES = r"""
- name: Create the directories inside shared/instance
  lernmanager.deploy.service_dirs:
    parent: /opt/lernmanager/shared/instance
    directories:
      - {name: uploads, owner: lernmanager, group: www-data, mode: "2750"}
      - {name: tmp, owner: lernmanager, group: lernmanager, mode: "0700"}
"""

RETURN = r"""
changed_dirs:
  description: The names created or changed (in check mode, that would be).
  type: list
  elements: str
  returned: always
"""

import grp
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule


def wanted(entry):
    return pwd.getpwnam(entry["owner"]).pw_uid, grp.getgrnam(entry["group"]).gr_gid, int(entry["mode"], 8)


def ensure(parent_fd, name, ids, dry_run):
    """Create name in parent_fd and set (uid, gid, mode); True when something changed.

    Raises NotADirectoryError for anything but a directory there (a planted link or file)."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        if dry_run:
            return True
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            pass  # made since the stat (by the service user): whatever is there now is checked below
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(name)
    if dry_run:
        return (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) != ids
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
    except OSError as error:  # swapped for a link or a file since the stat
        raise NotADirectoryError(name) from error
    try:
        st = os.fstat(fd)
        if (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == ids:
            return False
        os.fchown(fd, ids[0], ids[1])
        os.fchmod(fd, ids[2])  # after fchown, which clears setgid
        return True
    finally:
        os.close(fd)


def main():
    entry_spec = {key: {"type": "str", "required": True} for key in ("name", "owner", "group", "mode")}
    module = AnsibleModule(
        argument_spec={
            "parent": {"type": "path", "required": True},
            "directories": {"type": "list", "elements": "dict", "required": True, "options": entry_spec},
        },
        supports_check_mode=True,
    )
    parent = module.params["parent"]
    entries = module.params["directories"]
    bad = [entry["name"] for entry in entries if "/" in entry["name"] or entry["name"] in ("", ".", "..")]
    if bad:
        module.fail_json(msg=f"directory names must be plain names inside {parent}: {bad}")
    if module.check_mode and not os.path.lexists(parent):
        # An earlier task of the same check run would have created it (and the service user).
        module.exit_json(changed=True, changed_dirs=[entry["name"] for entry in entries])
    try:
        ids = {entry["name"]: wanted(entry) for entry in entries}
    except (KeyError, ValueError) as error:
        module.fail_json(msg=f"bad owner, group or mode in {entries}: {error}")
    try:
        parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as error:
        module.fail_json(msg=f"{parent} is not a directory (a link?): {error.strerror}")
    changed = []
    try:
        for name, wanted_ids in ids.items():
            if ensure(parent_fd, name, wanted_ids, module.check_mode):
                changed.append(name)
    except NotADirectoryError as error:
        module.fail_json(msg=f"{os.path.join(parent, str(error))} is not a directory (a link or a file planted in "
                             f"the service's directory?): move it away and run again", changed_dirs=changed)
    except OSError as error:
        module.fail_json(msg=f"cannot set up the directories in {parent}: {error}", changed_dirs=changed)
    finally:
        os.close(parent_fd)
    module.exit_json(changed=bool(changed), changed_dirs=changed)


if __name__ == "__main__":
    main()
