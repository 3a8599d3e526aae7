#!/usr/bin/env bash
# Builds the Debian package of the onair CLI: target/pkg/onair_VERSION_ARCH.deb
# (/usr/bin/onair, man pages, bash/zsh/fish completions, copyright).
#
# Why dpkg-deb and dpkg-shlibdeps rather than cargo-deb: they are Debian's own
# tools, already on every Debian machine (no extra compile in CI), and
# dpkg-shlibdeps is what computes `Depends:` from the libraries the binary
# links, which is the part that must be right.
# Usage: scripts/package-deb.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_BUILD_TARGET="$TRIPLE"
if [[ "${1:-}" != --no-build ]]; then
    # --workspace: the same feature set as every other build (no rebuild of onair).
    cargo build --workspace --release --bins
fi
# ONAIR_EXE: the default build's `onair` kept by scripts/test.sh while the GPL
# build links its own at the shared path.
BIN="${ONAIR_EXE:-target/$TRIPLE/release/onair}"
VERSION="$("$BIN" -V | awk '{print $2}')"
ARCH="$(dpkg --print-architecture)"
OUT="target/pkg"
STAGE="$OUT/deb-root"
rm -rf "$STAGE"
mkdir -p "$STAGE/DEBIAN" "$STAGE/usr/bin" "$STAGE/usr/share/man/man1" \
    "$STAGE/usr/share/doc/onair" "$STAGE/usr/share/bash-completion/completions" \
    "$STAGE/usr/share/zsh/vendor-completions" "$STAGE/usr/share/fish/vendor_completions.d"

install -m 0755 "$BIN" "$STAGE/usr/bin/onair"
strip --strip-unneeded "$STAGE/usr/bin/onair"
"$BIN" man "$STAGE/usr/share/man/man1"
gzip -9n "$STAGE"/usr/share/man/man1/*.1
"$BIN" completions bash >"$STAGE/usr/share/bash-completion/completions/onair"
"$BIN" completions zsh >"$STAGE/usr/share/zsh/vendor-completions/_onair"
"$BIN" completions fish >"$STAGE/usr/share/fish/vendor_completions.d/onair.fish"
cat >"$STAGE/usr/share/doc/onair/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: onair

Files: *
License: MIT or Apache-2.0
Comment: onair's own code.

Files: usr/bin/onair (statically linked parts)
License: openh264 (BSD-2-Clause), fdk-aac (Fraunhofer FDK AAC Codec Library licence)
Comment: The binary includes the openh264 H.264 encoder and the fdk-aac AAC encoder,
 compiled from source. fdk-aac's licence is not GPL-compatible: this package contains
 no GPL code.
COPYRIGHT
gzip -9nc README.md >"$STAGE/usr/share/doc/onair/README.md.gz"
find "$STAGE" -type d -exec chmod 0755 {} +
find "$STAGE/usr/share" -type f -exec chmod 0644 {} +

# Depends: what dpkg-shlibdeps finds for the libraries the binary links.
SHLIBS_DIR="$(mktemp -d)"
trap 'rm -rf "$SHLIBS_DIR"' EXIT
mkdir -p "$SHLIBS_DIR/debian"
printf 'Source: onair\n\nPackage: onair\nArchitecture: any\n' >"$SHLIBS_DIR/debian/control"
DEPENDS="$(cd "$SHLIBS_DIR" && dpkg-shlibdeps -O "$OLDPWD/$STAGE/usr/bin/onair" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')"
if [[ -z "$DEPENDS" ]]; then
    echo "==> dpkg-shlibdeps found no dependencies for $BIN" >&2
    exit 1
fi

cat >"$STAGE/DEBIAN/control" <<CONTROL
Package: onair
Version: $VERSION
Architecture: $ARCH
Maintainer: onair project <packaging@onair.invalid>
Installed-Size: $(du -sk "$STAGE/usr" | cut -f1)
Depends: $DEPENDS
Section: video
Priority: optional
Description: live streaming (H.264 + AAC over RTMP) that survives bad networks
 onair captures an X11 screen (or a test pattern) and audio, encodes H.264
 (openh264) and AAC-LC (fdk-aac), and publishes over RTMP while it can also
 record. On a bad network it never freezes the capture, keeps audio, adapts
 its bitrate to the link, and reconnects by itself at the present moment.
 Without a URL, "onair stream" publishes to a built-in local receiver.
CONTROL

DEB="$OUT/onair_${VERSION}_${ARCH}.deb"
dpkg-deb --build --root-owner-group "$STAGE" "$DEB" >/dev/null
echo "$DEB"
