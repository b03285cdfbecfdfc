#!/usr/bin/env bash
# Builds sasrelay as one static executable — no shared libraries, no program interpreter, so it
# runs on any x86_64 Linux (any distribution, an empty container image) — and stages the
# container image's root file system beside it.
#
#   deploy/static/build.sh [--profile release|dev] [--out DIR]
#
# Writes DIR/sasrelay (default DIR: target/static) and DIR/rootfs/, the tree the Dockerfile
# copies onto an empty image:
#   /usr/local/bin/sasrelay            the executable
#   /etc/ssl/certs/ca-certificates.crt  this machine's CA bundle (rustls reads the system roots)
#   /etc/passwd, /etc/group            the sasrelay user and group, 10001
#   /etc/nsswitch.conf, /etc/hosts     name lookups from files, then DNS (a runtime mounts its own hosts)
#   /etc/sasrelay/                     where the config is mounted
#   /var/lib/sasrelay/                 the state directory (mode 0700, owned by 10001 when run as root)
#   /tmp/                              mode 1777
#
# The executable links glibc statically (`-C target-feature=+crt-static` on the gnu target):
# the musl target's standard library is not installable here (rustup reaches no server), and
# glibc 2.34+ resolves names from files and DNS without loading NSS modules.
set -euo pipefail
cd "$(dirname "$0")/../.."

profile=release
out=target/static
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--profile release|dev] [--out DIR]" >&2; exit 2 ;;
  esac
done

triple="$(rustc -vV | sed -n 's/^host: //p')"
case "$triple" in
  *-linux-gnu) ;;
  *) echo "build.sh: a static build needs a *-linux-gnu host, this is $triple" >&2; exit 1 ;;
esac
# --target keeps the flag off build scripts and proc macros, which must stay dynamic.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --locked --profile "$profile" --target "$triple" --bin sasrelay
dir="$profile"
[ "$profile" = dev ] && dir=debug
bin="${CARGO_TARGET_DIR:-target}/$triple/$dir/sasrelay"

# Static means: no NEEDED libraries and no interpreter.
if readelf -d "$bin" | grep -q '(NEEDED)'; then
  echo "build.sh: $bin still needs shared libraries:" >&2
  readelf -d "$bin" | grep '(NEEDED)' >&2
  exit 1
fi
if readelf -l "$bin" | grep -q 'INTERP'; then
  echo "build.sh: $bin names a program interpreter: not static" >&2
  exit 1
fi

rm -rf "$out"
root="$out/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/etc/sasrelay" "$root/var/lib/sasrelay" "$root/tmp"
cp "$bin" "$out/sasrelay"
cp "$bin" "$root/usr/local/bin/sasrelay"
bundle=/etc/ssl/certs/ca-certificates.crt
if [ ! -s "$bundle" ]; then
  echo "build.sh: no CA bundle at $bundle (install ca-certificates): the image could not verify TLS" >&2
  exit 1
fi
cp "$bundle" "$root/etc/ssl/certs/ca-certificates.crt"
echo 'root:x:0:0:root:/:/sbin/nologin
sasrelay:x:10001:10001:sasrelay:/var/lib/sasrelay:/sbin/nologin' > "$root/etc/passwd"
echo 'root:x:0:
sasrelay:x:10001:' > "$root/etc/group"
echo 'hosts: files dns' > "$root/etc/nsswitch.conf"
echo '127.0.0.1 localhost
::1 localhost' > "$root/etc/hosts"
chmod 1777 "$root/tmp"
chmod 0700 "$root/var/lib/sasrelay"
if [ "$(id -u)" = 0 ]; then
  chown 10001:10001 "$root/var/lib/sasrelay"
fi
echo "build.sh: $out/sasrelay ($(du -h "$out/sasrelay" | cut -f1), static, $profile) and $root/"
