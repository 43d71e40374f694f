"""What differs between the SQL backends, kept in one place.

The SQL store is one SQLAlchemy Core implementation; this module holds the few things each dialect does its own
way: column types (JSON text, long text, binary-collated keys, identity), schema creation, the idempotent insert
and the upsert, engine options for the fastest sound bulk path, and the translation of driver errors into
`DatabaseError` with one clear sentence. Dialect names are SQLAlchemy's: sqlite, postgresql, mysql, mariadb, mssql.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import TextClause

from eventlog.errors import DatabaseError, InputError
from eventlog.log.config import DIALECT_NAMES

MYSQL_NAMES = ("mysql", "mariadb")
SCHEMA_NAME = re.compile(r"[A-Za-z0-9_]{1,63}")

_BACKEND_TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB",
                   "mariadb": "MariaDB", "mssql": "SQL Server"}
_EXTRAS = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql", "mssql": "mssql"}


def check_schema_name(name: str) -> str:
    """Return `name` if it is a safe schema name (ASCII letters, digits, underscore; 1 to 63 characters).

    Raises InputError otherwise: schema names are pasted into DDL as identifiers, so nothing else is let through.
    """
    if not isinstance(name, str) or SCHEMA_NAME.fullmatch(name) is None:
        raise InputError(f"schema name {name!r} is not valid: use 1 to 63 ASCII letters, digits or underscores")
    return name


def dialect_by_name(name: str, *, paramstyle: str | None = None) -> Dialect:
    """A SQLAlchemy dialect object for compiling statements without a connection (in `paramstyle` if given)."""
    factories: dict[str, Any] = {"sqlite": sqlite.dialect, "postgresql": postgresql.dialect,
                                 "mysql": mysql.dialect, "mariadb": mysql.mariadb.MariaDBDialect,
                                 "mssql": mssql.dialect}
    if name not in factories:
        raise InputError(f"unknown SQL dialect {name!r}: choose one of {', '.join(DIALECT_NAMES)}")
    dialect: Dialect = factories[name]() if paramstyle is None else factories[name](paramstyle=paramstyle)
    return dialect


def uses_schema(dialect_name: str) -> bool:
    """Whether tables live in a named schema (every backend but SQLite, whose file is the namespace)."""
    return dialect_name != "sqlite"


# --- column types ---------------------------------------------------------------------------------------------

class _PgText(sa.types.UserDefinedType[str]):
    """PostgreSQL TEXT whose parameters go without a cast: the server types them from the column, so a `json`
    column of an earlier release takes them as well."""

    cache_ok = True
    render_bind_cast = False

    def get_col_spec(self, **kw: Any) -> str:
        return "TEXT"


class JsonDocument(sa.types.TypeDecorator[str]):
    """A JSON document held as its canonical text; binds and returns `str`, the store encodes and decodes.

    TEXT on SQLite and PostgreSQL, MySQL/MariaDB LONGTEXT (MySQL's binary JSON would reorder keys and round large
    integers), SQL Server NVARCHAR(MAX): the stored text round-trips byte for byte on all four. PostgreSQL's
    `json` type would keep the text too, but parses every value again on insert, about a tenth of a mirror's
    time, for text the store has written canonically itself; `column::json` (or `::jsonb`) queries inside it.
    Tables made with `json` columns by an earlier release keep them and work the same.
    """

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return _PgText()
        if dialect.name in MYSQL_NAMES:
            return dialect.type_descriptor(mysql.LONGTEXT())
        if dialect.name == "mssql":
            return dialect.type_descriptor(mssql.NVARCHAR(None))
        return dialect.type_descriptor(sa.Text())


def long_text() -> sa.types.TypeEngine[str]:
    """Unbounded Unicode text (natural keys, free text)."""
    return (sa.UnicodeText()
            .with_variant(mssql.NVARCHAR(None), "mssql")
            .with_variant(mysql.LONGTEXT(), *MYSQL_NAMES))


def name_text(length: int) -> sa.types.TypeEngine[str]:
    """Bounded Unicode text for names that are indexed (source system, entity type)."""
    return sa.Unicode(length)


def ascii_key(length: int) -> sa.types.TypeEngine[str]:
    """ASCII text compared byte by byte on every backend: ids, hashes and fixed-width UTC timestamps.

    Binary collation makes `ORDER BY` agree with Python's string order, which reconciliation relies on.
    """
    return (sa.String(length)
            .with_variant(sa.String(length, collation="C"), "postgresql")
            .with_variant(sa.String(length, collation="Latin1_General_BIN2"), "mssql"))


def identity_type() -> sa.types.TypeEngine[int]:
    """64-bit identity; SQLite needs INTEGER for its rowid alias."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def table_options() -> dict[str, Any]:
    """Per-dialect table options: InnoDB, utf8mb4 with binary collation on MySQL/MariaDB; a monotonic rowid on SQLite."""
    return {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


# --- schema creation ------------------------------------------------------------------------------------------

# The key under which processes creating the schema take turns (a PostgreSQL advisory lock, a MySQL named lock).
SCHEMA_LOCK_KEY = 0x6576_6C6F_6731  # "evlog1"


@contextmanager
def schema_creation_lock(conn: sa.Connection, dialect_name: str) -> Iterator[None]:
    """Hold a server-side lock while the schema is created, so that two processes creating it at once take turns
    (each then finds what the other made). PostgreSQL: an advisory lock ending with the transaction; MySQL and
    MariaDB, whose DDL commits on its own: a named lock of the session, released here; SQL Server: an
    application lock of the transaction. SQLite needs none: a second writer waits for the file's lock."""
    if dialect_name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})")
        yield
    elif dialect_name in MYSQL_NAMES:
        conn.exec_driver_sql(f"SELECT GET_LOCK('eventlog.schema.{SCHEMA_LOCK_KEY}', 120)")
        try:
            yield
        finally:
            conn.exec_driver_sql(f"SELECT RELEASE_LOCK('eventlog.schema.{SCHEMA_LOCK_KEY}')")
    elif dialect_name == "mssql":
        conn.exec_driver_sql(f"EXEC sp_getapplock @Resource = N'eventlog.schema.{SCHEMA_LOCK_KEY}', "
                             "@LockMode = N'Exclusive', @LockOwner = N'Transaction', @LockTimeout = 120000")
        yield
    else:
        yield

def create_schema_sql(dialect_name: str, schema: str) -> str:
    """Statement creating `schema` if it is missing (not for SQLite, which has no schemas).

    On MySQL/MariaDB a schema is a database, created with utf8mb4 and binary collation.
    """
    check_schema_name(schema)
    quoted = dialect_by_name(dialect_name).identifier_preparer.quote_identifier(schema)
    if dialect_name == "postgresql":
        return f"CREATE SCHEMA IF NOT EXISTS {quoted}"
    if dialect_name in MYSQL_NAMES:
        return f"CREATE DATABASE IF NOT EXISTS {quoted} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    if dialect_name == "mssql":
        # CREATE SCHEMA must be alone in its batch, hence EXEC.
        return f"IF SCHEMA_ID(N'{schema}') IS NULL EXEC(N'CREATE SCHEMA {quoted}')"
    if dialect_name == "sqlite":
        raise InputError("SQLite has no schemas: its tables live in the database file itself")
    raise InputError(f"unknown SQL dialect {dialect_name!r}")


def create_view_prefix(dialect_name: str) -> str:
    """The idempotent form of CREATE VIEW each dialect has; none of them touches a table."""
    if dialect_name == "sqlite":
        return "CREATE VIEW IF NOT EXISTS"
    if dialect_name == "mssql":
        return "CREATE OR ALTER VIEW"
    return "CREATE OR REPLACE VIEW"


# --- idempotent writes ----------------------------------------------------------------------------------------

def insert_ignore(table: sa.Table, dialect_name: str) -> sa.Executable:
    """INSERT that skips rows whose primary key exists; run with executemany parameter lists.

    Only for rows that are equal whenever their key is equal (content-addressed rows, fixed seed rows). MySQL uses
    ON DUPLICATE KEY UPDATE with a no-op assignment rather than INSERT IGNORE, which would also swallow
    truncation and type errors.
    """
    keys = [column.name for column in table.primary_key.columns]
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
    if dialect_name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)
    if dialect_name in MYSQL_NAMES:
        return mysql.insert(table).on_duplicate_key_update({keys[0]: table.c[keys[0]]})
    if dialect_name == "mssql":
        return _mssql_merge(table, keys, update=[])
    raise InputError(f"unknown SQL dialect {dialect_name!r}")


def upsert(table: sa.Table, dialect_name: str, *, update: Sequence[str]) -> sa.Executable:
    """INSERT, or UPDATE the columns in `update` when the primary key exists; executemany-ready."""
    keys = [column.name for column in table.primary_key.columns]
    if dialect_name == "postgresql":
        pg_stmt = postgresql.insert(table)
        return pg_stmt.on_conflict_do_update(index_elements=keys,
                                             set_={name: pg_stmt.excluded[name] for name in update})
    if dialect_name == "sqlite":
        lite_stmt = sqlite.insert(table)
        return lite_stmt.on_conflict_do_update(index_elements=keys,
                                               set_={name: lite_stmt.excluded[name] for name in update})
    if dialect_name in MYSQL_NAMES:
        my_stmt = mysql.insert(table)
        return my_stmt.on_duplicate_key_update({name: my_stmt.inserted[name] for name in update})
    if dialect_name == "mssql":
        return _mssql_merge(table, keys, update=update)
    raise InputError(f"unknown SQL dialect {dialect_name!r}")


def _mssql_merge(table: sa.Table, keys: Sequence[str], *, update: Sequence[str]) -> TextClause:
    preparer = dialect_by_name("mssql").identifier_preparer
    names = [column.name for column in table.columns if not _is_identity(column)]
    quoted = {name: preparer.quote(name) for name in names}
    source = ", ".join(quoted[name] for name in names)
    on = " AND ".join(f"t.{quoted[name]} = s.{quoted[name]}" for name in keys)
    sql = (f"MERGE INTO {preparer.format_table(table)} WITH (HOLDLOCK) AS t "
           f"USING (VALUES ({', '.join(':' + name for name in names)})) AS s ({source}) ON {on}")
    if update:
        sql += " WHEN MATCHED THEN UPDATE SET " + ", ".join(
            f"t.{quoted[name]} = s.{quoted[name]}" for name in update)
    sql += (f" WHEN NOT MATCHED THEN INSERT ({source}) VALUES ("
            + ", ".join(f"s.{quoted[name]}" for name in names) + ");")
    return sa.text(sql).bindparams(*(sa.bindparam(name, type_=table.c[name].type) for name in names))


def _is_identity(column: sa.Column[Any]) -> bool:
    return column.identity is not None


def bulk_insert(conn: sa.Connection, table: sa.Table, columns: Sequence[str],
                rows: Iterable[Sequence[Any]], *, max_packet: int | None = None) -> None:
    """Insert `rows` (value tuples in the order of `columns`) by the fastest sound path.

    PostgreSQL: COPY FROM STDIN on the same connection and transaction, consuming `rows` lazily so the server
    works while the caller produces them. Elsewhere: the compiled positional INSERT through the driver's
    executemany (pymysql rewrites it into multi-row INSERTs; SQL Server uses fast_executemany), skipping
    SQLAlchemy's per-row parameter processing, which none of these column types needs.

    MySQL/MariaDB through pymysql: every multi-row INSERT stays within the server's max_allowed_packet
    (`max_packet` if given, else read from the server once per connection), and a single row that cannot fit
    is refused with DatabaseError naming its size and the limit before anything of it is sent.
    """
    dialect = conn.dialect
    if dialect.name in MYSQL_NAMES and dialect.driver == "pymysql":
        rows = rows if isinstance(rows, list) else list(rows)
        if rows:
            _mysql_bulk_insert(conn, table, columns, rows,
                               max_packet if max_packet is not None else server_max_packet(conn))
        return
    if dialect.name == "postgresql":
        preparer = dialect.identifier_preparer
        iterator = iter(rows)
        first = next(iterator, None)
        if first is None:
            return
        names = ", ".join(preparer.quote(name) for name in columns)
        types = copy_types(table, tuple(columns), dialect)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {preparer.format_table(table)} ({names}) FROM STDIN"
                         + (" (FORMAT BINARY)" if types else "")) as copy:
            if types:
                copy.set_types(types)
            copy.write_row(first)
            for row in iterator:
                copy.write_row(row)
        return
    rows = rows if isinstance(rows, list) else list(rows)
    if rows:
        conn.exec_driver_sql(positional_insert(table, columns, dialect.name), rows)


_MAX_PACKET_KEY: Final = "eventlog.max_allowed_packet"
# Bytes of a packet beyond the statement text: the command byte, and room to spare.
_PACKET_OVERHEAD: Final = 64


def server_max_packet(conn: sa.Connection) -> int:
    """The MySQL/MariaDB server's max_allowed_packet for this connection, read once per connection.

    The value is kept in the pooled connection's `info`, so a connection taken from the pool again costs no
    query; a server whose limit changes applies it to new connections only, as the server itself does.
    """
    info = conn.connection.info
    known = info.get(_MAX_PACKET_KEY)
    if known is None:
        known = int(conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one())
        info[_MAX_PACKET_KEY] = known
    return int(known)


def _mysql_bulk_insert(conn: sa.Connection, table: sa.Table, columns: Sequence[str],
                       rows: list[Sequence[Any]], max_packet: int) -> None:
    """pymysql's multi-row INSERT, each statement kept within `max_packet` bytes (see `bulk_insert`)."""
    sql = positional_insert(table, columns, conn.dialect.name)
    prefix, _, values = sql.partition(" VALUES ")
    room = max_packet - _PACKET_OVERHEAD - len(prefix) - len(" VALUES ")
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        encoding = cursor.connection.encoding
        for row in rows:
            # A quoted value takes at most four bytes per character (UTF-8, or a two-byte escape) and
            # twice its length for bytes: most rows are plainly small enough and are not rendered twice.
            bound = sum(4 * len(value) + 10 if isinstance(value, str | bytes) else 24 for value in row) + 4 * len(row)
            if bound > room:
                size = len(cursor.mogrify(values, tuple(row)).encode(encoding, "surrogateescape"))
                if size > room:
                    raise _packet_too_large(conn.engine.url, table, columns, row, size, max_packet)
        # pymysql starts a new statement before one would pass max_stmt_length bytes; its own default
        # (about 1 MB) stays where the server allows more.
        cursor.max_stmt_length = min(cursor.max_stmt_length, max_packet - _PACKET_OVERHEAD)
        cursor.executemany(sql, rows)
    finally:
        cursor.close()


def _packet_too_large(url: sa.URL, table: sa.Table, columns: Sequence[str], row: Sequence[Any], size: int,
                      max_packet: int) -> DatabaseError:
    backend = _BACKEND_TITLES.get(url.get_backend_name(), url.get_backend_name())
    return DatabaseError(
        f"A {table.name} row ({columns[0]} {row[0]}) takes {size} bytes in an INSERT, more than the "
        f"max_allowed_packet of {max_packet} bytes of the {backend} server at {_where(url)} "
        f"(SELECT @@max_allowed_packet): raise max_allowed_packet on the server to store it.")


@functools.lru_cache(maxsize=64)
def copy_types(table: sa.Table, columns: tuple[str, ...], dialect: Dialect) -> list[str] | None:
    """PostgreSQL type names for a binary COPY into `columns`, or None where only the text format will do.

    In binary form text goes as its UTF-8 bytes and integers at their column's width, with nothing to escape
    on the client or parse on the server. It takes text, bounded strings and integer columns; a `json` column of
    an earlier schema reads the same bytes as text. Any other type keeps the text format.
    """
    names: list[str] = []
    for name in columns:
        kind = table.c[name].type.dialect_impl(dialect)
        if isinstance(kind, sa.types.TypeDecorator):
            kind = kind.load_dialect_impl(dialect)
        if isinstance(kind, sa.BigInteger):
            names.append("int8")
        elif isinstance(kind, sa.SmallInteger):
            names.append("int2")
        elif isinstance(kind, sa.Integer):
            names.append("int4")
        elif isinstance(kind, sa.String | _PgText):
            names.append("text")
        else:
            return None
    return names


@functools.lru_cache(maxsize=64)
def positional_insert(table: sa.Table, columns: Sequence[str], dialect_name: str) -> str:
    """INSERT INTO `table` (`columns`) VALUES with one positional placeholder per column, for executemany.

    Raises ValueError unless `columns` are columns of `table` in the table's order, the order the INSERT binds.
    """
    # Positional placeholders let executemany take value tuples: no dict per row, no name lookups.
    dialect = dialect_by_name(dialect_name, paramstyle="qmark" if dialect_name in ("sqlite", "mssql") else "format")
    compiled = table.insert().compile(dialect=dialect, column_keys=list(columns))
    if compiled.positiontup != list(columns):
        raise ValueError(f"{list(columns)} are not columns of {table.name} in table order")
    return str(compiled)


def in_values(column: sa.ColumnElement[str], name: str, dialect_name: str) -> sa.ColumnElement[bool]:
    """`column IN (:name...)` for keys bound by `select_in`.

    PostgreSQL gets `= ANY(string_to_array(:name, :name_sep))`: the keys travel as one text, which binds many
    times faster than an array parameter (psycopg quotes an array element by element), and the server plans one
    statement per batch instead of one with a thousand placeholders.
    """
    if dialect_name == "postgresql":
        return column == sa.any_(sa.func.string_to_array(sa.bindparam(name, type_=sa.Text()),
                                                         sa.bindparam(f"{name}_sep", type_=sa.Text())))
    return column.in_(sa.bindparam(name, expanding=True))


LOOKUP_CHUNK = 1000


def select_in(conn: sa.Connection, stmt: sa.Executable, name: str, keys: Sequence[str]) -> Iterator[sa.Row[Any]]:
    """Rows of `stmt`, whose condition is `in_values(..., name, ...)`, for `keys`.

    PostgreSQL takes the keys whole in one query. Elsewhere at most LOOKUP_CHUNK go in one query, which keeps
    every backend under its parameter limit (SQL Server allows 2100 per statement).
    """
    if not keys:
        return
    if conn.dialect.name == "postgresql":
        text, separator = _joined(keys)
        yield from conn.execute(stmt, {name: text, f"{name}_sep": separator})
        return
    for start in range(0, len(keys), LOOKUP_CHUNK):
        yield from conn.execute(stmt, {name: list(keys[start:start + LOOKUP_CHUNK])})


def _joined(keys: Sequence[str]) -> tuple[str, str]:
    """`keys` as one text, and a separator no key contains, for the server's string_to_array to split it at."""
    if len(keys) == 1 and not keys[0]:
        keys = ["", ""]  # string_to_array makes an empty text into no element at all
    text = "\n".join(keys)
    if text.count("\n") == len(keys) - 1:
        return text, "\n"
    # The text holds every character of every key, so one character it lacks is missing from all of them.
    separator = next(character for character in map(chr, range(1, 0x110000))
                     if character not in text and not "\ud800" <= character <= "\udfff")
    return separator.join(keys), separator


# --- engines --------------------------------------------------------------------------------------------------

def engine_options(dialect_name: str) -> dict[str, Any]:
    """create_engine() keyword arguments for the fastest sound bulk path of each backend."""
    if dialect_name == "mssql":
        return {"fast_executemany": True}
    if dialect_name == "postgresql":
        return {"pool_pre_ping": True}
    if dialect_name in MYSQL_NAMES:
        return {"pool_pre_ping": True, "pool_recycle": 3600}
    return {}


# PostgreSQL session settings:
# - psycopg prepares a statement on the server once it has run five times, and the server then settles on one
#   generic plan for it. For `event_id = ANY($1)` that plan is made while the table is still small, a
#   sequential scan, and kept as the table grows: each look-up of a batch then reads the whole table (a mirror
#   in 20,000-event batches fell from 20,000 to under 1,000 events/s by its third batch). Custom plans see the
#   table as it is and use the index.
# - Values large enough to be compressed (payloads of 2 KB and more) are compressed with lz4 rather than the
#   default pglz, which costs the server several times the CPU: a mirror of 2 KB payloads runs about 10% faster,
#   a rebuild about 30%. Needs PostgreSQL 14 or later built with lz4.
_POSTGRES_SETTINGS: Final = ("SET plan_cache_mode = force_custom_plan", "SET default_toast_compression = 'lz4'")


def on_connect(dbapi_connection: Any, dialect_name: str) -> None:
    """Session settings made on every new connection.

    SQLite: 16 KiB pages for a new file (an existing one keeps its page size), write-ahead log (readers do not
    block the writer) with full fsync per commit, and a wait of up to 30 s on a locked file rather than an
    immediate error. Rows of a few KB, as payloads make them, leave half of a 4 KiB page empty, twice the bytes
    to write; six of them share a 16 KiB page, and a rebuild of 2 KB payloads runs about 15% faster than with
    8 KiB pages, 40% faster than with 4 KiB. The write-ahead log is copied into the database file (a
    checkpoint) once it holds 256 MiB rather than SQLite's default 16 MiB, which every mirror batch of 5,000
    payloads passes, so a page changed by several batches is written once; a mirror of 2 KB payloads took 14%
    less time in three alternated runs. The write-ahead log file is cut back to 64 MiB after each checkpoint.

    PostgreSQL: `json` values come back as their text, which the store decodes itself, rather than parsed by
    psycopg; see _POSTGRES_SETTINGS for the rest.
    """
    if dialect_name == "postgresql":
        import psycopg
        from psycopg.types.string import TextLoader

        dbapi_connection.adapters.register_loader("json", TextLoader)
        for setting in _POSTGRES_SETTINGS:
            try:
                dbapi_connection.execute(setting)
            except psycopg.Error:  # an older server, or one built without lz4, keeps its default
                dbapi_connection.rollback()
            else:
                dbapi_connection.commit()
    elif dialect_name == "sqlite":
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA page_size=16384")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA wal_autocheckpoint=16384")
        cursor.execute("PRAGMA journal_size_limit=67108864")
        cursor.close()


# --- errors ---------------------------------------------------------------------------------------------------

_UNREACHABLE = ("connection refused", "could not connect", "can't connect", "timeout expired", "timed out",
                "could not translate host name", "name or service not known", "no route to host",
                "network is unreachable", "server closed the connection", "lost connection",
                "08001", "unable to open database file")
_REASONS = ((("connection refused",), "connection refused"),
            (("could not translate host name", "name or service not known", "nodename nor servname",
              "getaddrinfo failed", "unknown host"), "unknown host name"),
            (("timeout", "timed out"), "timed out"),
            (("no route to host", "network is unreachable"), "no route to host"))
_CREDENTIALS = ("password authentication failed", "access denied for user", "login failed",
                "no password supplied", "authentication failed")
_MISSING_DB = ("unknown database", "cannot open database")


def translate_error(exc: BaseException, url: sa.URL) -> DatabaseError:
    """One clear sentence for a driver error: unreachable server, refused credentials, missing database, or else.

    The sentence names the backend, host, port, user or database as they apply; it never contains the password
    (URL parts are named one by one, and any echo of the password in a driver's text is masked).
    """
    backend = _BACKEND_TITLES.get(url.get_backend_name(), url.get_backend_name())
    where = _where(url)
    orig = getattr(exc, "orig", None) or exc
    text = str(orig)
    lowered = text.lower()
    code = _driver_code(orig)
    if isinstance(exc, ModuleNotFoundError | sa.exc.NoSuchModuleError):
        extra = _EXTRAS.get(url.get_backend_name())
        hint = f" (install exchange-eventlog[{extra}])" if extra else ""
        message = f"The database driver for {url.drivername} is not installed{hint}."
    elif code in (1049,) or code == "3D000" or any(word in lowered for word in _MISSING_DB) or (
            "database" in lowered and "does not exist" in lowered):
        message = f"The database {url.database!r} does not exist on the {backend} server at {where}."
    elif code in (1045, 1044) or code in ("28P01", "28000") or any(word in lowered for word in _CREDENTIALS) or (
            "role" in lowered and "does not exist" in lowered):
        message = f"The {backend} server at {where} refused the credentials of user {url.username!r}."
    elif url.get_backend_name() == "sqlite" and ("database or disk is full" in lowered or (
            "disk i/o error" in lowered and _free_bytes(url.database) < _NEARLY_FULL)):
        message = (f"The SQLite database {url.database!r} cannot be written: its disk is full "
                   f"({_free_bytes(url.database)} bytes free).")
    elif code == 1153 or "max_allowed_packet" in lowered:
        message = (f"The {backend} server at {where} refused a statement larger than its max_allowed_packet "
                   "(SELECT @@max_allowed_packet): raise max_allowed_packet on the server.")
    elif code in (2003, 2005, 2006, 2013) or any(word in lowered for word in _UNREACHABLE):
        if url.get_backend_name() == "sqlite":
            message = f"Cannot open the SQLite database file {url.database!r}."
        elif code in (2006, 2013) and (sent := _statement_bytes(exc)) >= _LARGE_STATEMENT:
            # MariaDB may close the connection on a statement over max_allowed_packet before it can say so.
            message = (f"The {backend} server at {where} closed the connection while a statement of about {sent} "
                       "bytes was sent: it is likely larger than the server's max_allowed_packet "
                       "(SELECT @@max_allowed_packet), which must be raised on the server.")
        else:
            reason = next((said for words, said in _REASONS if any(word in lowered for word in words)), None)
            message = f"Cannot reach the {backend} server at {where}" + (f" ({reason})." if reason else ".")
    else:
        first_line = next((line.strip() for line in text.splitlines() if line.strip()), type(orig).__name__)
        first_line = _without_password(first_line, url).rstrip(".")
        message = f"The {backend} database at {where} failed a statement: {first_line}."
    return DatabaseError(message)


# SQLite reports a write that failed for want of space in its write-ahead log's shared memory as a disk I/O
# error; with less than this free on its disk, a full disk is the cause worth naming.
_NEARLY_FULL: Final = 1 << 20


def _free_bytes(database: str | None) -> int:
    """Free bytes on the disk of an SQLite database file (a large number where that cannot be told)."""
    if not database or database == ":memory:":
        return _NEARLY_FULL
    try:
        return shutil.disk_usage(os.path.dirname(os.path.abspath(database))).free
    except OSError:
        return _NEARLY_FULL


# A statement this large that loses its connection most likely passed the server's packet limit.
_LARGE_STATEMENT: Final = 1 << 20


def _statement_bytes(exc: BaseException) -> int:
    """About how many bytes the failed statement's parameters took (the largest parameter set)."""
    params = getattr(exc, "params", None)
    sets = params if isinstance(params, list) else [params]
    sizes = [sum(len(value) for value in (one.values() if isinstance(one, dict) else one)
                 if isinstance(value, str | bytes))
             for one in sets if isinstance(one, dict | tuple | list)]
    return max(sizes, default=0)


def _where(url: sa.URL) -> str:
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    host = url.host or "localhost"
    return f"{host}:{url.port}" if url.port else host


def _driver_code(orig: BaseException) -> object:
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:
        return sqlstate
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int | str):
        return args[0]
    return None


def _without_password(text: str, url: sa.URL) -> str:
    password = url.password
    return text.replace(str(password), "***") if password else text
