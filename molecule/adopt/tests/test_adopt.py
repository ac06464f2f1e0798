"""An upstream install (git checkout as /opt/lernmanager, waitress on 0.0.0.0:8081, .env) is
converted by the role's first run without losing anything a school cares about.

Changes the host: runs the converge's adoption tag again, and unmounts the data volume under the stopped app
before it mounts it and starts the app again."""

import json
import os

import pytest

from lm_testlib import RESOURCES, ROOT, converge, env_value, http, playbook, put_script, run_client

NEW_STATE = ("/opt/lernmanager/shared/data", "/opt/lernmanager/shared/instance/uploads",
             "/etc/lernmanager/lernmanager.env")


@pytest.fixture(scope="module")
def states(host):
    before = json.loads(host.file("/root/adopt-before.json").content_string)
    after = json.loads(host.check_output("python3 %s %s %s %s", put_script(host, "lm_state.py"), *NEW_STATE))
    return before, after


@pytest.mark.parametrize("what", ["tables", "dump", "migrations_done", "uploads", "secret_key"])
def test_data_and_secret_survive_the_adoption(states, what):
    before, after = states
    assert before[what] == after[what]
    assert before["uploads"], "the fixture made an upload"


def test_session_made_before_the_adoption_is_still_valid(host):
    result = run_client(host, "--cookie-jar", "/root/lm-cookies.txt", "session")
    assert result["dashboard_status"] == 200
    fresh = run_client(host, "session")
    assert fresh["dashboard_status"] == 302, "without the old cookie: a login is asked for"


def test_upload_made_before_is_served_through_nginx(host):
    client = json.loads(host.file("/root/adopt-client.json").content_string)
    f = host.file(f"{ROOT}/shared/instance/uploads/{client['stored_name']}")
    assert (f.user, f.group, f.mode) == ("lernmanager", "www-data", 0o640)
    assert run_client(host, "exercise")["logged_in"]


def test_upstream_settings_are_kept_and_lernmanager_env_wins(host):
    assert env_value(host, "LLM_API_KEY") == "sk-upstream-test-key"  # only upstream's .env sets it
    assert env_value(host, "LLM_BASE_URL") == "https://llm.schule.example/v1"
    # The grading service's settings come from the inventory only (its token goes to nginx too): the
    # scenario sets none, so the old ones are not carried over (the run warns) and /grading/ is off.
    assert env_value(host, "GRADING_SERVICE_URL") is None and env_value(host, "GRADING_SERVICE_TOKEN") is None
    assert not host.file("/etc/nginx/snippets/lernmanager-grading-token.conf").exists
    # Both set these (molecule/resources/converge.yml): lernmanager_env wins.
    assert env_value(host, "SCHOOL_NAME") == "Testschule am See"
    assert env_value(host, "SCHOOL_EMAIL") == "sekretariat@testschule.example"
    assert "Testschule am See" in http(host, "/datenschutz").body


def test_an_adoption_killed_after_the_move_was_finished_by_the_next_run(host):
    # prepare.yml killed the first run right after the move; Molecule's converge resumed it. The
    # tests above show that it carried the data over: a fresh install would have an empty database.
    killed = json.loads(host.file("/root/adopt-killed.json").content_string)
    # The root is the volume's mount point: the tree moved into it, not beside it.
    assert killed == {"mounted": True, "run_py_at_top": False, "trees": 1, "marker": True}, killed
    assert not host.file("/opt/lernmanager.adopting").exists


def test_old_tree_is_kept_aside_on_the_volume_and_named(host):
    # Inside the mount point: the school's data never left the (encrypted) volume.
    kept = host.check_output("ls -d /opt/lernmanager/upstream-*").split()
    assert len(kept) == 1 and host.check_output("ls -d /opt/lernmanager.upstream-* 2>/dev/null || true") == ""
    assert host.check_output(f"findmnt --noheadings --output TARGET --target {kept[0]}") == "/opt/lernmanager"
    # Root's own directory, made by root (the service user owned upstream's root and could plant a link).
    tree = host.file(kept[0])
    assert not tree.is_symlink and tree.is_directory and (tree.user, tree.mode) == ("root", 0o755)
    for name in ("run.py", ".git", "venv", ".env", "data/mbi_tracker.db"):
        assert host.file(f"{kept[0]}/{name}").exists, name


def test_old_service_is_replaced_by_the_socket_activated_one(host):
    listeners = host.check_output("ss -Hltn").splitlines()
    assert [line.split()[3] for line in listeners if line.split()[3].endswith(":8081")] == ["127.0.0.1:8081"]
    main_pid = host.check_output("systemctl show -P MainPID lernmanager.service")
    cmdline = host.file(f"/proc/{main_pid}/cmdline").content_string.replace("\0", " ")
    assert "-m gunicorn" in cmdline and "run.py" not in cmdline
    assert host.file(f"{ROOT}/current").is_symlink


def test_units_require_the_data_volume(host):
    for unit in ("lernmanager.socket", "lernmanager.service", "lernmanager-backup.service",
                 "lernmanager-job-auto-attendance.service", "lernmanager-job-weekly-reports.service"):
        text = host.file(f"/etc/systemd/system/{unit}").content_string
        assert "RequiresMountsFor=/opt/lernmanager\n" in text and "AssertPathIsMountPoint=/opt/lernmanager\n" in text, unit


def test_cron_entries_that_run_the_old_tree_are_named_in_a_warning_without_their_text(host):
    run = playbook(os.path.join(RESOURCES, "converge.yml"), tags="lernmanager_adopt", verbose=True)
    assert run.returncode == 0, run.stdout[-2000:]
    warning = next(line for line in run.stdout.splitlines() if "WARNING: these cron entries name /opt/lernmanager" in line)
    # upstream_setup.sh: line 1 and 4 are comments, 2 and 3 upstream's jobs, 5 the school's own.
    assert "/etc/cron.d/lernmanager:2, /etc/cron.d/lernmanager:3, /etc/cron.d/lernmanager:5" in warning, warning
    assert "cron-secret-4b1d9e" not in run.stdout + run.stderr, "a secret in a cron line, shown with -v"


def test_a_locked_volume_keeps_the_app_down_and_deploys_out_until_it_is_mounted(host):
    """A reboot (stop, unmount: the volume is locked again), the boot's start of the units, a deploy,
    then the admin's unlock and start. Last in this module: it leaves the volume mounted again."""
    assert host.run("systemctl stop lernmanager.service lernmanager.socket && umount --lazy /opt/lernmanager").rc == 0
    try:
        assert host.check_output("ls -A /opt/lernmanager") == "", "the directory beneath the volume"
        # As the boot would start them: both refuse, and nothing restarts in a loop.
        assert host.run("systemctl start lernmanager.socket").rc != 0
        assert host.run("systemctl start lernmanager.service").rc != 0
        host.run("sleep 5")
        service, socket = (dict(line.split("=", 1) for line in host.check_output(
            f"systemctl show {unit} -p ActiveState -p NRestarts -p AssertResult").splitlines())
            for unit in ("lernmanager.service", "lernmanager.socket"))
        assert service["ActiveState"] in ("inactive", "failed") and service["NRestarts"] == "0", service
        assert (socket["ActiveState"], socket["AssertResult"]) in (("inactive", "no"), ("failed", "no")), socket
        assert http(host, "/login").status == 502
        # A deploy now would install a fresh, empty instance beneath the volume: refused, nothing written.
        run = converge()
        output = run.stdout + run.stderr  # ansible-core 2.19 reports a failed task on stderr
        assert run.returncode != 0 and "unlock and mount it first" in output, output[-2000:]
        assert host.check_output("ls -A /opt/lernmanager") == ""
    finally:
        host.run("mountpoint -q /opt/lernmanager || mount --bind /srv/lernmanager-volume /opt/lernmanager")
    # Unlocked and mounted: the admin starts the app, as upstream's unlock script does.
    assert host.run("systemctl start lernmanager").rc == 0
    assert host.check_output("systemctl is-active lernmanager.socket lernmanager.service") == "active\nactive"
    assert run_client(host, "exercise")["logged_in"]

