#!/usr/bin/env bash
# Installs the Debian packages the tests run for real (the daemons whose
# configs we render, sipp, the lab's tools) and the npm dependencies.
# Needs root (apt-get). OpenSIPS is not in Debian: see README "OpenSIPS".
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
PACKAGES=(
  # daemons checked by the render tests
  rtpengine-daemon rtpengine-utils keepalived coturn
  mariadb-server galera-4 mariadb-backup socat redis-server
  # SIP test peer (sipp)
  sip-tester
  # namespaces, SSH and the lab's base root
  iproute2 openssh-server openssh-client debootstrap util-linux procps psmisc
  # the lab's VPC router (stateless 1:1 NAT) and security groups
  nftables iptables
  openssl ca-certificates curl jq
  # headless browser for the softphone tests (driven by playwright-core, never a downloaded browser)
  chromium
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}"
fi
# The tests start every daemon themselves inside network namespaces; stop any
# copy the package scripts may have started on the machine itself.
for svc in redis-server mariadb coturn rtpengine-daemon keepalived; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then systemctl stop "$svc" || true; fi
done
npm ci --no-audit --no-fund
# The softphone page is bundled here, at install time (JsSIP ships no browser bundle), not when the lab runs.
npm run --silent build:softphone
