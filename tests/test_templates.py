"""Templates rendered by Ansible's own templating (helpers.render_template): the role's defaults
and vars, its real filters, facts of a 1 CPU / 1 GB Debian 12 VPS. What varies, varies."""

import ipaddress
import json
import re

import pytest

from helpers import render_template, role_defaults


def render(name, **variables):
    return render_template(name, **variables)


def header_lines(text):
    return [line for line in text.splitlines() if line.startswith("add_header")]


def test_security_headers_by_default_have_no_csp_and_no_hsts():
    lines = header_lines(render("security-headers.conf.j2"))
    assert len(lines) == 4 and all(line.endswith(" always;") for line in lines)
    assert not any("Content-Security-Policy" in line or "Strict-Transport" in line for line in lines)


@pytest.mark.parametrize("csp", ["default-src 'self'", "default-src 'self'; frame-ancestors 'none'"])
def test_csp_is_sent_as_given(csp):
    assert f'add_header Content-Security-Policy "{csp}" always;' in render("security-headers.conf.j2", lernmanager_nginx_csp=csp)


def test_hsts_only_when_asked():
    assert 'add_header Strict-Transport-Security "max-age=31536000" always;' in render(
        "security-headers.conf.j2", __lernmanager_hsts=True)


def render_site(**variables):
    """The nginx site with the role's defaults, plain HTTP, as on a 1 CPU / 1 GB host (the
    password rate is what tasks/steps/run/sizing.yml computes for it)."""
    site = {"lernmanager_server_name": "lernmanager.test", "__lernmanager_tls_ready": False,
            "__lernmanager_sizing": {"password_rate": 8}}
    return render("nginx-site.j2", **{**site, **variables})


def location_blocks(text):
    """{location line: body} of every location in the rendered site."""
    blocks, name, depth = {}, None, 0
    for line in text.splitlines():
        stripped = line.strip()
        if name is None and stripped.startswith("location "):
            name, depth, blocks[stripped] = stripped, 0, []
        if name is not None:
            depth += stripped.count("{") - stripped.count("}")
            blocks[name].append(stripped)
            if depth == 0:
                name = None
    return {key: "\n".join(lines) for key, lines in blocks.items()}


def map_block(text, variable):
    """The lines between `map ... $<variable> {` and its `}`."""
    head = next(line for line in text.splitlines() if line.startswith("map ") and line.endswith(f" ${variable} {{"))
    return text.split(head + "\n", 1)[1].split("\n}", 1)[0].splitlines()


def nginx_map(rules, value, captures_from=None):
    """What an nginx map of these rules gives for `value` (regex rules in order, then default)."""
    default = None
    for line in rules:
        key, result = re.fullmatch(r'\s*("[^"]*"|\S+)\s+("[^"]*"|\S+);', line).groups()
        key, result = key.strip('"'), result.strip('"')
        if key == "default":
            default = result
        elif key.startswith("~") and (match := re.search(key[1:], value)):
            return re.sub(r"\$(\d)", lambda number: match.group(int(number.group(1))), result)
    return default


@pytest.mark.parametrize("method, uri, cookie, key", [
    ("POST", "/login", "", "host"), ("POST", "/login", "abc", "host"),
    ("POST", "/admin/passwort", "eyJhZG1pbl9pZCI6MX0.Z", "host"),
    # Without a session cookie the app refuses an admin's path before any hash: not queued.
    ("POST", "/admin/passwort", "", ""), ("GET", "/login", "", ""), ("GET", "/admin/passwort", "x", ""),
])
def test_password_posts_are_queued_host_wide_admin_paths_only_with_a_session(method, uri, cookie, key):
    text = render_site()
    assert "limit_req_zone $lernmanager_password_post zone=lernmanager_password:1m rate=8r/s;" in text
    rules = map_block(text, "lernmanager_password_post")
    assert nginx_map(rules, f"{method} {uri} {cookie}") == key


def test_every_password_path_is_limited_per_client_before_the_queue():
    text = render_site()
    assert map_block(text, "lernmanager_password_client") == ["    POST    $lernmanager_client;", '    default "";']
    assert "limit_req_zone $lernmanager_password_client zone=lernmanager_login:2m rate=60r/m;" in text
    assert "limit_req_zone $lernmanager_password_client zone=lernmanager_admin:2m rate=20r/m;" in text
    blocks = location_blocks(text)
    limited = [name for name, body in blocks.items() if "limit_req " in body]
    paths = "|".join(path for path in role_defaults()["lernmanager_password_paths"] if path != "/login")
    assert limited == ["location = /login {", f'location ~ "^({paths})$" {{'], limited
    login, admin = blocks[limited[0]], blocks[limited[1]]
    # Queued host-wide (delayed, not refused: no nodelay; 60 s of the rate) and refused per client.
    for body, client_limit in ((login, "limit_req zone=lernmanager_login burst=120 nodelay;"),
                               (admin, "limit_req zone=lernmanager_admin burst=30 nodelay;")):
        assert "limit_req zone=lernmanager_password burst=480;" in body and client_limit in body
        # The same proxying as every other page.
        assert body.split(client_limit + "\n", 1)[1] == blocks["location / {"].split("\n", 1)[-1]
    # Without the login's own limit, /login is still queued, and still not an admin's path.
    assert "limit_req zone=lernmanager_login " not in location_blocks(render_site(lernmanager_login_rate=0))[
        "location = /login {"]


def hextets(address):
    return [int(address.exploded[i:i + 4], 16) for i in range(0, 39, 5)]


@pytest.mark.parametrize("prefix", ["2001:db8:aa:bb", "2001:db8:0:0", "2001:0:0:5", "2a01:4f8:0:1", "0:0:0:0",
                                    "fd00:0:0:0", "2001:db8:1:0", "0:0:1:0"])
def test_the_client_of_an_ipv6_address_is_its_64_however_nginx_writes_it(prefix):
    rules = map_block(render_site(), "lernmanager_client")
    groups = [int(group, 16) for group in prefix.split(":")]
    expected = ":".join(f"{group:x}" for group in groups)
    for low in ([0, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 1, 0], [1, 2, 3, 4], [0, 5, 0, 0], [0xffff] * 4,
                [0, 0, 0x500, 0]):
        # Python writes an IPv6 address as RFC 5952 says, as nginx does (ngx_inet6_ntop).
        text = ipaddress.IPv6Address(bytes(b for group in groups + low for b in group.to_bytes(2, "big"))).compressed
        assert nginx_map(rules, text) == expected, text
    assert nginx_map(rules, "192.0.2.7") == "$binary_remote_addr"
    assert nginx_map(rules, "::ffff:192.0.2.7") == "$binary_remote_addr"


def test_protected_files_never_follow_a_link_the_service_planted():
    body = location_blocks(render_site())["location /protected-files/ {"]
    assert "internal;" in body and "disable_symlinks on;" in body


@pytest.mark.parametrize("path, limited", [
    ("/login", True), ("/admin/passwort", True), ("/admin/schueler/17/passwort-reset", True),
    ("/admin/klasse/3/schueler-hinzufuegen", True), ("/admin/bewertung/netzwerk-ids/roster-apply", True),
    ("/login/x", False), ("/dashboard", False), ("/admin/schueler/x/passwort-reset", False),
])
def test_password_paths_match_the_apps_routes(path, limited):
    # nginx's regular expressions are PCRE; these patterns mean the same in Python's re.
    paths = "|".join(role_defaults()["lernmanager_password_paths"])
    assert bool(re.fullmatch(f"^({paths})$", path)) is limited


def render_unit(**variables):
    unit = {"__lernmanager_venv": "/opt/lernmanager/venvs/v",
            "__lernmanager_sizing": {"memory_high_mb": 600, "memory_max_mb": 750}}
    return render("lernmanager.service.j2", **{**unit, **variables})


def test_an_instance_runs_from_its_own_socket_root_and_settings():
    lines = render_unit(lernmanager_instance="gs-sued").splitlines()
    assert "Requires=gs-sued.socket" in lines and "After=network.target gs-sued.socket" in lines
    assert "WorkingDirectory=/opt/gs-sued/current" in lines and "User=gs-sued" in lines
    assert not [line for line in lines if "lernmanager.socket" in line or "/opt/lernmanager/" in line.replace(
        "/opt/lernmanager/venvs/v", "")], lines
    socket = render("lernmanager.socket.j2", lernmanager_instance="gs-sued", lernmanager_listen_port=8082)
    assert "ListenStream=127.0.0.1:8082" in socket.splitlines()
    backup = render("lernmanager-backup.service.j2", lernmanager_instance="gs-sued", backup_action="run").splitlines()
    assert "Environment=LERNMANAGER_BACKUP_CONFIG=/etc/gs-sued/backup/config.json" in backup
    assert "StateDirectory=gs-sued-backup" in backup and "CacheDirectory=gs-sued-backup" in backup


def test_the_restore_drill_runs_in_the_backups_sandbox_and_state_and_alerts_only_on_failure():
    backup = render("lernmanager-backup.service.j2", lernmanager_instance="gs-sued", backup_action="run").splitlines()
    drill = render("lernmanager-backup.service.j2", lernmanager_instance="gs-sued", backup_action="drill").splitlines()
    assert "ExecStart=/usr/local/sbin/lernmanager-backup drill" in drill
    assert "OnFailure=gs-sued-alert@%n.service" in drill and not [line for line in drill if line.startswith("OnSuccess=")]
    assert not [line for line in drill if line.startswith("ExecStopPost=")], "lernmanager_backup_on_failure is the backup's"
    sandbox = [line for line in backup if line.split("=")[0] in ("StateDirectory", "ProtectSystem", "ReadWritePaths",
                                                                  "CapabilityBoundingSet", "MemoryMax")]
    assert len(sandbox) == 5 and all(line in drill for line in sandbox), (sandbox, drill)
    assert "CPUSchedulingPolicy=idle" in backup and "CPUSchedulingPolicy=idle" in drill
    timer = render("lernmanager-backup.timer.j2", scheduled={"action": "drill", "schedule": "Sun *-*-* 05:00:00",
                                                              "spread": "1h"}).splitlines()
    assert "OnCalendar=Sun *-*-* 05:00:00" in timer and "RandomizedDelaySec=1h" in timer and "Persistent=true" in timer
    assert "Description=Weekly restore drill of Lernmanager lernmanager" in timer
    care = render("lernmanager-backup.service.j2", lernmanager_instance="gs-sued", backup_action="care").splitlines()
    assert "ExecStart=/usr/local/sbin/lernmanager-backup care" in care and all(line in care for line in sandbox)
    assert "CPUSchedulingPolicy=batch" in care and "Nice=10" in care, "the holder of the write lock is not starved"


def test_unit_denies_link_local_addresses_unless_allowed():
    assert "IPAddressDeny=169.254.0.0/16 fe80::/10" in render_unit().splitlines()
    assert "IPAddressDeny=169.254.0.0/16 fe80::/10" not in render_unit(lernmanager_allow_link_local=True)


def test_the_app_reaches_no_gunicorn_on_loopback_but_the_stub_resolver():
    lines = render_unit(lernmanager_allow_link_local=True).splitlines()
    assert "IPAddressDeny=localhost" in lines and "IPAddressAllow=127.0.0.53" in lines
    assert [line for line in lines if line.startswith("IPAddressAllow=")] == ["IPAddressAllow=127.0.0.53"]


@pytest.mark.parametrize("debian,backs_off", [("12", False), ("13", True)])
def test_unit_never_stops_restarting_and_backs_off_where_systemd_can(debian, backs_off):
    lines = render_unit(ansible_facts={"distribution_major_version": debian}).splitlines()
    assert "StartLimitIntervalSec=0" in lines and "Restart=on-failure" in lines
    assert ("RestartMaxDelaySec=60" in lines) is backs_off


def test_firewall_keeps_the_port_ansible_came_in_on():
    # As vars/main.yml resolves __lernmanager_ssh_port: the setting, else ansible_port, else 22.
    ports = render("nftables-instance.nft.j2", __lernmanager_ssh_port="2222", lernmanager_firewall_extra_tcp_ports=[80, "8443"])
    assert "add element inet lernmanager tcp_in { 2222, 80, 443, 8443 }" in ports


def test_firewall_table_checks_with_nft_and_takes_every_instances_ports(tmp_path):
    """The shared table and two instances' files, as the role writes them, checked by nft itself
    (`nft -c`, which needs no kernel table) when it is installed here; the table includes them all."""
    import shutil
    import subprocess
    table = render("nftables-table.nft.j2", __lernmanager_firewall_dir=str(tmp_path))
    assert f'include "{tmp_path}/instances/*.nft"' in table and "tcp dport @tcp_in accept" in table
    assert table.index("delete table inet lernmanager") < table.index("policy drop")
    (tmp_path / "instances").mkdir()
    for instance, extra in (("school-a", []), ("school-b", [5000])):
        (tmp_path / "instances" / f"{instance}.nft").write_text(
            render("nftables-instance.nft.j2", lernmanager_instance=instance, lernmanager_firewall_extra_tcp_ports=extra))
    (tmp_path / "table.nft").write_text(table)
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed here (the tls scenario loads the table)")
    for path in ["table.nft", "instances/school-a.nft", "instances/school-b.nft"]:
        result = subprocess.run(["nft", "-c", "-f", str(tmp_path / path)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, (path, result.stderr)


def test_firewall_problems_reads_the_live_table():
    from helpers import load_plugin
    firewall = load_plugin("plugins/filter/firewall.py")
    live = json.dumps({"nftables": [
        {"metainfo": {"version": "1.0.6"}}, {"table": {"family": "inet", "name": "lernmanager"}},
        {"set": {"name": "tcp_in", "table": "lernmanager", "type": "inet_service", "elem": [22, 80, 443, 5000]}},
        {"chain": {"name": "input", "table": "lernmanager", "hook": "input", "policy": "drop"}}]})
    assert firewall.firewall_problems(live, [22, 80, "443"]) == []
    assert firewall.firewall_problems(live, [22, 8443]) == ["the ports [8443] are not in the set tcp_in (it holds [22, 80, 443, 5000])"]
    assert firewall.firewall_problems(live.replace('"drop"', '"accept"'), [22])[0].startswith("the input chain is not hooked")
    assert firewall.firewall_problems("", [22]) == ["the table inet lernmanager is not loaded"]


# --- the site in each TLS mode -------------------------------------------------------------------
CERTS = {
    "selfsigned": "/etc/lernmanager/tls/selfsigned-",
    "provided": "/etc/lernmanager/tls/",
    "acme": "/etc/letsencrypt/live/school.example.org/",
}


def tls_site(mode, ready=True, **variables):
    return render_site(lernmanager_server_name="School.Example.org.", lernmanager_tls=mode,
                       __lernmanager_tls_ready=ready, **variables)


def server_blocks(text):
    """The body of each top-level server block, in order."""
    return [body for name, body in location_blocks(text.replace("\nserver {", "\nlocation server {")).items()
            if name.startswith("location server")] or []


@pytest.mark.parametrize("mode", sorted(CERTS))
def test_a_tls_site_serves_https_with_its_own_certificate_and_redirects_http(mode):
    text = tls_site(mode)
    assert f"ssl_certificate {CERTS[mode]}fullchain.pem;" in text
    assert f"ssl_certificate_key {CERTS[mode]}privkey.pem;" in text
    assert text.count("ssl_certificate ") == 1, "one certificate: never the other mode's"
    assert "server_name school.example.org;" in text, "the name as nginx and ACME spell it"
    assert "return 301 https://$host$request_uri;" in text
    assert "listen 443 ssl http2;" in text, "Debian 12's nginx 1.22 takes http2 on the listen line"
    assert ("/.well-known/acme-challenge/" in text) is (mode == "acme"), "the challenge only for ACME"


def test_http2_moves_to_its_own_directive_on_debian_13():
    from helpers import FACTS
    text = tls_site("provided", ansible_facts={**FACTS, "distribution_major_version": "13"})
    assert "listen 443 ssl;" in text and "http2 on;" in text and "ssl http2" not in text


@pytest.mark.parametrize("mode", ["off", "acme", "selfsigned"])
def test_no_https_before_a_certificate_exists(mode):
    """Plain HTTP until the certificate is there (ACME answers its challenge over HTTP first)."""
    text = tls_site(mode, ready=False)
    assert "listen 443" not in text and "ssl_certificate" not in text and "return 301" not in text
    assert ("/.well-known/acme-challenge/" in text) is (mode == "acme")


def test_hsts_only_for_certificates_browsers_trust():
    for mode, sent in (("selfsigned", False), ("acme", True), ("provided", True)):
        headers = render("security-headers.conf.j2", lernmanager_server_name="school.example.org", lernmanager_tls=mode)
        assert ("Strict-Transport-Security" in headers) is sent, mode


# --- instances: the host's catch-all, names of their own ------------------------------------------
@pytest.mark.parametrize("tls", [False, True])
def test_the_catch_all_answers_no_other_name_and_takes_https_while_a_site_does(tls):
    text = render("nginx-catchall.j2", __lernmanager_catchall_tls=tls)
    assert "listen 80 default_server;" in text and "server_name _;\n    access_log off;\n    return 444;" in text
    assert ("listen 443 ssl default_server;" in text) is tls and ("ssl_reject_handshake on;" in text) is tls
    assert "ssl_certificate" not in text, "the catch-all needs no certificate of any site"


def test_a_site_declares_no_default_server():
    for tls in (False, True):
        assert "default_server" not in render_site(__lernmanager_tls_ready=tls, lernmanager_tls="selfsigned")


def test_an_instance_has_nginx_names_of_its_own():
    default, other = render_site(), render_site(lernmanager_instance="gs-sued", lernmanager_listen_port=8082)
    for name in ("upstream lernmanager_app", "zone=lernmanager_password:", "$lernmanager_password_post"):
        assert name in default, name
    for name in ("upstream gs_sued_app", "zone=gs_sued_password:", "$gs_sued_password_post", "127.0.0.1:8082",
                 "proxy_pass http://gs_sued_app;", "/var/log/nginx/gs-sued/error.log"):
        assert name in other, name
    for name in ("lernmanager_app", "zone=lernmanager_", "$lernmanager_", "/var/log/nginx/lernmanager"):
        assert name not in other, name


# --- behind a proxy, the grading service, the site's own locations --------------------------------
def test_no_proxy_is_trusted_unless_listed():
    assert "real_ip" not in render_site()


def test_listed_proxies_name_the_client_from_their_header():
    text = render_site(lernmanager_trusted_proxies=["10.0.0.0/8", "2001:db8::/32"], lernmanager_real_ip_header="X-Real-IP")
    app_server = server_blocks(text)[-1]
    assert "set_real_ip_from 10.0.0.0/8;\nset_real_ip_from 2001:db8::/32;\nreal_ip_header X-Real-IP;\nreal_ip_recursive on;" \
        in app_server
    assert text.count("set_real_ip_from 10.0.0.0/8;") == 1


@pytest.mark.parametrize("tls, force, proto", [
    ("off", "auto", "$scheme"), ("off", True, "https"), ("selfsigned", "auto", "$scheme"), ("selfsigned", False, "$scheme"),
])
def test_the_app_hears_https_when_a_proxy_in_front_terminates_it(tls, force, proto):
    text = tls_site(tls, lernmanager_force_https=force)
    blocks = location_blocks(text)
    assert f"proxy_set_header X-Forwarded-Proto {proto};" in blocks["location / {"]


@pytest.mark.parametrize("tls, force, secure", [
    ("off", "auto", False), ("selfsigned", "auto", True), ("off", True, True), ("off", "true", True),
    ("selfsigned", False, False), ("acme", "auto", True),
    # `lernmanager_tls: off` unquoted in YAML arrives as False: off, never HTTPS.
    (False, "auto", False),
])
def test_cookies_are_secure_when_https_is_served_here_or_in_front(tls, force, secure):
    text = render("lernmanager.env.j2", __lernmanager_secret_key="k" * 32, __lernmanager_settings={},
                  lernmanager_tls=tls, lernmanager_force_https=force, lernmanager_server_name="school.example.org",
                  lernmanager_acme_email="it@school.example.org")
    assert ('FORCE_HTTPS="true"' in text) is secure


@pytest.mark.parametrize("name, https", [
    ("school.example.org", True), ("Lernmanager.Gym-Nord.de.", True), ("lernmanager.test", False),
    ("lernmanager.gym-beispiel.example", False), ("schule.home.arpa", False), ("lernmanager.schule.lan", False),
    ("203.0.113.10", False)])
def test_tls_auto_takes_acme_for_a_public_dns_name_only(name, https):
    """tls auto with an ACME e-mail: HTTPS (so Secure cookies) for a name the public_name filter calls
    public, never for an address or a private suffix."""
    text = render("lernmanager.env.j2", __lernmanager_secret_key="k" * 32, __lernmanager_settings={},
                  lernmanager_tls="auto", lernmanager_force_https="auto", lernmanager_server_name=name,
                  lernmanager_acme_email="it@school.example.org")
    assert ('FORCE_HTTPS="true"' in text) is https


GRADING = {"lernmanager_grading_service_url": "https://grading.example.org/api/", "lernmanager_grading_service_token": "t" * 24,
           "lernmanager_grading_callback_secret": "s" * 24}


def test_no_grading_location_while_the_service_has_no_url():
    text = render_site()
    assert "/grading/" not in text and "auth-check" not in text
    env = render("lernmanager.env.j2", __lernmanager_secret_key="k" * 32, __lernmanager_settings={})
    assert "GRADING" not in env


def test_grading_uploads_are_streamed_to_the_service_for_admins_only_with_the_token_from_a_root_file():
    blocks = location_blocks(render_site(**GRADING))
    check = blocks["location = /internal/auth-check {"]
    assert "internal;" in check and "proxy_pass http://lernmanager_app;" in check
    assert "proxy_pass_request_body off;" in check
    grading = blocks["location /grading/ {"]
    for line in ("auth_request /internal/auth-check;", "client_max_body_size 512m;", "proxy_request_buffering off;",
                 "proxy_pass https://grading.example.org/api/;", 'proxy_set_header Cookie "";',
                 "include /etc/nginx/snippets/lernmanager-grading-token.conf;", "proxy_ssl_verify on;",
                 # The service's answers on the school's origin: no cookie, no internal redirect, no page.
                 "proxy_hide_header Set-Cookie;", "include /etc/nginx/snippets/lernmanager-security-headers.conf;",
                 "add_header Content-Security-Policy \"default-src 'none'; sandbox\" always;"):
        assert line in grading, line
    assert re.search(r"^proxy_ignore_headers .*\bX-Accel-Redirect\b", grading, re.M), grading
    assert "t" * 24 not in render_site(**GRADING), "the site holds no secret"
    token = render("grading-token.conf.j2", **GRADING)
    assert f'proxy_set_header Authorization "Bearer {"t" * 24}";' in token


def test_the_app_gets_the_grading_settings_without_a_trailing_slash():
    env = systemd_environment_file(render("lernmanager.env.j2", __lernmanager_secret_key="k" * 32,
                                          __lernmanager_settings={}, **GRADING))
    assert env["GRADING_SERVICE_URL"] == "https://grading.example.org/api"
    assert env["GRADING_SERVICE_TOKEN"] == "t" * 24 and env["GRADING_SERVICE_CALLBACK_SECRET"] == "s" * 24


def test_the_sites_own_locations_come_before_the_app_and_from_a_template(tmp_path):
    template = tmp_path / "more.conf.j2"
    template.write_text("location /{{ 'schule' }}/ {\n    alias /srv/schule/;\n}\n")
    text = render_site(lernmanager_nginx_locations=[{"path": "= /robots.txt", "config": "alias /srv/robots.txt;\nexpires 1d;"}],
                       lernmanager_nginx_locations_template=str(template))
    blocks = location_blocks(text)
    assert blocks["location = /robots.txt {"] == "location = /robots.txt {\nalias /srv/robots.txt;\nexpires 1d;\n}"
    assert blocks["location /schule/ {"] == "location /schule/ {\nalias /srv/schule/;\n}"
    names = list(blocks)
    assert names.index("location = /robots.txt {") < names.index("location /schule/ {") < names.index("location / {")


# --- the env file: what systemd reads is what was meant ------------------------------------------
def systemd_environment_file(text):
    """KEY=VALUE pairs as systemd's EnvironmentFile= parser reads them (src/basic/env-file.c):
    comments, and inside double quotes a backslash escapes only  " \\ ` $  (and a newline)."""
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        key, raw = line.split("=", 1)
        if not (raw.startswith('"') and raw.endswith('"') and len(raw) >= 2):
            env[key] = raw
            continue
        value, chars = [], iter(raw[1:-1])
        for char in chars:
            if char == "\\":
                escaped = next(chars)
                value.append(escaped if escaped in '"\\`$' else "\\" + escaped)
            else:
                assert char != '"', f"an unescaped quote ends {key}'s value early: {raw}"
                value.append(char)
        env[key.strip()] = "".join(value)
    return env


TRICKY = 'a"b\\c$HOME ${X} #d \'e` \\"f\\\\'


def test_the_env_file_carries_any_secret_and_setting_unchanged():
    text = render("lernmanager.env.j2", __lernmanager_secret_key=TRICKY,
                  __lernmanager_settings={"SCHOOL_NAME": TRICKY, "LLM_BASE_URL": "https://x.test/v1#frag"})
    env = systemd_environment_file(text)
    assert env["SECRET_KEY"] == TRICKY and env["SCHOOL_NAME"] == TRICKY
    assert env["LLM_BASE_URL"] == "https://x.test/v1#frag"
    assert env["FLASK_ENV"] == "production"
    # The deploy-time reader (the modules' app_runtime.load_env_file) reads the same.
    from helpers import load_plugin
    app_runtime = load_plugin("plugins/module_utils/app_runtime.py")
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".env") as handle:
        handle.write(text)
        handle.flush()
        assert app_runtime.load_env_file(handle.name) == env


# --- the apt hook --------------------------------------------------------------------------------
def test_the_apt_hook_recompiles_the_stdlib_without_the_skipped_parts(tmp_path):
    """The hook's own command, run on a small stand-in stdlib: stale files compiled into the prefix,
    the parts the bytecode module skips skipped here too."""
    import subprocess
    import sys
    import sysconfig
    stdlib, prefix = tmp_path / "stdlib", tmp_path / "pycache"
    for name in ("json/__init__.py", "test/test_json.py", "idlelib/run.py", "unittest/case.py"):
        (stdlib / name).parent.mkdir(parents=True, exist_ok=True)
        (stdlib / name).write_text("X = 1\n")
    prefix.mkdir()
    hook = render("apt-pycache-hook.j2", lernmanager_pycache_prefix=str(prefix))
    command = re.search(r'^DPkg::Post-Invoke \{ "(.*)"; \};$', hook, re.M).group(1)
    command = command.replace("/usr/bin/python3 -I", sys.executable + " -I")  # this machine's
    # The hook asks python3 for its stdlib: this machine's, and here the stand-in instead.
    probe = f"$({sys.executable} -I -c 'import os; print(os.path.dirname(os.__file__))')"
    assert probe in command
    found = subprocess.run(["sh", "-c", f"echo {probe}"], capture_output=True, text=True, check=True).stdout.strip()
    assert found == sysconfig.get_paths()["stdlib"]
    command = command.replace(probe, str(stdlib))
    assert "/usr/bin/python3 -I -X pycache_prefix=" in hook and command.endswith(">/dev/null 2>&1 || true; fi")
    # apt runs its hooks from /tmp, where any account may leave a module the hook would import.
    planted = tmp_path / "tmp"
    planted.mkdir()
    for name in ("compileall", "py_compile", "sitecustomize"):
        (planted / f"{name}.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'a').write({name!r})\n")
    run = subprocess.run(["sh", "-c", command.replace(">/dev/null 2>&1 || true", "")], capture_output=True, text=True,
                         cwd=planted, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(planted),
                                           "PYTHONSTARTUP": str(planted / "compileall.py")})
    assert run.returncode == 0, run.stdout + run.stderr
    assert not (tmp_path / "ran").exists(), "the hook imported a module from its working directory or PYTHONPATH"
    mirror = prefix / str(stdlib).lstrip("/")  # (the hook's own imports land in the prefix too)
    compiled = sorted(str(p.relative_to(mirror)) for p in mirror.rglob("*.pyc"))
    assert [c.split("/")[0] for c in compiled] == ["json", "unittest"], compiled  # not test/ nor idlelib/


# --- the scheduled jobs and the data volume ---------------------------------------------------------
JOB = {"name": "weekly-reports", "command": "python generate_weekly_reports.py", "on_calendar": "Mon *-*-* 00:01:00"}
UNIT_VARS = {"__lernmanager_venv": "/opt/lernmanager/venvs/abc", "__lernmanager_sizing": {"memory_high_mb": 307, "memory_max_mb": 384}}


def test_a_job_runs_like_the_app_in_its_sandbox():
    service = render("lernmanager.service.j2", **UNIT_VARS)
    job = render("lernmanager-job.service.j2", job=JOB, __lernmanager_job_exec="/opt/lernmanager/venvs/abc/bin/python x.py 50%",
                 **UNIT_VARS)
    sandbox = service[service.index("NoNewPrivileges="):service.index("KeyringMode=private")]
    assert sandbox in job, "the app's sandbox, word for word"
    for line in ("User=lernmanager", "WorkingDirectory=/opt/lernmanager/current", "EnvironmentFile=/etc/lernmanager/lernmanager.env",
                 "Environment=PYTHONPYCACHEPREFIX=/var/cache/lernmanager/pycache", "Type=oneshot", "MemoryMax=384M",
                 "ExecStart=/opt/lernmanager/venvs/abc/bin/python x.py 50%%"):
        assert f"\n{line}\n" in job, line
    timer = render("lernmanager-job.timer.j2", job=JOB)
    assert "\nOnCalendar=Mon *-*-* 00:01:00\n" in timer and "\nPersistent=false\n" in timer


@pytest.mark.parametrize("unit", ["lernmanager.service.j2", "lernmanager.socket.j2", "lernmanager-backup.service.j2",
                                  "lernmanager-job.service.j2"])
def test_every_unit_of_the_app_waits_for_its_data_volume(unit):
    variables = {**UNIT_VARS, "job": JOB, "__lernmanager_job_exec": "/bin/true", "backup_action": "run"}
    assert "Mount" not in render(unit, **variables)
    text = render(unit, lernmanager_requires_mounts=["/opt/lernmanager", "/srv/keys"], **variables)
    assert "\nRequiresMountsFor=/opt/lernmanager /srv/keys\n" in text
    assert "\nAssertPathIsMountPoint=/opt/lernmanager\nAssertPathIsMountPoint=/srv/keys\n" in text


def test_request_bodies_up_to_the_buffer_stay_in_nginxs_memory_in_every_server_block():
    """Each server block that proxies to the app (plain HTTP here, HTTPS below) holds uploads up to
    lernmanager_client_body_buffer_size in memory instead of a temporary file."""
    for variables in ({}, {"__lernmanager_tls_ready": True, "__lernmanager_tls_mode": "selfsigned"}):
        site = render_site(**variables)
        servers = [block for block in site.split("\nserver {")[1:] if "proxy_pass" in block]
        assert servers, site
        assert all("client_body_buffer_size 256k;" in block for block in servers), site
    assert "client_body_buffer_size 64k;" in render_site(lernmanager_client_body_buffer_size="64k")
