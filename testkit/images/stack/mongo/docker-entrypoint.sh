#!/bin/bash
# Stand-in for the official mongo entrypoint: the data directories go to the mongodb user, then
# the stand-in mongod runs as that user with the arguments it was given.
set -Eeuo pipefail

# Options alone mean "mongod with these options".
if [ "${1:0:1}" = '-' ]; then
    set -- mongod "$@"
fi

if [ "$1" = mongod ] && [ "$(id -u)" = 0 ]; then
    mkdir -p /data/db /data/configdb
    chown -R mongodb:mongodb /data/db /data/configdb
    exec setpriv --reuid=mongodb --regid=mongodb --init-groups "${BASH_SOURCE[0]}" "$@"
fi

exec "$@"
