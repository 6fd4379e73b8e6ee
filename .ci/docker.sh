#!/usr/bin/env bash
# CI: make a Docker Engine available for the docker driver tests (test/node/docker.test.ts).
# Installs docker.io and busybox-static when missing, starts dockerd in the background when no
# engine answers on /var/run/docker.sock, and imports the test image shoal-test/busybox:latest
# (a static busybox, no CMD; no registry is needed). Idempotent. Exits non-zero with a message when
# Docker cannot be made to work; the docker tests then skip themselves.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# shellcheck source=.ci/apt.sh
. "$(dirname "$0")/apt.sh"

SOCK=/var/run/docker.sock
IMAGE=shoal-test/busybox:latest
LOG=/tmp/shoal-dockerd.log

fail() {
  echo "docker.sh: $*" >&2
  exit 1
}

engine_up() {
  docker -H "unix://$SOCK" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
[ -x /bin/busybox ] || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
  echo "docker.sh: installing ${missing[*]}"
  # apt_install keeps the package from starting a system dockerd with its defaults (iptables
  # rules, a FORWARD policy of DROP that would cut the test bed's bridge): ours is started below.
  apt_install "${missing[@]}" || fail "could not install ${missing[*]}"
fi
command -v docker >/dev/null 2>&1 || fail "no docker client after installing docker.io"

if ! engine_up; then
  # Keep the machine's firewall and network alone: no iptables rules, no docker0 bridge (the
  # driver runs tasks with host networking).
  echo "docker.sh: starting dockerd (log: $LOG)"
  nohup dockerd --host "unix://$SOCK" --iptables=false --ip6tables=false --bridge=none \
    >"$LOG" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    engine_up && break
    sleep 0.5
  done
  engine_up || {
    tail -n 20 "$LOG" >&2 || true
    fail "dockerd did not answer on $SOCK within 30 s (see $LOG)"
  }
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "docker.sh: importing $IMAGE"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in sh sleep env pwd echo printf cat ls true false kill; do
    ln -s busybox "$root/bin/$applet"
  done
  chmod 1777 "$root/tmp"
  # No CMD: a task must name its command (the driver refuses an empty one for this image).
  tar -C "$root" -c . | docker import --change 'ENV PATH=/bin' - "$IMAGE" >/dev/null ||
    fail "docker import of $IMAGE failed"
fi
echo "docker.sh: engine $(docker version --format '{{.Server.Version}}') ready, image $IMAGE present"
