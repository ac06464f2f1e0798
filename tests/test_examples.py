"""The README's quick start, as a reader follows it: the project directory `examples/` (copied, its
vault example filled in the way step 4 says) parses as Ansible reads it and passes the role's own
validation; `inventory.example` (several schools) parses once copied to a `.yml` name; and every
variable the examples take from the vault is in the vault's example."""

import configparser
import json
import re
import shutil

import pytest
import yaml

from helpers import REPO, VALID_SETTINGS, VALIDATE_PLAY, run_ansible

EXAMPLES = REPO / "examples"
VAULT_EXAMPLE = EXAMPLES / "group_vars" / "lernmanager" / "vault.yml.example"


def listed_hosts(inventory):
    run = run_ansible("ansible-inventory", "-i", str(inventory), "--list")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)["_meta"]["hostvars"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """examples/ copied as step 1 does, vault.yml written as step 4 does (values filled in, not encrypted)."""
    directory = tmp_path_factory.mktemp("schule")
    shutil.copytree(EXAMPLES, directory, dirs_exist_ok=True)
    vault = yaml.safe_load(VAULT_EXAMPLE.read_text(encoding="utf-8"))
    filled = {name: f"filled-in {name} " + "x" * 24 for name in vault}
    (directory / "group_vars" / "lernmanager" / "vault.yml").write_text(yaml.safe_dump(filled))
    return directory


def test_the_project_directory_names_one_school_reached_over_ssh_with_sudo_and_pipelining(project):
    hosts = listed_hosts(project / "inventory.yml")
    assert list(hosts) == ["lernmanager.gym-beispiel.example"]
    (settings,) = hosts.values()
    assert settings["ansible_become"] is True and settings["ansible_pipelining"] is True
    assert settings["lernmanager_server_name"] and settings["lernmanager_acme_email"]
    assert settings["lernmanager_backup_repository"].startswith("sftp://"), "backups leave the VPS"
    assert settings["vault_lernmanager_admin_password"].startswith("filled-in"), "group_vars' vault.yml is read"


def test_every_vault_variable_the_examples_use_is_in_the_vault_example():
    used = set()
    for path in EXAMPLES.rglob("*.yml"):
        # What the settings use, not what a comment offers (S3 instead of sftp, the alerts).
        settings = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("#"))
        used |= set(re.findall(r"\{\{\s*(vault_\w+)\s*\}\}", settings))
    assert used, "the examples take their secrets from the vault"
    assert used <= set(yaml.safe_load(VAULT_EXAMPLE.read_text(encoding="utf-8"))), used


def test_the_sftp_repository_and_its_known_hosts_line_agree_on_the_port():
    settings = yaml.safe_load((EXAMPLES / "group_vars" / "lernmanager" / "main.yml").read_text(encoding="utf-8"))
    host, port = re.match(r"sftp://[^@]+@([^:/]+):(\d+)/", settings["lernmanager_backup_repository"]).groups()
    assert settings["lernmanager_backup_ssh_known_hosts"].startswith(f"[{host}]:{port} ")


def test_the_project_directory_passes_the_roles_validation(project, tmp_path):
    (settings,) = listed_hosts(project / "inventory.yml").values()
    variables = {name: value for name, value in settings.items() if not name.startswith("ansible_")}
    (tmp_path / "vars.json").write_text(json.dumps({**VALID_SETTINGS, **variables, "lernmanager_source": "git"}))
    (tmp_path / "validate.yml").write_text(VALIDATE_PLAY.replace("  tasks:\n", f"""  tasks:
    - name: Take the example's variables
      ansible.builtin.include_vars: {tmp_path}/vars.json
""", 1))
    run = run_ansible("ansible-playbook", "-i", "localhost,", str(tmp_path / "validate.yml"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


def test_the_ansible_cfg_reads_the_inventory_and_prints_the_rollout_summary():
    config = configparser.ConfigParser()
    config.read(EXAMPLES / "ansible.cfg")
    assert (EXAMPLES / config["defaults"]["inventory"]).is_file()
    assert "lernmanager.deploy.rollout" in config["defaults"]["callbacks_enabled"]


def test_the_fleet_example_parses_once_copied_to_a_yml_name(tmp_path):
    shutil.copy(REPO / "inventory.example", tmp_path / "inventory.yml")
    hosts = listed_hosts(tmp_path / "inventory.yml")
    assert len(hosts) == 3
    names = [settings["lernmanager_server_name"] for settings in hosts.values()]
    repositories = [settings["lernmanager_backup_repository"] for settings in hosts.values()]
    assert len(set(names)) == len(set(repositories)) == 3, "each school its own site and repository"
    assert all(s["ansible_become"] is True and s["ansible_pipelining"] is True for s in hosts.values())
