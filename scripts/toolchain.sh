#!/usr/bin/env bash
# Checks the build prerequisites and installs the Debian ones that are missing (as root):
# a C compiler (zstd, aws-lc), make, flock. Rust itself must already be on the machine
# (rustup's stable toolchain, 1.85 or newer); Debian's own cargo is too old for the crates used.
set -euo pipefail
need=()
command -v cc >/dev/null || need+=(gcc libc6-dev)
command -v flock >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
    echo "toolchain: apt-get install ${need[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
    echo "toolchain: cargo not found. Install Rust with rustup (stable, 1.85+), then rerun." >&2
    exit 1
fi
