#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""Root's files, directories and links of one deploy step, set in one call, optionally tested as a whole."""

from __future__ import annotations

DOCUMENTATION = r"""
module: root_files
short_description: Set root's files, directories and links of one step in one call
description:
  - Brings each of O(entries) to its state, in the order given; a file with its content, a
    directory, a link, or nothing. Owner, group and mode are set too. Only what differs changes.
  - One call instead of a task per file; each module call costs a host a Python start and the
    import of Ansible's module_utils. The contents come rendered from the controller
    (C(lookup('ansible.builtin.template', ...))).
  - Files are written to a temporary file beside them, owned and moded before they get their name
    (C(rename)); no reader ever sees half a file or the wrong mode. A link at a file's path is
    replaced, never followed.
  - Root's files only. Every existing directory above an entry must belong to root and be writable by
    root alone (or be sticky, as C(/tmp) is); otherwise the module fails before it changes
    anything (the service user could swap a name there for a link). Directories the service
    user owns are the work of M(lernmanager.deploy.service_dirs).
  - With O(test), the command runs once after the changes; when it fails, every entry changed by
    this call is put back as it was (a new one removed) and the module fails with the command's
    output. This is how a set of nginx files is tested in place before any reload.
version_added: 0.1.0
author: Lernmanager deployment team (@lernmanager)
extends_documentation_fragment: [lernmanager.deploy.attributes]
options:
  entries:
    description: What to set, in order (a directory before the files in it).
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: The absolute path.
        type: path
        required: true
      state:
        description:
          - V(file) writes O(entries[].content); V(directory) creates the directory and any missing
            ones above it (root's, mode 0755); V(link) points a symbolic link at O(entries[].src);
            V(absent) removes a file or link (never a directory).
        type: str
        choices: [file, directory, link, absent]
        default: file
      content:
        description: The file's content (state V(file)).
        type: str
      src:
        description: The link's target (state V(link)).
        type: str
      owner:
        description: The owning user (not for links).
        type: str
        default: root
      group:
        description: The group (not for links).
        type: str
        default: root
      mode:
        description: The mode in octal. Default C(0644) for files, C(0755) for directories.
        type: str
      validate:
        description:
          - A command that checks the new content before it gets its name; C(%s) is the temporary
            file's path (for example C(python3 -m py_compile %s)). Not run in check mode.
        type: str
  test:
    description:
      - A command (argv) run once when anything changed; its failure puts every entry of this call
        back as it was and fails the module. Not run in check mode.
    type: list
    elements: str
attributes:
  check_mode:
    support: full
    details: Reports the paths that would change; an owner or group that does not exist yet counts as a change.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: Contents of text files, and the owner, group and mode of every entry. Turn it off for secrets (the task keyword C(diff), false).
"""

EXAMPLES = r"""
- name: Write the systemd units
  lernmanager.deploy.root_files:
    entries:
      - path: /etc/systemd/system/lernmanager.socket
        content: "{{ lookup('ansible.builtin.template', 'lernmanager.socket.j2') }}"
      - path: /etc/systemd/system/lernmanager.service
        content: "{{ lookup('ansible.builtin.template', 'lernmanager.service.j2') }}"

- name: Write the nginx site and enable it, tested in place
  lernmanager.deploy.root_files:
    entries:
      - path: /etc/nginx/sites-available/lernmanager
        content: "{{ lookup('ansible.builtin.template', 'nginx-site.j2') }}"
      - path: /etc/nginx/sites-enabled/lernmanager
        state: link
        src: /etc/nginx/sites-available/lernmanager
      - path: /etc/nginx/sites-enabled/default
        state: absent
    test: [nginx, -t]
"""

RETURN = r"""
changed_paths:
  description: The paths changed (in check mode, that would change), in the order of O(entries).
  type: list
  elements: str
  returned: always
"""

import grp
import os
import pwd
import shlex
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule


class Refused(Exception):
    """An entry this module will not set; nothing of the call has changed yet."""


def ids_of(entry, check_mode):
    """(uid, gid) wanted, or None in check mode for an account a skipped task would have made."""
    try:
        return pwd.getpwnam(entry["owner"]).pw_uid, grp.getgrnam(entry["group"]).gr_gid
    except KeyError:
        if check_mode:
            return None
        raise Refused(f"{entry['path']}: no such owner or group: {entry['owner']}:{entry['group']}") from None


def check_ancestors(path, made_roots):
    """Refuse a path below a directory that anyone but root may write (or that is not a directory).

    made_roots: directories that earlier entries of this call make root's alone (owner root, no
    write for others) before this one is set; they count as such, whatever they are now."""
    parent = os.path.dirname(path)
    while True:
        try:
            st = None if parent in made_roots else os.stat(parent)
        except FileNotFoundError:
            st = None
        if st is not None:
            if not stat.S_ISDIR(st.st_mode):
                raise Refused(f"{path}: {parent} is not a directory")
            # A sticky directory (/tmp) lets nobody rename or remove root's names in it.
            others_write = not st.st_mode & stat.S_ISVTX and (st.st_mode & 0o002 or (st.st_mode & 0o020 and st.st_gid != 0))
            if st.st_uid != 0 or others_write:
                raise Refused(f"{path}: {parent} is writable by others than root (owner uid {st.st_uid}, "
                              f"mode {stat.S_IMODE(st.st_mode):04o}); root does not write below it")
        if parent == "/":
            return
        parent = os.path.dirname(parent)


def snapshot(path):
    """What is at path now, to compare with and to put back: (kind, data, uid, gid, mode) or None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path), None, None, None)
    if stat.S_ISDIR(st.st_mode):
        return ("directory", None, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as handle:
            return ("file", handle.read(), st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
    return ("other", None, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))


def wanted(entry, ids):
    """The wanted snapshot of an entry (ids None: not known yet in check mode)."""
    uid, gid = ids if ids else (None, None)
    state = entry["state"]
    if state == "file":
        mode = int(entry["mode"] or "0644", 8)
        return ("file", (entry["content"] or "").encode(), uid, gid, mode)
    if state == "directory":
        return ("directory", None, uid, gid, int(entry["mode"] or "0755", 8))
    if state == "link":
        return ("link", entry["src"], None, None, None)
    return None


def write_file(path, data, uid, gid, mode, validate=None, run=None):
    """Write data under path's name through a temporary file beside it: complete, owned and moded first."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchown(handle.fileno(), uid, gid)
            os.fchmod(handle.fileno(), mode)  # after fchown, which clears setuid and setgid
            os.fsync(handle.fileno())
        if validate:
            rc, out, err = run([tmp if arg == "%s" else arg.replace("%s", tmp) for arg in shlex.split(validate)])
            if rc != 0:
                raise Refused(f"{path}: the new content fails `{validate}`: {(err or out).strip()}")
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def set_directory(path, uid, gid, mode):
    missing = []
    parent = path
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(missing):
        os.mkdir(directory, 0o700)  # no reader before its owner and mode are set below
        if directory != path:
            os.chown(directory, 0, 0)
            os.chmod(directory, 0o755)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return missing


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        raise Refused(f"{path}: a directory; this module removes files and links only")
    os.unlink(path)


def put(path, want, validate=None, run=None):
    """Bring path to the snapshot want (None: absent). Returns the directories it created."""
    if want is None:
        if os.path.lexists(path):
            remove(path)
        return []
    kind, data, uid, gid, mode = want
    if kind == "file":
        write_file(path, data, uid, gid, mode, validate, run)
    elif kind == "directory":
        if os.path.lexists(path) and not os.path.isdir(path) or os.path.islink(path):
            raise Refused(f"{path}: not a directory (a file or a link is there)")
        return set_directory(path, uid, gid, mode)
    elif kind == "link":
        tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.link")
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(data, tmp)
        os.replace(tmp, path)
    return []


def describe(snap):
    """A snapshot as the lines of a diff."""
    if snap is None:
        return "absent\n"
    kind, data, uid, gid, mode = snap
    if kind == "link":
        return f"link to {data}\n"
    head = f"{kind}, owner {uid if uid is not None else '?'}, group {gid if gid is not None else '?'}, mode {mode:04o}\n"
    if kind == "file":
        try:
            text = data.decode()
        except UnicodeDecodeError:
            text = f"({len(data)} bytes of binary content)\n"
        return head + text
    return head


def same(have, want):
    if have is None or want is None:
        return have == want
    if have[0] != want[0]:
        return False
    if want[2] is None and want[0] != "link":  # check mode, account not made yet
        return False
    return have == want


def main():
    entry_spec = {
        "path": {"type": "path", "required": True},
        "state": {"type": "str", "choices": ["file", "directory", "link", "absent"], "default": "file"},
        "content": {"type": "str"},
        "src": {"type": "str"},
        "owner": {"type": "str", "default": "root"},
        "group": {"type": "str", "default": "root"},
        "mode": {"type": "str"},
        "validate": {"type": "str"},
    }
    module = AnsibleModule(
        argument_spec={
            "entries": {"type": "list", "elements": "dict", "required": True, "options": entry_spec},
            "test": {"type": "list", "elements": "str"},
        },
        supports_check_mode=True,
    )
    entries = module.params["entries"]
    try:
        plan = []
        made_roots = set()
        for entry in entries:
            path = entry["path"]
            if not os.path.isabs(path) or path.rstrip("/") != path or path == "/":
                raise Refused(f"{path}: not an absolute path of a file")
            if entry["state"] == "file" and entry["content"] is None:
                raise Refused(f"{path}: a file needs its content")
            if entry["state"] == "link" and not entry["src"]:
                raise Refused(f"{path}: a link needs its src")
            if entry["mode"] is not None:
                try:
                    int(entry["mode"], 8)
                except ValueError:
                    raise Refused(f"{path}: mode {entry['mode']!r} is not octal") from None
            check_ancestors(path, made_roots)
            if entry["state"] == "directory" and entry["owner"] == "root" and not int(entry["mode"] or "0755", 8) & 0o022:
                made_roots.add(path)
            ids = ids_of(entry, module.check_mode) if entry["state"] in ("file", "directory") else None
            have = snapshot(path)
            if have is not None and have[0] in ("directory", "other") and entry["state"] in ("file", "link", "absent"):
                raise Refused(f"{path}: a {have[0]} is there; move it away first")
            want = wanted(entry, ids)
            if not same(have, want):
                plan.append((entry, have, want))
    except Refused as error:
        module.fail_json(msg=f"{error}. Nothing was changed.", changed_paths=[])

    changed = [step[0]["path"] for step in plan]
    result = {"changed": bool(plan), "changed_paths": changed}
    if module._diff:
        result["diff"] = [{"before_header": entry["path"], "after_header": entry["path"],
                           "before": describe(have), "after": describe(want)} for entry, have, want in plan]
    if module.check_mode or not plan:
        module.exit_json(**result)

    done = []  # (path, what was there, directories created): to put back when the test fails
    try:
        for entry, have, want in plan:
            created = put(entry["path"], want, entry["validate"], module.run_command)
            done.append((entry["path"], have, created))
        if module.params["test"]:
            rc, out, err = module.run_command(module.params["test"])
            if rc != 0:
                raise Refused(f"{' '.join(module.params['test'])} refused the new configuration, so the previous one "
                              f"was kept: {(err or out).strip()}")
    except (Refused, OSError) as error:
        unrestored = []
        for path, have, created in reversed(done):
            try:
                if created:  # made by this call, the path itself first, then the ones above it
                    for directory in created:
                        os.rmdir(directory)
                else:
                    put(path, have)
            except (Refused, OSError) as restore_error:
                unrestored.append(f"{path} ({restore_error})")
        if unrestored:
            module.fail_json(msg=f"{error}; and these could not be put back as they were: {', '.join(unrestored)}",
                             changed_paths=[step[0] for step in done])
        put_back = [step[0] for step in done]
        module.fail_json(msg=f"{error}" + (f" (put back: {', '.join(put_back)})" if put_back else ""),
                         changed_paths=[], **({"diff": result["diff"]} if "diff" in result else {}))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
