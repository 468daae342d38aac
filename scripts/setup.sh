#!/usr/bin/env bash
# Installs what fleetlab needs on a Debian/Ubuntu host, idempotently and quickly when all is there:
# host packages (apt), npm dependencies (with the pinned Node they bring), and with --images the testbed images.
#   scripts/setup.sh            packages + npm dependencies + testbed images
#   scripts/setup.sh --quick    packages + npm dependencies (images are built on first use)
#   scripts/setup.sh --host     packages only: what `fleetlab setup` runs from an installed package, whose npm
#                               dependencies are the fleet repository's business (it then builds the images itself)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0 host=0
[ "${1:-}" = --quick ] && quick=1
[ "${1:-}" = --host ] && quick=1 host=1
say() { [ "$quick" = 1 ] || echo "setup: $*"; }

APT_PACKAGES=(
  qemu-system-x86 qemu-system-arm qemu-utils
  ovmf ovmf-ia32 qemu-efi-aarch64 u-boot-qemu
  busybox-static socat cpio xz-utils device-tree-compiler
  grub-common mtools dosfstools fdisk e2fsprogs xorriso binutils
  vde2 dropbear-bin util-linux openssh-client snmpd openssh-server ser2net
  nix-bin tcpdump chromium tmux postgresql tesseract-ocr
  gcc libc6-dev
  make libelf1 gcc-12-aarch64-linux-gnu binutils-aarch64-linux-gnu
)
# The aarch64 testbed and its bootloaders come from Debian's arm64 packages (downloaded, not installed).
FOREIGN_ARCHS=(arm64)

# A package dpkg has never heard of has no status at all, so ask one package at a time.
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed || missing+=("$pkg")
done

# apt's package lists are needed to install and to download the testbed's kernel and busybox packages.
update_lists=1
compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null && update_lists=0
new_archs=()
for arch in "${FOREIGN_ARCHS[@]}"; do
  dpkg --print-foreign-architectures | grep -qx "$arch" || new_archs+=("$arch")
done
[ "${#new_archs[@]}" -gt 0 ] && update_lists=1

if [ "${#missing[@]}" -gt 0 ] || [ "$update_lists" = 1 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=(); elif sudo -n true 2>/dev/null; then SUDO=(sudo); else
    echo "setup: fleetlab needs these Debian packages: ${missing[*]:-(none; apt lists are empty)}" >&2
    echo "setup: run as root:  ${new_archs[*]:+dpkg --add-architecture ${new_archs[*]} && }apt-get update && apt-get install -y --no-install-recommends ${missing[*]:-}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]:-nothing (updating apt lists)}" >&2
  for arch in "${new_archs[@]}"; do "${SUDO[@]}" dpkg --add-architecture "$arch"; done
  "${SUDO[@]}" apt-get update -qq >&2
  if [ "${#missing[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
fi

[ "$host" = 1 ] && exit 0

# npm dependencies, reinstalled when package-lock.json changes; they include the pinned Node (npm package node-linux-<arch>).
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/node ] || [ "$(cat node_modules/.fleetlab-lock 2>/dev/null)" != "$lock_hash" ]; then
  command -v npm >/dev/null || { echo "setup: npm is missing: apt-get install -y npm" >&2; exit 1; }
  echo "setup: installing npm dependencies" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$lock_hash" > node_modules/.fleetlab-lock
fi
node_modules/.bin/node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<22||(a===22&&b<18)) { console.error("setup: Node >= 22.18 needed, have "+process.version); process.exit(1) }'

if [ "$quick" = 0 ]; then
  say "building testbed images (cached)"
  node_modules/.bin/node harness/cli/main.ts images build >&2
fi
say "ready"
