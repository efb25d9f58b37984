#!/bin/sh
# Prepares the build context of the NeuroERP images in $1 (default
# target/neuroerp-image): a static neuroerp binary (x86_64 musl), an empty
# data/ directory, the Dockerfile, and `source` (`<git revision> <commit
# time>`, the images' OCI revision/created labels).
#
# Needs: rustup target add x86_64-unknown-linux-musl, and a C compiler for
# musl (Debian: musl-tools) for the bundled SQLite.
set -eu
# The output is relative to where we were called from; the build runs in the
# repository this script belongs to.
out=$(realpath -m "${1:-target/neuroerp-image}")
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
triple=x86_64-unknown-linux-musl
cargo build --release --locked -p neuroerp --target "$triple"
mkdir -p "$out/data"
cp "${CARGO_TARGET_DIR:-target}/$triple/release/neuroerp" "$out/neuroerp"
cp "$here/Dockerfile" "$out/Dockerfile"
if ! git log -1 --format='%H %cI' > "$out/source" 2>/dev/null; then
    echo "unknown 1970-01-01T00:00:00Z" > "$out/source"
fi
echo "build context ready: $out"
