#!/bin/sh
# Makes sure a Chromium is there for `make test-ui` / `make screenshots`: Debian's `chromium` package, installed
# with apt-get when missing (as root). Playwright drives it through executable_path and downloads no browser.
# OMS_UI_CHROMIUM=/path/to/chrome skips the install and names the browser to use.
set -e
if [ -n "$OMS_UI_CHROMIUM" ]; then
    command -v "$OMS_UI_CHROMIUM" >/dev/null 2>&1 && exit 0
    echo "OMS_UI_CHROMIUM=$OMS_UI_CHROMIUM is not an executable" >&2
    exit 1
fi
for name in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$name" >/dev/null 2>&1; then
        echo "browser: $(command -v "$name")"
        exit 0
    fi
done
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "make test-ui needs a Chromium and cannot install one here: it installs Debian's 'chromium' with apt-get" >&2
    echo "as root. Install Chromium with the system's package manager (e.g. 'sudo apt-get install chromium')," >&2
    echo "or set OMS_UI_CHROMIUM to a Chromium or Chrome binary." >&2
    exit 1
fi
echo "Installing Debian's chromium (apt-get) for the browser test..."
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -q >/tmp/oms-ui-apt.log 2>&1 && apt-get install -y -q chromium >>/tmp/oms-ui-apt.log 2>&1; }; then
    tail -20 /tmp/oms-ui-apt.log >&2
    echo "apt-get could not install chromium (log: /tmp/oms-ui-apt.log): the browser test cannot run." >&2
    exit 1
fi
echo "chromium installed in $(( $(date +%s) - start )) s: $(command -v chromium)"
