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
if [[ ! -x "$BIN" ]]; then
  mkdir -p "$DIR"
  npm install --prefix "$DIR" --no-save --no-package-lock "azurite@$VERSION" >&2
fi
if [[ "${1:-}" == "--start" ]]; then
  exec "$BIN" --blobHost 127.0.0.1 --blobPort "$2" --location "$3" --silent --disableTelemetry --skipApiVersionCheck
fi
echo "$BIN"
