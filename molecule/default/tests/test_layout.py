"""The host layout (docs/architecture.md): owners, groups and modes, the service account, packages.

Reads the hosts only (the service user's write probes are removed at once)."""

import pytest

ROOT = "/opt/lernmanager"

LAYOUT = [
    # path, user, group, mode
    (ROOT, "root", "root", 0o755),
    (f"{ROOT}/releases", "root", "root", 0o755),
    (f"{ROOT}/venvs", "root", "root", 0o755),
    (f"{ROOT}/shared", "root", "root", 0o755),
    (f"{ROOT}/shared/data", "lernmanager", "lernmanager", 0o2750),
    (f"{ROOT}/shared/instance", "lernmanager", "www-data", 0o2750),
    (f"{ROOT}/shared/instance/uploads", "lernmanager", "www-data", 0o2750),
    (f"{ROOT}/shared/instance/tmp", "lernmanager", "lernmanager", 0o700),
    (f"{ROOT}/shared/backups", "root", "root", 0o700),
    ("/etc/lernmanager", "root", "lernmanager", 0o750),
    ("/var/cache/lernmanager/pycache", "root", "root", 0o755),
]


@pytest.mark.parametrize("path,user,group,mode", LAYOUT, ids=[p for p, *_ in LAYOUT])
def test_directory_owner_group_mode(host, path, user, group, mode):
    d = host.file(path)
    assert d.is_directory
    assert (d.user, d.group, d.mode) == (user, group, mode)


def test_service_account_cannot_log_in(host):
    u = host.user("lernmanager")
    assert u.exists
    assert u.group == "lernmanager"
    assert u.shell == "/usr/sbin/nologin"
    assert u.home == ROOT
    assert u.uid < 1000, "a system account"
    # The app root is the account's home but stays root-owned.
    assert host.file(u.home).user == "root"


@pytest.mark.parametrize(
    "path", [f"{ROOT}/shared/data", f"{ROOT}/shared/instance/uploads", f"{ROOT}/shared/instance/tmp"]
)
def test_service_user_can_write_its_data(host, path):
    probe = f"{path}/.write-probe"
    result = host.run("runuser -u lernmanager -- sh -c 'touch %s && rm %s'", probe, probe)
    assert result.rc == 0, result.stderr


@pytest.mark.parametrize(
    "path", [ROOT, f"{ROOT}/releases", f"{ROOT}/venvs", "/etc/lernmanager", "/var/cache/lernmanager/pycache"]
)
def test_service_user_cannot_write_code_or_config(host, path):
    result = host.run("runuser -u lernmanager -- touch %s/.write-probe", path)
    assert result.rc != 0
    assert not host.file(f"{path}/.write-probe").exists


@pytest.mark.parametrize("package", ["python3-venv", "nginx", "sqlite3", "git", "procps", "curl", "logrotate"])
def test_package_installed(host, package):
    assert host.package(package).is_installed


MEMORY_LIMIT_SCRIPT = r"""
import os
# The tightest memory limit on the path from this process's cgroup up to the root
# (cgroup v1 `memory` controller or cgroup v2 unified hierarchy).
for line in open("/proc/self/cgroup"):
    _, controllers, path = line.rstrip("\n").split(":", 2)
    if controllers in ("memory", ""):
        base = "/sys/fs/cgroup/memory" if controllers else "/sys/fs/cgroup"
        name = "memory.limit_in_bytes" if controllers else "memory.max"
        break
limits = []
while True:
    try:
        value = open(os.path.join(base + path, name)).read().strip()
        if value != "max":
            limits.append(int(value))
    except OSError:
        pass
    if path == "/":
        break
    path = os.path.dirname(path)
print(min(limits))
"""


def test_vps_limits(host):
    """The container really is a 1 CPU / 1 GB VPS."""
    assert host.check_output("nproc") == "1"
    assert int(host.check_output("python3 -c %s", MEMORY_LIMIT_SCRIPT)) == 1024**3


def test_host_is_the_minimal_image_plus_what_the_role_installs(host):
    # The test bed's image has no procps, curl or dbus (scripts/testbed.sh): the role installed
    # them itself (dbus for systemd-run: the app's code at deploy time runs in the sandbox).
    assert host.package("procps").is_installed and host.package("curl").is_installed
    assert host.package("dbus").is_installed and host.service("dbus").is_running
