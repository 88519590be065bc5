#!/usr/bin/env bash
# docker/podman-check.sh: build docker/Dockerfile and run docker/compose.yaml with podman, on a
# machine with no Docker daemon and no reachable container registry (Debian 12, as root).
#
#   docker/podman-check.sh            # from anywhere; KEEP=1 keeps images and stack afterwards
#
# NOT part of `make test`: it needs root, ~50 GB of free disk (the build peaks at ~48 GB; the
# image alone is ~10 GB, CUDA torch) and 10-20 minutes. What it does, timing each step:
#   1. installs podman, buildah, runc, netavark, aardvark-dns, iptables, debootstrap (apt) and
#      podman-compose 1.6 (pip, in its own venv under $WORK) when missing;
#   2. configures podman through CONTAINERS_CONF: runc (crun refuses hybrid cgroups), cgroupfs,
#      and explicit ulimits (the default rlimits are EPERM here);
#   3. makes the base images no registry can give: debootstrap a minimal bookworm, copy in a
#      CPython >= 3.11.5 (Debian's 3.11.2 is too old for a pinned mkdocs dependency) and this
#      machine's CA certificates, `podman import` it as python:3.11-slim; and a MariaDB
#      stand-in for mysql:8.0 (MySQL 8 is not in Debian) that honours the mysql image's
#      MYSQL_* variables and /docker-entrypoint-initdb.d;
#   4. builds docker/Dockerfile unchanged (podman build, docker/Dockerfile.dockerignore);
#   5. `podman-compose up -d` with docker/compose.yaml plus a small override: the stand-in
#      db (MariaDB has no utf8mb4_0900_ai_ci collation) and a CPU worker (`deploy: !reset`)
#      that also renders QC figures (`--qc`: after a load demo that is the job left to do);
#   6. waits for the database, runs `element-pose demo --mode load` in the jupyter container,
#      checks that JupyterLab answers and that the worker processes a job (the demo leaves
#      the downstream tables to it), and that the worker never restarted;
#   7. brings the stack down and, unless KEEP=1, gives the disk back (`podman system prune -af`;
#      $WORK keeps ~0.3 GB: the stand-in root file system and podman-compose, for reruns).
# Settings (environment): WORK (scratch folder, default /var/tmp/element-pose-podman-check),
# PYTHON_SRC (a CPython 3.11.x >= 3.11.5 prefix, default the newest pyenv 3.11),
# DEBIAN_MIRROR, DB_PORT/JUPYTER_PORT (host ports, default 13306/18888), KEEP.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/var/tmp/element-pose-podman-check}
PROJECT=element-pose-check
DB_PORT=${DB_PORT:-13306}
JUPYTER_PORT=${JUPYTER_PORT:-18888}
KEEP=${KEEP:-0}
START=$SECONDS
declare -a SUMMARY=()

say() { printf '[podman-check %4ds] %s\n' "$((SECONDS - START))" "$*"; }
step() {  # step NAME COMMAND...: run, time and record
  local name=$1 t0=$SECONDS; shift
  say "$name ..."
  "$@"
  SUMMARY+=("$(printf '%-28s %5ds' "$name" "$((SECONDS - t0))")")
  say "$name done in $((SECONDS - t0)) s"
}

# ------------------------------------------------------------------ 1. tools
install_tools() {
  local missing=() tool
  for tool in podman buildah runc debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  # netavark (container networks, DNS between services) needs iptables
  dpkg -s netavark aardvark-dns >/dev/null 2>&1 || missing+=(netavark aardvark-dns)
  command -v iptables >/dev/null 2>&1 || missing+=(iptables)
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
  if command -v podman-compose >/dev/null 2>&1; then
    COMPOSE=$(command -v podman-compose)
  else
    [ -x "$WORK/compose-venv/bin/podman-compose" ] || {
      python3 -m venv "$WORK/compose-venv"
      "$WORK/compose-venv/bin/python" -m pip install --quiet "podman-compose==1.6.0"
    }
    COMPOSE=$WORK/compose-venv/bin/podman-compose
  fi
  say "podman $(podman --version | awk '{print $3}'), $("$COMPOSE" --version 2>/dev/null | tail -1)"
}

# ------------------------------------------------------------------ 2. configuration
configure() {
  cat >"$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
EOF
  export CONTAINERS_CONF=$WORK/containers.conf
}

# ------------------------------------------------------------------ 3. base images
python_source() {
  if [ -n "${PYTHON_SRC:-}" ]; then echo "$PYTHON_SRC"; return; fi
  local root=${PYENV_ROOT:-$HOME/.pyenv}
  find "$root/versions" -maxdepth 1 -name '3.11.*' 2>/dev/null | sort -V | tail -1
}

mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(grep -h -m1 -o 'http[^ ]*/debian/\?$' /etc/apt/sources.list.d/*.sources \
        /etc/apt/sources.list 2>/dev/null | head -1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

python_image() {
  if podman image exists docker.io/library/python:3.11-slim; then return; fi
  # the root file system is kept in $WORK (~0.3 GB): a rerun imports it again at once
  [ -s "$WORK/python-rootfs.tar" ] || python_rootfs
  podman import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    "$WORK/python-rootfs.tar" docker.io/library/python:3.11-slim >/dev/null
  podman tag docker.io/library/python:3.11-slim localhost/debian:bookworm
  podman run --rm docker.io/library/python:3.11-slim python3 -c \
    'import ssl, sqlite3, ctypes, venv, sys; print("stand-in python", sys.version.split()[0])'
}

python_rootfs() {
  local src rootfs=$WORK/rootfs version
  src=$(python_source)
  version=$("$src/bin/python3" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
  case $version in
    3.11.[5-9]|3.11.[1-9][0-9]) ;;
    *) echo "need CPython 3.11.x >= 3.11.5 for the python:3.11-slim stand-in (PYTHON_SRC); found '$version' at '$src'" >&2
       return 1 ;;
  esac
  rm -rf "$rootfs"
  debootstrap --variant=minbase \
    --include=ca-certificates,netbase,tzdata,libffi8,libncursesw6,libnsl2,libsqlite3-0,libssl3,libuuid1,libgssapi-krb5-2,libbsd0,libreadline8,libgdbm6,libexpat1 \
    bookworm "$rootfs" "$(mirror)" >"$WORK/debootstrap.log" 2>&1
  # CPython at /usr/local as in the python image: interpreter, stdlib (no site-packages
  # contents, no tests, no tkinter), shared library and headers (sdists with C extensions)
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/usr/local/lib" "$rootfs/usr/local/include"
  cp -a "$src"/lib/libpython3.11.so* "$rootfs/usr/local/lib/"
  cp -a "$src/include/python3.11" "$rootfs/usr/local/include/"
  tar -C "$src/lib" --exclude='python3.11/site-packages/*' --exclude='python3.11/test' \
    --exclude='python3.11/tkinter' --exclude='python3.11/idlelib' \
    --exclude='python3.11/lib-dynload/_tkinter*' -c python3.11 | tar -C "$rootfs/usr/local/lib" -x
  cp -a "$src/bin/python3.11" "$rootfs/usr/local/bin/"
  ln -sf python3.11 "$rootfs/usr/local/bin/python3"
  ln -sf python3 "$rootfs/usr/local/bin/python"
  chroot "$rootfs" ldconfig
  # this machine's CA certificates (its egress CA included), for pip inside the build
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$WORK/python-rootfs.tar.part" . \
    && mv "$WORK/python-rootfs.tar.part" "$WORK/python-rootfs.tar"
  rm -rf "$rootfs"
}

db_image() {
  if podman image exists localhost/element-pose-check/mariadb:latest; then return; fi
  mkdir -p "$WORK/db"
  cat >"$WORK/db/entrypoint.sh" <<'EOF'
#!/bin/bash
# The mysql:8.0 image's contract, on MariaDB: MYSQL_ROOT_PASSWORD, MYSQL_USER, MYSQL_PASSWORD
# and /docker-entrypoint-initdb.d/*.sh (run once, on an empty data directory).
set -euo pipefail
socket=/run/mysqld/mysqld.sock
if [ ! -d /var/lib/mysql/mysql ]; then
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  mariadbd --user=mysql --skip-networking --socket=$socket & pid=$!
  until mariadb-admin --socket=$socket ping --silent 2>/dev/null; do sleep 1; done
  mariadb --socket=$socket -uroot <<SQL
ALTER USER 'root'@'localhost' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';
CREATE USER 'root'@'%' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
CREATE USER '${MYSQL_USER}'@'%' IDENTIFIED BY '${MYSQL_PASSWORD}';
FLUSH PRIVILEGES;
SQL
  for f in /docker-entrypoint-initdb.d/*.sh; do
    [ -e "$f" ] && bash "$f"
  done
  mariadb-admin --socket=$socket -uroot -p"${MYSQL_ROOT_PASSWORD}" shutdown
  wait "$pid" || true
fi
exec mariadbd --user=mysql --bind-address=0.0.0.0 "$@"
EOF
  cat >"$WORK/db/Containerfile" <<'EOF'
FROM localhost/debian:bookworm
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       mariadb-server mariadb-client \
    && rm -rf /var/lib/apt/lists/* /var/lib/mysql/* \
    && mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
COPY entrypoint.sh /usr/local/bin/entrypoint.sh
RUN chmod +x /usr/local/bin/entrypoint.sh
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
EOF
  podman build --quiet -t localhost/element-pose-check/mariadb:latest "$WORK/db" >/dev/null
}

# ------------------------------------------------------------------ 4. the project image
build_image() {
  local ignore=()
  podman build --help | grep -- '--ignorefile' >/dev/null \
    && ignore=(--ignorefile "$REPO/docker/Dockerfile.dockerignore")
  podman build "${ignore[@]}" -f "$REPO/docker/Dockerfile" -t element-pose:latest "$REPO" \
    >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; return 1; }
  IMAGE_SIZE=$(podman image inspect element-pose:latest --format '{{.Size}}' \
               | awk '{printf "%.2f GB", $1 / 1e9}')
  say "element-pose:latest is $IMAGE_SIZE"
}

# ------------------------------------------------------------------ 5. the stack
stack_env() {
  mkdir -p "$WORK/data/raw" "$WORK/data/processed" "$WORK/data/store"
  chmod 0777 "$WORK/data/raw" "$WORK/data/processed" "$WORK/data/store"  # the image's user pose
  export DJ_USER=pose DJ_PASS=check-pass MYSQL_ROOT_PASSWORD=check-root JUPYTER_TOKEN=check-token
  export RAW_DATA_DIR=$WORK/data/raw PROCESSED_DATA_DIR=$WORK/data/processed
  export STORE_DIR=$WORK/data/store DB_PORT JUPYTER_PORT ELEMENT_POSE_DEVICE=cpu
  cat >"$WORK/compose.podman.yaml" <<'EOF'
# podman-check.sh's override: the MariaDB stand-in (no utf8mb4_0900_ai_ci there), CPU worker
services:
  db:
    image: localhost/element-pose-check/mariadb:latest
    command:
      - --character-set-server=utf8mb4
      - --collation-server=utf8mb4_unicode_ci
      - --max-allowed-packet=1G
      - --wait-timeout=604800
  worker:
    deploy: !reset null
    # --qc: the load demo leaves one job for a worker, analysis.PoseQC (opt-in figures)
    command: [element-pose, -v, worker, --order, random, --release-stale, "86400", --qc]
EOF
}

compose() {
  "$COMPOSE" -p "$PROJECT" -f "$REPO/docker/compose.yaml" -f "$WORK/compose.podman.yaml" "$@"
}

container() {  # the container of a service
  podman ps -a --filter "label=io.podman.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | sed -n 1p
}

up() {
  compose up -d >"$WORK/up.log" 2>&1 || { tail -40 "$WORK/up.log"; return 1; }
}

wait_db() {
  local db deadline=$((SECONDS + 300))
  db=$(container db)
  until podman exec "$db" mariadb-admin ping -h 127.0.0.1 -uroot -p"$MYSQL_ROOT_PASSWORD" \
        --silent >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { podman logs "$db" | tail -30; return 1; }
    sleep 2
  done
}

demo() {
  podman exec "$(container jupyter)" element-pose demo --mode load | tee "$WORK/demo.log"
}

jupyter_answers() {
  local deadline=$((SECONDS + 120))
  until curl -fsS "http://127.0.0.1:$JUPYTER_PORT/api/status?token=$JUPYTER_TOKEN" \
        >"$WORK/jupyter.json" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { podman logs "$(container jupyter)" | tail -30; return 1; }
    sleep 2
  done
  say "JupyterLab: $(cat "$WORK/jupyter.json")"
}

worker_did_a_job() {
  # the demo populates up to PoseEstimation; the worker (--qc) renders analysis.PoseQC.
  # A worker whose passes keep failing (3 failed passes, ~1 min) fails the check at once.
  local worker deadline=$((SECONDS + 600)) restarts failed logs
  worker=$(container worker)
  while true; do
    logs=$(podman logs "$worker" 2>&1)  # whole, then grep: no SIGPIPE under pipefail
    grep -q ': done in ' <<<"$logs" && break
    failed=$(grep -c 'worker pass failed' <<<"$logs" || true)
    if [ $SECONDS -ge $deadline ] || [ "$failed" -ge 3 ]; then
      grep -E ' (INFO|WARNING|ERROR) ' <<<"$logs" | tail -8
      say "the worker did no job ($failed failed passes)"
      return 1
    fi
    sleep 5
  done
  grep -E ' (INFO|WARNING|ERROR) ' <<<"$logs" | tail -5
  podman exec "$(container jupyter)" element-pose status | tee "$WORK/status.log"
  restarts=$(podman inspect "$worker" --format '{{.RestartCount}}')
  say "worker restarts: $restarts"
  [ "$restarts" = 0 ]
}

down() {
  [ -n "${COMPOSE:-}" ] && [ -f "$WORK/compose.podman.yaml" ] || return 0
  compose down -v >"$WORK/down.log" 2>&1 || true
  podman volume ls -q --filter "label=io.podman.compose.project=$PROJECT" \
    | xargs -r podman volume rm -f >/dev/null 2>&1 || true
}

give_disk_back() {
  down
  if [ "$KEEP" != 1 ]; then
    buildah rm --all >/dev/null 2>&1 || true  # working containers of an interrupted build
    podman system prune -af >/dev/null 2>&1 || true
    rm -rf "$WORK/rootfs" "$WORK/data"
  fi
}

main() {
  [ "$(id -u)" = 0 ] || { echo "run as root (apt, debootstrap, rootful podman)" >&2; exit 2; }
  mkdir -p "$WORK"
  local free
  free=$(df -BG --output=avail "${CONTAINERS_STORAGE:-/var/lib}" | tail -1 | tr -dc 0-9)
  [ "$free" -ge 50 ] || say "warning: ${free} GB free, a build peaks at ~48 GB"
  step "install tools" install_tools
  configure
  trap give_disk_back EXIT
  step "base images (debootstrap)" python_image
  step "db stand-in image" db_image
  step "build element-pose image" build_image
  stack_env
  step "podman-compose up -d" up
  step "database ready" wait_db
  step "demo --mode load (jupyter)" demo
  step "JupyterLab answers" jupyter_answers
  step "worker processed a job" worker_did_a_job
  step "down" down
  say "summary (image $IMAGE_SIZE):"
  printf '  %s\n' "${SUMMARY[@]}"
  say "OK"
}

main "$@"
