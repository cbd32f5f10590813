#!/usr/bin/env bash
# Prints `export` lines with development secrets kept in .data/dev.env, made
# once per checkout, so that `make run` restarts keep tokens and encrypted
# values (TOTP seeds, exchange secrets) usable. Never use them in production.
set -euo pipefail
cd "$(dirname "$0")/.."
file=.data/dev.env
if [ ! -f "$file" ]; then
	mkdir -p .data
	umask 077
	{
		echo "SECRET_KEY=$(head -c 48 /dev/urandom | base64 | tr -d '\n')"
		echo "ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
	} >"$file"
	echo "devsecrets: generated development secrets in $file" >&2
fi
while IFS='=' read -r name value; do
	# An explicit environment variable wins over the file.
	if [ -z "${!name:-}" ]; then
		printf 'export %s=%q\n' "$name" "$value"
	fi
done <"$file"
