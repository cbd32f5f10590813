#!/usr/bin/env bash
# Vendors the console's two third-party browser libraries from the npm registry
# into ports/http/console/vendor/ and writes manifest.json beside them: each
# file's package, version, license, source tarball and SHA-256. The console's
# Go test checks the embedded files against the manifest, so a file changed by
# hand (or a manifest edited without the file) fails `make test`.
# No Node build step: `npm pack` only downloads the published tarball (npm
# checks it against the registry's integrity hash) and we copy one file out.
# Usage: scripts/vendor_console.sh   (needs npm, tar, sha256sum)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=ports/http/console/vendor

# package version license file-in-tarball vendored-name
libs=(
	"chart.js 4.6.1 MIT package/dist/chart.umd.min.js chart.umd.min.js"
	"qrcode-generator 2.0.4 MIT package/dist/qrcode.mjs qrcode.mjs"
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$dest"
entries=()
for lib in "${libs[@]}"; do
	read -r pkg version license path name <<<"$lib"
	tarball=$(cd "$tmp" && npm pack --silent "$pkg@$version")
	mkdir -p "$tmp/$pkg"
	tar -xzf "$tmp/$tarball" -C "$tmp/$pkg"
	got=$(sed -n 's/^  "license": "\(.*\)",$/\1/p' "$tmp/$pkg/package/package.json")
	if [ "$got" != "$license" ]; then
		echo "vendor_console: $pkg@$version is licensed '$got', not '$license': review it before vendoring" >&2
		exit 1
	fi
	cp "$tmp/$pkg/$path" "$dest/$name"
	# The license text travels with the file: Chart.js ships it separately,
	# qrcode-generator only in its header comment (kept in the file).
	if [ -f "$tmp/$pkg/package/LICENSE.md" ]; then
		cp "$tmp/$pkg/package/LICENSE.md" "$dest/$name.LICENSE.md"
	fi
	sum=$(sha256sum "$dest/$name" | cut -d' ' -f1)
	entries+=("$(printf '  {"file": "%s", "package": "%s", "version": "%s", "license": "%s",\n   "source": "https://registry.npmjs.org/%s/-/%s", "path": "%s",\n   "sha256": "%s"}' \
		"$name" "$pkg" "$version" "$license" "$pkg" "$tarball" "$path" "$sum")")
	echo "vendored $pkg@$version ($license) as $dest/$name, sha256 $sum" >&2
done
{
	echo "["
	for i in "${!entries[@]}"; do
		sep=","
		[ "$i" -eq $((${#entries[@]} - 1)) ] && sep=""
		echo "${entries[$i]}$sep"
	done
	echo "]"
} >"$dest/manifest.json"
