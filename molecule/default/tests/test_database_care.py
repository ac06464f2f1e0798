"""The database care (lernmanager-database-care.service, README "Database care"), started by hand
under a class's load: 30 logged-in clients read the dashboard and upload (a row written each time)
through nginx while the care takes a backup set and VACUUMs a database most of which is free pages.

Changes the hosts: a table of filler rows made and dropped as the service user (the free pages),
the uploads and rows the load writes, a backup set, the care run."""

import json

from lm_testlib import DATABASE, put_script, sql

CARE = "lernmanager-database-care.service"
STOP, RESULT, READY = "/tmp/lm-care-load.stop", "/tmp/lm-care-load.json", "/tmp/lm-care-load.ready"
FILLER = ("CREATE TABLE lm_filler (b BLOB); "
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) "
          "INSERT INTO lm_filler SELECT randomblob(4096) FROM n; DROP TABLE lm_filler;")


def wait_for(host, path, seconds):
    for _ in range(seconds * 2):
        if host.file(path).exists:
            return True
        host.run("sleep 0.5")
    return False


def test_a_care_run_with_vacuum_under_a_class_of_load_fails_no_request_and_truncates_the_wal(host):
    assert host.check_output("systemctl show -P NextElapseUSecRealtime lernmanager-database-care.timer"), "scheduled"
    host.check_output("runuser -u lernmanager -- sqlite3 %s %s", DATABASE, FILLER)
    uploads_before = int(sql(host, "SELECT count(*) FROM uploads"))
    script = put_script(host, "lm_load.py")
    host.run("rm -f %s %s %s", STOP, RESULT, READY)
    host.run("nohup python3 %s %s %s --clients 30 --login admin:admin --ready-file %s --max-seconds 240 "
             ">/tmp/lm-care-load.log 2>&1 &", script, STOP, RESULT, READY)
    try:
        assert wait_for(host, READY, 120), host.run("cat /tmp/lm-care-load.log").stdout
        care = host.run(f"systemctl start {CARE}")
    finally:
        host.run("touch %s", STOP)
    assert wait_for(host, RESULT, 60)
    load = json.loads(host.file(RESULT).content_string)
    print(f"database care under load: {load}")
    assert care.rc == 0, host.check_output(f"journalctl -u {CARE} -o cat -n 20")

    result = json.loads(host.file("/var/lib/lernmanager-backup/care.json").content_string)
    before, after = result["before"], result["after"]
    assert result["ok"] and result["quick_check"] == "ok" and result["vacuumed"], result
    assert before["free_pages"] >= 0.2 * before["pages"] and after["free_pages"] < 0.05 * after["pages"], result
    assert after["bytes"] < before["bytes"] / 4, "VACUUM gave the filler's pages back"
    assert after["wal_bytes"] <= 4 << 20 and not result["checkpoint"]["busy"], result
    latest = json.loads(host.check_output("lernmanager-backup latest"))
    # (restic 0.14 names its snapshot by the short id, 0.18 by the full one)
    assert latest["full_id"].startswith(result["snapshot"]), "a backup set of the data as it was, before the VACUUM"

    assert load["failed"] == 0, load["failures"]
    assert load["requests"] >= 60 and load["seconds"] < 200, "the load ran until the care was done, not to its deadline"
    assert int(sql(host, "SELECT count(*) FROM uploads")) >= uploads_before + load["requests"] // 2 - 30
    assert sql(host, "PRAGMA quick_check") == "ok"
