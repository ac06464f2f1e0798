"""Issue 37: an upstream tree the service account may have tampered with. The adoption's data step
(tasks/steps/host/adopt_data.yml, run alone on a scratch tree and layout) reads .env as the service user
and never through a link, and refuses data/ and instance/uploads/ that are links: nothing behind a
planted link arrives in the new layout, the env file or a backup.

Changes the host and puts it back: the adoption's data step runs on a scratch tree and layout, removed after
each test."""

import os
import tempfile

import pytest
import yaml

from lm_testlib import as_service_user, playbook

SCRATCH = "/srv/lm-adopt-hostile"
TREE, ROOT, ETC = f"{SCRATCH}/tree", f"{SCRATCH}/root", f"{SCRATCH}/etc"
CANARY_FILE = "/root/lm-adopt-canary.env"  # root-only, as another instance's env file is
OTHER_UPLOADS = f"{SCRATCH}/other-uploads"  # another instance's uploads: group www-data may read


def adopt_data():
    """The role's adopt_data.yml alone, on the scratch tree and layout."""
    play = [{"name": "Carry a scratch upstream tree over", "hosts": "all", "gather_facts": False, "tasks": [
        {"name": "Run the adoption's data step", "ansible.builtin.include_role": {
            "name": "lernmanager.deploy.lernmanager", "tasks_from": "steps/host/adopt_data.yml"}}]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        yaml.safe_dump(play, handle)
    try:
        return playbook(handle.name, {"lernmanager_root": ROOT, "lernmanager_config_dir": ETC,
                                      "__lernmanager_upstream_tree": TREE})
    finally:
        os.unlink(handle.name)


@pytest.fixture
def tree(host):
    """An upstream tree (root's top, as adopt.yml leaves it; its entries the service user's) with a
    database and an upload, and the new layout it goes into. What the service user planted at the
    tree's top it planted while upstream's root was still its own: the tests put it there as root."""
    host.run("rm -rf %s && install -d -m 0755 %s %s", SCRATCH, SCRATCH, TREE)
    host.run("install -d -m 0700 %s", ETC)
    host.run("install -d -m 0750 -o lernmanager -g lernmanager %s/data %s/instance", TREE, TREE)
    host.run("install -d -m 2750 -o lernmanager -g www-data %s/instance/uploads %s", TREE, OTHER_UPLOADS)
    host.run("install -d -m 2750 -o lernmanager -g lernmanager %s/shared/data", ROOT)
    host.run("install -d -m 2750 -o lernmanager -g www-data %s/shared/instance %s/shared/instance/uploads", ROOT, ROOT)
    host.run(as_service_user(f"sh -c 'echo db > {TREE}/data/mbi_tracker.db && echo up > {TREE}/instance/uploads/a.pdf'"))
    host.run("printf %s 'other school upload' > " + f"{OTHER_UPLOADS}/secret-other.pdf && chown lernmanager:www-data "
             f"{OTHER_UPLOADS}/secret-other.pdf && chmod 0640 {OTHER_UPLOADS}/secret-other.pdf")
    host.run("umask 077 && printf '%%s\\n' 'SECRET_KEY=canary-key-of-another-instance' 'LLM_API_KEY=sk-canary' > %s",
             CANARY_FILE)
    yield
    host.run("rm -rf %s %s", SCRATCH, CANARY_FILE)


def test_an_uploads_link_is_refused_and_nothing_behind_it_arrives(host, tree):
    host.run(as_service_user(f"sh -c 'rm -rf {TREE}/instance/uploads && ln -s {OTHER_UPLOADS} {TREE}/instance/uploads'"))
    run = adopt_data()
    output = run.stdout + run.stderr
    assert run.returncode != 0 and f"{TREE}/instance/uploads is a link, not a directory: refused" in output, output[-3000:]
    assert host.check_output("ls -A %s/shared/instance/uploads", ROOT) == "", "nothing of the other school's uploads"
    assert host.file(f"{ROOT}/shared/data/mbi_tracker.db").exists, "the database (not a link) was carried over"


def test_an_env_link_is_not_followed_and_its_secrets_go_nowhere(host, tree):
    host.run(f"ln -s {CANARY_FILE} {TREE}/.env && chown -h lernmanager:lernmanager {TREE}/.env")
    run = adopt_data()
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert f"{TREE}/.env could not be opened as a regular file (a link)" in output, output[-3000:]
    assert host.file(f"{ROOT}/shared/instance/uploads/a.pdf").exists, "the real uploads were carried over"
    found = host.run("grep -rlF -e canary-key-of-another-instance -e sk-canary %s %s", SCRATCH, ETC)
    assert found.stdout.strip() == "", f"the linked file's secrets arrived in: {found.stdout}"
    assert not host.file(f"{ETC}/secret_key").exists


def test_an_env_with_odd_keys_keeps_only_variable_names(host, tree):
    host.run(f"printf '%s\\n' LLM_API_KEY=sk-kept BAD-KEY=x 1X=y > {TREE}/.env && chown lernmanager {TREE}/.env")
    run = adopt_data()
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "keys that are not variable names were left out: 1X, BAD-KEY" in output, output[-3000:]
    kept = host.file(f"{ETC}/adopted.env").content_string.splitlines()
    assert [line for line in kept if line and not line.startswith("#")] == ['LLM_API_KEY="sk-kept"'], kept
