#!/usr/bin/env bash
# A real Asterisk 22 for tests: a Debian sid chroot (built once, cached outside the repository), run as its
# own user inside a network namespace of its own, with the configuration in testbed/asterisk/.
#
#   testbed/asterisk.sh build    debootstrap the chroot (about 40 s; skipped when cached)
#   testbed/asterisk.sh start    configure, mount /proc and /dev, start Asterisk in namespace $NS
#   testbed/asterisk.sh stop     stop Asterisk, unmount, delete the namespace
#   testbed/asterisk.sh logs     print the log folder inside the chroot
#   testbed/asterisk.sh anonymous on|off   add or remove the `anonymous` endpoint on the running Asterisk
#   testbed/asterisk.sh cli COMMAND        run an Asterisk CLI command (`asterisk -rx`)
#
# SIPWATCH_TESTBED_ANONYMOUS=1 (or `anonymous on`) adds the `anonymous` endpoint (context public): strangers'
# INVITEs then reach the dialplan instead of failing endpoint identification.
# The package mirror is read from this host's own apt sources. Needs root and debootstrap.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CACHE=${SIPWATCH_TESTBED_CACHE:-/var/cache/sipwatch-testbed}
ROOT=$CACHE/sid
NS=${SIPWATCH_TESTBED_NS:-swast}

mirror() {
  # the first non-security Debian URI of the host's apt sources (deb822 or one-line format); comments
  # (some images keep a snapshot URL there) and missing files are skipped
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -v '^[[:space:]]*#' | grep -oE 'https?://[^ ]+' | grep -v -- '-security' | grep -i debian | head -n 1 \
    || true
}

build() {
  if [ -x "$ROOT/usr/sbin/asterisk" ]; then
    return 0
  fi
  command -v debootstrap >/dev/null || { echo "testbed: debootstrap is missing (apt-get install debootstrap)" >&2; exit 2; }
  local url
  url=$(mirror)
  [ -n "$url" ] || { echo "testbed: no Debian mirror in this host's apt sources" >&2; exit 2; }
  mkdir -p "$CACHE"
  rm -rf "$ROOT.tmp"
  debootstrap --variant=minbase --include=asterisk,asterisk-modules sid "$ROOT.tmp" "$url" >"$CACHE/debootstrap.log" 2>&1 \
    || { echo "testbed: debootstrap failed, see $CACHE/debootstrap.log" >&2; exit 1; }
  mv "$ROOT.tmp" "$ROOT"
}

configure() {
  install -m 0644 "$here"/asterisk/*.conf "$ROOT/etc/asterisk/"
  anonymous_conf "${SIPWATCH_TESTBED_ANONYMOUS:-0}"
  install -m 0644 "$here"/../examples/asterisk/*.conf "$ROOT/etc/asterisk/"  # the snippets the README documents
  printf '127.0.0.1 localhost\n::1 localhost\n' >"$ROOT/etc/hosts"  # minbase has none: every lookup would wait on DNS
  rm -f "$ROOT/var/lib/asterisk/astdb.sqlite3"                      # PJSIP keeps registrations there
  : >"$ROOT/var/log/asterisk/messages.log"
  : >"$ROOT/var/log/asterisk/security.log"
  : >"$ROOT/var/log/asterisk/full.log"
  mkdir -p "$ROOT/var/log/asterisk/cel-custom"                          # cel_custom writes there; Debian makes none
  rm -f "$ROOT"/var/log/asterisk/cdr-csv/*.csv "$ROOT"/var/log/asterisk/cdr-custom/*.csv "$ROOT"/var/log/asterisk/cel-custom/*.csv  # each run: its own CDRs and CELs
  chroot "$ROOT" chown -R asterisk:asterisk /var/log/asterisk /var/lib/asterisk /var/spool/asterisk /run/asterisk 2>/dev/null || true
}

anonymous_conf() {
  rm -f "$ROOT/etc/asterisk/pjsip_anonymous.conf"
  if [ "$1" = 1 ] || [ "$1" = on ]; then
    install -m 0644 "$here/asterisk/optional/pjsip_anonymous.conf" "$ROOT/etc/asterisk/"
  fi
}

cli() { ip netns exec "$NS" chroot "$ROOT" /usr/sbin/asterisk -rx "$1"; }

anonymous() {
  # PJSIP's reload adds and removes endpoints; wait until the change is visible
  anonymous_conf "$1"
  cli "module reload res_pjsip.so" >/dev/null
  for _ in $(seq 1 50); do
    if cli "pjsip show endpoints" | grep -q "Endpoint:  anonymous "; then present=on; else present=off; fi
    [ "$present" = "$1" ] && return 0
    sleep 0.1
  done
  echo "testbed: the anonymous endpoint did not turn $1" >&2
  exit 1
}

mounted() { mountpoint -q "$ROOT/$1"; }

start() {
  build
  configure
  ip netns add "$NS" 2>/dev/null || true
  ip -n "$NS" link set lo up
  mounted proc || mount --bind /proc "$ROOT/proc"
  mounted dev || mount --bind /dev "$ROOT/dev"
  ip netns exec "$NS" chroot "$ROOT" /usr/sbin/asterisk -U asterisk -G asterisk >/dev/null 2>&1
  for _ in $(seq 1 100); do
    if ip netns exec "$NS" chroot "$ROOT" /usr/sbin/asterisk -rx "core waitfullybooted" >/dev/null 2>&1 \
      && ip netns exec "$NS" chroot "$ROOT" /usr/sbin/asterisk -rx "pjsip show endpoints" 2>/dev/null | grep -q 6001; then
      return 0
    fi
    sleep 0.2
  done
  echo "testbed: Asterisk did not come up" >&2
  exit 1
}

stop() {
  if ip netns list | grep -qw "$NS"; then
    ip netns exec "$NS" chroot "$ROOT" /usr/sbin/asterisk -rx "core stop now" >/dev/null 2>&1 || true
    sleep 0.5
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$NS"
  fi
  mounted proc && umount "$ROOT/proc" || true
  mounted dev && umount "$ROOT/dev" || true
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  stop) stop ;;
  logs) echo "$ROOT/var/log/asterisk" ;;
  anonymous) [ "${2:-}" = on ] || [ "${2:-}" = off ] || { echo "usage: $0 anonymous on|off" >&2; exit 2; }; anonymous "$2" ;;
  cli) cli "${2:?usage: $0 cli COMMAND}" ;;
  *) echo "usage: $0 build|start|stop|logs|anonymous on|off|cli COMMAND" >&2; exit 2 ;;
esac
