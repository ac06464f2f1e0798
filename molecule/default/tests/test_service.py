"""gunicorn behind a systemd socket: units, ownership of config and secrets, sizing.

Changes the hosts: nginx's error log rotated by force, requests that write to it."""

import uuid

import pytest

from lm_testlib import ROOT, env_value


def test_socket_listens_on_loopback_only(host):
    listeners = host.check_output("ss -Hltn").splitlines()
    on_port = [line.split()[3] for line in listeners if line.split()[3].endswith(":8081")]
    assert on_port == ["127.0.0.1:8081"]


@pytest.mark.parametrize("unit", ["lernmanager.socket", "lernmanager.service", "nginx.service"])
def test_units_enabled_and_active(host, unit):
    service = host.service(unit)
    assert service.is_enabled
    assert service.is_running


def test_service_runs_gunicorn_as_the_service_user(host):
    main_pid = host.check_output("systemctl show -P MainPID lernmanager.service")
    assert main_pid != "0"
    assert host.check_output("ps -o user= -p %s", main_pid) == "lernmanager"
    cmdline = host.file(f"/proc/{main_pid}/cmdline").content_string.replace("\0", " ")
    assert "-m gunicorn --config /etc/lernmanager/gunicorn.conf.py" in cmdline
    assert f"{ROOT}/venvs/" in cmdline


def test_unit_sets_the_pycache_prefix_and_hardening(host):
    env = host.check_output("systemctl show -P Environment lernmanager.service")
    assert "PYTHONPYCACHEPREFIX=/var/cache/lernmanager/pycache" in env
    props = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in host.check_output(
            "systemctl show -p NoNewPrivileges -p ProtectSystem -p ProtectHome -p PrivateTmp -p UMask "
            "-p Restart -p User lernmanager.service"
        ).splitlines()
    }
    assert props == {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "UMask": "0027", "Restart": "on-failure", "User": "lernmanager",
    }


def test_sandbox_exposure_is_at_most_2(host):
    """systemd's own score of the sandbox; the HTTP tests prove the app works inside it."""
    result = host.run("systemd-analyze security --no-pager lernmanager.service")
    assert result.rc == 0, result.stderr
    score = float(result.stdout.strip().splitlines()[-1].split("level for lernmanager.service:")[1].split()[0])
    assert score <= 2.0, result.stdout


@pytest.mark.parametrize("prop,value", [
    ("MemoryDenyWriteExecute", "yes"), ("PrivateDevices", "yes"), ("ProtectKernelTunables", "yes"),
    ("RestrictNamespaces", "yes"), ("CapabilityBoundingSet", ""), ("LockPersonality", "yes"),
    ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"), ("MemoryMax", str(768 * 1024 * 1024)),
])
def test_sandbox_properties(host, prop, value):
    assert host.check_output("systemctl show -P %s lernmanager.service", prop) == value


def test_units_pass_systemd_analyze_verify(host):
    result = host.run("systemd-analyze verify /etc/systemd/system/lernmanager.socket /etc/systemd/system/lernmanager.service")
    assert result.rc == 0, result.stderr


@pytest.mark.parametrize(
    "path,user,group,mode",
    [
        ("/etc/lernmanager/lernmanager.env", "root", "lernmanager", 0o640),
        ("/etc/lernmanager/gunicorn.conf.py", "root", "lernmanager", 0o640),
        ("/etc/lernmanager/secret_key", "root", "root", 0o600),
        ("/etc/systemd/system/lernmanager.service", "root", "root", 0o644),
        ("/etc/systemd/system/lernmanager.socket", "root", "root", 0o644),
        ("/etc/nginx/sites-available/lernmanager", "root", "root", 0o644),
    ],
)
def test_config_file_owner_and_mode(host, path, user, group, mode):
    f = host.file(path)
    assert f.is_file
    assert (f.user, f.group, f.mode) == (user, group, mode)


def test_env_file_holds_a_strong_secret_and_the_school(host):
    key = env_value(host, "SECRET_KEY")
    assert key and len(key) >= 64
    assert env_value(host, "FLASK_ENV") == "production"
    assert env_value(host, "SCHOOL_NAME") == "Testschule am See"


def test_release_layout(host):
    current = host.file(f"{ROOT}/current")
    assert current.is_symlink
    target = host.check_output(f"readlink -f {ROOT}/current")
    assert target.startswith(f"{ROOT}/releases/")
    for name in ("data", "instance"):
        link = host.file(f"{target}/{name}")
        assert link.is_symlink and link.linked_to == f"{ROOT}/shared/{name}"
    code = host.file(f"{target}/app.py")
    assert (code.user, code.group, code.mode) == ("root", "root", 0o644)
    # Nothing in the release is writable by anyone but root.
    assert host.check_output(f"find -P {target}/ -perm /022 -not -type l | wc -l") == "0"


def test_sizing_fits_one_cpu_and_one_gb(host):
    conf = host.file("/etc/lernmanager/gunicorn.conf.py").content_string
    # gthread (gunicorn 24 and later start its graceful stop at SIGTERM), and it is the one running.
    assert 'worker_class = "gthread"\n' in conf
    started = host.check_output("journalctl -u lernmanager.service -b --no-pager -o cat | grep 'Using worker' | tail -n 1")
    assert started.endswith("Using worker: gthread")
    assert "workers = 1\n" in conf
    assert "threads = 32\n" in conf
    # One password hash at a time on one core (a class logging in at once: README "Login storms").
    assert "password_hash_concurrency = 1\n" in conf
    # The master plus exactly one worker run.
    main_pid = host.check_output("systemctl show -P MainPID lernmanager.service")
    assert host.check_output("pgrep -c -P %s", main_pid) == "1"


def test_default_nginx_site_is_disabled(host):
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    assert host.file("/etc/nginx/sites-enabled/lernmanager").linked_to == "/etc/nginx/sites-available/lernmanager"


def test_nginx_access_log_is_off(host):
    site = host.file("/etc/nginx/sites-available/lernmanager").content_string
    assert "access_log off;" in site
    assert host.run("nginx -t").rc == 0


def test_error_log_is_rotated_daily_and_kept_a_week(host):
    site = host.file("/etc/nginx/sites-available/lernmanager").content_string
    assert "error_log /var/log/nginx/lernmanager/error.log;" in site
    rule = host.file("/etc/logrotate.d/lernmanager-nginx")
    assert (rule.user, rule.mode) == ("root", 0o644)
    text = rule.content_string
    assert "/var/log/nginx/lernmanager/error.log {" in text
    assert "    daily\n" in text and "    rotate 6\n" in text and "    maxage 7\n" in text
    # Debian's rule for /var/log/nginx/*.log (14 days) does not reach the file in its own directory.
    assert host.run("logrotate --debug /etc/logrotate.conf 2>&1 | grep -c 'duplicate log entry'").stdout.strip() == "0"
    # A forced rotation: the old file moves aside, nginx reopens and writes the next error line anew.
    host.run("echo 'before the rotation' >> /var/log/nginx/lernmanager/error.log")  # notifempty
    assert host.run("logrotate --force /etc/logrotate.d/lernmanager-nginx").rc == 0
    assert host.file("/var/log/nginx/lernmanager/error.log.1").exists
    # nginx logs a body announced above client_max_body_size as an error (with its request line: a
    # query of its own tells this line from others, such as the grading tests' 413).
    probe = "POST /upload?rotation-probe-" + uuid.uuid4().hex[:8]
    host.run("curl -s -o /dev/null --max-time 5 -X POST -H 'Host: lernmanager.test' "
             f"-H 'Content-Length: 999999999' 'http://127.0.0.1{probe.split(' ')[1]}'")
    log = host.file("/var/log/nginx/lernmanager/error.log")
    for _ in range(20):
        if probe in log.content_string:
            break
        host.run("sleep 0.5")
    assert "too large body" in log.content_string and probe in log.content_string
    assert (log.user, log.group, log.mode) == ("www-data", "adm", 0o640)
    # And not into the rotated file: nginx's workers reopened the log by its path.
    assert probe not in host.file("/var/log/nginx/lernmanager/error.log.1").content_string
