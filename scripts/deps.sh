#!/usr/bin/env bash
# Makes sure the programs the tests start are installed: installs the missing ones
# with apt-get when running as root, otherwise prints one line naming what to install.
set -euo pipefail
# Each entry is program:debian-package.
deps=(${CIRCLEGATE_DEPS:-})
need=()
for pair in "${deps[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${need[*]} with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  exit 0
fi
echo "the tests need: ${need[*]} (install with: sudo apt-get install -y ${need[*]})" >&2
exit 1
