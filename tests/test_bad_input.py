"""Bad variables are refused before any change, with a message naming the variable.

helpers.VALIDATE_PLAY runs on the controller alone: first the role's own argument specs
(`validate_argument_spec` with meta/argument_specs.yml, exactly what the role runs first), then
the role's cross-field checks (tasks/steps/run/validate_inputs.yml). Nothing touches a host.
The cases run in one `ansible-playbook`, each as a host of its own (`connection: local`) whose
variables come from `include_vars` (above the role's defaults and vars, as extra variables are):
one Ansible start for a hundred cases, so the oldest supported ansible-core can run them all too
(`make oldest`). The secrets' cases run alone, with the output a person sees.
"""

import json

import pytest

from helpers import ROLE, VALID_SETTINGS, VALIDATE_PLAY, run_ansible

# One worker runs the batch (`make unit` distributes by group): each would run it again.
pytestmark = pytest.mark.xdist_group("bad_input")

BAD_INPUTS = [
    # (id, extra variables, a word the error must contain)
    ("misspelt-variable", {"lernmanager_server_nmae": "school.example.org"},
     "lernmanager_server_nmae (did you mean lernmanager_server_name?)"),
    ("unknown-variable", {"lernmanager_colour": "blue"}, "Not a variable of the role: lernmanager_colour."),
    ("port-not-a-number", {"lernmanager_listen_port": "eighty"}, "lernmanager_listen_port"),
    ("port-privileged", {"lernmanager_listen_port": 80}, "lernmanager_listen_port"),
    ("port-out-of-range", {"lernmanager_listen_port": 70000}, "lernmanager_listen_port"),
    ("unknown-source", {"lernmanager_source": "ftp"}, "lernmanager_source"),
    ("path-source-without-path", {"lernmanager_source_path": ""}, "lernmanager_source_path"),
    ("path-source-relative", {"lernmanager_source_path": "app"}, "lernmanager_source_path"),
    ("archive-without-checksum", {"lernmanager_source": "archive", "lernmanager_archive_src": "/x.tgz"},
     "lernmanager_archive_checksum"),
    ("archive-bad-checksum-format", {"lernmanager_source": "archive", "lernmanager_archive_src": "/x.tgz",
                                     "lernmanager_archive_checksum": "md5:abc"}, "lernmanager_archive_checksum"),
    ("keep-one-release", {"lernmanager_keep_releases": 1}, "lernmanager_keep_releases"),
    ("env-not-a-dict", {"lernmanager_env": ["SCHOOL_NAME=x"]}, "lernmanager_env"),
    ("env-sets-secret-key", {"lernmanager_env": {"SECRET_KEY": "x"}}, "lernmanager_secret_key"),
    ("env-bad-key", {"lernmanager_env": {"SCHOOL NAME": "x"}}, "lernmanager_env"),
    ("short-secret", {"lernmanager_secret_key": "tooshort"}, "lernmanager_secret_key"),
    ("ping-url-without-scheme", {"lernmanager_ping_url": "hc-ping.com/3f2a"}, "lernmanager_ping_url"),
    ("journal-retention-in-words", {"lernmanager_journal_retention": "a month"}, "lernmanager_journal_retention"),
    ("short-admin-password", {"lernmanager_admin_password": "admin123"}, "lernmanager_admin_password"),
    ("require-not-bool", {"lernmanager_require_admin_password": "sometimes"}, "lernmanager_require_admin_password"),
    ("relative-root", {"lernmanager_root": "opt/lm"}, "lernmanager_root"),
    ("system-root", {"lernmanager_root": "/usr"}, "lernmanager_root"),
    ("root-user", {"lernmanager_user": "root"}, "lernmanager_user"),
    ("workers-not-int", {"lernmanager_gunicorn_workers": "many"}, "lernmanager_gunicorn_workers"),
    ("tiny-timeout", {"lernmanager_gunicorn_timeout": 1}, "lernmanager_gunicorn_timeout"),
    ("gunicorn-latest", {"lernmanager_gunicorn_version": "latest"}, "lernmanager_gunicorn_version"),
    ("gunicorn-a-range", {"lernmanager_gunicorn_version": ">=23"}, "lernmanager_gunicorn_version"),
    ("gunicorn-too-old", {"lernmanager_gunicorn_version": "19.9.0"}, "lernmanager_gunicorn_version"),
    ("keep-no-backup", {"lernmanager_keep_backups": 0}, "lernmanager_keep_backups"),
    ("rollback-to-a-path", {"lernmanager_rollback_to": "../../etc"}, "lernmanager_rollback_to"),
    ("rollback-to-short-deps", {"lernmanager_rollback_to": "g-0123456789abcdef-0123"}, "lernmanager_rollback_to"),
    ("constraints-relative", {"lernmanager_pip_constraints": "constraints.txt"}, "lernmanager_pip_constraints"),
    ("constraints-missing", {"lernmanager_pip_constraints": "/nonexistent/constraints.txt"}, "lernmanager_pip_constraints"),
    ("venv-age-negative", {"lernmanager_venv_max_age_days": -1}, "venv_max_age_days"),
    ("instance-capitals", {"lernmanager_instance": "Gym-Nord"}, "lernmanager_instance"),
    ("instance-ends-in-a-dash", {"lernmanager_instance": "gym-"}, "lernmanager_instance"),
    ("instance-like-a-job-unit", {"lernmanager_instance": "gym-job-x"}, "lernmanager_instance"),
    ("wheelhouse-unknown", {"lernmanager_wheelhouse": "always"}, "lernmanager_wheelhouse"),
    ("wheelhouse-dir-relative", {"lernmanager_wheelhouse_dir": "wheels"}, "lernmanager_wheelhouse_dir"),
    ("proxy-without-scheme", {"lernmanager_http_proxy": "proxy.schule.example:3128"}, "lernmanager_http_proxy"),
    ("proxy-with-a-path", {"lernmanager_http_proxy": "http://proxy.schule.example:3128/pac"}, "lernmanager_http_proxy"),
    ("restore-db-not-bool", {"lernmanager_rollback_restore_db": "maybe"}, "lernmanager_rollback_restore_db"),
    ("unknown-tls-mode", {"lernmanager_tls": "letsencrypt"}, "lernmanager_tls"),
    ("acme-without-email", {"lernmanager_tls": "acme", "lernmanager_server_name": "lm.schule.example"},
     "lernmanager_acme_email"),
    ("acme-without-name", {"lernmanager_tls": "acme", "lernmanager_acme_email": "it@schule.example"},
     "lernmanager_server_name"),
    ("provided-without-files", {"lernmanager_tls": "provided"}, "lernmanager_tls_cert_file"),
    ("provided-missing-file", {"lernmanager_tls": "provided", "lernmanager_tls_cert_file": "/nonexistent.pem",
                               "lernmanager_tls_key_file": "/nonexistent.key"}, "lernmanager_tls_cert_file"),
    ("selfsigned-without-name", {"lernmanager_tls": "selfsigned"}, "lernmanager_server_name"),
    ("negative-hsts", {"lernmanager_hsts_max_age": -1}, "lernmanager_hsts_max_age"),
    ("ssh-port-negative", {"lernmanager_firewall_ssh_port": -1}, "lernmanager_firewall_ssh_port"),
    ("extra-port-too-big", {"lernmanager_firewall_extra_tcp_ports": [8443, 70000]}, "lernmanager_firewall_extra_tcp_ports"),
    ("csp-with-quote", {"lernmanager_nginx_csp": 'default-src "self"'}, "lernmanager_nginx_csp"),
    ("negative-hash-concurrency", {"lernmanager_password_hash_concurrency": -1}, "lernmanager_password_hash_concurrency"),
    ("no-password-queue", {"lernmanager_password_queue_seconds": 0}, "lernmanager_password_queue_seconds"),
    ("password-path-with-quote", {"lernmanager_password_paths": ['/login"; return 200; "']}, "lernmanager_password_paths"),
    ("password-path-relative", {"lernmanager_password_paths": ["login"]}, "lernmanager_password_paths"),
    ("password-paths-not-a-list", {"lernmanager_password_paths": 5}, "lernmanager_password_paths"),
    ("error-log-kept-no-day", {"lernmanager_nginx_error_log_days": 0}, "lernmanager_nginx_error_log_days"),
    ("brotli-not-bool", {"lernmanager_nginx_brotli": "perhaps"}, "lernmanager_nginx_brotli"),
    ("negative-login-rate", {"lernmanager_login_rate": -5}, "lernmanager_login_rate"),
    ("no-login-burst", {"lernmanager_login_burst": 0}, "lernmanager_login_burst"),
    ("negative-lock-timeout", {"lernmanager_lock_timeout": -1}, "lernmanager_lock_timeout"),
    # Issue 9: settings that would hand the service (or the role) what is not theirs.
    ("config-dir-etc", {"lernmanager_config_dir": "/etc"}, "lernmanager_config_dir"),
    ("config-dir-usr-slash", {"lernmanager_config_dir": "/usr/"}, "lernmanager_config_dir"),
    ("config-dir-above-var-lib", {"lernmanager_config_dir": "/var"}, "lernmanager_config_dir"),
    ("root-opt-slash", {"lernmanager_root": "/opt/"}, "lernmanager_root"),
    ("root-srv-doubled", {"lernmanager_root": "//srv"}, "lernmanager_root"),
    ("root-root", {"lernmanager_root": "/root"}, "lernmanager_root"),
    ("root-dot-dot", {"lernmanager_root": "/opt/lernmanager/../../etc"}, "lernmanager_root"),
    ("root-slash", {"lernmanager_root": "/"}, "lernmanager_root"),
    ("prefix-in-shared", {"lernmanager_pycache_prefix": "/opt/lernmanager/shared/instance/pycache"},
     "lernmanager_pycache_prefix"),
    ("prefix-in-tmp", {"lernmanager_pycache_prefix": "/tmp/pycache"}, "lernmanager_pycache_prefix"),
    ("prefix-var-cache", {"lernmanager_pycache_prefix": "/var/cache"}, "lernmanager_pycache_prefix"),
    ("user-www-data", {"lernmanager_user": "www-data"}, "lernmanager_user"),
    ("user-nobody", {"lernmanager_user": "nobody"}, "lernmanager_user"),
    ("group-sudo", {"lernmanager_group": "sudo"}, "lernmanager_group"),
    ("git-over-http", {"lernmanager_source": "git", "lernmanager_git_repo": "http://example.org/lm.git"},
     "lernmanager_git_repo"),
    ("git-protocol", {"lernmanager_source": "git", "lernmanager_git_repo": "git://example.org/lm.git"},
     "lernmanager_git_repo"),
    ("acme-email-malformed-under-auto", {"lernmanager_acme_email": "it-at-schule", "lernmanager_server_name": "lm.schule.de"},
     "lernmanager_acme_email"),
    ("env-value-newline", {"lernmanager_env": {"SCHOOL_NAME": "Schule\nSECRET_KEY=x"}}, "lernmanager_env"),
    ("env-value-nul", {"lernmanager_env": {"SCHOOL_NAME": "Schule\u0000"}}, "lernmanager_env"),
    ("env-key-starts-with-digit", {"lernmanager_env": {"1SCHOOL": "x"}}, "lernmanager_env"),
    # Issue 11: the app as it runs today.
    ("llm-key-without-base-url", {"lernmanager_env": {"LLM_API_KEY": "sk-x"}}, "LLM_BASE_URL"),
    ("grading-url-not-http", {"lernmanager_grading_service_url": "ftp://grading"}, "lernmanager_grading_service_url"),
    ("grading-url-with-semicolon", {"lernmanager_grading_service_url": "http://g;return 200", **{
        "lernmanager_grading_service_token": "t" * 20, "lernmanager_grading_callback_secret": "s" * 20}},
     "lernmanager_grading_service_url"),
    ("grading-without-token", {"lernmanager_grading_service_url": "http://127.0.0.1:8099",
                               "lernmanager_grading_callback_secret": "s" * 20}, "lernmanager_grading_service_token"),
    ("grading-token-with-quote", {"lernmanager_grading_service_url": "http://127.0.0.1:8099",
                                  "lernmanager_grading_service_token": 'abc"; return 200; "' + "x" * 16,
                                  "lernmanager_grading_callback_secret": "s" * 20}, "lernmanager_grading_service_token"),
    ("grading-without-callback-secret", {"lernmanager_grading_service_url": "http://127.0.0.1:8099",
                                         "lernmanager_grading_service_token": "t" * 20}, "lernmanager_grading_callback_secret"),
    ("grading-body-size-words", {"lernmanager_grading_max_body_size": "lots"}, "lernmanager_grading_max_body_size"),
    ("trusted-proxy-hostname", {"lernmanager_trusted_proxies": ["proxy.schule.example"]}, "lernmanager_trusted_proxies"),
    ("trusted-proxy-everyone", {"lernmanager_trusted_proxies": ["0.0.0.0/0"]}, "lernmanager_trusted_proxies"),
    ("trusted-proxy-not-a-list", {"lernmanager_trusted_proxies": {"a": 1}}, "lernmanager_trusted_proxies"),
    ("real-ip-header-unknown", {"lernmanager_real_ip_header": "X-Client"}, "lernmanager_real_ip_header"),
    ("force-https-sometimes", {"lernmanager_force_https": "sometimes"}, "lernmanager_force_https"),
    ("strict-settings-not-bool", {"lernmanager_strict_settings": "very"}, "lernmanager_strict_settings"),
    ("location-without-config", {"lernmanager_nginx_locations": [{"path": "/x/"}]}, "lernmanager_nginx_locations"),
    ("location-path-with-brace", {"lernmanager_nginx_locations": [{"path": "/x/ { }", "config": "return 204;"}]},
     "lernmanager_nginx_locations"),
    ("location-config-leaves-its-block", {"lernmanager_nginx_locations": [
        {"path": "/x/", "config": "return 204; } server { listen 8080; location / { return 200;"}]},
     "lernmanager_nginx_locations"),
    ("job-name-with-slash", {"lernmanager_jobs": [{"name": "../x", "command": "flask x", "on_calendar": "daily"}]},
     "lernmanager_jobs"),
    ("job-names-twice", {"lernmanager_jobs": [{"name": "a", "command": "flask x", "on_calendar": "daily"},
                                              {"name": "a", "command": "flask y", "on_calendar": "daily"}]}, "lernmanager_jobs"),
    ("job-relative-path-command", {"lernmanager_jobs": [{"name": "a", "command": "bin/x", "on_calendar": "daily"}]},
     "lernmanager_jobs"),
    ("job-without-schedule", {"lernmanager_jobs": [{"name": "a", "command": "flask x"}]}, "on_calendar"),
    ("job-enabled-not-bool", {"lernmanager_jobs": [{"name": "a", "command": "flask x", "on_calendar": "daily",
                                                    "enabled": "often"}]}, "enabled"),
    ("mount-relative", {"lernmanager_requires_mounts": ["opt/lernmanager"]}, "lernmanager_requires_mounts"),
    ("acme-for-an-ip-address", {"lernmanager_tls": "acme", "lernmanager_acme_email": "it@schule.example",
                                "lernmanager_server_name": "203.0.113.10"}, "Let's Encrypt certifies DNS names only"),
    ("server-name-with-a-space", {"lernmanager_server_name": "lernmanager schule.example"}, "lernmanager_server_name must be"),
    ("server-name-with-an-underscore", {"lernmanager_server_name": "lern_manager.schule.example"},
     "lernmanager_server_name must be"),
    ("body-buffer-not-a-size", {"lernmanager_client_body_buffer_size": "256 KB"}, "lernmanager_client_body_buffer_size"),
    ("sftp-without-key", {"lernmanager_backup_repository": "sftp://u1@box.example:23/school",
                          "lernmanager_backup_ssh_known_hosts": "[box.example]:23 ssh-ed25519 AAAAkey"},
     "set lernmanager_backup_ssh_key"),
    ("sftp-known-hosts-without-port", {"lernmanager_backup_repository": "sftp://u1@box.example:23/school",
                                       "lernmanager_backup_ssh_key": "KEY",
                                       "lernmanager_backup_ssh_known_hosts": "box.example ssh-ed25519 AAAAkey"},
     "has no key for [box.example]:23"),
    ("sftp-port-in-the-short-form", {"lernmanager_backup_repository": "sftp:u1@box.example:23/school",
                                     "lernmanager_backup_ssh_key": "KEY",
                                     "lernmanager_backup_ssh_known_hosts": "box.example ssh-ed25519 AAAAkey"},
     "write sftp://user@box.example:23/school"),
    ("s3-without-credentials", {"lernmanager_backup_repository": "s3:https://s3.example.org/school"},
     "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in lernmanager_backup_env"),
    ("locations-template-missing", {"lernmanager_nginx_locations_template": "/nonexistent/more.conf.j2"},
     "lernmanager_nginx_locations_template"),
]


def run_validation(tmp_path, variables):
    playbook = tmp_path / "validate.yml"
    playbook.write_text(VALIDATE_PLAY)
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({**VALID_SETTINGS, **variables}))
    return run_ansible("ansible-playbook", "-i", "localhost,", str(playbook), "-e", f"@{extra}")


EVERY_NEW_SETTING = {
    "lernmanager_grading_service_url": "https://grading.schule.example/api/", "lernmanager_grading_service_token": "A" * 32,
    "lernmanager_grading_callback_secret": "s3cr3t-" * 4, "lernmanager_grading_max_body_size": "1g",
    "lernmanager_trusted_proxies": ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"], "lernmanager_force_https": "true",
    "lernmanager_env": {"LLM_API_KEY": "sk-x", "LLM_BASE_URL": "https://api.example/v1"},
    "lernmanager_jobs": [{"name": "nightly-export", "command": "/usr/local/bin/export --all", "on_calendar": "daily"},
                         {"name": "weekly-reports", "command": "python generate_weekly_reports.py", "on_calendar": "Mon 00:01",
                          "enabled": False}],
    "lernmanager_requires_mounts": ["/opt/lernmanager"],
    "lernmanager_pip_constraints": str(ROLE / "defaults" / "main.yml"), "lernmanager_venv_max_age_days": 0,
    "lernmanager_rollback_to": "g-0123456789abcdef-89abcdef",
    "lernmanager_instance": "gs-sued", "lernmanager_wheelhouse": "off", "lernmanager_wheelhouse_dir": "/srv/ansible/wheelhouse",
    "lernmanager_http_proxy": "http://user:pw@proxy.schule.example:3128",
    "lernmanager_no_proxy": ["localhost", ".schule.example"],
    "lernmanager_nginx_locations": [{"path": "= /robots.txt", "config": "return 200 '{}';"},
                                    {"path": "~* \\.php$", "config": "return 404;"}],
    # The playbooks' own (play keywords), not the role's.
    "lernmanager_serial": [1, "50%"], "lernmanager_max_fail_percentage": 10}
GOOD_INPUTS = [("good", {}), ("every-new-setting", EVERY_NEW_SETTING),
               # An address is a fine name for a plain-HTTP site; a DNS name with a trailing dot too.
               ("ip-address-without-tls", {"lernmanager_server_name": "203.0.113.10", "lernmanager_tls": "off"}),
               ("acme-for-a-dns-name", {"lernmanager_tls": "acme", "lernmanager_acme_email": "it@schule.example",
                                        "lernmanager_server_name": "Lernmanager.Gym-Nord.schule.example."})]


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    """{case id: (whether the host failed, what its tasks returned, as JSON text)} of one run."""
    work = tmp_path_factory.mktemp("cases")
    cases = {case: variables for case, variables, _ in BAD_INPUTS} | dict(GOOD_INPUTS)
    for case, variables in cases.items():
        (work / f"{case}.json").write_text(json.dumps({**VALID_SETTINGS, **variables}))
    inventory = {"all": {"hosts": {case: {"ansible_connection": "local",
                                          "ansible_python_interpreter": "{{ ansible_playbook_python }}"} for case in cases}}}
    (work / "inventory.json").write_text(json.dumps(inventory))
    play = VALIDATE_PLAY.replace("- hosts: localhost", "- hosts: all").replace("  tasks:\n", f"""  tasks:
    - name: Take this case's variables
      ansible.builtin.include_vars: {work}/{{{{ inventory_hostname }}}}.json
""", 1)
    (work / "validate.yml").write_text(play)
    result = run_ansible("ansible-playbook", "-i", str(work / "inventory.json"), str(work / "validate.yml"),
                         env={"ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_FORKS": "8"})
    try:  # the JSON document, then the rollout summary's lines (ansible.cfg's callback)
        report, _ = json.JSONDecoder().raw_decode(result.stdout[result.stdout.index("{"):])
    except ValueError:
        pytest.fail(f"no JSON report: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    returned = {case: [] for case in cases}
    for play_report in report["plays"]:
        for task in play_report["tasks"]:
            for case, outcome in task["hosts"].items():
                returned[case].append(json.dumps(outcome))
    return {case: (report["stats"][case]["failures"] > 0, "\n".join(returned[case])) for case in cases}


@pytest.mark.parametrize("case", [case for case, _ in GOOD_INPUTS])
def test_good_input_passes(verdicts, case):
    failed, returned = verdicts[case]
    assert not failed, returned


@pytest.mark.parametrize("case,word", [(i, w) for i, _, w in BAD_INPUTS], ids=[i for i, _, _ in BAD_INPUTS])
def test_bad_input_is_refused_naming_the_variable(verdicts, case, word):
    failed, returned = verdicts[case]
    assert failed, returned
    assert word in returned


@pytest.mark.parametrize("name", ["lernmanager_secret_key", "lernmanager_admin_password", "lernmanager_grading_service_token",
                                  "lernmanager_grading_callback_secret"])
def test_secret_is_not_shown_when_refused(tmp_path, name):
    result = run_validation(tmp_path, {name: "hunter2-x", "lernmanager_grading_service_url": "http://127.0.0.1:8099"})
    assert result.returncode != 0
    assert "hunter2-x" not in result.stdout + result.stderr


def test_env_values_are_not_shown_when_refused(tmp_path):
    """lernmanager_env holds API keys: no_log in the argument specs, keys only in the message."""
    result = run_validation(tmp_path, {"lernmanager_env": {"LLM_API_KEY": "hunter2-x\nFOO=1"}})
    assert result.returncode != 0
    assert "LLM_API_KEY" in result.stdout + result.stderr
    assert "hunter2-x" not in result.stdout + result.stderr
