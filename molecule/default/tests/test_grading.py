"""The grading service behind nginx: /grading/ passes admin sessions only (auth_request to the
app's /internal/auth-check), adds the service's token, streams the body as it arrives, and has a
body limit of its own (the scenario's group_vars: 3m, the app's pages 64m). The stand-in service
(files/grading_stub.py, on the port of lernmanager_grading_service_url) records what reaches it.

Changes the hosts and puts them back: a stand-in grading service, a deploy that nginx refuses."""

import json

import pytest

from lm_testlib import converge, env_value, http, put_script, run_client

TOKEN = "lm-test-grading-token-7f3a9c"
SECRET = "lm-test-callback-secret-2b8e"
LOG = "/tmp/grading-stub.jsonl"
SNIPPET = "/etc/nginx/snippets/lernmanager-grading-token.conf"
UNIT = "lm-grading-stub"


@pytest.fixture(scope="module")
def stub(host):
    script = put_script(host, "grading_stub.py")
    host.run(f"systemctl stop {UNIT}; systemctl reset-failed {UNIT}; rm -f {LOG}")
    started = host.run(f"systemd-run --unit={UNIT} --property=User=nobody python3 {script} 8099 {LOG}")
    assert started.rc == 0, started.stderr
    assert host.run("for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:8099/ready && exit 0; sleep 0.2; done;"
                    " exit 1").rc == 0
    yield
    host.run(f"systemctl stop {UNIT}")


def received(host):
    """What reached the service, after the readiness probes."""
    lines = host.file(LOG).content_string.splitlines() if host.file(LOG).exists else []
    return [r for r in map(json.loads, lines) if r["path"] != "/ready"]


def upload(host, *args):
    return run_client(host, *args, "grading")


def test_without_an_admin_session_nginx_answers_401_and_the_service_sees_nothing(host, stub):
    result = upload(host, "--anonymous")
    assert result["status"] == 401
    assert received(host) == []


def test_an_admin_upload_is_streamed_to_the_service_with_the_token_and_no_cookie(host, stub):
    before = len(received(host))
    result = upload(host, "--size", str(2 * 1024 * 1024), "--pause", "2")
    assert result["logged_in"] and result["status"] == 200, result
    (record,) = received(host)[before:]
    assert (record["method"], record["path"]) == ("POST", "/jobs"), "/grading/ is the service's root"
    assert (record["body_length"], record["body_sha256"]) == (result["sent_length"], result["sent_sha256"])
    assert record["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert "cookie" not in record["headers"], "the school's session is the app's, not the service's"
    # Streamed: the service had the request's head while the browser still sent the second half.
    assert record["body_done_at"] - record["head_at"] >= 1.5, record
    # The browser sees the service's answer (not the file its X-Accel-Redirect names), never the
    # token, no cookie of the service's on the school's origin, and a policy that runs nothing.
    assert json.loads(result["body"])["received"] == result["sent_length"]
    assert TOKEN not in result["body"] + json.dumps(result["headers"])
    headers = {name.lower(): value for name, value in result["headers"].items()}
    assert "set-cookie" not in headers and "x-accel-redirect" not in headers, headers
    assert headers["content-security-policy"] == "default-src 'none'; sandbox", headers
    assert headers["x-content-type-options"] == "nosniff", headers


def test_the_grading_uploads_have_their_own_body_limit(host, stub):
    before = len(received(host))
    assert upload(host, "--size", str(4 * 1024 * 1024))["status"] == 413
    assert received(host)[before:] == []


def test_only_nginx_may_ask_the_auth_check(host):
    assert http(host, "/internal/auth-check").status == 404


def test_the_token_is_in_a_root_only_file_and_the_apps_env_not_in_the_site(host):
    snippet = host.file(SNIPPET)
    assert (snippet.user, snippet.group, snippet.mode) == ("root", "root", 0o600)
    assert f'"Bearer {TOKEN}"' in snippet.content_string
    assert TOKEN not in host.file("/etc/nginx/sites-available/lernmanager").content_string
    assert env_value(host, "GRADING_SERVICE_URL") == "http://127.0.0.1:8099"
    assert (env_value(host, "GRADING_SERVICE_TOKEN"), env_value(host, "GRADING_SERVICE_CALLBACK_SECRET")) == (TOKEN, SECRET)


@pytest.fixture(scope="module")
def switched_off_in_a_refused_site():
    """One run on both hosts: the service switched off, in a site nginx refuses (a typo in a location)."""
    return converge({"lernmanager_grading_service_url": "",
                     "lernmanager_nginx_locations": [{"path": "/schule/", "config": "alias_typo /srv/schule/;"}]},
                    tags="lernmanager_nginx")


def test_a_refused_site_that_switches_the_service_off_keeps_its_token(host, switched_off_in_a_refused_site):
    """The site put back still includes the token's file: it is removed only once nginx accepts a
    site without it."""
    run = switched_off_in_a_refused_site
    assert run.returncode != 0 and "nginx -t refused the new configuration" in run.stdout + run.stderr
    assert f'"Bearer {TOKEN}"' in host.file(SNIPPET).content_string
    assert "/grading/" in host.file("/etc/nginx/sites-available/lernmanager").content_string
    assert host.run("nginx -t").rc == 0
    assert host.check_output("find /etc/nginx -name 'lernmanager*~'") == ""
