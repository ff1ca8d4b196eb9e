#!/usr/bin/env bash
# System packages needed by meeg_inverse.viz on a headless Debian/Ubuntu machine:
#  * off-screen VTK/pyvista rendering: the vtk>=9.4 wheels pick EGL (Mesa llvmpipe,
#    surfaceless, no X server needed) and fall back to OSMesa;
#  * xvfb, only for `meeg-inverse view --show` (live pyvista window) on a machine without a display;
#  * chromium, to run the HTML viewer tests (tests/test_viewer_html.py) headless.
# Idempotent: installs only what is missing, runs `apt-get update` at most once, and is quiet
# when everything is already there.
set -euo pipefail

PACKAGES=(
  libgl1            # libGL (glvnd) loaded by the VTK wheel
  libegl1           # libEGL (glvnd): VTK's vtkEGLRenderWindow, used when there is no DISPLAY
  libegl-mesa0      # Mesa's EGL vendor library (surfaceless llvmpipe)
  libgl1-mesa-dri   # Mesa DRI drivers incl. the llvmpipe software rasteriser
  libglx-mesa0      # GLX vendor library (used when a DISPLAY / xvfb exists)
  libosmesa6        # OSMesa: VTK's last-resort off-screen window (vtkOSOpenGLRenderWindow)
  libxrender1 libxext6 libsm6 libice6  # X client libs the VTK wheel links against
  xvfb              # virtual display for the live viewer on headless machines
  chromium          # headless browser for the HTML viewer tests
  fonts-dejavu-core # fonts for chromium screenshots
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    # Not fatal: rendering falls back to matplotlib and the browser tests skip, each saying why.
    echo "install_system_deps.sh: warning: need root (or sudo) to install: ${missing[*]}" >&2
    exit 0
  fi
fi

echo "install_system_deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; }; then
  echo "install_system_deps.sh: warning: could not install ${missing[*]};" \
       "figures fall back to matplotlib and the browser tests are skipped." >&2
fi
