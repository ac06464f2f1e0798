#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""Start a release directory, and finish an unpacked one, in one host call each (each call is a
Python start on the host)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: release
short_description: Start a release directory, and finish an unpacked release in one call
description:
  - With O(state=partial), makes O(path) an empty directory owned by root, mode 0755, first
    removing whatever a failed earlier attempt left there (links are removed, never followed).
  - With O(state=finished), readies the release unpacked into O(path), in this order. Checks that
    each of O(required) is a regular file in it. Removes the data directories O(shared) that the
    source shipped inside it. Makes every file and directory root's and read-only for everyone
    else (directories and executables 0755, other files 0644; set-id bits cleared; links never
    followed). Links each of O(shared) to C(../../shared/<name>). Writes the precompressed copies
    of the static files below O(static) (gzip, and brotli with O(brotli)). Renames O(path) to
    O(dest).
  - The rename comes last and is atomic, so a release that is not finished never looks complete;
    a failure leaves O(path), which the next O(state=partial) removes.
version_added: 0.2.0
author: Lernmanager deployment team (@lernmanager)
extends_documentation_fragment: [lernmanager.deploy.attributes]
options:
  path:
    description: The release's partial directory (beside the releases, on their file system).
    type: path
    required: true
  state:
    description: V(partial) starts it empty; V(finished) readies it and renames it to O(dest).
    type: str
    required: true
    choices: [partial, finished]
  dest:
    description: The finished release's directory (O(state=finished)); must not exist.
    type: path
  required:
    description: Files every release of the app has; a release without one is refused.
    type: list
    elements: str
    default: [app.py, requirements.txt]
  shared:
    description: Directories that hold data, linked to the persistent C(shared/) directories.
    type: list
    elements: str
    default: [data, instance]
  static:
    description: The static files' directory inside the release; none is no error.
    type: str
    default: static
  brotli:
    description: Also write C(.br) copies, with the C(brotli) command.
    type: bool
    default: false
attributes:
  check_mode:
    support: partial
    details: Reports a change and changes nothing (a check run never builds a release).
"""

EXAMPLES = r"""
- name: Start the release directory
  lernmanager.deploy.release:
    path: /opt/lernmanager/releases/.g-1a2b3c.partial
    state: partial

- name: Finish the release and move it into place
  lernmanager.deploy.release:
    path: /opt/lernmanager/releases/.g-1a2b3c.partial
    dest: /opt/lernmanager/releases/g-1a2b3c
    state: finished
    brotli: true
"""

RETURN = r"""
written:
  description: Precompressed copies written (O(state=finished)).
  type: int
  returned: success
"""

import os
import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lernmanager.deploy.plugins.module_utils.precompress import missing_copies, write_copies


def remove(path):
    """Whatever is at path, a link itself and not what it points at."""
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def make_read_only(top):
    """root:root; directories and executables 0755, other files 0644; links left as they are."""
    for root, dirs, files in os.walk(top):
        for name in [*dirs, *files]:
            path = os.path.join(root, name)
            if os.path.islink(path):
                os.lchown(path, 0, 0)
                continue
            mode = os.lstat(path).st_mode
            os.chown(path, 0, 0, follow_symlinks=False)
            os.chmod(path, 0o755 if os.path.isdir(path) or mode & 0o111 else 0o644)
    os.chown(top, 0, 0, follow_symlinks=False)
    os.chmod(top, 0o755)


def finish(module, path, dest):
    params = module.params
    missing = [name for name in params["required"]
               if os.path.islink(os.path.join(path, name)) or not os.path.isfile(os.path.join(path, name))]
    if missing:
        module.fail_json(msg=f"The source's release has no {' and no '.join(missing)}: it does not look like "
                             f"Lernmanager (every release has {', '.join(params['required'])}). Nothing live changed.")
    if os.path.lexists(dest):
        module.fail_json(msg=f"{dest} exists already: a finished release is never replaced.")
    for name in params["shared"]:
        remove(os.path.join(path, name))
    make_read_only(path)
    for name in params["shared"]:
        os.symlink(f"../../shared/{name}", os.path.join(path, name))
    static = os.path.join(path, params["static"])
    written = 0
    if os.path.isdir(static) and not os.path.islink(static):
        todo = list(missing_copies(static, [".gz", ".br"] if params["brotli"] else [".gz"]))
        write_copies(module, todo, params["brotli"] and module.get_bin_path("brotli", required=True))
        written = len(todo)
    os.rename(path, dest)
    return written


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "state": {"type": "str", "required": True, "choices": ["partial", "finished"]},
            "dest": {"type": "path"},
            "required": {"type": "list", "elements": "str", "default": ["app.py", "requirements.txt"]},
            "shared": {"type": "list", "elements": "str", "default": ["data", "instance"]},
            "static": {"type": "str", "default": "static"},
            "brotli": {"type": "bool", "default": False},
        },
        required_if=[("state", "finished", ["dest"])],
        supports_check_mode=True,
    )
    path = module.params["path"]
    if module.check_mode:
        module.exit_json(changed=True)
    if module.params["state"] == "partial":
        remove(path)
        os.mkdir(path, 0o755)
        os.chown(path, 0, 0)
        os.chmod(path, 0o755)
        module.exit_json(changed=True)
    module.exit_json(changed=True, written=finish(module, path, module.params["dest"]))


if __name__ == "__main__":
    main()
