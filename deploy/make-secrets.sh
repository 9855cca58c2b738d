#!/usr/bin/env bash
# Makes the certificates and keys compose.yaml mounts from deploy/secrets/: one private CA
# for the cluster, the daybook servers' certificate, the brokers' and daybook's own
# certificate as a Kafka client (the brokers require one: mutual TLS).
#
#   deploy/make-secrets.sh [DIR] [HOST...]
#
# DIR defaults to deploy/secrets; each HOST (the names clients reach daybook by) goes into
# the servers' certificate beside localhost. Existing files are kept: delete them to renew.
# Keys are PKCS#8 PEM (EC P-256) without a passphrase (Kafka's PEM key store reads that form); the
# CA key stays in DIR/ca.key: move it somewhere safe once the cluster's certificates exist.
set -euo pipefail

dir="${1:-$(dirname "$0")/secrets}"
shift || true
hosts=("$@")
# The broker names of compose.yaml, and localhost for each broker's own health check.
brokers=(kafka-1 kafka-2 kafka-3 localhost)
days=825

# The directory keeps the host's other users out; the files are readable, since compose
# mounts them as they are into containers whose users (Kafka's, daybook's) are not root.
mkdir -p "$dir"
chmod 700 "$dir"
cd "$dir"
umask 022

if [[ ! -f ca.pem ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=daybook cluster CA" -keyout ca.key -out ca.pem 2>/dev/null
    chmod 600 ca.key
fi

# issue NAME CN EXTENDED_USAGE SAN...: NAME-key.pem and NAME-cert.pem signed by the CA.
issue() {
    local name=$1 cn=$2 usage=$3
    shift 3
    [[ -f "$name-cert.pem" ]] && return
    local san
    san=$(printf 'DNS:%s,' "$@")
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
        -keyout "$name-key.pem" -out "$name.csr" 2>/dev/null
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
        -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "${san%,}" "$usage") \
        -out "$name-cert.pem" 2>/dev/null
    rm -f "$name.csr"
}

# daybook's gRPC and HTTP ports.
issue tls daybook serverAuth localhost "${hosts[@]}"
# Each broker serves clients and the other brokers, and is their client: both usages.
issue kafka-broker kafka serverAuth,clientAuth "${brokers[@]}"
# daybook as a Kafka client; the brokers require a certificate from the CA.
issue kafka-client daybook clientAuth daybook
# Kafka's PEM key store is one file: the key, then the certificate chain.
cat kafka-broker-key.pem kafka-broker-cert.pem ca.pem >kafka-broker.pem
cp ca.pem kafka-ca.pem
echo "secrets in $(pwd): ca.pem, tls-{cert,key}.pem, kafka-broker.pem, kafka-client-{cert,key}.pem"
