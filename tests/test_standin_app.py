"""Fast tests of the stand-in app (tests/fixtures/): the contract the role's tests rely on.

Each version is built with build_app.py into a temporary directory, and every check that imports
the app runs in its own Python process there (cwd and PYTHONPATH = the built tree), so the
modules `app`, `config` and `models` of one build never leak into another test.
"""

import gzip
import hashlib
import importlib.util
import json
import os
import pathlib
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
BUILD_APP = FIXTURES / "build_app.py"
STANDIN = FIXTURES / "standin"


def build(version, dest):
    result = subprocess.run([sys.executable, str(BUILD_APP), version, str(dest)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(dest)
    return dest


def app_env(app_dir, **extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("FLASK_ENV", "SECRET_KEY", "FORCE_HTTPS", "PYTHONPATH")}
    env.update(PYTHONPATH=str(app_dir), PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def run_in_app(app_dir, code, **env):
    """Run `code` in a fresh interpreter inside the built app; it prints one JSON line last."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=app_dir,
                          env=app_env(app_dir, **env), capture_output=True, text=True, timeout=120)


def app_json(app_dir, code, **env):
    result = run_in_app(app_dir, code, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_migration(app_dir, name):
    return subprocess.run([sys.executable, os.path.join("migrate", name)], cwd=app_dir,
                          env=app_env(app_dir), capture_output=True, text=True, timeout=60)


def migrations(app_dir):
    return sorted(p.name for p in (app_dir / "migrate").glob("migrate_*.py"))


def schema(database):
    conn = sqlite3.connect(database)
    try:
        return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        conn.close()


def columns(database, table):
    conn = sqlite3.connect(database)
    try:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


def tree_digest(root):
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(oct(path.stat().st_mode).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


# --- pages -------------------------------------------------------------------------------------

PAGES = """
    import json
    import app
    app.init_app()
    client = app.app.test_client()
    login = client.get("/login")
    root = client.get("/")
    privacy = client.get("/datenschutz")
    print(json.dumps({"login": [login.status_code, login.get_data(as_text=True)],
                      "root": [root.status_code, root.headers.get("Location")],
                      "privacy": [privacy.status_code, privacy.get_data(as_text=True)],
                      "missing": client.get("/no/such/page").status_code}))
"""


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_login_page_root_redirect_and_privacy_page(tmp_path, version):
    app_dir = build(version, tmp_path / version)
    school = {"SCHOOL_NAME": "Gymnasium Testhausen", "SCHOOL_ADDRESS": "Am Test 5, 01234 Testhausen",
              "SCHOOL_EMAIL": "info@testhausen.example", "DSB_CONTACT": "dsb@testhausen.example",
              "PRIVACY_AUTHORITY": "Aufsichtsbehörde Testland"}
    pages = app_json(app_dir, PAGES, **school)

    status, html = pages["login"]
    assert status == 200
    assert 'name="csrf_token"' in html
    head = html.split("</head>")[0]
    assert f'<meta name="standin-version" content="{version[1]}">' in head
    assert "/static/css/style.css" in head and "/static/js/app.js" in head
    assert ("Willkommen zurück" in html) == (version == "v2")

    assert pages["root"][0] == 302 and pages["root"][1].endswith("/login")
    status, html = pages["privacy"]
    assert status == 200
    for value in school.values():
        assert value in html
    assert pages["missing"] == 404


# --- start-up ----------------------------------------------------------------------------------

def test_init_app_creates_schema_and_default_admin_and_is_repeatable(tmp_path):
    app_dir = build("v1", tmp_path / "v1")
    result = app_json(app_dir, """
        import json, threading
        import app, models
        app.init_app()
        app.init_app()
        admin = models.verify_admin("admin", "admin")
        wrong = models.verify_admin("admin", "falsch")
        models.update_admin_password(admin["id"], "ein-neues-passwort")
        print(json.dumps({
            "admin": dict(admin)["username"], "wrong": wrong is not None,
            "old_after_change": models.verify_admin("admin", "admin") is not None,
            "new_after_change": models.verify_admin("admin", "ein-neues-passwort") is not None,
            "writers": sum(t.name == "analytics" and t.daemon for t in threading.enumerate()),
            "pragmas": [models.get_db().execute(f"PRAGMA {p}").fetchone()[0]
                        for p in ("journal_mode", "synchronous", "foreign_keys")],
        }))
    """)
    assert result == {"admin": "admin", "wrong": False, "old_after_change": False, "new_after_change": True,
                      "writers": 1, "pragmas": ["wal", 1, 1]}
    for directory in ("data", "instance/uploads", "instance/tmp"):
        assert (app_dir / directory).is_dir()
    tables = {name for kind, name, _ in schema(app_dir / "data" / "mbi_tracker.db") if kind == "table"}
    assert {"admins", "classes", "students", "uploads", "analytics_events"} <= tables


def test_production_refuses_to_start_without_secret_key(tmp_path):
    app_dir = build("v1", tmp_path / "v1")
    refused = run_in_app(app_dir, "import app", FLASK_ENV="production")
    assert refused.returncode != 0
    assert "SECRET_KEY" in refused.stderr
    started = run_in_app(app_dir, "import app", FLASK_ENV="production", SECRET_KEY="x" * 32)
    assert started.returncode == 0, started.stderr


def test_force_https_makes_session_cookies_secure(tmp_path):
    app_dir = build("v1", tmp_path / "v1")
    code = "import json, app; print(json.dumps(app.app.config['SESSION_COOKIE_SECURE']))"
    assert app_json(app_dir, code, FORCE_HTTPS="true") is True
    assert app_json(app_dir, code) is False


def test_import_error_variant_cannot_be_imported(tmp_path):
    app_dir = build("v2_import_error", tmp_path / "broken")
    result = run_in_app(app_dir, "import app")
    assert result.returncode != 0
    assert "no_such_module_lernmanager" in result.stderr


# --- analytics ---------------------------------------------------------------------------------

def test_background_thread_records_page_views_with_the_trusted_client_ip(tmp_path):
    app_dir = build("v1", tmp_path / "v1")
    rows = app_json(app_dir, """
        import json, time
        import app, models
        app.init_app()
        client = app.app.test_client()
        # From nginx on loopback: X-Real-IP is the client.
        for _ in range(3):
            client.get("/login", environ_base={"REMOTE_ADDR": "127.0.0.1"}, headers={"X-Real-IP": "203.0.113.7"})
        # From anywhere else: a forged X-Real-IP is ignored.
        client.get("/datenschutz", environ_base={"REMOTE_ADDR": "198.51.100.9"}, headers={"X-Real-IP": "192.0.2.1"})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = [dict(r) for r in models.get_db().execute("SELECT * FROM analytics_events ORDER BY id")]
            if len(rows) >= 4:
                break
            time.sleep(0.05)
        print(json.dumps(rows))
    """)
    assert [(r["event"], r["path"], r["ip"]) for r in rows] == [
        ("page_view", "/login", "203.0.113.7")] * 3 + [("page_view", "/datenschutz", "198.51.100.9")]
    assert all(r["ts"] for r in rows)


# --- login, upload and protected download ------------------------------------------------------

def test_login_upload_and_protected_download(tmp_path):
    app_dir = build("v2", tmp_path / "v2")
    result = app_json(app_dir, """
        import io, json, re
        import app
        app.init_app()
        client = app.app.test_client()
        out = {}

        def token(html):
            tag = re.search(r'<input[^>]*name="csrf_token"[^>]*>', html).group(0)
            return re.search(r'value="([^"]+)"', tag).group(1)

        out["anon_upload"] = client.post("/upload", data={"file": (io.BytesIO(b"x"), "a.txt")}).status_code
        out["anon_download"] = client.get("/files/a.txt").status_code
        out["anon_report"] = client.get("/report.pdf").status_code
        out["no_token_login"] = client.post("/login", data={"username": "admin", "password": "admin"}).status_code
        page = client.get("/login").get_data(as_text=True)
        bad = client.post("/login", data={"csrf_token": token(page), "username": "admin", "password": "nein"})
        out["wrong_password"] = [bad.status_code, "falsch" in bad.get_data(as_text=True)]
        out["anon_password"] = client.post("/admin/passwort", data={"current_password": "x"}).headers.get("Location")
        login = client.post("/login", data={"csrf_token": token(page), "username": "admin", "password": "admin"})
        out["login"] = [login.status_code, login.headers.get("Location")]
        form = client.get("/admin/passwort").get_data(as_text=True)
        out["password"] = [client.post("/admin/passwort", data=dict(csrf_token=token(form), current_password=current,
                                                                   new_password="admin")).headers.get("Location")
                           for current in ("nein", "admin")]

        dashboard = client.get("/dashboard").get_data(as_text=True)
        content = bytes(range(256)) * 20
        out["no_token_upload"] = client.post("/upload", data={"file": (io.BytesIO(content), "x.bin")}).status_code
        upload = client.post("/upload", headers={"Accept": "application/json"},
                             data={"csrf_token": token(dashboard), "file": (io.BytesIO(content), "Blatt 1 (neu).pdf")})
        stored = upload.get_json()["stored_name"]
        out["stored_name"] = stored

        proxied = client.get("/files/" + stored, headers={"X-Forwarded-For": "203.0.113.7"})
        out["proxied"] = [proxied.status_code, proxied.headers.get("X-Accel-Redirect"), len(proxied.get_data())]
        direct = client.get("/files/" + stored)
        out["direct"] = [direct.status_code, direct.get_data() == content]
        out["traversal"] = client.get("/files/..%2Fconfig.py").status_code
        out["listed"] = "Blatt 1 (neu).pdf" in client.get("/dashboard").get_data(as_text=True)
        pdf = client.get("/report.pdf")
        out["pdf"] = [pdf.status_code, pdf.mimetype, pdf.get_data()[:5].decode()]
        print(json.dumps(out))
    """)
    assert result["anon_upload"] == 302, "an anonymous upload must go to the login page (not 400/413)"
    assert result["anon_download"] == 302 and result["anon_report"] == 302
    assert result["no_token_login"] == 400, "the login form must be CSRF-protected"
    assert result["wrong_password"] == [401, True]
    assert result["login"][0] == 302 and result["login"][1].endswith("/dashboard")
    # The admin's password: anonymous to the login page; a wrong current one back to the form.
    assert result["anon_password"].endswith("/login")
    assert [location.rsplit("/", 2)[-1] for location in result["password"]] == ["passwort", "dashboard"]
    assert result["no_token_upload"] == 400

    stored = result["stored_name"]
    assert stored.endswith("_Blatt_1_neu.pdf")
    assert result["proxied"] == [200, f"/protected-files/{stored}", 0]
    assert result["direct"] == [200, True]
    assert result["traversal"] == 404
    assert result["listed"] is True
    assert result["pdf"] == [200, "application/pdf", "%PDF-"]
    assert (app_dir / "instance" / "uploads" / stored).read_bytes() == bytes(range(256)) * 20


def test_slow_route_waits_about_200_ms(tmp_path):
    app_dir = build("v1", tmp_path / "v1")
    status, seconds = app_json(app_dir, """
        import json, time
        import app
        client = app.app.test_client()
        start = time.monotonic()
        status = client.get("/slow").status_code
        print(json.dumps([status, time.monotonic() - start]))
    """)
    assert status == 200
    assert 0.19 <= seconds < 2


def test_privacy_page_shows_the_real_apps_placeholders_until_the_school_is_named(tmp_path):
    app_dir = build("v1", tmp_path / "v1")
    status, html = app_json(app_dir, PAGES)["privacy"]
    assert status == 200
    for placeholder in ("[Schulname]", "[Adresse]", "[E-Mail-Adresse]", "[Landesbeauftragter für Datenschutz]"):
        assert placeholder in html


def test_auth_check_answers_204_for_an_admin_session_and_401_otherwise(tmp_path):
    app_dir = build("v1", tmp_path / "v1")
    result = app_json(app_dir, """
        import json
        import app
        app.init_app()
        app.app.config["WTF_CSRF_ENABLED"] = False
        client = app.app.test_client()
        anonymous = client.get("/internal/auth-check")
        client.post("/login", data={"username": "admin", "password": "admin"})
        admin = client.get("/internal/auth-check")
        print(json.dumps([anonymous.status_code, anonymous.data.decode(), admin.status_code, admin.data.decode()]))
    """)
    assert result == [401, "", 204, ""]


# --- the scheduled jobs' entry points (the role's lernmanager_jobs defaults) ---------------------

def test_flask_auto_attendance_runs_and_records_its_run(tmp_path):
    app_dir = build("v1", tmp_path / "v1")
    flask = pathlib.Path(sys.executable).parent / "flask"
    result = subprocess.run([str(flask), "auto-attendance"], cwd=app_dir, env=app_env(app_dir, FLASK_APP="app"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "auto-attendance" in result.stdout
    with sqlite3.connect(app_dir / "data" / "mbi_tracker.db") as db:
        assert db.execute("SELECT count(*) FROM analytics_events WHERE event = 'auto_attendance'").fetchone() == (1,)


def test_weekly_reports_land_in_instance_reports_beside_the_code(tmp_path):
    app_dir = build("v1", tmp_path / "v1")
    app_json(app_dir, "import app, json; app.init_app(); print(json.dumps(None))")
    def weekly_reports():
        return subprocess.run([sys.executable, "generate_weekly_reports.py"], cwd=app_dir, env=app_env(app_dir),
                              capture_output=True, text=True, timeout=60)
    # As upstream's: no classes yet, no report, exit status 1 (the role's ok_output tells it apart).
    empty = weekly_reports()
    assert (empty.returncode, empty.stdout) == (1, "No classes found.\n")
    with sqlite3.connect(app_dir / "data" / "mbi_tracker.db") as db:
        db.execute("INSERT INTO classes (name) VALUES ('7a')")
    result = weekly_reports()
    assert result.returncode == 0, result.stderr
    (report,) = (app_dir / "instance" / "reports").iterdir()
    assert report.name.startswith("wochenbericht-") and report.read_bytes().startswith(b"%PDF-")


# --- migrations --------------------------------------------------------------------------------

def test_v2_migrations_upgrade_a_v1_database_and_are_idempotent(tmp_path):
    v1 = build("v1", tmp_path / "v1")
    app_json(v1, "import app, json; app.init_app(); print(json.dumps(None))")
    v2 = build("v2", tmp_path / "v2")
    shutil.copytree(v1 / "data", v2 / "data")
    database = v2 / "data" / "mbi_tracker.db"
    assert "created_at" not in columns(database, "admins")

    names = migrations(v2)
    assert names == ["migrate_001_add_admin_created_at.py", "migrate_002_add_class_color.py"]
    for name in names:
        result = run_migration(v2, name)
        assert result.returncode == 0, f"{name}: {result.stderr}"
    assert "created_at" in columns(database, "admins")
    assert "color" in columns(database, "classes")
    backups = sorted(p.name for p in (v2 / "data").iterdir() if ".backup-" in p.name)
    assert len(backups) == 2

    after_first = schema(database)
    for name in names:
        result = run_migration(v2, name)
        assert result.returncode == 0, f"{name} second run: {result.stderr}"
    assert schema(database) == after_first
    assert sorted(p.name for p in (v2 / "data").iterdir() if ".backup-" in p.name) == backups

    # The v2 code still starts on the migrated database, and so does v1 (for a rollback).
    code = "import json, app, models; app.init_app(); print(json.dumps(bool(models.verify_admin('admin', 'admin'))))"
    assert app_json(v2, code) is True
    shutil.rmtree(v1 / "data")
    shutil.copytree(v2 / "data", v1 / "data")
    assert app_json(v1, code) is True


def test_broken_migration_alters_the_database_and_fails(tmp_path):
    app_dir = build("v2_migration_fails", tmp_path / "broken")
    app_json(app_dir, "import app, json; app.init_app(); print(json.dumps(None))")
    names = migrations(app_dir)
    assert names[-1] == "migrate_003_broken.py"
    for name in names[:-1]:
        assert run_migration(app_dir, name).returncode == 0
    result = run_migration(app_dir, names[-1])
    assert result.returncode != 0
    assert "migrate_003" in result.stderr
    tables = {name for _, name, _ in schema(app_dir / "data" / "mbi_tracker.db")}
    assert "broken_migration_marker" in tables


# --- static files ------------------------------------------------------------------------------

@pytest.mark.parametrize("path, low_kb, high_kb", [("css/style.css", 48, 52), ("js/app.js", 38, 42)])
def test_static_files_are_realistic_text(path, low_kb, high_kb):
    data = (STANDIN / "static" / path).read_bytes()
    assert low_kb * 1024 <= len(data) <= high_kb * 1024
    assert len(gzip.compress(data, 9)) <= 0.25 * len(data)
    lines = [line.strip() for line in data.decode("utf-8").splitlines() if line.strip()]
    # Real text, not one rule repeated: most lines differ.
    assert len(set(lines)) >= 0.5 * len(lines)


def test_icons_are_svg():
    icons = sorted((STANDIN / "static" / "icons").glob("*.svg"))
    assert 3 <= len(icons) <= 5
    for icon in icons:
        assert ET.parse(icon).getroot().tag == "{http://www.w3.org/2000/svg}svg"


# --- build_app.py ------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["v1", "v2", "v2_import_error", "v2_migration_fails"])
def test_build_is_deterministic_and_keeps_mtimes(tmp_path, version):
    first = build(version, tmp_path / "first")
    (first / "stale.txt").write_text("left over")  # a rebuild must remove what was there
    first = build(version, first)
    second = build(version, tmp_path / "second")
    assert tree_digest(first) == tree_digest(second)
    assert not (first / "stale.txt").exists()
    source = STANDIN / "static" / "css" / "style.css"
    assert (first / "static" / "css" / "style.css").stat().st_mtime_ns == source.stat().st_mtime_ns


def test_build_layers_and_unknown_version(tmp_path):
    v1, v2 = build("v1", tmp_path / "v1"), build("v2", tmp_path / "v2")
    assert not (v1 / "migrate" / "migrate_002_add_class_color.py").exists()
    assert (v2 / "migrate" / "migrate_002_add_class_color.py").exists()
    assert (v1 / "requirements.txt").read_bytes() == (v2 / "requirements.txt").read_bytes()
    assert (v1 / "app.py").read_bytes() == (v2 / "app.py").read_bytes()
    assert (build("v2_import_error", tmp_path / "ie") / "app.py").read_bytes() != (v2 / "app.py").read_bytes()

    result = subprocess.run([sys.executable, str(BUILD_APP), "v3", str(tmp_path / "v3")],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "unknown version" in result.stderr
    assert not (tmp_path / "v3").exists()


def test_build_skips_bytecode_and_runtime_state(tmp_path):
    spec = importlib.util.spec_from_file_location("build_app", BUILD_APP)
    build_app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_app)
    source = tmp_path / "src"
    for name in ("app.py", "__pycache__/app.cpython-311.pyc", "migrate/old.pyc", "data/mbi_tracker.db",
                 "instance/uploads/x.bin", "static/data/table.json"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(name)
    dest = tmp_path / "dest"
    dest.mkdir()
    build_app.copy_layer(source, dest)
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == [
        "app.py", "static/data/table.json"]
