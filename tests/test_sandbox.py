"""module_utils/sandbox.py: the command line that runs the app's code at deploy time in the
service's sandbox, built from the very template the service's unit includes. (It runs on a host
with systemd: molecule/upgrade/tests/test_app_module_in_sandbox.py.)"""

import pytest

from helpers import load_plugin, render_template

sandbox = load_plugin("plugins/module_utils/sandbox.py")
VARS = {"lernmanager_root": "/opt/lernmanager", "__lernmanager_venv": "/opt/lernmanager/venvs/abc",
        "__lernmanager_sizing": {"memory_high_mb": 307, "memory_max_mb": 384}}


def unit_properties(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_the_deploy_gets_every_property_of_the_services_sandbox():
    text = render_template("service-sandbox.j2", **VARS)
    properties = sandbox.sandbox_properties(text)
    assert properties == unit_properties(text), "every line of the template, none dropped"
    for wanted in ("ProtectSystem=strict", "NoNewPrivileges=true", "PrivateTmp=true", "ProtectProc=invisible",
                   "ReadWritePaths=/opt/lernmanager/shared/data /opt/lernmanager/shared/instance"):
        assert wanted in properties
    assert "MemoryMax=384M" in properties, "the service's memory bound too"
    service = render_template("lernmanager.service.j2", **VARS)
    assert set(properties) <= set(service.splitlines()), "the service's unit has the same lines"


def test_the_command_line_holds_no_secret_and_the_trial_writes_only_its_copy():
    text = render_template("service-sandbox.j2", **VARS)
    box = sandbox.Sandbox("lernmanager", "lernmanager-deploy", text, "/etc/lernmanager/lernmanager.env")
    cmd = box.command(["/venv/bin/python", "-c", "code"], "/trials/.trial-1/app", {"PYTHONPATH": "/trials/.trial-1/app"},
                      read_write=["/trials/.trial-1"], description="migrations")
    assert cmd[0] == "/usr/bin/systemd-run" and cmd[-4:] == ["--", "/venv/bin/python", "-c", "code"]
    props = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-p"]
    assert [p for p in props if p.startswith("ReadWritePaths=")] == ["ReadWritePaths=/trials/.trial-1"]
    assert "User=lernmanager" in props and "Group=lernmanager-deploy" in props
    assert "EnvironmentFile=/etc/lernmanager/lernmanager.env" in props, "systemd reads the secrets, not argv"
    assert "--setenv=PYTHONPATH=/trials/.trial-1/app" in cmd
    assert "--wait" in cmd and "--pipe" in cmd and "--collect" in cmd


@pytest.mark.parametrize("text,why", [
    ("", "sandbox and deploy_group are required"),
    ("NoNewPrivileges=true", "sets no ProtectSystem="),
    ("ProtectSystem=strict\nUser=root", "sets User="),
    ("ProtectSystem=strict\nEnvironment=A=b", "sets Environment="),
    ("ProtectSystem=strict\nnot a property", "is not a unit property"),
])
def test_a_sandbox_that_is_not_the_services_is_refused(text, why):
    with pytest.raises(sandbox.LernmanagerError, match=why):
        sandbox.Sandbox("lernmanager", "lernmanager-deploy", text, "/env").command(["true"], "/", {})
