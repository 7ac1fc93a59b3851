# Sourced by test.sh: the Debian packages the action tests use for real (a CUPS PDF
# printer, an X server for screenshots, xsetroot to paint it, openssl for password hashes;
# faketime for an agent whose clock is wrong, ip for network namespaces, setpriv).
# Installed with apt-get when running as root; otherwise those tests skip, saying why
# (under CI=true they fail instead).
SYSTEM_PACKAGES="cups printer-driver-cups-pdf xvfb x11-xserver-utils openssl faketime iproute2 util-linux"
SYSTEM_TOOLS="cupsd lpadmin lp Xvfb xsetroot openssl useradd chpasswd dpkg-deb faketime ip setpriv"

ensure_system_deps() {
  local missing=""
  for tool in $SYSTEM_TOOLS; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
  done
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing test packages for:$missing"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      $SYSTEM_PACKAGES >/dev/null
  else
    echo "missing$missing: the tests that need them will be skipped" >&2
  fi
}
