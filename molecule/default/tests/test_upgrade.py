"""After the side effect (molecule/default/side_effect.yml) upgraded the converged v1 to v2 of the
stand-in app, twice (it asserts that the first run changed every host and the second none):
v2 is served from a new release, its migration ran once and was recorded, SECRET_KEY and the
data are v1's, and v1's release is kept as `previous`.

Reads the hosts only (side_effect.yml made the upgrade)."""

import json

import pytest

from lm_testlib import ROOT, http, sql

SECRET_LINE_HASH = "grep '^SECRET_KEY=' /etc/lernmanager/lernmanager.env | sha256sum | cut -d' ' -f1"


@pytest.fixture
def before(host):
    """What v1 left, recorded by the side effect before the upgrade."""
    return json.loads(host.file("/root/lm-before-v2.json").content_string)


def test_v2_is_served_from_a_new_release(host, before):
    assert host.check_output(f"readlink {ROOT}/current") != before["release"]
    r = http(host, "/login")
    assert r.status == 200
    assert 'name="standin-version" content="2"' in r.body


def test_secret_key_and_data_survive_the_upgrade(host, before):
    assert host.check_output(SECRET_LINE_HASH) == before["secret_line"]
    assert sql(host, "SELECT count(*) FROM admins") == before["admins"]


def test_v2_migration_ran_once_and_was_recorded(host):
    done = host.file(f"{ROOT}/shared/data/migrations_done.txt")
    assert done.user == "lernmanager"
    names = done.content_string.split()
    migrations_v2 = host.check_output(f"ls {ROOT}/current/migrate").split()
    assert sorted(n for n in migrations_v2 if n.startswith("migrate_") and n.endswith(".py")) == sorted(names)
    assert len(names) == len(set(names))


def test_v1_is_kept_as_the_previous_release(host, before):
    assert host.check_output(f"readlink {ROOT}/previous") == before["release"]
    assert host.file(f"{ROOT}/{before['release']}/app.py").exists
