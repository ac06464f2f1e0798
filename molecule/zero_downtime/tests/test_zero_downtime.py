"""While v2 is deployed over a serving v1, and then while gunicorn restarts a few more times behind
its socket, clients inside the container send GETs and POSTs in a loop through nginx: not one may
fail. The worst latency is printed for the issue note.

Changes the host: v2 deployed over v1 and gunicorn restarted under load."""

import json

from lm_testlib import converge, http, put_script, release_of

STOP, RESULT = "/tmp/lm-load.stop", "/tmp/lm-load.json"
# Bounds of the load (to 127.0.0.1 only): far above what one deploy needs, so the loop ends by the
# stop file after the deploy, not by a bound in the middle of it.
MAX_SECONDS, MAX_REQUESTS = 900, 2_000_000
# One restart is a narrow window: a race that drops a request in one restart of two (nginx upstream
# keep-alive did) could still pass once. Spaced out to stay below systemd's start limit (5 in 10 s).
EXTRA_RESTARTS, RESTART_SPACING = 5, 3
# Each client waits this long between its requests: still dozens of requests in every restart
# window (a restart behind the socket takes seconds on one busy core), far more than a class of 24
# sends, and the deploy gets the core (in a tight loop, or with 20 ms pauses at 90 requests a
# second, the four clients made this one deploy take five minutes).
PAUSE = 0.1


def test_redeploy_drops_no_request(host):
    before = release_of(host)
    script = put_script(host, "lm_load.py")
    host.run("rm -f %s %s", STOP, RESULT)
    # Bounded in time and count, to 127.0.0.1 only; runs in the background during the deploy.
    host.run("nohup python3 %s %s %s --clients 4 --max-seconds %s --max-requests %s --pause %s >/tmp/lm-load.log 2>&1 &",
             script, STOP, RESULT, str(MAX_SECONDS), str(MAX_REQUESTS), str(PAUSE))
    run = converge({"standin_version": "v2"})
    restarts = [host.run("sleep %s; systemctl restart lernmanager.service", str(RESTART_SPACING))
                for _ in range(EXTRA_RESTARTS if run.returncode == 0 else 0)]
    host.run("touch %s", STOP)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert [r.rc for r in restarts] == [0] * EXTRA_RESTARTS, [r.stderr for r in restarts]
    for _ in range(60):
        if host.file(RESULT).exists:
            break
        host.run("sleep 1")
    summary = json.loads(host.file(RESULT).content_string)
    print(f"zero_downtime: {summary}")
    assert release_of(host) != before
    assert 'name="standin-version" content="2"' in http(host, "/login").body
    assert summary["requests"] > 100
    assert summary["requests"] < MAX_REQUESTS and summary["seconds"] < MAX_SECONDS, \
        "the load ended by the stop file, after the deploy: it covered the restart"
    assert summary["failed"] == 0, summary["failures"]
