#!/usr/bin/env bash
# Install the launcher and its icon for the current user (freedesktop locations).
# The icon is resources/icons/workbench.svg, installed under the name the .desktop file uses.
# `workbench` must be on PATH: the pip-installed entry point, or a link to the bundle's
# executable, e.g. ln -s "$PWD/build/dist/workbench/workbench" ~/.local/bin/workbench
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
install -Dm644 "$ROOT/resources/icons/workbench.svg" "$DATA/icons/hicolor/scalable/apps/compression-workbench.svg"
install -Dm644 "$ROOT/packaging/compression-workbench.desktop" "$DATA/applications/compression-workbench.desktop"
command -v update-desktop-database >/dev/null && update-desktop-database "$DATA/applications" || true
echo "installed $DATA/applications/compression-workbench.desktop"
