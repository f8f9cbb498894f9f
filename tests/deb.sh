#!/bin/sh
# The Debian package end to end (`make deb-test`, part of `make test`): compares the .deb given as
# $1 with a `make install DESTDIR=$2 PREFIX=/usr` tree (the same files but the package's own
# docs, and the bench tool only from source), installs the .deb with dpkg -i, checks the files it placed, the system user and `ferrocache -V`, starts the
# installed binary on the shipped configuration (as root: it switches to the ferrocache user) and
# talks to it, then removes and purges the package and checks that nothing of it is left.
# Needs root and a host where the package is not installed yet; leaves the host as it found it
# (the system user aside, which a purge keeps, as Debian's packages do).
set -eu
deb=${1:?usage: tests/deb.sh PACKAGE.deb [DESTDIR]}
staged=${2:-}
if [ -n "$staged" ]; then
    from_deb=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $6}' | sed 's|^\.||' \
        | grep -v '^/usr/share/doc/' | sort)
    from_make=$(cd "$staged" && find . -type f | sed 's|^\.||' | grep -v '/ferrocache-bench$' | sort)
    if [ "$from_deb" != "$from_make" ]; then
        echo "FAIL: the .deb and make install place different files:"
        echo "$from_deb" > /tmp/ferrocache-deb.list
        echo "$from_make" | diff /tmp/ferrocache-deb.list - || true
        exit 1
    fi
fi
if [ "$(id -u)" != 0 ]; then
    echo "SKIPPED: dpkg -i needs root"
    exit 0
fi
if dpkg -s ferrocache >/dev/null 2>&1; then
    echo "FAIL: ferrocache is installed on this host already; not touching it"
    exit 1
fi
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    dpkg -P ferrocache >/dev/null 2>&1 || true
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

dpkg -i "$deb" >/dev/null
for f in /usr/bin/ferrocache /lib/systemd/system/ferrocache.service \
    /lib/systemd/system/ferrocache.socket /lib/systemd/system/ferrocache@.service \
    /usr/share/ferrocache/warm-restart.conf \
    /etc/ferrocache/ferrocache.conf /usr/share/man/man1/ferrocache.1.gz \
    /usr/share/bash-completion/completions/ferrocache /usr/share/zsh/vendor-completions/_ferrocache \
    /usr/share/fish/vendor_completions.d/ferrocache.fish /usr/share/doc/ferrocache/copyright; do
    [ -f "$f" ] || fail "$f not installed"
done
dpkg-query -W -f='${Conffiles}\n' ferrocache | grep -q /etc/ferrocache/ferrocache.conf \
    || fail "ferrocache.conf is not a conffile"
version=$(dpkg-query -W -f='${Version}' ferrocache)
/usr/bin/ferrocache -V | grep -q "^ferrocache ${version%%-*} " || fail "ferrocache -V: $(/usr/bin/ferrocache -V)"
getent passwd ferrocache >/dev/null || fail "no ferrocache user"
zcat /usr/share/man/man1/ferrocache.1.gz | grep -q '^\.TH ferrocache' || fail "man page"
grep -q -- '--metrics-listen' /usr/share/bash-completion/completions/ferrocache || fail "completions"

# The shipped configuration runs (on a free port instead of 11211), as the ferrocache user.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
/usr/bin/ferrocache --config-file /etc/ferrocache/ferrocache.conf -p "$port" 2>/dev/null &
pid=$!
answer=
for _ in $(seq 1 100); do
    answer=$(python3 - "$port" <<'PY' 2>/dev/null || true
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"version\r\n")
print(s.recv(100).decode().strip())
PY
)
    [ -n "$answer" ] && break
    sleep 0.1
done
case "$answer" in VERSION\ *) ;; *) fail "no VERSION answer: '$answer'" ;; esac
user=$(ps -o user= -p "$pid")
[ "$user" = ferrocache ] || fail "runs as '$user', not ferrocache"
kill "$pid"
wait "$pid" 2>/dev/null || true
pid=

dpkg -r ferrocache >/dev/null
[ ! -e /usr/bin/ferrocache ] || fail "binary left after dpkg -r"
[ ! -e /lib/systemd/system/ferrocache.service ] || fail "unit left after dpkg -r"
[ -f /etc/ferrocache/ferrocache.conf ] || fail "dpkg -r removed the conffile (only a purge does)"
dpkg -P ferrocache >/dev/null
[ ! -e /etc/ferrocache ] || fail "/etc/ferrocache left after purge"
if dpkg -s ferrocache >/dev/null 2>&1; then fail "still known to dpkg after purge"; fi
echo "deb: $(basename "$deb") installs, runs as ferrocache, removes and purges cleanly"
