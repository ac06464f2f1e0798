# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""Running the app's own code at deploy time, as upstream does: its environment file, its
migrate/migrate_*.py scripts and their record data/migrations_done.txt. The app's code runs in the
service's sandbox (sandbox.py); the functions here that read the service's files run as the
service user (service_user.ServiceUser.run), load_env_file only on root's own files."""

from __future__ import annotations

import os
import stat

from ansible_collections.lernmanager.deploy.plugins.module_utils.service_user import LernmanagerError

RECORD_NAME = "migrations_done.txt"

# The options of every module that runs the app's code (documented in doc_fragments/app_runtime.py).
RUNTIME_ARGUMENT_SPEC = {
    "user": {"type": "str"},
    "release": {"type": "path"},
    "venv": {"type": "path"},
    "env_file": {"type": "path"},
    "app_environment": {"type": "dict", "default": {}},
    "sandbox": {"type": "str", "default": ""},
    "deploy_group": {"type": "str", "default": ""},
}


def parse_env(text):
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (the role writes them quoted)."""
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        env[key.strip()] = value
    return env


def load_env_file(path):
    """An env file of root's own, parsed (parse_env)."""
    with open(path, encoding="utf-8") as handle:
        return parse_env(handle.read())


def app_environment(release, extra=None):
    """The variables the app's code gets besides its env file (systemd reads that): extra (the
    service's TMPDIR and bytecode prefix) and the release on the import path."""
    return {**(extra or {}), "PYTHONPATH": release}


class PlantedRecord(LernmanagerError):
    """The migration record is a link or a special file: the app writes a regular one, so it was
    planted through the app's account, and read through it would say wrongly which migrations ran."""

    def __init__(self, path, why):
        self.what = f"{path} is not a regular file (a link?): {why}"
        super().__init__(f"{self.what}. The app makes none: its account may have been misused. Nothing "
                         "follows it; remove it, or deploy with -e lernmanager_quarantine_planted=true to move it aside")


def read_record(path):
    """The migration record's bytes, None when there is none. Anything but a regular file fails:
    read through a link (or not at all) it would say which migrations ran wrongly."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise PlantedRecord(path, error.strerror) from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise PlantedRecord(path, "not a regular file")
        return handle.read()


def migration_scripts(release):
    """The release's migrate/migrate_*.py scripts, in order."""
    migrate_dir = os.path.join(release, "migrate")
    if not os.path.isdir(migrate_dir):
        return []
    return sorted(name for name in os.listdir(migrate_dir) if name.startswith("migrate_") and name.endswith(".py"))


def pending_migrations(release):
    """The release's migrate/migrate_*.py scripts its data/ has no record of, in order."""
    record = read_record(os.path.join(release, "data", RECORD_NAME))
    done = {line.strip() for line in (record or b"").decode("utf-8").splitlines() if line.strip()}
    return [name for name in migration_scripts(release) if name not in done]
