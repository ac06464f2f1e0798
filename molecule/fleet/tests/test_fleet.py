"""A district's fleet, as converge.yml left it (the rollout: lm-fleet-a, then the rest): every
school serves; the canary built the wheelhouse and lm-fleet-b, which reaches no package index,
installed from it; lm-fleet-c holds two schools that share nothing but nginx. Then, through
playbooks/deploy.yml as an admin runs it: a v2 whose migration fails stops on the canary and
leaves every other school untouched; a rolling v2 reaches every school; a rollback of one school
leaves the other on its host running.

The tests run once each (no `host` fixture) in this order; each names the hosts it looks at.

Changes the hosts: deploys refused, a canary whose migration fails, then v2 rolled out to every school."""

import glob
import json
import os
import re
import subprocess
import sys

import pytest
import testinfra

from lm_testlib import REPO, db_state, http, playbook, put_script, start_in_service_sandbox, stop_unit

CANARY, BLOCKED, SHARED, ZWEI = "lm-fleet-a", "lm-fleet-b", "lm-fleet-c", "lm-fleet-c-zwei"
SCHOOLS = {CANARY: ("lernmanager", "lernmanager.test"), BLOCKED: ("lernmanager", "lernmanager.test"),
           SHARED: ("lernmanager", "lernmanager.test"), ZWEI: ("zwei", "lernmanager.zweite-schule.de")}
EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")


def host_named(name):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


def school(name):
    """(host, instance, server name) of an inventory name: lm-fleet-c-zwei is lm-fleet-c's second."""
    instance, server_name = SCHOOLS[name]
    return host_named(SHARED if name == ZWEI else name), instance, server_name


def live_release(name):
    host, instance, _ = school(name)
    return host.check_output(f"readlink /opt/{instance}/current").rsplit("/", 1)[-1]


def service_state(name):
    host, instance, _ = school(name)
    return host.check_output(f"systemctl show -P MainPID,ActiveEnterTimestampMonotonic {instance}.service")


def serves_version(name, version):
    host, _, server_name = school(name)
    response = http(host, "/login", host_header=server_name)
    return response.status == 200 and f'name="standin-version" content="{version}"' in response.body


def written_paths(instance):
    """Where the role writes for an instance, outside the app's own data (which the app may write)."""
    return f"/opt/{instance} /etc/{instance} /var/cache/{instance} /etc/systemd/system /etc/nginx"


def untouched_state(name):
    host, instance, _ = school(name)
    return {"release": live_release(name), "service": service_state(name),
            "releases": host.check_output(f"ls -A /opt/{instance}/releases /opt/{instance}/venvs")}


def build_app(version, dest):
    subprocess.run([sys.executable, os.path.join(REPO, "tests", "fixtures", "build_app.py"), version, str(dest)],
                   check=True)
    return str(dest)


def test_every_school_serves_after_the_rollout():
    for name in SCHOOLS:
        assert serves_version(name, "1"), name


def test_the_canary_built_the_wheelhouse_and_the_host_without_an_index_installed_from_it():
    archives = glob.glob(os.path.join(EPHEMERAL, "wheelhouse", "debian12-*.tar"))
    assert len(archives) == 1, archives  # one dependency set, one Debian release: built once
    blocked = host_named(BLOCKED)
    assert blocked.run("/opt/lernmanager/current/.venv/bin/pip download --no-deps --dest /tmp/probe flask").rc != 0, \
        "pip on lm-fleet-b reaches no index"
    assert blocked.file(f"/opt/lernmanager/venvs/{os.path.basename(archives[0]).split('-', 2)[2][:-4]}/.complete").exists


def test_two_schools_on_one_host_share_nothing_but_nginx():
    host = host_named(SHARED)
    assert host.user("lernmanager").uid != host.user("zwei").uid
    for instance, port in (("lernmanager", 8081), ("zwei", 8082)):
        assert host.service(f"{instance}.service").is_running
        assert f"ListenStream=127.0.0.1:{port}" in host.file(f"/etc/systemd/system/{instance}.socket").content_string
        assert host.file(f"/opt/{instance}/shared/data").user == instance
    secrets = {instance: host.check_output(f"grep '^SECRET_KEY=' /etc/{instance}/lernmanager.env")
               for instance in ("lernmanager", "zwei")}
    assert secrets["lernmanager"] != secrets["zwei"]
    # One default server per port on the host: the catch-all, whichever instance wrote it last.
    config = host.check_output("nginx -T 2>/dev/null")
    assert config.count("listen 80 default_server;") == 1, config
    unknown = host.run("curl -sS -o /dev/null -H 'Host: nobody.example' http://127.0.0.1/login")
    assert unknown.rc == 52, "no answer at all for a name no school has"


def logs_in(host, server_name, password):
    result = host.run(f"python3 {put_script(host, 'lm_client.py')} --host-header {server_name} "
                      f"--password {password} exercise")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)["logged_in"]


def test_a_public_name_on_plain_http_keeps_no_admin_admin_and_a_test_name_warns():
    # No lernmanager_admin_password in the scenario; zwei's name is a public one, TLS off (no
    # e-mail for ACME): the role made a password; the .test school beside it only warns.
    host, instance, server_name = school(ZWEI)
    generated = host.file(f"/etc/{instance}/admin_password")
    assert (generated.user, generated.group, generated.mode) == ("root", "root", 0o600)
    password = generated.content_string.strip()
    assert len(password) >= 20
    assert not logs_in(host, server_name, "admin"), "admin/admin must not work on a public name"
    assert logs_in(host, server_name, password)
    assert not host.file("/etc/lernmanager/admin_password").exists
    assert logs_in(host, "lernmanager.test", "admin")


def test_a_school_reaches_no_gunicorn_on_loopback_and_nginx_reaches_both():
    """zwei's app, were it hostile, cannot speak to the other school's gunicorn (which trusts
    X-Real-IP from 127.0.0.1) nor to its own; nginx and root still reach both."""
    host = host_named(SHARED)

    def probe(unit, without=()):
        try:
            start_in_service_sandbox(host, unit, "lm_loopback_probe.py", "8081", "8082", service="zwei",
                                     oneshot=True, without=without)
            return host.check_output(f"journalctl -u {unit} -o cat --no-pager")
        finally:
            stop_unit(host, unit)
    probed = probe("lm-loopback-probe")
    assert "8081 blocked" in probed and "8082 blocked" in probed, probed
    # The same sandbox without its IP address lines (as before this guard) reaches both: the probe can tell.
    unguarded = probe("lm-loopback-probe-unguarded", without=("IPAddressDeny=", "IPAddressAllow="))
    assert "8081 reached" in unguarded and "8082 reached" in unguarded, unguarded
    for port in (8081, 8082):
        assert host.run(f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 3)'").rc == 0
    assert serves_version(SHARED, "1") and serves_version(ZWEI, "1")


def refused_without_change(port, copy):
    """A deploy of zwei onto PORT (with v1 built afresh into COPY): its output, after checking that
    it failed and wrote nothing of the school's outside its data."""
    host = host_named(SHARED)
    since = host.check_output("date +%s.%N")
    run = playbook(os.path.join(REPO, "playbooks", "deploy.yml"),
                   {"lernmanager_source_path": build_app("v1", os.path.join(EPHEMERAL, copy)),
                    "lernmanager_listen_port": port}, limit=ZWEI)
    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-3000:]
    changed = host.check_output(f"find /opt/zwei /etc/zwei /etc/systemd/system /etc/nginx -newermt @{since} "
                                "-not -path '/opt/zwei/shared/*' -print")
    assert changed == "", changed
    return output


def test_a_port_another_school_has_is_refused_before_any_change():
    output = refused_without_change(8081, "app-v1-again")
    assert "would share what another site or instance has" in output and "lernmanager.socket" in output, output[-3000:]


def test_a_port_another_program_holds_is_refused_naming_it_before_any_change():
    """A program of the host's own (not a school) listens on the port a school would take."""
    host = host_named(SHARED)
    host.check_output("systemd-run --unit=lm-squatter python3 -m http.server --bind 127.0.0.1 8093")
    try:
        host.check_output("for i in $(seq 50); do ss -ltnH 'sport = :8093' | grep -q . && exit 0; sleep 0.1; done; exit 1")
        output = refused_without_change(8093, "app-v1-squatted")
        assert re.search(r"port 8093 is held by python3 \(pid \d+, lm-squatter\.service\)", output), output[-3000:]
    finally:
        host.run("systemctl stop lm-squatter")


@pytest.fixture(scope="module")
def stopped_rollout():
    """playbooks/deploy.yml with its own rollout settings and a v2 whose migration fails."""
    others = [name for name in SCHOOLS if name != CANARY]
    before = {name: untouched_state(name) for name in SCHOOLS}
    database = db_state(host_named(CANARY))
    since = {name: school(name)[0].check_output("date +%s.%N") for name in others}
    run = playbook(os.path.join(REPO, "playbooks", "deploy.yml"),
                   {"lernmanager_source_path": build_app("v2_migration_fails", os.path.join(EPHEMERAL, "app-broken"))})
    return before, database, since, run


def test_a_canary_whose_migration_fails_stops_the_rollout(stopped_rollout):
    before, database, _, run = stopped_rollout
    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-3000:]
    assert "migrations failed on a copy of the database (migrate_003_broken.py)" in output, output[-3000:]
    canary = host_named(CANARY)
    assert live_release(CANARY) == before[CANARY]["release"] and serves_version(CANARY, "1")
    assert db_state(canary) == database
    assert "migrate_003" not in canary.file("/opt/lernmanager/shared/data/migrations_done.txt").content_string
    releases = canary.check_output("ls -A /opt/lernmanager/releases").split()
    broken = [name for name in releases if f"/opt/lernmanager/releases/{name}" in output]
    assert len(broken) == 1, f"the broken release is kept on disk and named: {releases}"
    assert output.count("TASK [Gathering Facts]") == 1, "the next batch never began"


def test_every_school_after_the_canary_is_untouched(stopped_rollout):
    before, _, since, _ = stopped_rollout
    for name, started in since.items():
        host, instance, _ = school(name)
        assert untouched_state(name) == before[name], name
        assert serves_version(name, "1"), name
        changed = host.check_output(f"find {written_paths(instance)} -newermt @{started} "
                                    f"-not -path '/opt/{instance}/shared/*' -print")
        assert changed == "", (name, changed)


def test_the_stopped_rollout_ends_with_one_line_per_school(stopped_rollout):
    before, _, _, run = stopped_rollout
    lines = run.stdout.split("LERNMANAGER ROLLOUT", 1)[-1].splitlines()
    summary = {line.split()[0]: line.split() for line in lines if line.split() and line.split()[0] in SCHOOLS}
    assert set(summary) == set(SCHOOLS), lines
    canary = summary.pop(CANARY)
    assert canary[1:4] == ["failed", "serves", before[CANARY]["release"]], canary
    # "(not <the broken release>)", then the seconds the canary took.
    assert canary[4] == "(not" and re.fullmatch(r"p-[0-9a-f]{16}-[0-9a-f]{8}\)", canary[5]), canary
    assert canary[-1] == "s", canary
    for name, line in summary.items():
        assert line[1:] == ["not", "started", "untouched", "-"], (name, line)


def test_no_index_and_no_wheelhouse_for_a_new_dependency_set_fails_before_anything_live(tmp_path):
    """lm-fleet-b reaches no index: a dependency set no wheelhouse holds (`--prefer-binary` is one of
    its own) fails in the venv step with a message that says what to do, and nothing live changes."""
    blocked = host_named(BLOCKED)
    before = untouched_state(BLOCKED)
    run = playbook(os.path.join(REPO, "playbooks", "deploy.yml"),
                   {"lernmanager_source_path": os.path.join(EPHEMERAL, "app-v1"),
                    "lernmanager_pip_extra_args": ["--prefer-binary"], "lernmanager_wheelhouse_dir": str(tmp_path)},
                   tags="lernmanager_release,lernmanager_python", limit=BLOCKED)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "pip could not build the wheels" in output and "Nothing live has changed" in output, output[-3000:]
    assert str(tmp_path) in output, "the message names where the wheelhouse would be"
    assert list(tmp_path.iterdir()) == [], "no half-written wheelhouse"
    after = untouched_state(BLOCKED)
    assert after["release"] == before["release"] and after["service"] == before["service"]
    unfinished = set(after["releases"].split()) - set(before["releases"].split())
    assert not any(blocked.file(f"/opt/lernmanager/venvs/{name}/.complete").exists for name in unfinished)
    assert serves_version(BLOCKED, "1")


def test_a_rolling_v2_reaches_every_school():
    run = playbook(os.path.join(REPO, "playbooks", "deploy.yml"),
                   {"lernmanager_source_path": build_app("v2", os.path.join(EPHEMERAL, "app-v2-rollout")),
                    "lernmanager_serial": [1, "100%"]})
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    summary = run.stdout.split("LERNMANAGER ROLLOUT", 1)[-1].splitlines()
    for name in SCHOOLS:
        assert serves_version(name, "2"), name
        line = next(line.split() for line in summary if line.startswith(name + " "))
        assert line[1:4] == ["changed", "serves", live_release(name)], line


def test_a_rollback_of_one_school_leaves_the_other_running():
    other = service_state(SHARED)
    before = live_release(ZWEI)
    run = playbook(os.path.join(REPO, "playbooks", "rollback.yml"), limit=ZWEI)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert live_release(ZWEI) != before and serves_version(ZWEI, "1")
    assert service_state(SHARED) == other, "the default instance was not restarted"
    assert serves_version(SHARED, "2")
