#!/usr/bin/env bash
# Installs what mailbridge needs from Debian 12's archive. Idempotent and quiet:
# apt runs only when something is missing.
#   scripts/deps.sh          build + run the daemon
#   scripts/deps.sh --test   also the test suite's tools and real peer servers
set -euo pipefail

packages=(build-essential cmake ninja-build pkg-config libuv1-dev libssl-dev libcpp-httplib-dev
  nlohmann-json3-dev libsqlite3-dev libxxhash-dev libgmime-3.0-dev libgtest-dev libgmock-dev ca-certificates)
if [[ "${1:-}" == "--test" ]]; then
  # clang-19: the first Debian clang whose C++23 mode has std::expected with
  # libstdc++ 12 (clang 14 lacks the concepts level <expected> requires).
  # Real peer servers and clients for tests/integration/servers.py (private
  # instances only; libnet-ssleay-perl is swaks' STARTTLS). Postfix is
  # preseeded to "No configuration": debconf's default would be "Internet
  # Site" (a system main.cf listening on all interfaces); unconfigured, it
  # writes no main.cf and starts nothing, and our instances use postfix -c.
  packages+=(python3 curl openssl clang-19 libclang-rt-19-dev
    dovecot-imapd dovecot-pop3d dovecot-lmtpd postfix swaks libnet-ssleay-perl mutt isync)
  if [[ $(id -u) -eq 0 ]] && ! dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "install ok installed"; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  fi
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps: run as root (or install the packages above yourself)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
