#!/usr/bin/env bash
# Test bed only: a real ACME server (Debian's pebble) on this VPS container, for the `tls`
# scenario. Its HTTPS API uses a throw-away CA (/etc/pebble/ca.pem, which the role is told to
# trust through lernmanager_acme_ca_file); HTTP-01 validations go to port 80 of the site's name,
# which /etc/hosts points at this container. Idempotent.
set -euo pipefail
NAME=${1:?usage: pebble_setup.sh SITE_NAME}
export DEBIAN_FRONTEND=noninteractive
# curl: waits for pebble below (the images are minimal: scripts/testbed.sh).
command -v pebble >/dev/null && command -v curl >/dev/null || { apt-get update -qq; apt-get install -y -qq --no-install-recommends pebble openssl curl >/dev/null; }
install -d -m 0755 /etc/pebble
cd /etc/pebble
if [ ! -s ca.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=Test-bed ACME API CA" -keyout ca.key -out ca.pem 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
    -keyout key.pem -out api.csr 2>/dev/null
  openssl x509 -req -in api.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
    -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1') -out cert.pem 2>/dev/null
fi
cat >config.json <<JSON
{"pebble": {"listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
            "certificate": "/etc/pebble/cert.pem", "privateKey": "/etc/pebble/key.pem",
            "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
cat >/etc/systemd/system/pebble.service <<UNIT
[Unit]
Description=pebble ACME test server (test bed only)
[Service]
Environment=PEBBLE_WFE_NONCEREJECT=0 PEBBLE_VA_NOSLEEP=1 PEBBLE_AUTHZREUSE=0
ExecStart=/usr/bin/pebble -config /etc/pebble/config.json
[Install]
WantedBy=multi-user.target
UNIT
# /etc/hosts is a bind mount in a container: edit it in place, not by renaming a new file.
grep -q " $NAME\$" /etc/hosts || echo "127.0.0.1 $NAME" >>/etc/hosts
systemctl daemon-reload
systemctl enable --now pebble.service
for _ in $(seq 1 30); do curl -sf --cacert /etc/pebble/ca.pem https://localhost:14000/dir >/dev/null && exit 0; sleep 1; done
echo "pebble did not answer on https://localhost:14000/dir" >&2
exit 1
