"""While v2 is deployed over a serving v1, clients inside the container send GETs and POSTs in a
loop through nginx: not one may fail. The worst latency is printed for the issue note."""

import json

from lm_testlib import converge, http, put_script, release_of

STOP, RESULT = "/tmp/lm-load.stop", "/tmp/lm-load.json"


def test_redeploy_drops_no_request(host):
    before = release_of(host)
    script = put_script(host, "lm_load.py")
    host.run("rm -f %s %s", STOP, RESULT)
    # Bounded in time and count, to 127.0.0.1 only; runs in the background during the deploy.
    host.run("nohup python3 %s %s %s --clients 4 --max-seconds 600 >/tmp/lm-load.log 2>&1 &", script, STOP, RESULT)
    run = converge({"lernmanager_standin_version": "v2"})
    host.run("touch %s", STOP)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    for _ in range(60):
        if host.file(RESULT).exists:
            break
        host.run("sleep 1")
    summary = json.loads(host.file(RESULT).content_string)
    print(f"zero_downtime: {summary}")
    assert release_of(host) != before
    assert 'name="standin-version" content="2"' in http(host, "/login").body
    assert summary["requests"] > 100, "the load really ran during the deploy"
    assert summary["failed"] == 0, summary["failures"]
