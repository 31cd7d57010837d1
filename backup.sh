#!/usr/bin/env bash
# Back up and restore the services' PostgreSQL databases (pg_dump custom format).
# Run `backup.sh --help` for usage. Works against Docker Compose, Kubernetes or the local stack:
# everything it needs comes from environment variables.
set -euo pipefail
# Dumps hold password hashes and personal data: nothing this script writes is readable by others.
umask 077

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
  BACKUP_PASSPHRASE_FILE  if set, dumps are encrypted at rest with openssl (AES-256-CBC, PBKDF2) using the
                          passphrase in this file, and written as .dump.enc; restore needs the same file

Files are named <database>-<UTC timestamp>.dump (or .dump.enc), each with a .sha256 beside it, created
with umask 077 (owner-only). A restore refuses a file without a matching .sha256. Credentials never
appear on a command line: URLs are split into libpq's PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE.
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

# The connection URL of database $1: <NAME>_DATABASE_URL (driver suffix removed), or empty.
url_of() {
    local database="$1" variable
    variable="$(echo "$database" | tr '[:lower:]-' '[:upper:]_')_DATABASE_URL"
    echo "${!variable:-}" | sed -E 's#^postgres(ql)?\+[A-Za-z0-9_]+://#postgresql://#'
}

percent_decode() {
    local value="${1//+/ }"
    printf '%b' "${value//%/\\x}"
}

# Run "$@" (pg_dump or pg_restore) connected to database $1 through libpq environment variables, so the
# password is never in an argument list (visible in `ps`). Without a URL, PGHOST etc. are used as given
# and the database name is $1.
with_connection() {
    local database="$1" url rest query userinfo hostport pair
    shift
    url="$(url_of "$database")"
    (
        if [[ -n "$url" ]]; then
            rest="${url#*://}"
            query=""
            if [[ "$rest" == *\?* ]]; then
                query="${rest#*\?}"
                rest="${rest%%\?*}"
            fi
            export PGDATABASE
            PGDATABASE="$(percent_decode "${rest##*/}")"
            rest="${rest%%/*}"
            userinfo=""
            hostport="$rest"
            if [[ "$rest" == *@* ]]; then
                userinfo="${rest%@*}"
                hostport="${rest##*@}"
            fi
            export PGHOST PGPORT PGUSER PGPASSWORD
            PGHOST="${hostport%%:*}"
            PGPORT="5432"
            if [[ "$hostport" == *:* ]]; then
                PGPORT="${hostport##*:}"
            fi
            PGUSER="$(percent_decode "${userinfo%%:*}")"
            PGPASSWORD=""
            if [[ "$userinfo" == *:* ]]; then
                PGPASSWORD="$(percent_decode "${userinfo#*:}")"
            fi
            [[ -n "$PGUSER" ]] || unset PGUSER
            [[ -n "$PGPASSWORD" ]] || unset PGPASSWORD
            IFS='&' read -r -a pairs <<<"$query"
            for pair in "${pairs[@]}"; do
                case "${pair%%=*}" in
                    sslmode) export PGSSLMODE="${pair#*=}" ;;
                    sslrootcert) export PGSSLROOTCERT="${pair#*=}" ;;
                    connect_timeout) export PGCONNECT_TIMEOUT="${pair#*=}" ;;
                    *) ;;
                esac
            done
        else
            export PGDATABASE="$database"
        fi
        # Only the database name goes on the command line (pg_restore needs --dbname to connect).
        exec "$@" --dbname="$PGDATABASE"
    )
}

checksum_file() {
    local file="$1"
    (cd "$(dirname "$file")" && sha256sum "$(basename "$file")") >"$file.sha256"
}

verify_checksum() {
    local file="$1"
    [[ -f "$file.sha256" ]] || die "$file has no checksum ($file.sha256): refusing to restore an unverified backup"
    (cd "$(dirname "$file")" && sha256sum --check --status "$(basename "$file").sha256") ||
        die "$file does not match its checksum ($file.sha256)"
}

passphrase_file() {
    local file="${BACKUP_PASSPHRASE_FILE:-}"
    [[ -z "$file" || -r "$file" ]] || die "BACKUP_PASSPHRASE_FILE=$file cannot be read"
    echo "$file"
}

encrypt() {
    openssl enc -aes-256-cbc -pbkdf2 -iter 600000 -salt -pass "file:$1" -in "$2" -out "$3"
}

decrypt() {
    openssl enc -d -aes-256-cbc -pbkdf2 -iter 600000 -pass "file:$1" -in "$2" -out "$3"
}

back_up() {
    local pg_dump pg_restore stamp database target partial passphrase
    pg_dump="$(tool pg_dump)"
    pg_restore="$(tool pg_restore)"
    passphrase="$(passphrase_file)"
    if [[ -n "$passphrase" ]]; then
        command -v openssl >/dev/null 2>&1 || die "BACKUP_PASSPHRASE_FILE is set but openssl is not installed"
    fi
    mkdir -p "$BACKUP_DIR"
    stamp="$(date -u +%Y%m%dT%H%M%SZ)"
    for database in $DATABASES; do
        target="$BACKUP_DIR/$database-$stamp.dump"
        partial="$target.partial"
        log "backing up $database -> $target${passphrase:+.enc}"
        # shellcheck disable=SC2310  # one command or an exec'd subshell: set -e has nothing to stop
        with_connection "$database" "$pg_dump" --format=custom --compress=6 --no-password --file="$partial" || {
            rm -f "$partial"
            die "pg_dump of $database failed"
        }
        # A dump that pg_restore cannot read is no backup.
        "$pg_restore" --list "$partial" >/dev/null || die "the dump of $database is unreadable"
        if [[ -n "$passphrase" ]]; then
            # shellcheck disable=SC2310  # one command or an exec'd subshell: set -e has nothing to stop
            encrypt "$passphrase" "$partial" "$partial.enc" || die "encrypting the dump of $database failed"
            rm -f "$partial"
            mv "$partial.enc" "$target.enc"
            target="$target.enc"
        else
            mv "$partial" "$target"
        fi
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
    expired="$(find "$BACKUP_DIR" -maxdepth 1 -type f \( -name '*.dump' -o -name '*.dump.enc' \) -mmin "+$minutes")"
    while IFS= read -r old; do
        [[ -n "$old" ]] || continue
        log "deleting $old (older than $BACKUP_RETENTION_DAYS days)"
        rm -f "$old" "$old.sha256"
    done <<<"$expired"
}

restore() {
    local file="$1" database="$2" pg_restore source passphrase status=0
    [[ -f "$file" ]] || die "no such backup: $file"
    if [[ -z "$database" ]]; then
        database="$(basename "$file")"
        database="${database%-*}"
    fi
    [[ -n "$database" ]] || die "cannot tell the database from $file; pass --database NAME"
    pg_restore="$(tool pg_restore)"
    verify_checksum "$file"
    source="$file"
    if [[ "$file" == *.enc ]]; then
        passphrase="$(passphrase_file)"
        [[ -n "$passphrase" ]] || die "$file is encrypted: set BACKUP_PASSPHRASE_FILE"
        source="$(mktemp "${TMPDIR:-/tmp}/restore.XXXXXX")"
        # shellcheck disable=SC2064  # expand now: the file name is fixed
        trap "rm -f '$source'" EXIT
        # shellcheck disable=SC2310  # one command or an exec'd subshell: set -e has nothing to stop
        decrypt "$passphrase" "$file" "$source" || die "$file cannot be decrypted with BACKUP_PASSPHRASE_FILE"
    fi
    log "restoring $file into $database"
    # shellcheck disable=SC2310  # one command or an exec'd subshell: set -e has nothing to stop
    with_connection "$database" "$pg_restore" --clean --if-exists --no-owner --no-privileges --single-transaction \
        --exit-on-error --no-password "$source" || status=$?
    [[ "$status" -eq 0 ]] || die "pg_restore into $database failed"
    log "restored $database"
}

list_backups() {
    if [[ -d "$BACKUP_DIR" ]]; then
        find "$BACKUP_DIR" -maxdepth 1 -type f \( -name '*.dump' -o -name '*.dump.enc' \) | sort
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
