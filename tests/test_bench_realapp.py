"""The fast pieces of the real-app benchmark (`make bench BENCH_ARGS="--app PATH"`): the browsers of
bench/files/sessions.py against the stand-in served for real, the checkout it accepts and copies,
and the report's ceiling column and targets from known numbers. The runs themselves take the
containers and the real app: they are in `make bench`, not here."""

import json
import os
import subprocess
import sys

import pytest

from helpers import REPO, served_standin

sys.path.insert(0, str(REPO / "bench"))

from benchlib import load, realapp, report_real  # noqa: E402  (bench/ is not a package of the tests)

SESSIONS = REPO / "bench" / "files" / "sessions.py"


@pytest.fixture(scope="module")
def standin_url(tmp_path_factory):
    with served_standin(tmp_path_factory.mktemp("sessions")) as url:
        yield url


def sessions(tmp_path, *args, accounts):
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps(accounts))
    return subprocess.run([sys.executable, str(SESSIONS), *args, "--accounts", str(path)],
                          capture_output=True, text=True, timeout=120)


def test_cookies_gives_each_account_a_logged_in_session_with_its_form_token(standin_url, tmp_path):
    accounts = [{"username": "admin", "password": "admin", "path": f"/dashboard?n={n}"} for n in range(3)]
    run = sessions(tmp_path, "cookies", "--base", standin_url, "--form-page", "/dashboard", accounts=accounts)
    assert run.returncode == 0, run.stderr
    lines = [line.split("\t") for line in run.stdout.splitlines()]
    assert [path for _, _, path in lines] == ["/dashboard?n=0", "/dashboard?n=1", "/dashboard?n=2"]
    assert len({cookie for cookie, _, _ in lines}) == 3, "one session per account"
    assert all(cookie.startswith("session=") and len(token) > 20 for cookie, token, _ in lines)
    # The session is a logged-in one: the dashboard answers it, where an anonymous browser is sent away.
    import urllib.request  # pylint: disable=import-outside-toplevel
    request = urllib.request.Request(standin_url + "/dashboard", headers={"Cookie": lines[0][0]})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200 and answer.url.endswith("/dashboard")


def test_cookies_fails_with_the_reason_on_a_wrong_password(standin_url, tmp_path):
    run = sessions(tmp_path, "cookies", "--base", standin_url,
                   accounts=[{"username": "admin", "password": "wrong"}])
    assert run.returncode == 1
    assert run.stderr.strip() == "sessions: admin could not log in: POST /login -> 401 (wrong password?)"


def test_logins_counts_logins_and_failed_ones_in_wrks_shape(standin_url, tmp_path):
    accounts = [{"username": "admin", "password": "admin"}, {"username": "admin", "password": "wrong"}]
    run = sessions(tmp_path, "logins", "--base", standin_url, "--seconds", "2", "--clients", "4", accounts=accounts)
    assert run.returncode == 0, run.stderr
    result = load.summary(run.stdout, standin_url + "/login", 4)
    # Clients 0 and 2 use the right password, 1 and 3 the wrong one: half the logins fail.
    assert result["requests"] >= 8 and result["failed_socket"] == 0, result
    assert result["failed_status"] * 2 == pytest.approx(result["requests"], rel=0.35), result
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]


def test_a_directory_that_is_not_the_app_is_refused_by_name(tmp_path):
    (tmp_path / "app.py").write_text("")
    with pytest.raises(SystemExit, match=r"is not a checkout of Lernmanager \(missing: models.py, config.py, "
                                         r"requirements.txt, static\)"):
        realapp.check_checkout(tmp_path)


def test_the_checkout_is_copied_without_ignored_files_and_v2_changes_one_line(tmp_path):
    app = tmp_path / "lernmanager"
    (app / "static").mkdir(parents=True)
    for name in ("app.py", "models.py", "config.py", "requirements.txt", "static/style.css", ".gitignore"):
        (app / name).write_text("venv/\ndata/\n" if name == ".gitignore" else f"# {name}\n")
    (app / "venv").mkdir()
    (app / "venv" / "python").write_text("not the app")
    (app / "data").mkdir()
    (app / "data" / "school.db").write_text("a school's data")
    git = ["git", "-C", str(app), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "app"], check=True)
    (app / "untracked.py").write_text("# new\n")
    described = realapp.copy_checkout(realapp.check_checkout(app), tmp_path / "v1")
    copied = sorted(str(p.relative_to(tmp_path / "v1")) for p in (tmp_path / "v1").rglob("*") if p.is_file())
    assert copied == [".gitignore", "app.py", "config.py", "models.py", "requirements.txt", "static/style.css",
                      "untracked.py"]
    assert described["uncommitted_files"] == 1 and len(described["commit"]) >= 7
    realapp.code_only_copy(tmp_path / "v1", tmp_path / "v2")
    assert (tmp_path / "v2" / "app.py").read_text() == "# app.py\n\n# bench: a code-only release\n"
    assert (tmp_path / "v2" / "models.py").read_text() == "# models.py\n"


def workload(rps, p99, **extra):
    return {"rps": rps, "p50_ms": p99 / 2, "p99_ms": p99, "failed": 0, "requests": int(rps * 10),
            "host_loadavg_1m": 1.0, **extra}


RESULTS = {
    "meta": {"timestamp": "20261204-080000", "quick": False, "wrk": "wrk debian/4.1.0", "image": "debian:12",
             "connections": 30, "warmup_s": 2, "duration_s": 10,
             "host": {"uname": "Linux", "nproc": 2, "cpu_model": "cpu", "loadavg_at_start": ["0.1"] * 3,
                      "other_containers_at_start": []},
             "source": {"commit": "abc1234", "uncommitted_files": 0},
             "real_app": True, "app": {"path": "/work/lm", "commit": "95a775d", "uncommitted_files": 0}},
    "school": {"classes": 12, "pupils": 300, "topics": 8, "seconds": 40.0, "database_bytes": 483328},
    "stacks": {"c": {"workloads": {"dashboard": workload(80.0, 400.0), "class": workload(40.0, 900.0),
                                   "upload": workload(50.0, 700.0, stored=510)},
                     "memory": {"after_load": {"app_pss_mib": 120.0}}},
               "b": {"workloads": {"dashboard": workload(70.0, 500.0), "class": workload(45.0, 800.0)}}},
    "ceiling": {"workloads": {"dashboard": {"rps": 100.0, "p50_ms": 8.0, "p99_ms": 20.0, "failures": 0},
                              "class": {"rps": 80.0, "p50_ms": 10.0, "p99_ms": 30.0, "failures": 0}}},
    "one_at_a_time": {"workloads": {"dashboard": {"rps": 60.0, "p50_ms": 12.0, "p99_ms": 25.0, "failures": 0}}},
    # Two pairs: (b) first, then (c) first. Dashboard ratios 1.2 and 1.0 (median 1.1), p99 0.8 and
    # 1.0, CPU 7.0 + 0.5 against 8.0 + 0.5 and 7.5 + 0.5; class 0.9 and 1.0; no upload measured.
    "pairs": [
        {"first": "b",
         "b": {"dashboard": workload(100.0, 500.0, cpu_ms_per_request={"app": 8.0, "nginx": 0.5, "total": 8.5}),
               "class": workload(50.0, 800.0)},
         "c": {"dashboard": workload(120.0, 400.0, cpu_ms_per_request={"app": 7.0, "nginx": 0.5, "total": 7.5}),
               "class": workload(45.0, 800.0)}},
        {"first": "c",
         "b": {"dashboard": workload(100.0, 500.0, cpu_ms_per_request={"app": 7.5, "nginx": 0.5, "total": 8.0}),
               "class": workload(50.0, 700.0)},
         "c": {"dashboard": workload(100.0, 500.0, cpu_ms_per_request={"app": 7.0, "nginx": 0.5, "total": 7.5}),
               "class": workload(50.0, 770.0)}}],
    "deploy": {}, "errors": [],
}


def test_targets_judge_the_median_of_the_pairs_against_the_issues_goals():
    targets = {t["target"]: t for t in report_real.targets(RESULTS)}
    dashboard, overview = "pupil's dashboard", "teacher's class overview"
    # Ratios 1.2 and 1.0: their median 1.1 meets >= 1.1; the p99s 0.8 and 1.0 give 0.9, met.
    assert targets[f"{dashboard}: req/s (c) ÷ (b), median of 2 pairs"]["measured"] == "1.10×"
    assert targets[f"{dashboard}: req/s (c) ÷ (b), median of 2 pairs"]["met"] is True
    assert targets[f"{dashboard}: p99 (c) ÷ (b), median of 2 pairs"]["measured"] == "0.90×"
    assert targets[f"{overview}: req/s (c) ÷ (b), median of 2 pairs"]["measured"] == "0.95×"
    assert targets[f"{overview}: req/s (c) ÷ (b), median of 2 pairs"]["met"] is False
    assert targets[f"{overview}: p99 (c) ÷ (b), median of 2 pairs"]["measured"] == "1.05×"
    assert targets[f"{overview}: p99 (c) ÷ (b), median of 2 pairs"]["met"] is False
    # CPU per request, app + nginx: 7.5 / 8.5 and 7.5 / 8.0.
    cpu = targets[f"{dashboard}: CPU per request (c) ÷ (b), app + nginx, median of 2 pairs"]
    assert cpu["value"] == pytest.approx((7.5 / 8.5 + 7.5 / 8.0) / 2) and cpu["met"] is True
    # The bound: the ceiling (100 req/s) over (b)'s median in the pairs (100).
    bound = targets[f"  {dashboard}: in-process ceiling ÷ (b), the most any server reaches, for information"]
    assert bound["measured"] == "1.00×" and bound["met"] is False
    assert targets["app PSS (c) after the load, MiB"]["met"] is True
    # What the run did not measure is said so, never passed: the upload, the soak.
    assert targets["200 KB upload: req/s (c) ÷ (b), median of 2 pairs"]["measured"] == "not measured"
    assert targets["200 KB upload: req/s (c) ÷ (b), median of 2 pairs"]["met"] is None
    assert targets["processes the kernel killed in the soak"] == {
        "target": "processes the kernel killed in the soak", "measured": "not measured", "value": None,
        "goal": "0", "met": None}


def test_the_report_puts_each_stack_beside_the_ceiling():
    results = {**RESULTS, "targets": report_real.targets(RESULTS)}
    text = report_real.markdown(results)
    assert "## Run 20261204-080000: the real Lernmanager" in text
    assert "- The app: /work/lm at 95a775d" in text
    assert "12 classes, 300 pupils, 8 topics; made in 40.0 s, a 472 KiB database" in text
    assert "| pupil's dashboard | (c) role: nginx → gunicorn | 80 | 200.00 | 400.00 | 0 |  |  | 0.80× | 1.0 |" in text
    assert ("| pupil's dashboard | in-process ceiling (WSGI, 1 core, 30 threads) | 100 | 8.00 | 20.00 | 0 | | | "
            "1.00× | |") in text
    assert "| pupil's dashboard | in-process, one request at a time | 60 | 12.00 | 25.00 | 0 | | | 0.60× | |" in text
    assert "| 200 KB upload | (c) role: nginx → gunicorn | 50 | 350.00 | 700.00 | 0 (510 stored of 500) |" in text
    assert "| teacher's class overview: req/s (c) ÷ (b), median of 2 pairs | 0.95× | >= 1.1 | **no** |" in text
    assert "### (b) and (c) in 2 pairs, back to back, the order alternating" in text
    assert ("| pupil's dashboard | 120 / 100 | 100 / 100 | 1.20 / 1.00ᶜ | **1.10** | 400 / 500 | 0.80 / 1.00 "
            "| **0.90** | 7.0 + 0.5 / 7.0 + 0.5 | 8.0 + 0.5 / 7.5 + 0.5 | 0 / 0 |") in text
    # A workload no pair measured shows dashes, not numbers.
    assert "| 200 KB upload | – / – | – / – | – / –ᶜ | – | – / – | – / – | – | – / – | – / – | – / – |" in text


def test_spread_puts_the_runs_side_by_side_with_max_minus_min_over_mean():
    import copy  # pylint: disable=import-outside-toplevel
    import spread  # pylint: disable=import-outside-toplevel  (bench/spread.py)
    second = copy.deepcopy(RESULTS)
    second["meta"]["timestamp"] = "20261204-090000"
    second["stacks"]["c"]["workloads"]["dashboard"]["rps"] = 120.0
    second["ceiling"]["workloads"]["dashboard"]["rps"] = 100.0
    text = spread.markdown([RESULTS, second])
    assert text.startswith("## Spread of 2 runs on the real Lernmanager: 20261204-080000, 20261204-090000\n")
    # 80 and 120 req/s: mean 100, spread 40 %; ÷ ceiling 0.80 and 1.20.
    assert ("| pupil's dashboard | (c) role: nginx → gunicorn | 80 / 120 | 40 % | 400.0 / 400.0 | 0 % | "
            "0.80 / 1.20 | 40 % |") in text
    assert "| teacher's class overview | (b) upstream nginx site → waitress | 45 / 45 | 0 % |" in text
    assert "| cold start of (c) (start → 200), precompiled ÷ empty prefix (medians) | n/a / n/a | n/a |" in text
    assert "| pupil's dashboard: req/s (c) ÷ (b), median of the run's pairs | 1.10 / 1.10 | 0 % |" in text
    standin = copy.deepcopy(RESULTS)
    standin["meta"]["real_app"] = False
    with pytest.raises(SystemExit, match="not of one kind"):
        spread.markdown([{**RESULTS, "meta": {**RESULTS["meta"], "real_app": True}}, standin])


# --- the experiment: --app PATH --sweep FILE ------------------------------------------------------

def test_the_servers_sweep_file_is_read_with_upstreams_port_kept_free():
    from benchlib import experiment
    sweep = experiment.read_sweep(REPO / "bench" / "files" / "sweep-servers.yml")
    assert "gunicorn-23" in sweep["points"] and sweep["repetitions"] >= 2
    assert sweep["common"]["lernmanager_listen_port"] != 8081, "(b)'s waitress binds 8081"


def test_a_sweep_with_an_unknown_workload_is_refused(tmp_path):
    from benchlib import experiment
    bad = tmp_path / "sweep.yml"
    bad.write_text("points: {a: {}}\nworkloads: [dashboard, dashbaord]\n")
    with pytest.raises(SystemExit, match="dashbaord"):
        experiment.read_sweep(bad)


def test_a_sweep_with_an_unknown_bench_server_is_refused_and_the_references_file_is_read(tmp_path):
    from benchlib import experiment
    bad = tmp_path / "sweep.yml"
    bad.write_text("points: {a: {bench_server: uwsgi}}\n")
    with pytest.raises(SystemExit, match="bench_server uwsgi"):
        experiment.read_sweep(bad)
    sweep = experiment.read_sweep(REPO / "bench" / "files" / "sweep-references.yml")
    assert {point.get("bench_server", "gunicorn") for point in sweep["points"].values()} == set(experiment.SERVERS)


def _experiment(repetitions, pairs=1):
    return {"meta": {"timestamp": "t", "command": "make bench", "duration_s": 10, "warmup_s": 2, "host": {}},
            "experiment": {"sweep": {"file": "f.yml", "workloads": ["dashboard"], "pairs": pairs,
                                     "points": {"p": {"lernmanager_gunicorn_threads": 16}}},
                           "repetitions": repetitions}}


MEASURED = {"dashboard": {"rps": 120.0, "p99_ms": 300.0, "failed": 0,
                          "cpu_ms_per_request": {"app": 7.0, "nginx": 0.5, "total": 7.5}}}


def _at(rps, p99):
    return {"dashboard": {**MEASURED["dashboard"], "rps": rps, "p99_ms": p99}}


def test_the_experiment_report_divides_each_point_by_upstream_of_the_same_pair_and_gives_the_median():
    from benchlib import experiment
    results = _experiment([{"order": ["p"], "points": {"p": [{"first": "b", "b": MEASURED, "c": _at(132.0, 270.0)},
                                                             {"first": "c", "b": _at(100.0, 300.0),
                                                              "c": _at(100.0, 330.0)}]}},
                           {"order": ["p"], "points": {"p": [{"b": MEASURED, "c": _at(180.0, 240.0)}]}},
                           {"order": ["p"], "points": {}}], pairs=2)
    row = next(line for line in experiment.markdown(results).splitlines() if line.startswith("| p "))
    assert row == ("| p | 132 / 100 / 180 | 120 / 100 / 120 | 1.10 / 1.00ᶜ / 1.50 | **1.10** | 270 / 330 / 240 "
                   "| 0.90 / 1.10 / 0.80 | **0.90** | 7.0 + 0.5 / 7.0 + 0.5 / 7.0 + 0.5 "
                   "| 7.0 + 0.5 / 7.0 + 0.5 / 7.0 + 0.5 | 0 / 0 / 0 |"), row


def test_the_experiment_report_reads_the_first_runs_with_one_upstream_per_repetition():
    from benchlib import experiment
    results = _experiment([{"b": MEASURED, "points": {"p": _at(132.0, 270.0)}},
                           {"b": MEASURED, "points": {}}])
    row = next(line for line in experiment.markdown(results).splitlines() if line.startswith("| p "))
    assert row.startswith("| p | 132 | 120 | 1.10 | **1.10** | 270 | 0.90 | **0.90** |"), row


def test_the_probe_counts_a_process_cpu_time_and_its_reaped_childrens():
    probe = {}
    exec(compile((REPO / "bench" / "files" / "probe.py").read_text(), "probe.py", "exec"), probe)
    before = probe["cpu_seconds"](os.getpid())
    subprocess.run([sys.executable, "-c", "sum(range(3 * 10**7))"], check=True)
    assert probe["cpu_seconds"](os.getpid()) - before > 0.2, "the child's CPU moves into its parent's count"


def test_a_sweep_points_dict_and_number_reach_ansible_as_json_not_as_their_python_text(tmp_path, monkeypatch):
    from benchlib import stacks
    calls = []

    def fake_run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "ok: changed=0", "")
    monkeypatch.setattr(stacks, "run", fake_run)
    ansible = stacks.Ansible(tmp_path, tmp_path, tmp_path, tmp_path)
    ansible.playbook("playbooks/deploy.yml", "point", {"lernmanager_nginx_extra": {"client_body_buffer_size": "256k"},
                                                        "lernmanager_gunicorn_threads": 16,
                                                        "lernmanager_source_path": tmp_path / "app-v2"})
    extra = [calls[0][i + 1] for i, arg in enumerate(calls[0]) if arg == "-e"]
    assert extra == ['{"lernmanager_nginx_extra": {"client_body_buffer_size": "256k"}}',
                     '{"lernmanager_gunicorn_threads": 16}', f'{{"lernmanager_source_path": "{tmp_path}/app-v2"}}']
