# CI: sourced by .ci/run and .ci/docker.sh. `apt_install PKG...` installs Debian packages without
# letting them start their services: a policy-rc.d that exits 101 (when none is there already)
# makes invoke-rc.d and deb-systemd-invoke skip every start during the install (nats-server's
# package would otherwise start a system server on 4222 under systemd, docker.io a dockerd with its
# own iptables rules). Returns non-zero when the install fails; the policy is removed either way.

apt_install() {
  local policy="" rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    policy=/usr/sbin/policy-rc.d
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
    rc=$?
  [ -z "$policy" ] || rm -f "$policy"
  return "$rc"
}
