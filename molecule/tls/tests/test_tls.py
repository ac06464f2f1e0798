"""HTTPS with a certificate from a real ACME server (pebble), then `provided` and `selfsigned`.

Every request goes to 127.0.0.1 inside the container, with the site's name in SNI and Host
(curl --resolve): nginx refuses a handshake for any other name.

Changes the host: a forced renewal, then deploys of the provided and selfsigned modes.
"""

import json
import os
import subprocess
import sys

import pytest

from lm_testlib import REPO, container_address, converge, put_script

sys.path.insert(0, os.path.join(REPO, "scripts"))
import browser_check  # noqa: E402  (scripts/ is not a package)

NAME = "lernmanager.test"
RESOLVE = f"--resolve {NAME}:443:127.0.0.1 --resolve {NAME}:80:127.0.0.1"
ROOT_CA = "/root/pebble-root.pem"
ADMIN_PASSWORD = "/etc/lernmanager/admin_password"
OPENSSL_CLIENT = f"echo | openssl s_client -connect 127.0.0.1:443 -servername {NAME}"


def served_cert(host, *fields):
    return host.check_output(f"{OPENSSL_CLIENT} 2>/dev/null | openssl x509 -noout {' '.join(fields)}")


def headers(host, url, *options):
    result = host.run(f"curl -sS -o /dev/null -D - {RESOLVE} {' '.join(options)} {url}")
    assert result.rc == 0, result.stderr
    return result.stdout.replace("\r", "").lower()


@pytest.fixture(scope="module")
def pebble_root(host):
    """Pebble makes a new root at every start: fetch it from its management API."""
    host.run(f"curl -sf --cacert /etc/pebble/ca.pem https://localhost:15000/roots/0 -o {ROOT_CA}")
    assert host.file(ROOT_CA).contains("BEGIN CERTIFICATE")
    return ROOT_CA


def test_certificate_issued_by_the_acme_server_for_the_site(host, pebble_root):
    assert "Pebble Intermediate CA" in served_cert(host, "-issuer")
    assert f"DNS:{NAME}" in served_cert(host, "-ext", "subjectAltName")
    # The chain verifies against pebble's root: a real ACME issuance, not a self-signed stand-in.
    assert host.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' --cacert {pebble_root} {RESOLVE} "
                             f"https://{NAME}/login") == "200"


def test_http_redirects_to_https_but_not_acme_challenges(host):
    h = headers(host, f"http://{NAME}/login")
    assert h.startswith("http/1.1 301") and f"location: https://{NAME}/login" in h
    challenge = host.run(f"curl -s -o /dev/null -w '%{{http_code}}' {RESOLVE} http://{NAME}/.well-known/acme-challenge/x")
    assert challenge.stdout == "404", "served from the webroot over HTTP (404: no such token), not redirected"


def test_https_has_hsts_http2_and_secure_session_cookie(host):
    h = headers(host, f"https://{NAME}/login", "-k")
    assert h.startswith("http/2 200")
    assert "strict-transport-security: max-age=31536000" in h
    cookie = [line for line in h.splitlines() if line.startswith("set-cookie: session=")]
    assert cookie and "; secure" in cookie[0]
    assert host.check_output("grep -c '^FORCE_HTTPS=\"true\"$' /etc/lernmanager/lernmanager.env") == "1"


def test_tls_1_0_and_1_1_refused(host):
    """OpenSSL 3 refuses old protocols on its own at its default level: offer them at SECLEVEL=0,
    and prove with a control server that this client really can speak them."""
    old = "-cipher 'DEFAULT@SECLEVEL=0'"
    host.run("openssl s_server -accept 127.0.0.1:4433 -cert /etc/pebble/cert.pem -key /etc/pebble/key.pem "
             f"-tls1_1 {old} -quiet >/dev/null 2>&1 & echo $! > /tmp/control.pid; sleep 1")
    try:
        control = host.run(f"echo | openssl s_client -connect 127.0.0.1:4433 -tls1_1 {old}")
        assert control.rc == 0, "the client can speak TLS 1.1"
    finally:
        host.run("kill $(cat /tmp/control.pid)")
    for proto in ("-tls1", "-tls1_1"):
        assert host.run(f"{OPENSSL_CLIENT} {proto} {old}").rc != 0, proto
    assert host.run(f"{OPENSSL_CLIENT} -tls1_2").rc == 0
    assert host.run(f"{OPENSSL_CLIENT} -tls1_3").rc == 0


def test_unknown_names_get_no_answer(host):
    assert host.run("curl -sk --resolve other.example:443:127.0.0.1 https://other.example/").rc == 35, "handshake refused"
    assert host.run("curl -s -H 'Host: other.example' http://127.0.0.1/").rc == 52, "connection closed, no reply"


def test_renewal_timer_and_hook(host):
    assert host.service("certbot.timer").is_enabled and host.service("certbot.timer").is_running
    hook = host.file("/etc/letsencrypt/renewal-hooks/deploy/50-lernmanager-nginx")
    assert (hook.user, hook.mode) == ("root", 0o755) and hook.contains("nginx -t")


def test_forced_renewal_reloads_nginx_without_a_failed_request(host):
    serial = served_cert(host, "-serial")
    script = put_script(host, "lm_load.py")
    host.run("rm -f /tmp/renew.stop /tmp/renew.json")
    host.run("nohup python3 %s /tmp/renew.stop /tmp/renew.json --https --clients 2 --max-seconds 120 >/dev/null 2>&1 &", script)
    host.run("sleep 2")
    renew = host.run("REQUESTS_CA_BUNDLE=/etc/pebble/ca.pem certbot renew --force-renewal --no-random-sleep-on-renew")
    host.run("sleep 2; touch /tmp/renew.stop")
    assert renew.rc == 0, renew.stdout + renew.stderr
    for _ in range(60):
        if host.file("/tmp/renew.json").exists:
            break
        host.run("sleep 1")
    load = json.loads(host.file("/tmp/renew.json").content_string)
    print(f"renewal under load: {load}")
    assert served_cert(host, "-serial") != serial, "nginx serves the renewed certificate"
    assert load["requests"] > 20 and load["failed"] == 0, load


@pytest.fixture(scope="module")
def provided_cert(tmp_path_factory):
    """A certificate and key made on the controller, as a school's own CA would hand them over."""
    d = tmp_path_factory.mktemp("provided")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                    "-subj", f"/CN={NAME}/O=Schulträger Test", "-addext", f"subjectAltName=DNS:{NAME}",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")], check=True, capture_output=True)
    fingerprint = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(d / "cert.pem")],
                                 check=True, capture_output=True, text=True).stdout.strip()
    return d / "cert.pem", d / "key.pem", fingerprint


def login_over_https(host, password):
    result = host.run(f"python3 {put_script(host, 'lm_client.py')} --base https://{NAME} --insecure "
                      f"--password {password} exercise")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)["logged_in"]


def test_public_site_has_a_generated_admin_password_in_a_root_only_file(host):
    # The scenario sets no lernmanager_admin_password, and the site is public (acme).
    f = host.file(ADMIN_PASSWORD)
    assert (f.user, f.group, f.mode) == ("root", "root", 0o600)
    password = f.content_string.strip()
    assert len(password) >= 20
    assert not login_over_https(host, "admin"), "admin/admin must not work on a public site"
    assert login_over_https(host, password)


def test_the_admin_uses_the_https_site_in_a_real_browser(host):
    """Headless Chromium (scripts/browser_check.py; the pebble root is not one it trusts): the login
    keeps a Secure session cookie, the pages load under the site's headers, an upload goes up and
    comes back."""
    password = host.file(ADMIN_PASSWORD).content_string.strip()
    problems, summary = browser_check.check(f"https://{NAME}", "admin", password, upload=True, insecure=True,
                                            resolve=(NAME, container_address(host)))
    assert problems == []
    assert "cookies: session (Secure, HttpOnly)" in summary, summary


def test_an_acme_name_that_points_elsewhere_is_refused_before_any_change(host):
    # The name resolves (the host's /etc/hosts, as DNS would answer) to an address the host does
    # not have: certbot would fail after the site changed.
    elsewhere = "elsewhere.lernmanager.test"
    host.run(f"echo '192.0.2.10 {elsewhere}' >> /etc/hosts")
    before = host.check_output("nginx -T 2>/dev/null | sha256sum")
    try:
        run = converge({"lernmanager_server_name": elsewhere})
    finally:
        # /etc/hosts is a bind mount: rewrite it in place.
        host.run(f"grep -v ' {elsewhere}$' /etc/hosts > /tmp/hosts && cat /tmp/hosts > /etc/hosts")
    out = " ".join((run.stdout + run.stderr).split())
    assert run.returncode != 0
    assert f"lernmanager_server_name {elsewhere} points at 192.0.2.10, which " in out, out[-2000:]
    assert "set lernmanager_acme_check_dns to false. The host was not changed." in out
    assert host.check_output("nginx -T 2>/dev/null | sha256sum") == before
    assert not host.file(f"/etc/letsencrypt/live/{elsewhere}").exists


def test_a_certificate_that_does_not_come_says_what_to_check(host):
    # A new name that points here, and an ACME server nobody answers for: certbot fails after the
    # host changed, and the message says what to check, never "not changed".
    other = "zweiter.lernmanager.test"
    host.run(f"echo '127.0.0.1 {other}' >> /etc/hosts")
    try:
        run = converge({"lernmanager_server_name": other, "lernmanager_acme_directory": "https://localhost:14999/dir"})
    finally:
        host.run(f"grep -v ' {other}$' /etc/hosts > /tmp/hosts && cat /tmp/hosts > /etc/hosts")
    out = " ".join((run.stdout + run.stderr).split())
    assert run.returncode != 0
    assert f"certbot could not get a certificate for {other} from https://localhost:14999/dir." in out, out[-2000:]
    assert "set lernmanager_acme_staging to true" in out and "certbot said: " in out
    assert "not changed" not in out.rsplit("certbot could not", 1)[-1]


def test_provided_certificate_is_served_and_its_key_kept_secret(host, provided_cert):
    cert, key, fingerprint = provided_cert
    run = converge({"lernmanager_tls": "provided", "lernmanager_tls_cert_file": str(cert),
                    "lernmanager_tls_key_file": str(key)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert open(key).read().splitlines()[1] not in run.stdout + run.stderr
    # The play's last message names the admin password's file, and nothing prints the password.
    assert f"`sudo cat {ADMIN_PASSWORD}`" in run.stdout.rsplit("Remove old releases", 1)[-1]
    assert host.file(ADMIN_PASSWORD).content_string.strip() not in run.stdout + run.stderr
    assert served_cert(host, "-fingerprint", "-sha256") == fingerprint
    k = host.file("/etc/lernmanager/tls/privkey.pem")
    assert (k.user, k.group, k.mode) == ("root", "root", 0o600)
    assert "strict-transport-security" in headers(host, f"https://{NAME}/login", "-k")


def test_selfsigned_mode_has_no_hsts(host):
    run = converge({"lernmanager_tls": "selfsigned"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    subject, issuer = served_cert(host, "-subject", "-issuer").splitlines()
    assert subject.split("=", 1)[1] == issuer.split("=", 1)[1], "self-signed"
    h = headers(host, f"https://{NAME}/login", "-k")
    assert h.startswith("http/2 200") and "strict-transport-security" not in h
    # Four TLS modes changed the site: the previous versions kept for a failing `nginx -t` are gone.
    assert host.check_output("find /etc/nginx -name 'lernmanager*~'") == ""
