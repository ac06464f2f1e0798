#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""Bytecode compiled ahead into the service's PYTHONPYCACHEPREFIX."""

from __future__ import annotations

DOCUMENTATION = r"""
module: bytecode
short_description: Compile stale Python bytecode into a pycache prefix
description:
  - Compiles every C(.py) file below O(paths) (and the standard library with O(stdlib)) whose bytecode
    in O(prefix) is missing or stale, so that no request and no restart of the service compiles.
  - A cached file counts as current when its header names this interpreter's magic number, timestamp
    validation, and the source's modification time and size (the test the interpreter makes
    when it imports).
  - The bytecode is only used when the interpreter, the prefix and the path strings are the
    service's own. Run the task with C(ansible_python_interpreter) set to the service's venv
    interpreter (O(venv) checks it) and give the paths the service imports from.
version_added: 0.1.0
author: Lernmanager deployment team (@lernmanager)
extends_documentation_fragment: [lernmanager.deploy.attributes]
options:
  prefix:
    description: The service's C(PYTHONPYCACHEPREFIX). Directories made in it get mode 0755 and files 0644.
    type: path
    required: true
  paths:
    description: Files and directories to compile (C(__pycache__) directories and links are skipped).
    type: list
    elements: path
    default: []
  stdlib:
    description: Also compile this interpreter's standard library, without O(stdlib_skip).
    type: bool
    default: false
  stdlib_skip:
    description: Directory names in the standard library a web app never imports (about 90 % of its files).
    type: list
    elements: str
    default: [test, tests, idlelib, tkinter, turtledemo, lib2to3, ensurepip, pydoc_data, site-packages,
              dist-packages, __phello__, venv, distutils]
  strict:
    description: Fail when a source has a syntax error (otherwise they are listed in RV(syntax_errors)).
    type: bool
    default: false
  venv:
    description: When given, fail unless the module runs under this venv's interpreter.
    type: path
attributes:
  check_mode:
    support: full
    details: Counts the stale files and reports a change when there are any; writes nothing.
notes:
  - Set C(PYTHONPYCACHEPREFIX) to O(prefix) in the task's C(environment) too, so that the
    interpreter's own start-up imports write nothing outside the prefix.
"""

EXAMPLES = r"""
- name: Compile the app, the venv and the stdlib into the prefix
  lernmanager.deploy.bytecode:
    prefix: /var/cache/lernmanager/pycache
    paths: [/opt/lernmanager/releases/g-1a2b3c, /opt/lernmanager/venvs/4d5e6f/lib]
    stdlib: true
    venv: /opt/lernmanager/venvs/4d5e6f
  environment:
    PYTHONPYCACHEPREFIX: /var/cache/lernmanager/pycache
  vars:
    ansible_python_interpreter: /opt/lernmanager/venvs/4d5e6f/bin/python
"""

RETURN = r"""
compiled:
  description: Files compiled (in check mode, files that would be).
  type: int
  returned: always
checked:
  description: Source files looked at.
  type: int
  returned: always
syntax_errors:
  description: Sources that did not compile, with the error.
  type: list
  elements: str
  returned: always
stdlib_dir:
  description: This interpreter's standard library (for an apt hook that keeps its bytecode current).
  type: str
  returned: always
"""

import importlib.util
import os
import py_compile
import sys
import sysconfig

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lernmanager.deploy.plugins.module_utils.tree import walk_files

STDLIB_SKIP = ["test", "tests", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "pydoc_data",
               "site-packages", "dist-packages", "__phello__", "venv", "distutils"]


def pyc_is_current(source, cache):
    """True when cache holds timestamp-validated bytecode for source's current mtime and size."""
    try:
        with open(cache, "rb") as handle:
            header = handle.read(16)
        st = os.stat(source)
    except OSError:
        return False
    if len(header) < 16 or header[:4] != importlib.util.MAGIC_NUMBER:
        return False
    flags = int.from_bytes(header[4:8], "little")
    mtime = int.from_bytes(header[8:12], "little")
    size = int.from_bytes(header[12:16], "little")
    return flags == 0 and mtime == (int(st.st_mtime) & 0xFFFFFFFF) and size == (st.st_size & 0xFFFFFFFF)


def python_sources(target, skip_dirs):
    if os.path.isfile(target):
        yield target
        return
    for path in walk_files(target, skip_dirs):
        if path.endswith(".py"):
            yield path


def compile_stale(targets, prefix, dry_run=False):
    """Compile the stale sources of [(path, skip_dirs)] into prefix: (compiled, checked, failed)."""
    # cache_from_source() reads it on every call: the prefix is this run's, whatever started us.
    sys.pycache_prefix = prefix
    compiled, checked, failed = 0, 0, []
    # The directories py_compile makes follow the umask: the service must be able to read them,
    # whatever umask root has (a hardened host's 027 would lock it out).
    umask = os.umask(0o022)
    try:
        for target, skip in targets:
            for source in python_sources(target, skip):
                checked += 1
                cache = importlib.util.cache_from_source(source)
                if pyc_is_current(source, cache):
                    continue
                compiled += 1
                if dry_run:
                    continue
                try:
                    py_compile.compile(source, cfile=cache, doraise=True,
                                       invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
                    os.chmod(cache, 0o644)
                except py_compile.PyCompileError as error:
                    compiled -= 1
                    failed.append(f"{source}: {error.msg.strip().splitlines()[-1]}")
    finally:
        os.umask(umask)
    return compiled, checked, failed


def main():
    module = AnsibleModule(
        argument_spec={
            "prefix": {"type": "path", "required": True},
            "paths": {"type": "list", "elements": "path", "default": []},
            "stdlib": {"type": "bool", "default": False},
            "stdlib_skip": {"type": "list", "elements": "str", "default": STDLIB_SKIP},
            "strict": {"type": "bool", "default": False},
            "venv": {"type": "path"},
        },
        supports_check_mode=True,
    )
    params = module.params
    venv = params["venv"]
    if venv and os.path.realpath(sys.prefix) != os.path.realpath(venv):
        module.fail_json(msg=f"bytecode for {venv} must be compiled by its interpreter: run the task with "
                             f"ansible_python_interpreter={venv}/bin/python (this is {sys.executable})")
    targets = [(path, {"__pycache__"}) for path in params["paths"]]
    stdlib_dir = sysconfig.get_paths()["stdlib"]
    if params["stdlib"]:
        targets.append((stdlib_dir, set(params["stdlib_skip"]) | {"__pycache__"}))
    missing = [target[0] for target in targets if not os.path.exists(target[0])]
    if missing:
        module.fail_json(msg=f"no such file or directory: {', '.join(missing)}")
    compiled, checked, failed = compile_stale(targets, params["prefix"], dry_run=module.check_mode)
    if failed and params["strict"]:
        module.fail_json(msg="syntax errors in the app:\n" + "\n".join(failed), compiled=compiled,
                         checked=checked, syntax_errors=failed)
    module.exit_json(changed=compiled > 0, compiled=compiled, checked=checked, syntax_errors=failed,
                     stdlib_dir=stdlib_dir)


if __name__ == "__main__":
    main()
