#!/usr/bin/env bash
# Build CPython 3.13 from Debian trixie's source package into .cache/python3.13 (once; reused),
# for testing against zarr-python 3.4, which needs Python >= 3.12. Prints the interpreter path.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="$PWD/.cache"
PREFIX="$CACHE/python3.13"
if [ -x "$PREFIX/bin/python3.13" ] && "$PREFIX/bin/python3.13" -c "import ssl, sqlite3, zlib, lzma, bz2, ctypes" 2>/dev/null; then
  echo "$PREFIX/bin/python3.13"
  exit 0
fi
APT="$CACHE/apt"
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$CACHE/src"
echo "deb-src http://deb.debian.org/debian trixie main" > "$APT/sources.list"
OPTS=(-o "Dir::Etc::SourceList=$APT/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
      -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache" -o "APT::Get::AllowUnauthenticated=true"
      -o "Acquire::AllowInsecureRepositories=true")
# Build dependencies from the machine's own (bookworm) archive.
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential dpkg-dev libssl-dev zlib1g-dev \
    libbz2-dev liblzma-dev libsqlite3-dev libffi-dev libreadline-dev libncurses-dev uuid-dev >/dev/null
fi
apt-get "${OPTS[@]}" update -qq >&2
cd "$CACHE/src"
if ! ls -d python3.13-*/ >/dev/null 2>&1; then
  apt-get "${OPTS[@]}" source -qq python3.13 >&2
fi
SRC="$(ls -d "$CACHE"/src/python3.13-*/ | head -n1)"
cd "$SRC"
# No test modules: CPython's own test suite (and its C test extensions) is not needed here.
./configure --prefix="$PREFIX" --without-ensurepip --disable-test-modules >/dev/null
make -j"$(nproc)" >/dev/null 2>&1
make install >/dev/null 2>&1
"$PREFIX/bin/python3.13" -m ensurepip -q >&2 2>/dev/null || true
echo "$PREFIX/bin/python3.13"
