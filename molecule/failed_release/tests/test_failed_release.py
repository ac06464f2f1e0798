"""A broken v2 over a serving v1 with data: the play fails with a clear message, v1 serves, the
database equals its pre-deploy state and the broken release stays on disk for inspection. A venv
whose packages conflict is refused before anything live.

Changes the host: broken releases deployed over v1 and rolled back, each left on disk."""

import pytest

from lm_testlib import (ROOT, canary_is_intact, converge, db_state, http, plant_canary_links, release_of,
                        run_client)

# (version of the stand-in app, words the failure message must contain)
BROKEN = [
    # Fails at import: init_app() cannot even run, nothing live is touched.
    ("v2_import_error", "No module named 'no_such_module_lernmanager'"),
    # (A migration that fails on the trial copy: molecule/fleet, on a rollout's canary.)
    # Live migrations run, then gunicorn cannot start: back to v1 and to the backup.
    ("v2_broken_start", "with the database restored from"),
]


@pytest.fixture(scope="module")
def canary(host):
    """Links to a root-only canary, planted by the service user before the failed deploys."""
    return plant_canary_links(host)


@pytest.fixture(scope="module")
def v1_with_data(host, canary):
    client = run_client(host, "exercise")
    assert client["logged_in"] and client["download_sha256"] == client["upload_sha256"]
    return release_of(host)


@pytest.mark.parametrize("version,message", BROKEN, ids=[v for v, _ in BROKEN])
def test_broken_release_never_stays_live(host, v1_with_data, version, message):
    state = db_state(host)
    releases_before = set(host.check_output(f"ls {ROOT}/releases").split())
    run = converge({"standin_version": version, "lernmanager_health_check_timeout": 20})
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert message in output, output[-3000:]
    assert release_of(host) == v1_with_data
    r = http(host, "/login")
    assert r.status == 200 and 'name="standin-version" content="1"' in r.body
    assert db_state(host) == state
    assert "migrate_002" not in host.file(f"{ROOT}/shared/data/migrations_done.txt").content_string
    new = set(host.check_output(f"ls {ROOT}/releases").split()) - releases_before
    assert len(new) == 1, "the broken release is kept on disk"
    assert f"{ROOT}/releases/{new.pop()}" in output, "the message names the broken release"


def test_a_venv_whose_packages_conflict_is_never_finished_nor_live(host, v1_with_data):
    """--no-deps leaves Flask without Werkzeug: pip installs it, `pip check` refuses it."""
    venvs_before = set(host.check_output(f"ls {ROOT}/venvs").split())
    # Only the steps up to the venv: the host's packages, user and layout are v1's, checked by the runs above.
    run = converge({"standin_version": "v2", "lernmanager_pip_extra_args": ["--no-deps"]},
                   tags="lernmanager_release,lernmanager_python")
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "`pip check` found conflicts" in output and "werkzeug, which is not installed" in output.lower(), output[-3000:]
    assert "nothing live has changed" in output
    assert release_of(host) == v1_with_data
    assert http(host, "/login").status == 200
    new = set(host.check_output(f"ls {ROOT}/venvs").split()) - venvs_before
    assert len(new) == 1 and not host.file(f"{ROOT}/venvs/{new.pop()}/.complete").exists


def test_service_and_socket_are_healthy_after_the_failures(host, v1_with_data):
    for unit in ("lernmanager.socket", "lernmanager.service"):
        assert host.service(unit).is_running
    assert run_client(host, "exercise")["logged_in"], "v1 still writes to its database"


def test_the_canary_is_untouched_after_the_automatic_rollbacks(host, v1_with_data, canary):
    canary_is_intact(host, canary)
