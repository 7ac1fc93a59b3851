# Sourced by scripts/test.sh: Debian's Chromium and a Korean font for the dashboard's
# browser tests (Playwright drives /usr/bin/chromium; it never downloads a browser).
ensure_browser() {
  local missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  { command -v fc-list >/dev/null && fc-list :lang=ko | grep -q .; } || missing+=(fonts-noto-cjk)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} for the browser tests" >&2
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        "${missing[@]}" fontconfig >/dev/null; then
      return 0
    fi
  fi
  if [ "${CI:-}" = true ]; then
    echo "the browser tests need ${missing[*]} and they could not be installed" >&2
    exit 1
  fi
  echo "browser tests will be skipped: ${missing[*]} missing (apt-get install ${missing[*]})" >&2
}
