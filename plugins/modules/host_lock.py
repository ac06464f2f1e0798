#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""One run of the collection's playbooks at a time per host."""

from __future__ import annotations

DOCUMENTATION = r"""
module: host_lock
short_description: Take or release the host lock of a Lernmanager run
description:
  - Creates a root-only lock file that names the run holding it (controller, PID, process start,
    playbook, start time). A second run waits until the file is gone or O(timeout) passes.
  - A lock whose holder is known to be gone (see the C(lernmanager.deploy.run_holder) lookup) is
    taken over with O(take_over), atomically, and only if that holder still holds it.
  - Releasing removes the file only when this run holds it.
version_added: 0.1.0
author: Lernmanager deployment team (@lernmanager)
extends_documentation_fragment: [lernmanager.deploy.attributes]
options:
  path:
    description: The lock file, in a directory only root can write.
    type: path
    default: /run/lernmanager-deploy.lock
  state:
    description: V(present) takes the lock, V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  holder:
    description: This run, as the C(lernmanager.deploy.run_holder) lookup returns it.
    type: dict
    required: true
  timeout:
    description: Seconds to wait for the lock; 0 returns at once.
    type: int
    default: 0
  take_over:
    description: A holder known to be gone; its lock is taken over if it still holds it.
    type: dict
attributes:
  check_mode:
    support: full
    details: Reports the current holder; never waits, writes or removes.
"""

EXAMPLES = r"""
- name: Take the host lock, waiting up to 10 minutes
  lernmanager.deploy.host_lock:
    holder: "{{ lookup('lernmanager.deploy.run_holder') }}"
    timeout: 600
  register: lock
"""

RETURN = r"""
acquired:
  description: Whether this run holds the lock now.
  type: bool
  returned: always
holder:
  description: The run that holds the lock now (none after a release).
  type: dict
  returned: always
taken_over:
  description: The gone run whose lock was taken over, if any.
  type: dict
  returned: always
waited:
  description: Seconds spent waiting.
  type: float
  returned: always
"""

import fcntl
import json
import os
import time

from ansible.module_utils.basic import AnsibleModule

IDENTITY = ("controller", "pid", "started")


def same_run(a, b):
    return bool(a) and bool(b) and all(str(a.get(k)) == str(b.get(k)) for k in IDENTITY)


def open_lock(path, flags=os.O_RDWR):
    """The lock file without following a link; None when it does not exist."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None


def read_holder(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while True:
        block = os.read(fd, 65536)
        if not block:
            break
        data += block
    try:
        return json.loads(data.decode() or "{}")
    except ValueError:
        return {"unreadable": data[:200].decode(errors="replace")}


def write_holder(fd, holder):
    os.lseek(fd, 0, os.SEEK_SET)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(holder, sort_keys=True).encode())
    os.fsync(fd)


def try_create(path, holder):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        write_holder(fd, holder)
    finally:
        os.close(fd)
    return True


def current_holder(path):
    fd = open_lock(path, os.O_RDONLY)
    if fd is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        return read_holder(fd)
    finally:
        os.close(fd)


def take_over(path, holder, gone):
    """Replace the gone holder's lock with ours, if it is still theirs (flock: one taker wins)."""
    fd = open_lock(path)
    if fd is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not same_run(read_holder(fd), gone):
            return False
        write_holder(fd, holder)
        return True
    finally:
        os.close(fd)


def release(path, holder):
    fd = open_lock(path)
    if fd is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not same_run(read_holder(fd), holder):
            return False
        os.unlink(path)
        return True
    finally:
        os.close(fd)


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/run/lernmanager-deploy.lock"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "holder": {"type": "dict", "required": True},
            "timeout": {"type": "int", "default": 0},
            "take_over": {"type": "dict"},
        },
        supports_check_mode=True,
    )
    path, holder = module.params["path"], module.params["holder"]
    if not all(holder.get(k) for k in IDENTITY):
        module.fail_json(msg=f"holder must name {', '.join(IDENTITY)} (got {holder})")
    start = time.monotonic()

    if module.check_mode:
        current = current_holder(path)
        module.exit_json(changed=False, acquired=current is None or same_run(current, holder),
                         holder=current, taken_over=None, waited=0.0)

    if module.params["state"] == "absent":
        released = release(path, holder)
        module.exit_json(changed=released, acquired=False, holder=current_holder(path), taken_over=None,
                         waited=0.0)

    deadline = start + max(0, module.params["timeout"])
    while True:
        if try_create(path, holder):
            module.exit_json(changed=True, acquired=True, holder=holder, taken_over=None,
                             waited=time.monotonic() - start)
        current = current_holder(path)
        if current is None:
            continue  # released between our two looks
        if same_run(current, holder):
            module.exit_json(changed=False, acquired=True, holder=holder, taken_over=None,
                             waited=time.monotonic() - start)
        gone = module.params["take_over"]
        if gone and same_run(current, gone) and take_over(path, holder, gone):
            module.exit_json(changed=True, acquired=True, holder=holder, taken_over=current,
                             waited=time.monotonic() - start)
        if time.monotonic() >= deadline:
            module.exit_json(changed=False, acquired=False, holder=current, taken_over=None,
                             waited=time.monotonic() - start)
        time.sleep(1)


if __name__ == "__main__":
    main()
