#!/usr/bin/env bash
# Fails when a tracked file is over 1 MiB: build outputs and data files never
# belong in the repository (a 25 MB binary once slipped in). Sizes are those of
# the staged blobs, so a large file that is added but not yet committed counts.
set -euo pipefail
limit=$((1024 * 1024))
big="$(git ls-files -s | sed 's/^[0-9]* \([0-9a-f]*\) [0-9]*\t/\1 /' |
	git cat-file --batch-check='%(objectsize) %(rest)' |
	awk -v limit="$limit" '$1 > limit { $1 = ""; print substr($0, 2) }')"
if [[ -n "$big" ]]; then
	echo "tracked files over 1 MiB (build outputs and data files are never committed):" >&2
	echo "$big" >&2
	exit 1
fi
