#!/usr/bin/env bash
# Installs Azurite (blob emulator, npm package) into a cache folder and prints the path of azurite-blob.
# Usage: scripts/azurite.sh [--start PORT DATA_DIR]
# The cache folder is $STACKFORM_AZURITE_DIR, else $CARGO_TARGET_DIR/../azurite, else ~/.cache/stackform/azurite.
# With --start it runs azurite-blob on 127.0.0.1:PORT in the foreground (telemetry always disabled).
set -euo pipefail
VERSION=3.37.0
if [[ -n "${STACKFORM_AZURITE_DIR:-}" ]]; then
  DIR="$STACKFORM_AZURITE_DIR"
elif [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
  DIR="$CARGO_TARGET_DIR/../azurite"
else
  DIR="$HOME/.cache/stackform/azurite"
fi
BIN="$DIR/node_modules/.bin/azurite-blob"
# A stamp written after a complete install: a folder without it (an install that was killed, or one
# from before the stamp) is installed again. Tests start Azurite from parallel threads, so the install
# runs under a lock and into a temporary folder that is renamed into place only when it is complete;
# two installs into one folder at once leave modules missing ("Cannot find module './config'").
STAMP="$DIR/.installed-$VERSION"
if [[ ! -f "$STAMP" ]]; then
  mkdir -p "$(dirname "$DIR")"
  exec 9>"$DIR.lock"
  flock 9
  if [[ ! -f "$STAMP" ]]; then
    TMP="$DIR.partial.$$"
    rm -rf "$TMP"
    mkdir -p "$TMP"
    npm install --prefix "$TMP" --no-save --no-package-lock "azurite@$VERSION" >&2
    touch "$TMP/.installed-$VERSION"
    rm -rf "$DIR"
    mv "$TMP" "$DIR"
  fi
  flock -u 9
fi
if [[ "${1:-}" == "--start" ]]; then
  exec "$BIN" --blobHost 127.0.0.1 --blobPort "$2" --location "$3" --silent --disableTelemetry --skipApiVersionCheck
fi
echo "$BIN"
