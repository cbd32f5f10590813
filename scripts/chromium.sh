#!/usr/bin/env bash
# Prints the path of a Chromium (or Chrome) for the console's browser tests and
# `make screenshot`, installing Debian's chromium first when none is found:
#   1. $CHROMIUM when set (must be executable);
#   2. else chromium, chromium-browser, google-chrome-stable or google-chrome on PATH;
#   3. else, when we are root and apt-get exists, `apt-get install chromium`.
# Exits 1 (saying what to run) when no browser can be found or installed.
# Usage: scripts/chromium.sh
set -euo pipefail

log() { echo "chromium: $*" >&2; }

if [ -n "${CHROMIUM:-}" ]; then
	if [ -x "$CHROMIUM" ]; then
		echo "$CHROMIUM"
		exit 0
	fi
	log "CHROMIUM=$CHROMIUM is not an executable file"
	exit 1
fi

find_browser() {
	local name path
	for name in chromium chromium-browser google-chrome-stable google-chrome; do
		if path=$(command -v "$name"); then
			# Ubuntu's chromium-browser package is a shim that asks for snap;
			# a real browser answers --version.
			if "$path" --version >/dev/null 2>&1; then
				echo "$path"
				return 0
			fi
		fi
	done
	return 1
}

if path=$(find_browser); then
	echo "$path"
	exit 0
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	log "no Chromium found; installing Debian's chromium with apt-get"
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
	if path=$(find_browser); then
		echo "$path"
		exit 0
	fi
fi
log "no Chromium found. Run: sudo apt-get install -y chromium (or set CHROMIUM to a Chrome/Chromium binary)"
exit 1
