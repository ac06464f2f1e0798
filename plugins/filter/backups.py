# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""What keeps a backup repository's settings from working, found before any change: without them
the first backup fails after the release went live, with ssh's or restic's own words."""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

# sftp://[user@]host[:port]/path (the form that can carry a port) and sftp:[user@]host:path.
SFTP_URL = re.compile(r"^sftp://(?:[^@/]+@)?(?P<host>\[[^\]]+\]|[^:/]+)(?::(?P<port>\d+))?/")
SFTP_SHORT = re.compile(r"^sftp:(?!//)(?:[^@:]+@)?(?P<host>[^:]+):(?P<path>.*)$")


def sftp_host(repository):
    """(host, port) of an sftp repository, port None for ssh's 22; None when it is no sftp URL."""
    match = SFTP_URL.match(repository) or SFTP_SHORT.match(repository)
    if not match:
        return None
    port = match.groupdict().get("port")
    return match["host"].strip("[]"), (port if port and port != "22" else None)


def known_host_names(known_hosts):
    """Every host name the known_hosts lines give a key for; None when a line is hashed (|1|...),
    whose names cannot be read."""
    names = set()
    for line in known_hosts.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0].startswith("@"):  # @cert-authority / @revoked
            fields = fields[1:]
        if not fields or fields[0].startswith("|"):
            return None
        names.update(fields[0].split(","))
    return names


def backup_settings_problems(repository, env=None, ssh_key="", known_hosts=""):
    """A list of what is missing or wrong, each naming the variable and what to do; [] when nothing."""
    if not isinstance(repository, str) or not isinstance(env or {}, dict):
        raise AnsibleFilterError("backup_settings_problems: give the repository and lernmanager_backup_env (a dict)")
    env, problems = env or {}, []
    short = SFTP_SHORT.match(repository)
    if short and re.match(r"\d+/", short["path"]):
        problems.append(f"lernmanager_backup_repository {repository} has no port in its short form (ssh would "
                        f"connect to port 22 and look for a directory named {short['path'].split('/')[0]}): write "
                        f"sftp://user@{short['host']}:{short['path'].split('/')[0]}/{short['path'].split('/', 1)[1]}")
    if repository.startswith("sftp:"):
        where = sftp_host(repository)
        if not ssh_key.strip():
            problems.append("lernmanager_backup_repository is an sftp repository: set lernmanager_backup_ssh_key "
                            "to the private key the storage host accepts (from your vault)")
        if not known_hosts.strip():
            problems.append("lernmanager_backup_repository is an sftp repository: set lernmanager_backup_ssh_known_hosts "
                            "to the storage host's key as `ssh-keyscan "
                            + (f"-p {where[1]} " if where and where[1] else "") + f"{where[0] if where else 'HOST'}` prints it")
        elif where:
            host, port = where
            expected = f"[{host}]:{port}" if port else host
            names = known_host_names(known_hosts)
            if names is not None and expected not in names:
                problems.append(f"lernmanager_backup_ssh_known_hosts has no key for {expected}, the repository's host"
                                + (f" on port {port} (a port other than 22 is written [host]:port)" if port else "")
                                + f"; it names {', '.join(sorted(names)) or 'none'}")
    if repository.startswith("s3:") and not (
            {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env) or {"AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE"} & set(env)):
        problems.append("lernmanager_backup_repository is an s3 repository: set AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY in lernmanager_backup_env (from your vault)")
    return problems


class FilterModule:
    def filters(self):
        return {"backup_settings_problems": backup_settings_problems}
