#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""The app's own start-up, migrations and admin password, run as the service user."""

from __future__ import annotations

DOCUMENTATION = r"""
module: app
short_description: Run Lernmanager's own start-up, migrations and admin check as the service user
description:
  - Runs the app's code the way upstream's deploy does, with the venv's interpreter, the release
    on C(PYTHONPATH) and the environment of O(env_file), always as the service user O(user) inside
    the service's sandbox O(sandbox) (a transient systemd unit; the task runs as root). Files of
    the service are read by a child process that drops to O(user).
  - V(init) runs the app's O(init_module).O(init_function)() once, so that the schema and the
    default admin exist before any worker starts.
  - V(pending_migrations) lists the release's C(migrate/migrate_*.py) not yet in
    C(data/migrations_done.txt); V(migrate) runs them in order and records each that succeeds.
  - V(admin_password) checks the admin's password with the app's own C(verify_admin) and sets
    O(admin_password) with C(update_admin_password) while the default C(admin) still works. A
    password changed by hand in the web UI is never overwritten.
  - V(read_env) reads an env file of root's own (such as the settings kept from an adoption) as a dict.
  - V(read_upstream_env) reads an upstream install's C(.env), which lies in a tree the service user
    O(user) owned (upstream makes the file root's, 0600), never through a link, and only a regular
    file of at most 64 KiB with no other name (a hard link), owned by root or O(user); keys that are
    not variable names are skipped and named in RV(skipped_keys).
version_added: 0.1.0
author: Lernmanager deployment team (@lernmanager)
extends_documentation_fragment: [lernmanager.deploy.attributes, lernmanager.deploy.app_runtime]
options:
  action:
    description: What to run.
    type: str
    required: true
    choices: [init, pending_migrations, migrate, admin_password, read_env, read_upstream_env]
  init_module:
    description: The app's module that holds O(init_function).
    type: str
    default: app
  init_function:
    description: The function that creates the schema and the default admin.
    type: str
    default: init_app
  database:
    description: The database's file name in C(data/) (V(init) reports whether it was created).
    type: str
    default: mbi_tracker.db
  admin_username:
    description: The admin account.
    type: str
    default: admin
  admin_password:
    description: The password to set; empty only checks whether the default still works.
    type: str
    default: ""
attributes:
  check_mode:
    support: full
    details:
      - V(init) and V(migrate) report what they would do (a missing database, the pending migrations).
      - V(admin_password) checks and reports V(set) without setting; V(pending_migrations) and V(read_env) read.
"""

EXAMPLES = r"""
- name: Run the pending migrations
  lernmanager.deploy.app:
    action: migrate
    release: /opt/lernmanager/releases/g-1a2b3c
    venv: /opt/lernmanager/venvs/4d5e6f
    env_file: /etc/lernmanager/lernmanager.env
    user: lernmanager
    deploy_group: lernmanager-deploy
    sandbox: "{{ lookup('ansible.builtin.template', 'service-sandbox.j2') }}"
    app_environment:
      TMPDIR: /opt/lernmanager/shared/instance/tmp
      PYTHONPYCACHEPREFIX: /var/cache/lernmanager/pycache

- name: Set the admin's password from the vault
  lernmanager.deploy.app:
    action: admin_password
    release: /opt/lernmanager/releases/g-1a2b3c
    venv: /opt/lernmanager/venvs/4d5e6f
    env_file: /etc/lernmanager/lernmanager.env
    user: lernmanager
    deploy_group: lernmanager-deploy
    sandbox: "{{ lookup('ansible.builtin.template', 'service-sandbox.j2') }}"
    admin_password: "{{ vault_lernmanager_admin_password }}"
  no_log: true
"""

RETURN = r"""
created:
  description: (V(init)) Whether the database did not exist before.
  type: bool
  returned: when action is init
pending:
  description: (V(pending_migrations), V(migrate)) The migrations not yet recorded, before this run.
  type: list
  elements: str
  returned: when action is pending_migrations or migrate
ran:
  description: (V(migrate)) The migrations that ran and were recorded.
  type: list
  elements: str
  returned: when action is migrate
state:
  description:
    - (V(admin_password)) V(default) (admin/admin works), V(not-default), V(set) (set now),
      V(unchanged) (already the password) or V(changed-by-hand).
  type: str
  returned: when action is admin_password
env:
  description: (V(read_env), V(read_upstream_env)) The file's variables; empty when the file does not exist.
  type: dict
  returned: when action is read_env or read_upstream_env
skipped_keys:
  description: (V(read_upstream_env)) Keys of the file that are not variable names, left out.
  type: list
  elements: str
  returned: when action is read_upstream_env
refused:
  description: (V(read_upstream_env)) Why the file was not read (a link, not a regular file, too large); empty when it was.
  type: str
  returned: when action is read_upstream_env
"""

import errno
import json
import os
import re
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lernmanager.deploy.plugins.module_utils.app_runtime import (
    RUNTIME_ARGUMENT_SPEC, app_environment, load_env_file, parse_env, pending_migrations)
from ansible_collections.lernmanager.deploy.plugins.module_utils.sandbox import Sandbox, last_json_line, run_migrations
from ansible_collections.lernmanager.deploy.plugins.module_utils.service_user import LernmanagerError, ServiceUser

INIT = "import importlib, sys; module = importlib.import_module(sys.argv[1]); getattr(module, sys.argv[2])()"

ADMIN_CHECK = r"""
import json, sys
import models

request = json.load(sys.stdin)
user, wanted, dry_run = request["username"], request["password"], request["dry_run"]


def admin_id(row):
    return row["id"] if hasattr(row, "keys") else row[0]


default = models.verify_admin(user, "admin")
if not wanted:
    state = "default" if default else "not-default"
elif models.verify_admin(user, wanted):
    state = "unchanged"
elif default:
    if not dry_run:
        models.update_admin_password(admin_id(default), wanted)
    state = "set"
else:
    # Changed in the web UI to something else: a person chose it, the role does not overwrite it.
    state = "changed-by-hand"
print(json.dumps({"state": state}))
"""


UPSTREAM_ENV_MAX = 64 << 10
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def read_upstream_env_file(path, owners):
    """An upstream .env's text, opened without following a link; (None, why) when it is not a plain
    file of its own (a link, a FIFO, a hard link, another account's, too large) or is missing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        return None, ""
    except OSError as error:
        why = "a link" if error.errno == errno.ELOOP else error.strerror
        return None, f"{path} could not be opened as a regular file ({why})"
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None, f"{path} is not a regular file"
        if info.st_nlink != 1 or info.st_uid not in owners:
            return None, f"{path} has another name (a hard link) or an owner other than root or the service user"
        data = handle.read(UPSTREAM_ENV_MAX + 1)
    if len(data) > UPSTREAM_ENV_MAX:
        return None, f"{path} is larger than {UPSTREAM_ENV_MAX >> 10} KiB"
    return data.decode("utf-8", "replace"), ""


def read_upstream_env(user, env_file):
    text, refused = read_upstream_env_file(env_file, (0, user.uid))
    env = parse_env(text or "")
    skipped = sorted(key for key in env if not ENV_KEY.match(key))
    return {"changed": False, "env": {k: v for k, v in env.items() if k not in skipped}, "skipped_keys": skipped,
            "refused": refused}


def python_of(venv):
    return os.path.join(venv, "bin", "python")


def database_exists(release, database, **_):
    """(service user) Whether the release's data/ holds the database."""
    return os.path.exists(os.path.join(release, "data", database))


def pending(release, **_):
    """(service user) The migrations the release's data/ has no record of."""
    return pending_migrations(release)


def init(user, sandbox, release, venv, app_env, init_module, init_function, database, dry_run, **_):
    """The app's init function, once; whether the database is new."""
    existed = user.run(database_exists, release, database)
    if not dry_run:
        status, _, err = sandbox.run([python_of(venv), "-c", INIT, init_module, init_function], release,
                                     app_environment(release, app_env), description=f"{init_module}.{init_function}()")
        if status != 0:
            raise LernmanagerError(f"{init_module}.{init_function}() failed:\n{err[-4000:]}")
    return {"changed": not existed, "created": not existed}


def migrate(user, sandbox, release, venv, app_env, dry_run, **_):
    todo = user.run(pending, release)
    if dry_run or not todo:
        return {"changed": bool(todo), "pending": todo, "ran": []}
    ran, failed, output = run_migrations(sandbox, release, python_of(venv), todo, app_environment(release, app_env))
    if failed:
        raise LernmanagerError(f"migration {failed} failed (ran before it: {ran or 'none'}):\n{output}")
    return {"changed": bool(ran), "pending": todo, "ran": ran}


def admin_password(sandbox, release, venv, app_env, admin_username, admin_password, dry_run, **_):
    request = json.dumps({"username": admin_username, "password": admin_password, "dry_run": dry_run})
    state = last_json_line(*sandbox.run([python_of(venv), "-c", ADMIN_CHECK], release, app_environment(release, app_env),
                                        stdin=request, description="the admin password check"),
                           "checking the admin password")["state"]
    return {"changed": state == "set", "state": state}


ACTIONS = {"init": init, "migrate": migrate, "admin_password": admin_password}


def main():
    module = AnsibleModule(
        argument_spec={
            "action": {"type": "str", "required": True,
                       "choices": [*ACTIONS, "pending_migrations", "read_env", "read_upstream_env"]},
            **RUNTIME_ARGUMENT_SPEC,
            "init_module": {"type": "str", "default": "app"},
            "init_function": {"type": "str", "default": "init_app"},
            "database": {"type": "str", "default": "mbi_tracker.db"},
            "admin_username": {"type": "str", "default": "admin"},
            "admin_password": {"type": "str", "default": "", "no_log": True},
        },
        required_if=[
            ("action", "init", ("release", "venv", "env_file", "user", "sandbox", "deploy_group")),
            ("action", "pending_migrations", ("release", "user")),
            ("action", "migrate", ("release", "venv", "env_file", "user", "sandbox", "deploy_group")),
            ("action", "admin_password", ("release", "venv", "env_file", "user", "sandbox", "deploy_group")),
            ("action", "read_env", ("env_file",)),
            ("action", "read_upstream_env", ("env_file", "user")),
        ],
        supports_check_mode=True,
    )
    params = module.params
    if params["action"] == "read_env":
        env_file = params["env_file"]
        module.exit_json(changed=False, env=load_env_file(env_file) if os.path.exists(env_file) else {})
    try:
        user = ServiceUser(params["user"])
        if params["action"] == "read_upstream_env":
            module.exit_json(**read_upstream_env(user, params["env_file"]))
        if params["action"] == "pending_migrations":
            todo = user.run(pending, params["release"])
            module.exit_json(changed=False, pending=todo)
        sandbox = Sandbox(user.name, params["deploy_group"], params["sandbox"], params["env_file"])
        result = ACTIONS[params["action"]](
            user=user, sandbox=sandbox, app_env=params["app_environment"], dry_run=module.check_mode,
            **{k: v for k, v in params.items() if k not in ("action", "user", "app_environment", "sandbox")})
    except (LernmanagerError, OSError) as error:
        module.fail_json(msg=str(error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
