#!/usr/bin/env bash
# Prepares deploy/certs/ (git-ignored) for docker-compose.yml:
#   ca.crt ca.key server.crt server.key client.crt client.key   test PKI (scripts/gen-certs.sh)
#   passwords   Mosquitto password file with the user demo-app
#   app.env     WIIHEY_APP_ID=demo-app and WIIHEY_APP_KEY=<its password>
#
#   scripts/compose-setup.sh                       key from app.env if there, else generated
#   WIIHEY_APP_KEY=... scripts/compose-setup.sh    choose the key
#
# Safe to run again: it keeps existing certificates (delete deploy/certs/ to get
# new ones) and the existing key unless WIIHEY_APP_KEY is set.
# Hashing the password needs mosquitto_passwd (Debian/Ubuntu package `mosquitto`;
# Homebrew `mosquitto`) or Docker, which runs it inside the eclipse-mosquitto:2 image.
set -euo pipefail

cd "$(dirname "$0")/.."
dir=deploy/certs
app_id=demo-app
env_file=$dir/app.env

umask 077
mkdir -p "$dir"
# gen-certs.sh leaves the keys world-readable (test PKI); the directory keeps
# them from other users of this machine. Containers get single files mounted,
# so they do not need to enter the directory.
chmod 0700 "$dir"

if [[ -f $dir/ca.crt && -f $dir/server.crt && -f $dir/server.key ]]; then
  echo "keeping the certificates in $dir/ (delete them to get new ones)"
else
  scripts/gen-certs.sh "$dir"
  echo "wrote a test CA and certificates to $dir/"
fi

key=${WIIHEY_APP_KEY:-}
if [[ -z $key && -f $env_file ]]; then
  key=$(sed -n 's/^WIIHEY_APP_KEY=//p' "$env_file" | tail -n 1)
fi
if [[ -z $key ]]; then
  key=$(openssl rand -hex 24)
  echo "generated a new APP-KEY for $app_id"
fi
# app.env is read both as a .env file (by the bridge) and by sh (the simulator's
# command), so the key is written unquoted and limited to characters that mean
# the same to both.
if [[ ! $key =~ ^[A-Za-z0-9._~+/=:@%,-]+$ ]]; then
  echo "$0: WIIHEY_APP_KEY may contain only letters, digits and ._~+/=:@%,-" >&2
  exit 2
fi

tmp=$(mktemp "$dir/.app.env.XXXXXX")
trap 'rm -f "$tmp"' EXIT
printf '# Written by scripts/compose-setup.sh: the MQTT credentials of the compose setup.\nWIIHEY_APP_ID=%s\nWIIHEY_APP_KEY=%s\n' "$app_id" "$key" >"$tmp"
# Readable by the containers' users (node, uid 1000), whose uid need not be
# ours; the 0700 directory still keeps it from other users of this machine.
chmod 0644 "$tmp"
mv "$tmp" "$env_file"

# The password file stays 0600: the broker's container starts as root and copies
# it for the mosquitto user (see docker-compose.yml).
rm -f "$dir/passwords"
if command -v mosquitto_passwd >/dev/null 2>&1; then
  mosquitto_passwd -c -b "$dir/passwords" "$app_id" "$key"
elif command -v docker >/dev/null 2>&1; then
  echo "no mosquitto_passwd here: running it in the eclipse-mosquitto:2 image"
  docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/$dir:/work" eclipse-mosquitto:2 \
    mosquitto_passwd -c -b /work/passwords "$app_id" "$key"
else
  echo "$0: need mosquitto_passwd to hash the broker password: install the package" \
    "\`mosquitto\` (Debian/Ubuntu: apt-get install mosquitto), or Docker" >&2
  exit 1
fi
chmod 0600 "$dir/passwords"

echo "wrote $dir/passwords and $env_file for MQTT user $app_id"
echo "next: docker-compose up --build    (REST API on http://127.0.0.1:3000)"
