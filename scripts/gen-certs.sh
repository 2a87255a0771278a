#!/usr/bin/env bash
# Test PKI for Mosquitto: a CA, a server certificate and a client certificate.
#   scripts/gen-certs.sh OUTDIR [EXTRA_DNS_NAME...]
# Writes OUTDIR/{ca,server,client}.{crt,key}; test/helpers/mosquitto.ts and
# docker-compose rely on these exact names. Overwrites what is there.
# TEST ONLY: the keys are world-readable (0644) because mosquitto, started as
# root, drops privileges to the `mosquitto` user before it reads them.
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 OUTDIR [EXTRA_DNS_NAME...]" >&2
  exit 2
fi
out=$1
shift

san="DNS:localhost, IP:127.0.0.1, IP:::1, DNS:mosquitto"
for name in "$@"; do
  # A comma or space would inject more SAN entries into the config below.
  if [[ ! $name =~ ^[A-Za-z0-9*.-]+$ ]]; then
    echo "$0: invalid DNS name: $name" >&2
    exit 2
  fi
  san+=", DNS:$name"
done

mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Quiet on success (openssl 3 chatters on stderr); show openssl's output on failure.
run() {
  if ! "$@" >"$work/log" 2>&1; then
    cat "$work/log" >&2
    return 1
  fi
}

# Our own config, so the result does not depend on the system's openssl.cnf.
cat >"$work/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyAgreement
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyAgreement
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF

days=825 # the longest validity Apple's TLS policy accepts for a server certificate

newkey() { run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

newkey "$out/ca.key"
run openssl req -config "$work/openssl.cnf" -new -x509 -sha256 -days "$days" \
  -key "$out/ca.key" -subj "/CN=wiihey-bridge test CA" -extensions ca -out "$out/ca.crt"

# sign NAME CN: NAME.key + NAME.crt signed by the CA, extensions from section [NAME].
sign() {
  newkey "$out/$1.key"
  run openssl req -config "$work/openssl.cnf" -new -key "$out/$1.key" -subj "/CN=$2" -out "$work/$1.csr"
  # A random serial instead of -CAcreateserial, which would leave ca.srl in OUTDIR.
  run openssl x509 -req -sha256 -days "$days" -in "$work/$1.csr" \
    -CA "$out/ca.crt" -CAkey "$out/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -extfile "$work/openssl.cnf" -extensions "$1" -out "$out/$1.crt"
}
sign server localhost
sign client wiihey-bridge

chmod 0644 "$out"/{ca,server,client}.{crt,key}
