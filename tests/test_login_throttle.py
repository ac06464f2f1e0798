"""files/login_throttle.py on its own: which answers are failed checks, and who the client is.
(tests/test_gunicorn_conf.py runs it in a real gunicorn.)"""

import importlib.util

import pytest

from helpers import ROLE

spec = importlib.util.spec_from_file_location("login_throttle", ROLE / "files" / "login_throttle.py")
throttle = importlib.util.module_from_spec(spec)
spec.loader.exec_module(throttle)


@pytest.mark.parametrize("status, location, failed", [
    (200, "", True),  # the real app shows the login form again
    (401, "", True), (400, "", True),  # the stand-in's wrong password; a missing CSRF token
    (302, "/dashboard", False), (303, "https://school.example/schueler/warmup", False),
    (302, "/admin/passwort", True),  # the real app's wrong current password: back to the form
    (302, "https://school.example/admin/passwort?x=1", True),
    (500, "", False), (502, "", False), (429, "", False),
])
def test_a_failed_check_is_the_form_again_or_a_redirect_back_to_it(status, location, failed):
    path = "/admin/passwort" if "passwort" in location else "/login"
    assert throttle.check_failed(status, location, path) is failed


@pytest.mark.parametrize("environ, client", [
    ({"HTTP_X_REAL_IP": "203.0.113.9", "REMOTE_ADDR": "127.0.0.1"}, "203.0.113.9"),
    ({"HTTP_X_REAL_IP": "2001:db8:1:2:3:4:5:6"}, "2001:db8:1:2::/64"),
    ({"HTTP_X_REAL_IP": "2001:db8:1:2::ff"}, "2001:db8:1:2::/64"),
    ({"HTTP_X_REAL_IP": "::ffff:192.0.2.1"}, "192.0.2.1"),
    ({"REMOTE_ADDR": "192.0.2.44"}, "192.0.2.44"),
    ({"HTTP_X_REAL_IP": "not an address"}, "not an address"),
])
def test_the_client_is_an_ipv4_address_or_an_ipv6_64(environ, client):
    assert throttle.client_key(environ) == client


def test_a_full_bucket_refuses_until_it_drained_enough_for_one_more():
    now = [0.0]
    buckets = throttle.Buckets(budget=5, window=600)
    for _ in range(5):
        assert buckets.wait("c", now[0]) == 0
        buckets.add("c", now[0])
    assert buckets.wait("c", now[0]) == 120  # one failure drains in 600 / 5 s
    now[0] = 119.0
    assert buckets.wait("c", now[0]) == 1
    now[0] = 120.0
    assert buckets.wait("c", now[0]) == 0
