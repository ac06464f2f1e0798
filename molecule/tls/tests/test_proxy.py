"""Behind a proxy, and the site's own nginx locations (this scenario's molecule.yml).

The scenario trusts 127.0.0.1/32 as a proxy in front (lernmanager_trusted_proxies): a request from
there names its client in X-Forwarded-For. A request from any other address (the container's own
address on the test bed's bridge: an untrusted sender) cannot: the app sees the sender. What the
app saw is read from its analytics table (each request's client address, written by the app).

Changes the host and puts it back: a deploy with a location nginx refuses (the site stays as it was)."""

import uuid

from lm_testlib import converge, sql

NAME = "lernmanager.test"


def own_address(host):
    return host.check_output("hostname -I").split()[0]


def address_the_app_saw(host, via, forwarded_for):
    """Request a page of its own from `via` with an X-Forwarded-For header: the client address the app
    recorded for it."""
    path = f"/probe-{uuid.uuid4().hex[:12]}"
    host.check_output(f"curl -sk -o /dev/null --resolve {NAME}:443:{via} -H 'X-Forwarded-For: {forwarded_for}' "
                      f"https://{NAME}{path}")
    for _ in range(50):  # the app writes its analytics in a background thread
        seen = sql(host, f"SELECT ip FROM analytics_events WHERE path = '{path}'")
        if seen:
            return seen
        host.run("sleep 0.1")
    raise AssertionError(f"the app recorded no visit of {path}")


def test_a_trusted_proxy_names_the_pupil(host):
    assert address_the_app_saw(host, "127.0.0.1", "203.0.113.7") == "203.0.113.7"
    # The last address the proxies did not add is the client's (a pupil's own header comes first).
    assert address_the_app_saw(host, "127.0.0.1", "198.51.100.1, 203.0.113.8") == "203.0.113.8"


def test_an_untrusted_sender_cannot_claim_another_address(host):
    sender = own_address(host)
    assert sender != "127.0.0.1"
    assert address_the_app_saw(host, sender, "203.0.113.9") == sender


def test_the_sites_own_location_is_served(host):
    body = host.check_output(f"curl -sk --resolve {NAME}:443:127.0.0.1 -D /tmp/robots.h https://{NAME}/robots.txt")
    assert body == "User-agent: *\nDisallow: /"
    assert "content-type: text/plain" in host.file("/tmp/robots.h").content_string.lower()


def test_a_location_nginx_refuses_leaves_the_site_as_it_was(host):
    site = host.file("/etc/nginx/sites-available/lernmanager").content_string
    run = converge({"lernmanager_nginx_locations": [{"path": "/schule/", "config": "alias_typo /srv/schule/;"}]},
                   tags="lernmanager_nginx")
    output = run.stdout + run.stderr  # ansible-core 2.19 reports a failed task on stderr
    assert run.returncode != 0 and "nginx -t refused the new configuration" in output, output[-2000:]
    assert "unknown directive" in output and "alias_typo" in output, "nginx's own message names the directive"
    assert host.file("/etc/nginx/sites-available/lernmanager").content_string == site
    assert host.check_output("find /etc/nginx -name 'lernmanager*~'") == ""
    assert host.check_output(f"curl -sk -o /dev/null -w '%{{http_code}}' --resolve {NAME}:443:127.0.0.1 "
                             f"https://{NAME}/login") == "200"
