#!/usr/bin/env bash
# Back up and restore the services' PostgreSQL databases (pg_dump custom format).
# Run `backup.sh --help` for usage. Works against Docker Compose, Kubernetes or the local stack:
# everything it needs comes from environment variables.
set -euo pipefail

readonly PROGRAM="${0##*/}"
DATABASES="${BACKUP_DATABASES:-users rooms reservations}"
BACKUP_DIR="${BACKUP_DIR:-./backups}"
BACKUP_RETENTION_DAYS="${BACKUP_RETENTION_DAYS:-7}"

usage() {
    cat <<EOF
Usage:
  $PROGRAM                        back up every database, then delete backups older than the retention
  $PROGRAM --restore FILE [--database NAME]
                                  restore FILE into its database (NAME defaults to the file name's prefix,
                                  e.g. users-20270301T020000Z.dump -> users); existing objects are replaced
  $PROGRAM --list                 list the backups in BACKUP_DIR
  $PROGRAM --help                 show this text

Environment:
  BACKUP_DIR              where backups are written            (default: ./backups)
  BACKUP_RETENTION_DAYS   backups older than this are deleted  (default: 7; 0 keeps everything)
  BACKUP_DATABASES        databases to back up                 (default: "users rooms reservations")
  <NAME>_DATABASE_URL     connection URL of database NAME, e.g. USERS_DATABASE_URL=postgresql://u:p@host:5432/users
                          (SQLAlchemy URLs such as postgresql+psycopg://... are accepted too)
  PGHOST PGPORT PGUSER PGPASSWORD
                          used for a database without its own URL; the database name is NAME
  PG_BIN                  directory holding pg_dump and pg_restore (default: found on PATH)

Files are named <database>-<UTC timestamp>.dump, each with a .sha256 beside it.
EOF
}

die() {
    echo "$PROGRAM: $*" >&2
    exit 1
}

log() {
    echo "$PROGRAM: $*"
}

tool() {
    local name="$1"
    if [[ -n "${PG_BIN:-}" ]]; then
        [[ -x "$PG_BIN/$name" ]] || die "$name not found in PG_BIN=$PG_BIN"
        echo "$PG_BIN/$name"
    else
        command -v "$name" >/dev/null 2>&1 || die "$name not found on PATH (install the PostgreSQL client or set PG_BIN)"
        command -v "$name"
    fi
}

# The connection string of database $1: <NAME>_DATABASE_URL (driver suffix removed) or just its name,
# in which case libpq takes host, port, user and password from PGHOST, PGPORT, PGUSER, PGPASSWORD.
connection_of() {
    local database="$1" variable url
    variable="$(echo "$database" | tr '[:lower:]-' '[:upper:]_')_DATABASE_URL"
    url="${!variable:-}"
    if [[ -n "$url" ]]; then
        echo "$url" | sed -E 's#^postgres(ql)?\+[A-Za-z0-9_]+://#postgresql://#'
    else
        echo "$database"
    fi
}

checksum_file() {
    local file="$1"
    (cd "$(dirname "$file")" && sha256sum "$(basename "$file")") >"$file.sha256"
}

verify_checksum() {
    local file="$1"
    if [[ -f "$file.sha256" ]]; then
        (cd "$(dirname "$file")" && sha256sum --check --status "$(basename "$file").sha256") ||
            die "$file does not match its checksum ($file.sha256)"
    fi
}

back_up() {
    local pg_dump pg_restore stamp database target partial connection
    pg_dump="$(tool pg_dump)"
    pg_restore="$(tool pg_restore)"
    mkdir -p "$BACKUP_DIR"
    stamp="$(date -u +%Y%m%dT%H%M%SZ)"
    for database in $DATABASES; do
        target="$BACKUP_DIR/$database-$stamp.dump"
        partial="$target.partial"
        connection="$(connection_of "$database")"
        log "backing up $database -> $target"
        "$pg_dump" --format=custom --compress=6 --no-password --dbname="$connection" --file="$partial" || {
            rm -f "$partial"
            die "pg_dump of $database failed"
        }
        # A dump that pg_restore cannot read is no backup.
        "$pg_restore" --list "$partial" >/dev/null || die "the dump of $database is unreadable"
        mv "$partial" "$target"
        checksum_file "$target"
    done
    prune
}

prune() {
    [[ "$BACKUP_RETENTION_DAYS" =~ ^[0-9]+$ ]] || die "BACKUP_RETENTION_DAYS must be a whole number of days"
    if [[ "$BACKUP_RETENTION_DAYS" -eq 0 ]]; then
        return
    fi
    local minutes=$((BACKUP_RETENTION_DAYS * 24 * 60)) expired old
    expired="$(find "$BACKUP_DIR" -maxdepth 1 -type f -name '*.dump' -mmin "+$minutes")"
    while IFS= read -r old; do
        [[ -n "$old" ]] || continue
        log "deleting $old (older than $BACKUP_RETENTION_DAYS days)"
        rm -f "$old" "$old.sha256"
    done <<<"$expired"
}

restore() {
    local file="$1" database="$2" pg_restore connection
    [[ -f "$file" ]] || die "no such backup: $file"
    if [[ -z "$database" ]]; then
        database="$(basename "$file")"
        database="${database%-*}"
    fi
    [[ -n "$database" ]] || die "cannot tell the database from $file; pass --database NAME"
    pg_restore="$(tool pg_restore)"
    verify_checksum "$file"
    connection="$(connection_of "$database")"
    log "restoring $file into $database"
    "$pg_restore" --clean --if-exists --no-owner --no-privileges --single-transaction --exit-on-error \
        --no-password --dbname="$connection" "$file"
    log "restored $database"
}

list_backups() {
    if [[ -d "$BACKUP_DIR" ]]; then
        find "$BACKUP_DIR" -maxdepth 1 -type f -name '*.dump' | sort
    fi
}

main() {
    local mode=backup file="" database=""
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --restore)
                [[ $# -ge 2 ]] || die "--restore needs a FILE"
                mode=restore
                file="$2"
                shift 2
                ;;
            --database)
                [[ $# -ge 2 ]] || die "--database needs a NAME"
                database="$2"
                shift 2
                ;;
            --list)
                mode=list
                shift
                ;;
            -h | --help)
                usage
                return 0
                ;;
            *)
                usage >&2
                die "unknown argument: $1"
                ;;
        esac
    done
    case "$mode" in
        backup) back_up ;;
        restore) restore "$file" "$database" ;;
        list) list_backups ;;
        *) die "unknown mode: $mode" ;;
    esac
}

main "$@"
