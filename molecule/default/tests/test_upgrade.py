"""Runs last (file order): a converge with v2 of the stand-in app switches the release, runs its
migration, keeps SECRET_KEY and the data, and serves v2. A second v2 converge changes nothing."""

import pytest
import testinfra

from lm_testlib import ROOT, converge, env_value, http, recap_changed, sql


def all_hosts():
    import os

    return testinfra.get_hosts(["all"], ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"], connection="ansible")


@pytest.fixture(scope="module")
def upgrade():
    hosts = {h.backend.host: h for h in all_hosts()}
    before = {
        name: {
            "secret": env_value(h, "SECRET_KEY"),
            "release": h.check_output(f"readlink {ROOT}/current"),
            "admins": sql(h, "SELECT count(*) FROM admins"),
        }
        for name, h in hosts.items()
    }
    first = converge({"lernmanager_standin_version": "v2"})
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    second = converge({"lernmanager_standin_version": "v2"})
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-2000:]
    return before, recap_changed(first.stdout), recap_changed(second.stdout)


def test_v2_is_served_and_the_release_switched(host, upgrade):
    before, changed_first, _ = upgrade
    name = host.backend.host
    assert changed_first[name] > 0
    assert host.check_output(f"readlink {ROOT}/current") != before[name]["release"]
    r = http(host, "/login")
    assert r.status == 200
    assert 'name="standin-version" content="2"' in r.body


def test_secret_key_and_data_survive_the_upgrade(host, upgrade):
    before, _, _ = upgrade
    name = host.backend.host
    assert env_value(host, "SECRET_KEY") == before[name]["secret"]
    assert sql(host, "SELECT count(*) FROM admins") == before[name]["admins"]


def test_v2_migration_ran_once_and_was_recorded(host, upgrade):
    done = host.file(f"{ROOT}/shared/data/migrations_done.txt")
    assert done.user == "lernmanager"
    names = done.content_string.split()
    migrations_v2 = host.check_output(f"ls {ROOT}/current/migrate").split()
    assert sorted(n for n in migrations_v2 if n.startswith("migrate_") and n.endswith(".py")) == sorted(names)
    assert len(names) == len(set(names))


def test_second_v2_converge_changes_nothing(host, upgrade):
    _, _, changed_second = upgrade
    assert changed_second[host.backend.host] == 0


def test_previous_release_is_kept(host, upgrade):
    before, _, _ = upgrade
    assert host.file(f"{ROOT}/{before[host.backend.host]['release']}/app.py").exists
