"""An upstream install (git checkout as /opt/lernmanager, waitress on 0.0.0.0:8081, .env) is
converted by the role's first run without losing anything a school cares about."""

import json

import pytest

from lm_testlib import ROOT, env_value, http, put_script, run_client

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
    # Both set these (molecule/resources/converge.yml): lernmanager_env wins.
    assert env_value(host, "SCHOOL_NAME") == "Testschule am See"
    assert env_value(host, "SCHOOL_EMAIL") == "sekretariat@testschule.example"
    assert "Testschule am See" in http(host, "/datenschutz").body


def test_an_adoption_killed_after_the_move_was_finished_by_the_next_run(host):
    # prepare.yml killed the first run right after the move; Molecule's converge resumed it. The
    # tests above show that it carried the data over: a fresh install would have an empty database.
    killed = json.loads(host.file("/root/adopt-killed.json").content_string)
    assert killed == {"root": False, "trees": 1, "marker": True}, killed
    assert not host.file("/opt/lernmanager.adopting").exists


def test_old_tree_is_kept_aside_and_named(host):
    kept = host.check_output("ls -d /opt/lernmanager.upstream-*").split()
    assert len(kept) == 1
    for name in ("run.py", ".git", "venv", ".env", "data/mbi_tracker.db"):
        assert host.file(f"{kept[0]}/{name}").exists, name


def test_old_service_is_replaced_by_the_socket_activated_one(host):
    listeners = host.check_output("ss -Hltn").splitlines()
    assert [line.split()[3] for line in listeners if line.split()[3].endswith(":8081")] == ["127.0.0.1:8081"]
    main_pid = host.check_output("systemctl show -P MainPID lernmanager.service")
    cmdline = host.file(f"/proc/{main_pid}/cmdline").content_string.replace("\0", " ")
    assert "-m gunicorn" in cmdline and "run.py" not in cmdline
    assert host.file(f"{ROOT}/current").is_symlink
