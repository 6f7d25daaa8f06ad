#!/bin/bash
# The official mysql entrypoint's contract, for MariaDB: on first start the data directory is
# initialised, root gets MYSQL_ROOT_PASSWORD (locally and from any host) and MYSQL_DATABASE is
# created; later starts keep the data as it is.
set -Eeuo pipefail

datadir=/var/lib/mysql
socket=/run/mysqld/mysqld.sock

# Options alone mean "mysqld with these options".
if [ "${1:0:1}" = '-' ]; then
    set -- mysqld "$@"
fi
if [ "$1" != mysqld ] && [ "$1" != mariadbd ]; then
    exec "$@"
fi
shift

# MySQL 8 options MariaDB does not know would stop it; each is dropped with a note.
options=()
for option in "$@"; do
    case "$option" in
        --default-authentication-plugin=* | --default_authentication_plugin=*)
            echo "Note: MariaDB has no ${option%%=*}; ignoring $option." ;;
        *) options+=("$option") ;;
    esac
done

sql_string() {  # a value as an SQL string literal
    local value="${1//\\/\\\\}"
    printf "'%s'" "${value//\'/\\\'}"
}

mkdir -p "$datadir" /run/mysqld
chown mysql:mysql "$datadir" /run/mysqld

if [ ! -d "$datadir/mysql" ]; then
    if [ -z "${MYSQL_ROOT_PASSWORD:-}" ]; then
        echo "Database is uninitialized and MYSQL_ROOT_PASSWORD is not set." >&2
        exit 1
    fi
    echo "Initializing database files ..."
    mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
        --auth-root-authentication-method=normal --skip-name-resolve >/dev/null
    mariadbd --skip-networking --socket="$socket" "${options[@]}" &
    pid=$!
    for _ in $(seq 120); do
        mariadb --protocol=socket --socket="$socket" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break
        kill -0 "$pid" 2>/dev/null || { echo "MariaDB did not start for initialisation." >&2; exit 1; }
        sleep 0.25
    done
    password="$(sql_string "$MYSQL_ROOT_PASSWORD")"
    {
        # Only root@localhost is left of what mariadb-install-db made for this container's name.
        echo "DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');"
        echo "DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';"
        echo "FLUSH PRIVILEGES;"
        echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $password;"
        echo "CREATE USER 'root'@'%' IDENTIFIED BY $password;"
        echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
        if [ -n "${MYSQL_DATABASE:-}" ]; then
            echo "CREATE DATABASE IF NOT EXISTS \`${MYSQL_DATABASE//\`/\`\`}\`;"
        fi
    } | mariadb --protocol=socket --socket="$socket" -uroot
    kill "$pid"
    wait "$pid"
    echo "MariaDB init process done. Ready for start up."
fi

exec mariadbd "${options[@]}"
