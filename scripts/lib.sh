# Shared by scripts/start and scripts/test: install what is missing, idempotently.
# Debian or Ubuntu, as root (or with passwordless sudo).

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_UPDATED=0

# ensure_apt_packages COMMAND:PACKAGE ...  installs PACKAGE where COMMAND is missing.
ensure_apt_packages() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    apt_install "${missing[@]}"
}

# ensure_apt_installed PACKAGE ...  installs the packages dpkg does not have yet (those with
# no command to look for, such as fonts).
ensure_apt_installed() {
    local missing=() package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    apt_install "${missing[@]}"
}

# apt_install PACKAGE ...  installs the packages (apt-get update once per run).
apt_install() {
    echo "Installing $* with apt-get ..."
    if [ "$APT_UPDATED" -eq 0 ]; then
        $SUDO apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "$@" >/dev/null
}

# ensure_venv LOCK_FILE  creates .venv and installs a lock file into it: every package pinned,
# each file checked against its hash (the lock files are compiled from requirements*.in).
ensure_venv() {
    local python="${PYTHON:-python3}"
    if [ ! -x .venv/bin/python ]; then
        "$python" -m venv .venv
    fi
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r "$1"
}

# redis_up PORT [OPTION ...]  starts a redis-server on 127.0.0.1:PORT unless one answers
# there; options go to redis-server (e.g. --save "" for a throwaway one).
redis_up() {
    local port="$1" dir="$PWD/var/redis-$1"
    shift
    if redis-cli -p "$port" ping >/dev/null 2>&1; then return 0; fi
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --dir "$dir" \
        --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" "$@" >/dev/null
    for _ in $(seq 50); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "redis-server did not start on port $port; see $dir/redis.log" >&2
    return 1
}

# docker_up  starts dockerd in the background unless `docker info` answers; it logs to var/docker/.
docker_up() {
    local dir="$PWD/var/docker" pid
    if docker info >/dev/null 2>&1; then return 0; fi
    mkdir -p "$dir"
    echo "Starting dockerd (log: $dir/dockerd.log) ..."
    $SUDO setsid nohup dockerd >>"$dir/dockerd.log" 2>&1 </dev/null &
    pid=$!
    for _ in $(seq 120); do
        docker info >/dev/null 2>&1 && return 0
        [ -d "/proc/$pid" ] || break
        sleep 0.5
    done
    echo "dockerd did not answer \`docker info\`; see $dir/dockerd.log:" >&2
    tail -n 20 "$dir/dockerd.log" >&2
    return 1
}
