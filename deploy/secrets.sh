#!/bin/sh
# Generate the deployment's secrets into deploy/.env (mode 0600), which Docker Compose reads for
# deploy/compose.yaml. Idempotent: a secret already in the file is never replaced (PostgreSQL keeps the
# password it was initialised with, and the decision key signs every past decision), only missing
# ones are added. Run it again after an upgrade that needs a new secret.
#
#   deploy/secrets.sh                 # writes deploy/.env next to this script
#   deploy/secrets.sh /path/to/.env   # or another file (e.g. on an encrypted volume)
#
# The same file feeds the Helm chart's secret:
#   kubectl create secret generic matcha-secrets --from-env-file=deploy/.env
set -eu

here=$(cd "$(dirname "$0")" && pwd)
env_file=${1:-"$here/.env"}

# 32 random bytes as 64 hex characters: safe in a URL, a YAML value and a shell assignment.
random_hex() {
    if command -v openssl >/dev/null 2>&1; then
        openssl rand -hex 32
    elif command -v python3 >/dev/null 2>&1; then
        python3 -c 'import secrets; print(secrets.token_hex(32))'
    else
        echo "secrets.sh: needs openssl or python3 to generate secrets" >&2
        exit 1
    fi
}

umask 077
if [ ! -e "$env_file" ]; then
    printf '# Matcha deployment secrets, written by deploy/secrets.sh. Keep private; never commit.\n' > "$env_file"
fi
chmod 600 "$env_file"

added=0
for name in POSTGRES_PASSWORD QDRANT_API_KEY MATCHA_DECISION_KEY; do
    if grep -q "^$name=" "$env_file"; then
        echo "kept      $name"
    else
        value=$(random_hex)
        if [ "${#value}" -ne 64 ]; then
            echo "secrets.sh: could not generate $name" >&2
            exit 1
        fi
        printf '%s=%s\n' "$name" "$value" >> "$env_file"
        echo "generated $name"
        added=$((added + 1))
    fi
done

echo "$env_file: $added new secret(s), mode $(stat -c %a "$env_file" 2>/dev/null || echo 600)"
