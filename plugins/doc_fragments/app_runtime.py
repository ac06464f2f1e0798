# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""The options of every module that runs the app's own code as the service user (app, database);
their argument spec is module_utils/app_runtime.py's RUNTIME_ARGUMENT_SPEC."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  user:
    description: The service user, who owns the data and runs the app's code.
    type: str
  release:
    description: The release directory (its C(data/) links to the live data).
    type: path
  venv:
    description: The release's venv; the app runs under its C(bin/python).
    type: path
  env_file:
    description: The service's environment file (for the app module's V(read_env), the file to read).
    type: path
  app_environment:
    description:
      - Environment for the app's own processes only, such as the service's C(TMPDIR) and
        C(PYTHONPYCACHEPREFIX); the env file's variables win.
      - Never give these as the task's C(environment), which the module itself runs in, as root
        (Ansible unpacks a module into C(TMPDIR), here a directory the service user controls).
    type: dict
    default: {}
  sandbox:
    description:
      - The service's sandbox as unit properties, one C(Key=Value) a line (comments allowed), the
        text of the template the service's unit includes. The app's code runs in a transient
        systemd unit with these properties; required for every action that runs the app's code.
      - It must set C(ProtectSystem=); C(User=), C(Group=), C(WorkingDirectory=), C(Environment*=),
        C(UMask=) and C(RuntimeMaxSec=) are the module's own and refused here.
    type: str
    default: ""
  deploy_group:
    description:
      - The primary group of the app's code at deploy time, a group the running service does not
        have (and no member), so that the running app can neither see those processes nor write into
        their memory through C(/proc). Required with O(sandbox).
    type: str
    default: ""
"""
