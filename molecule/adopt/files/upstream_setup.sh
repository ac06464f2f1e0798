#!/usr/bin/env bash
# Reproduces an install made the way upstream's deploy/setup.sh and update.sh do it, with our
# stand-in app (unpacked from /root/upstream-app.tar.gz): a git checkout *as* /opt/lernmanager,
# venv/, a root-only .env, data/ and instance/ written by the app, migrations recorded in
# data/migrations_done.txt, a unit running `venv/bin/python run.py` (waitress on 0.0.0.0:8081)
# and upstream's historical nginx site, on a mounted data volume. Test fixture only; does nothing
# on a second run.
set -euo pipefail
APP=/opt/lernmanager
# Upstream's production keeps the app root on an encrypted volume mounted there; a bind mount
# stands in for the unlocked LUKS volume (the mount is what the role sees).
mkdir -p /srv/lernmanager-volume "$APP"
mountpoint -q "$APP" || mount --bind /srv/lernmanager-volume "$APP"
if [ -e "$APP/run.py" ] || [ -e "$APP/current" ]; then echo "an install exists: nothing to do"; exit 0; fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# curl: this script waits for waitress with it (the images are minimal: scripts/testbed.sh).
apt-get install -y -qq --no-install-recommends python3-venv nginx sqlite3 git curl >/dev/null

id lernmanager >/dev/null 2>&1 || useradd --system --home-dir "$APP" --shell /usr/sbin/nologin lernmanager
mkdir -p "$APP"
tar -xzf /root/upstream-app.tar.gz -C "$APP"
git -C "$APP" init --quiet
git -C "$APP" -c user.name=upstream -c user.email=upstream@schule.example add --all
git -C "$APP" -c user.name=upstream -c user.email=upstream@schule.example commit --quiet -m "upstream checkout"
python3 -m venv "$APP/venv"
"$APP/venv/bin/pip" install --quiet --disable-pip-version-check -r "$APP/requirements.txt"

cat >"$APP/.env" <<ENV
SECRET_KEY=upstream-secret-key-5f0c7e2a9b1d4c3e8f6a0b2d4c6e8f0a
FLASK_ENV=production
SCHOOL_NAME="Alte Schule am Fluss"
SCHOOL_EMAIL=sekretariat@alte-schule.example
LLM_API_KEY=sk-upstream-test-key
LLM_BASE_URL=https://llm.schule.example/v1
GRADING_SERVICE_URL=http://10.9.8.7:8000
GRADING_SERVICE_TOKEN=upstream-grading-token-4d1e
ENV
chmod 600 "$APP/.env"
install -d -o lernmanager -g lernmanager "$APP/data" "$APP/instance" "$APP/instance/uploads" "$APP/instance/tmp"

cat >/etc/systemd/system/lernmanager.service <<UNIT
[Unit]
Description=Lernmanager (upstream style)
After=network.target

[Service]
User=lernmanager
WorkingDirectory=$APP
EnvironmentFile=$APP/.env
Environment=PYTHONPYCACHEPREFIX=$APP/instance/tmp
ExecStart=$APP/venv/bin/python run.py
Restart=always
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
ReadWritePaths=$APP/data $APP/instance/uploads $APP/instance/tmp

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now lernmanager.service
for _ in $(seq 1 60); do curl -sf -o /dev/null http://127.0.0.1:8081/login && break; sleep 1; done

# update.sh's migration protocol: every migrate/migrate_*.py not yet recorded, as the service user.
cd "$APP"
set -a; . ./.env; set +a
for script in migrate/migrate_*.py; do
  name=$(basename "$script")
  grep -qx "$name" data/migrations_done.txt 2>/dev/null && continue
  runuser -u lernmanager -- env PYTHONPATH="$APP" "$APP/venv/bin/python" "$script"
  runuser -u lernmanager -- sh -c "echo $name >> data/migrations_done.txt"
done

cat >/etc/nginx/sites-available/lernmanager <<'SITE'
server {
    listen 80;
    server_name lernmanager.test;
    client_max_body_size 64M;
    access_log off;
    location / {
        proxy_pass http://127.0.0.1:8081;
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }
    location /static/ {
        alias /opt/lernmanager/static/;
        expires 1d;
        add_header Cache-Control "public";
    }
    location /protected-files/ {
        internal;
        alias /opt/lernmanager/instance/uploads/;
    }
}
SITE
ln -sf /etc/nginx/sites-available/lernmanager /etc/nginx/sites-enabled/lernmanager
rm -f /etc/nginx/sites-enabled/default
systemctl restart nginx

# Upstream's jobs as its docs set them up, in cron (no cron daemon here: the entries are what counts).
mkdir -p /etc/cron.d
cat >/etc/cron.d/lernmanager <<'CRON'
# Lernmanager jobs
15 16 * * 1-5 lernmanager cd /opt/lernmanager && venv/bin/flask auto-attendance
1 0 * * 1 lernmanager cd /opt/lernmanager && venv/bin/python generate_weekly_reports.py
# A school's own entry, with a secret in it
30 2 * * * lernmanager LM_NOTIFY_TOKEN=cron-secret-4b1d9e /opt/lernmanager/venv/bin/python /opt/lernmanager/notify.py
CRON
echo "upstream install ready"
