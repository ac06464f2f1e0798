"""No .pyc is written when the service starts: everything it imports was compiled at deploy time.

A read-only prefix hides a missing .pyc (Python then compiles in memory and writes nothing), so
the test makes the prefix writable for the service for one restart and looks for new files.

Changes the hosts and puts them back: a restart with a writable prefix, modules planted in /tmp for an apt
run.
"""

import os

import pytest

from lm_testlib import PREFIX, RESOURCES, as_service_user, http

DROPIN_DIR = "/run/systemd/system/lernmanager.service.d"


@pytest.fixture
def writable_prefix(host):
    host.run("mkdir -p %s", DROPIN_DIR)
    host.run("printf '[Service]\\nReadWritePaths=%s\\n' > %s/zz-test-writable-prefix.conf", PREFIX, DROPIN_DIR)
    assert host.run("setfacl -R -m u:lernmanager:rwX %s", PREFIX).rc == 0
    host.run("systemctl daemon-reload")
    try:
        yield
    finally:
        host.run("rm -f %s/zz-test-writable-prefix.conf", DROPIN_DIR)
        host.run("setfacl -R -b %s", PREFIX)
        host.run("systemctl daemon-reload && systemctl restart lernmanager.service")


def test_service_start_and_requests_write_no_bytecode(host, writable_prefix):
    host.run("touch /tmp/lm-before-restart && sleep 1")
    assert host.run("systemctl restart lernmanager.service").rc == 0
    for path in ("/login", "/datenschutz", "/slow", "/", "/no-such-page"):
        assert http(host, path).status in (200, 302, 404)
    # The service really could have written there: prove the probe is not blind.
    probe = host.run("runuser -u lernmanager -- touch %s/.probe && rm %s/.probe", PREFIX, PREFIX)
    assert probe.rc == 0, "the prefix should be writable for the service during this test"
    new_files = host.check_output("find %s -newer /tmp/lm-before-restart -type f", PREFIX)
    assert new_files == ""


def test_every_module_a_worker_imports_has_valid_bytecode(host):
    """Import what a worker imports, as the service does, and check each module's cached .pyc."""
    with open(os.path.join(RESOURCES, "files", "pyc_check.py"), encoding="utf-8") as handle:
        host.run("cat > /tmp/pyc_check.py <<'LM_EOF'\n%s\nLM_EOF" % handle.read())
    venv = host.check_output("readlink -f /opt/lernmanager/current/.venv")
    release = host.check_output("readlink -f /opt/lernmanager/current")
    result = host.run(
        "cd %s && runuser -u lernmanager -- env -i PYTHONPYCACHEPREFIX=%s %s/bin/python /tmp/pyc_check.py %s",
        release, PREFIX, venv, release,
    )
    assert result.rc == 0, result.stdout + result.stderr
    checked = int(result.stdout.split()[0])
    assert checked > 300, result.stdout  # flask, werkzeug, jinja2, reportlab, openai, gunicorn, stdlib...


def test_prefix_is_read_only_for_the_service(host):
    d = host.file(PREFIX)
    assert (d.user, d.group, d.mode) == ("root", "root", 0o755)
    assert host.check_output("find %s -type f -not -user root | wc -l", PREFIX) == "0"
    assert int(host.check_output("find %s -name '*.pyc' | wc -l", PREFIX)) > 1000


PYC_VALID = (
    "import importlib.util, os, sys; s = sys.argv[1]; c = importlib.util.cache_from_source(s); "
    "h = open(c, 'rb').read(16); st = os.stat(s); "
    "sys.exit(0 if int.from_bytes(h[8:12], 'little') == int(st.st_mtime) & 0xFFFFFFFF else 1)"
)


# Modules the hook's `python3 -m compileall` imports, planted where apt runs its hooks (/tmp) by
# the service user: imported from there, each would run as root and leave APT_HOOK_RAN behind.
APT_HOOK_PLANTED = ["compileall", "py_compile", "filecmp", "importlib", "re", "os", "sitecustomize"]
APT_HOOK_RAN = "/root/lm-apt-hook-ran-planted-code"


def test_package_upgrades_recompile_stale_stdlib_bytecode_and_import_nothing_from_tmp(host):
    """The apt hook closes the hole left by an upgrade of python3 between two deploys, and opens
    none: modules another account planted in its working directory (/tmp) are never imported."""
    source = host.check_output("python3 -c 'import json; print(json.__file__)'")
    check = f"PYTHONPYCACHEPREFIX={PREFIX} python3 -c \"{PYC_VALID}\" {source}"
    assert host.run(check).rc == 0
    host.run("touch %s", source)  # what an upgrade of the python3 package does to the stdlib
    assert host.run(check).rc == 1, "the bytecode should now be stale"
    host.run("rm -f %s", APT_HOOK_RAN)
    host.run("printf %%s %s > /tmp/lm-apt-hook-payload",
             f"import os\nopen({APT_HOOK_RAN!r}, 'a').write(str(os.getuid()))\n")
    try:
        for name in APT_HOOK_PLANTED:
            planted = host.run(as_service_user(f"cp /tmp/lm-apt-hook-payload /tmp/{name}.py"))
            assert planted.rc == 0, planted.stderr
        reinstall = host.run("DEBIAN_FRONTEND=noninteractive apt-get install -y --reinstall sqlite3")
        assert reinstall.rc == 0, reinstall.stderr
        assert host.run(check).rc == 0, "the apt hook should have recompiled it"
        assert not host.file(APT_HOOK_RAN).exists, "the apt hook ran code planted in /tmp as root"
    finally:
        host.run("rm -f /tmp/lm-apt-hook-payload " + " ".join(f"/tmp/{name}.py" for name in APT_HOOK_PLANTED))
