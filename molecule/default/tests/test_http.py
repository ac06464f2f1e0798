"""Real HTTP through nginx, from inside each container.

Changes the hosts and puts them back: the app stopped for a request to a static file, a probe upload."""

import gzip

import pytest

from lm_testlib import http, run_client, sql

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "SAMEORIGIN",
    "referrer-policy": "strict-origin-when-cross-origin",
}


def test_login_page_is_served_by_the_app(host):
    r = http(host, "/login")
    assert r.status == 200
    assert 'name="csrf_token"' in r.body
    assert 'name="standin-version" content="1"' in r.body or 'content="2"' in r.body


def test_root_redirects_to_login(host):
    r = http(host, "/")
    assert r.status == 302
    assert r.header("location").endswith("/login")


def test_privacy_page_shows_the_school_from_lernmanager_env(host):
    r = http(host, "/datenschutz")
    assert r.status == 200
    assert "Testschule am See" in r.body


@pytest.mark.parametrize("path", ["/login", "/static/css/style.css", "/does-not-exist"])
def test_security_headers_on_every_kind_of_response(host, path):
    r = http(host, path)
    for name, value in SECURITY_HEADERS.items():
        assert r.header(name) == value, f"{name} on {path}"
    assert r.header("server") == "nginx", "server_tokens off hides the version"


@pytest.mark.parametrize("path", ["/static/css/style.css", "/static/js/app.js"])
def test_static_files_are_precompressed_gzip(host, path):
    plain = http(host, path)
    gz = http(host, path, {"Accept-Encoding": "gzip"})
    assert plain.status == gz.status == 200
    assert gz.header("content-encoding") == "gzip"
    assert gz.header("vary") == "Accept-Encoding"
    assert int(gz.header("content-length")) <= 0.25 * int(plain.header("content-length"))
    assert gzip.decompress(gz.raw) == plain.raw, "the .gz copy holds the same file"
    # gzip_static sends the file as it is on disk: a Content-Length, not chunked on-the-fly output.
    assert gz.header("transfer-encoding") is None


def test_static_files_are_precompressed_brotli(host):
    br = http(host, "/static/css/style.css", {"Accept-Encoding": "br"})
    assert br.status == 200
    assert br.header("content-encoding") == "br"


def test_static_files_have_one_cache_control_and_validators(host):
    r = http(host, "/static/css/style.css")
    assert r.all("cache-control") == ["public, max-age=86400"]
    assert r.header("etag") and r.header("last-modified")
    again = http(host, "/static/css/style.css", {"If-None-Match": r.header("etag")})
    assert again.status == 304


def test_static_files_are_served_by_nginx_itself(host):
    """With gunicorn and its socket stopped, static files still come, the app's pages do not."""
    try:
        assert host.run("systemctl stop lernmanager.socket lernmanager.service").rc == 0
        assert not host.socket("tcp://127.0.0.1:8081").is_listening
        assert http(host, "/static/css/style.css").status == 200
        assert http(host, "/login").status == 502
    finally:
        host.run("systemctl start lernmanager.socket lernmanager.service")
    assert http(host, "/login").status == 200


def test_protected_files_are_internal(host):
    host.run("install -o lernmanager -g www-data -m 0640 /dev/null /opt/lernmanager/shared/instance/uploads/probe.txt")
    try:
        assert http(host, "/protected-files/probe.txt").status == 404
    finally:
        host.run("rm -f /opt/lernmanager/shared/instance/uploads/probe.txt")


def test_unknown_paths_get_404_from_the_app(host):
    assert http(host, "/no-such-page").status == 404


def test_large_uploads_are_not_refused_by_nginx(host):
    """A 10 MB body passes nginx (limit 64m); the app then answers for itself (not 413)."""
    host.run("head -c 10000000 /dev/zero > /tmp/lm-big")
    result = host.run(
        "curl -s -o /dev/null -w '%%{http_code}' -H 'Host: lernmanager.test' --data-binary @/tmp/lm-big "
        "http://127.0.0.1/upload"
    )
    assert result.stdout != "413"


def test_protected_download_goes_through_x_accel_redirect(host):
    """A logged-in upload comes back byte for byte: the app answers with X-Accel-Redirect (nginx
    sends X-Forwarded-For) and nginx serves the file from the internal location."""
    result = run_client(host, "exercise")
    assert result["logged_in"] is True
    assert result["pages"]["/report.pdf"] == 200, "reportlab makes a PDF inside the sandbox"
    assert result["download_status"] == 200
    assert result["download_sha256"] == result["upload_sha256"]
    stored = f"/opt/lernmanager/shared/instance/uploads/{result['stored_name']}"
    f = host.file(stored)
    assert (f.user, f.group, f.mode) == ("lernmanager", "www-data", 0o640)
    # The same file asked of the app without nginx: the app hands it to nginx, not the bytes.
    direct = host.run(
        "curl -s -o /dev/null -D - -H 'X-Forwarded-For: 10.0.0.1' http://127.0.0.1:8081/files/%s", result["stored_name"]
    )
    assert direct.rc == 0
    assert "302" in direct.stdout.splitlines()[0], "without a session the app redirects to the login"


def test_analytics_thread_in_the_workers_records_page_views(host):
    before = int(sql(host, "SELECT count(*) FROM analytics_events"))
    for _ in range(5):
        assert http(host, "/datenschutz").status == 200
    for _ in range(20):  # the thread writes asynchronously: wait a bounded time
        after = int(sql(host, "SELECT count(*) FROM analytics_events"))
        if after >= before + 5:
            break
        host.run("sleep 0.5")
    assert after >= before + 5
