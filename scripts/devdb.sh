#!/usr/bin/env bash
# Prints a DATABASE_URL for `make run` / `make test`, starting PostgreSQL if needed:
#   1. $DATABASE_URL when set;
#   2. else the server on 127.0.0.1:5432 when it answers;
#   3. else (or when DEVDB_PRIVATE=1) a private cluster under .data/pg on a free port (stop it: make stop-db),
#      installing PostgreSQL with apt-get first when it is missing and we are root.
# Usage: scripts/devdb.sh DBNAME   (the database is created when missing)
#        scripts/devdb.sh --stop
set -euo pipefail
cd "$(dirname "$0")/.."
dbname=${1:-tradeops}
datadir=$PWD/.data/pg

log() { echo "devdb: $*" >&2; }

answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

pgbin() {
	local d
	for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
		[ -x "$d/initdb" ] && { echo "$d"; return 0; }
	done
	return 1
}

as_owner() { # run a PostgreSQL server binary as a non-root user (initdb refuses root)
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "$dbname" = --stop ]; then
	if [ -f "$datadir/PG_VERSION" ]; then
		if bin=$(pgbin); then as_owner "$bin/pg_ctl" -D "$datadir" -m fast stop >&2 || true; fi
	else
		log "no private cluster under $datadir"
	fi
	exit 0
fi

ensure_db() { # $1 = admin URL (database postgres)
	if command -v psql >/dev/null; then
		if ! psql "$1" -tAc "SELECT 1 FROM pg_database WHERE datname = '$dbname'" | grep -q 1; then
			psql "$1" -qc "CREATE DATABASE \"$dbname\"" >/dev/null 2>&1 || true
		fi
	fi
}

if [ -n "${DATABASE_URL:-}" ]; then
	echo "$DATABASE_URL"
	exit 0
fi

if [ "${DEVDB_PRIVATE:-}" != 1 ] && answers 127.0.0.1 5432; then
	url="postgres://postgres@127.0.0.1:5432"
	ensure_db "$url/postgres?sslmode=disable"
	echo "$url/$dbname?sslmode=disable"
	exit 0
fi

if ! bin=$(pgbin); then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		log "PostgreSQL is not installed; installing it with apt-get"
		apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
		bin=$(pgbin)
	else
		log "PostgreSQL is not installed. Run: sudo apt-get install -y postgresql"
		exit 1
	fi
fi

if [ ! -f "$datadir/PG_VERSION" ]; then
	log "initialising a private cluster in $datadir"
	mkdir -p "$datadir"
	[ "$(id -u)" = 0 ] && chown postgres "$datadir" && chmod 700 "$datadir"
	as_owner "$bin/initdb" -D "$datadir" -U postgres -A trust >/dev/null
fi
port_file=$datadir/tradeops.port
if [ -f "$port_file" ] && answers 127.0.0.1 "$(cat "$port_file")"; then
	port=$(cat "$port_file")
else
	port=54329
	while answers 127.0.0.1 $port; do port=$((port + 1)); done
	log "starting the private cluster on 127.0.0.1:$port"
	as_owner "$bin/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w \
		-o "-p $port -k /tmp -c listen_addresses=127.0.0.1" start >&2
	echo "$port" | as_owner tee "$port_file" >/dev/null
fi
url="postgres://postgres@127.0.0.1:$port"
ensure_db "$url/postgres?sslmode=disable"
echo "$url/$dbname?sslmode=disable"
