#!/usr/bin/env bash
# Installs the Debian packages a fresh machine lacks for this project (redis-server; chromium and
# chromium-driver for the browser tests). Usage: scripts/install-system-deps.sh [redis] [browser]
set -euo pipefail
want=("$@")
[ ${#want[@]} -gt 0 ] || want=(redis browser)
missing=()
for item in "${want[@]}"; do
  case "$item" in
    redis) command -v redis-server >/dev/null || missing+=(redis-server) ;;
    browser)
      command -v chromium >/dev/null || missing+=(chromium)
      command -v chromedriver >/dev/null || missing+=(chromium-driver) ;;
    *) echo "unknown dependency group: $item" >&2; exit 2 ;;
  esac
done
[ ${#missing[@]} -gt 0 ] || exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
