"""The filter backup_settings_problems (plugins/filter/backups.py): each mistake in an sftp or s3
repository's settings is named with what to do, and right settings pass."""

import pytest
from ansible.errors import AnsibleFilterError

from helpers import load_plugin

problems = load_plugin("plugins/filter/backups.py").backup_settings_problems
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----"


@pytest.mark.parametrize("repository, env, key, known_hosts", [
    ("/var/backups/lernmanager/restic", {}, "", ""),
    ("sftp:backup@192.0.2.5:/srv/restic/school-a", {}, KEY, "192.0.2.5 ssh-ed25519 AAAA"),
    ("sftp://u1@box.example:23/school", {}, KEY, "[box.example]:23 ssh-ed25519 AAAA\n[box.example]:23 ssh-rsa AAAA"),
    ("sftp://u1@box.example:22//srv/school", {}, KEY, "other.example,box.example ssh-ed25519 AAAA"),
    ("sftp://u1@box.example/school", {}, KEY, "|1|hashed= ssh-ed25519 AAAA"),  # hashed: not read
    ("s3:https://s3.example.org/school", {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "s"}, "", ""),
    ("s3:https://s3.example.org/school", {"AWS_PROFILE": "school"}, "", ""),
    ("rest:https://backup.example.org/school/", {}, "", ""),
])
def test_right_settings_pass(repository, env, key, known_hosts):
    assert problems(repository, env, key, known_hosts) == []


@pytest.mark.parametrize("repository, env, key, known_hosts, words", [
    ("sftp://u1@box.example:23/school", {}, "", "[box.example]:23 ssh-ed25519 AAAA", "set lernmanager_backup_ssh_key"),
    ("sftp://u1@box.example:23/school", {}, KEY, "", "`ssh-keyscan -p 23 box.example` prints it"),
    ("sftp:u1@box.example:/school", {}, KEY, " \n", "`ssh-keyscan box.example` prints it"),
    ("sftp://u1@box.example:23/school", {}, KEY, "box.example ssh-ed25519 AAAA",
     "has no key for [box.example]:23, the repository's host on port 23 (a port other than 22 is written [host]:port)"
     "; it names box.example"),
    ("sftp:u1@box.example:/school", {}, KEY, "storage.example ssh-ed25519 AAAA", "has no key for box.example,"),
    ("sftp:u1@box.example:23/school", {}, KEY, "box.example ssh-ed25519 AAAA",
     "has no port in its short form (ssh would connect to port 22 and look for a directory named 23): "
     "write sftp://user@box.example:23/school"),
    ("s3:https://s3.example.org/school", {"AWS_ACCESS_KEY_ID": "id"}, "", "",
     "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in lernmanager_backup_env"),
])
def test_each_mistake_is_named_with_what_to_do(repository, env, key, known_hosts, words):
    found = problems(repository, env, key, known_hosts)
    assert len(found) == 1 and words in found[0], found


def test_no_secret_is_in_a_message():
    found = problems("sftp://u1@box.example:23/school", {"AWS_SECRET_ACCESS_KEY": "very-secret"}, KEY, "box.example k AAAA")
    assert found and not any("PRIVATE KEY" in p or "very-secret" in p for p in found)


def test_wrong_types_are_refused():
    with pytest.raises(AnsibleFilterError):
        problems(["sftp:x"], {}, "", "")
