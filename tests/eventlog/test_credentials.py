"""The database password stays out of lake.json: environment, private credentials file, warnings for old lakes.

Real files, real permissions, and a real PostgreSQL server for the full path (it trusts local connections, so a
password is accepted and ignored there; psycopg still reports the password it sent).
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from eventlog import Lake
from eventlog.app.credentials import PASSWORD_ENV, read_credentials, split_password, with_password
from eventlog.errors import InputError, LakeError
from tests.conftest import drop_test_schema, server_url
from tests.factories import page_record

SECRET = "s3cr@t:/pw"
SERVER = "postgresql+psycopg://eventlog@db.internal:5432/lake"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EVENTLOG_DATABASE_URL", PASSWORD_ENV):
        monkeypatch.delenv(name, raising=False)


def with_secret(url: str, password: str = SECRET) -> str:
    return sa.make_url(url).set(password=password).render_as_string(hide_password=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_keeps_the_password_out_of_lake_json_and_in_a_private_file(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    with Lake.init(root, database_url=with_secret(SERVER)) as lake:
        assert lake.password_stored_in == root / "credentials.json"
        assert lake.database_url == with_secret(SERVER)
        assert lake.shown_database_url == "postgresql+psycopg://eventlog:***@db.internal:5432/lake"
        assert lake.warnings() == []
    raw = (root / "lake.json").read_text()
    assert json.loads(raw)["database_url"] == SERVER and "s3cr" not in raw
    assert mode(root / "credentials.json") == 0o600
    assert json.loads((root / "credentials.json").read_text()) == {
        "format": 1, "database_passwords": {SERVER: SECRET}}
    with Lake.open(root) as lake:
        assert lake.database_url == with_secret(SERVER)


def test_init_without_a_password_writes_no_credentials_file(tmp_path: Path) -> None:
    with Lake.init(tmp_path / "lake", database_url=SERVER) as lake:
        assert lake.password_stored_in is None and lake.database_url == SERVER
    with Lake.init(tmp_path / "embedded") as lake:
        assert lake.password_stored_in is None and lake.database_url.startswith("sqlite:///")
    assert not (tmp_path / "lake" / "credentials.json").exists()
    assert not (tmp_path / "embedded" / "credentials.json").exists()


def test_a_credentials_file_at_a_given_path(tmp_path: Path) -> None:
    private = tmp_path / "etc" / "lake-credentials.json"
    private.parent.mkdir()
    with Lake.init(tmp_path / "lake", database_url=with_secret(SERVER), credentials_file=private) as lake:
        assert lake.password_stored_in == private and lake.credentials_path == private
    assert json.loads((tmp_path / "lake" / "lake.json").read_text())["credentials_file"] == str(private)
    assert mode(private) == 0o600 and not (tmp_path / "lake" / "credentials.json").exists()
    with Lake.open(tmp_path / "lake") as lake:
        assert lake.database_url == with_secret(SERVER)


def test_the_environment_gives_the_password_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Lake.init(tmp_path / "lake", database_url=SERVER) as lake:
        monkeypatch.setenv(PASSWORD_ENV, "from-env")
        assert lake.database_url == with_secret(SERVER, "from-env")
        # The environment wins over the file, and a URL's own password over both.
        (tmp_path / "lake" / "credentials.json").write_text(json.dumps({"database_passwords": {SERVER: "file"}}))
        assert lake.database_url == with_secret(SERVER, "from-env")
        monkeypatch.setenv("EVENTLOG_DATABASE_URL", with_secret(SERVER, "own"))
        assert lake.database_url == with_secret(SERVER, "own")
        monkeypatch.delenv(PASSWORD_ENV)
        monkeypatch.setenv("EVENTLOG_DATABASE_URL", SERVER)
        assert lake.database_url == with_secret(SERVER, "file")
        # The file's password is for its own URL only: a URL pointing elsewhere does not receive it.
        monkeypatch.setenv("EVENTLOG_DATABASE_URL", "postgresql+psycopg://eventlog@elsewhere:5432/lake")
        assert lake.database_url == "postgresql+psycopg://eventlog@elsewhere:5432/lake"


def test_sqlite_urls_never_take_a_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    with Lake.init(tmp_path / "lake") as lake:
        assert lake.database_url == f"sqlite:///{(tmp_path / 'lake' / 'lake.db').resolve()}"
        lake.append([page_record("Ada", 1)])
        assert lake.mirror().written == 1


def test_an_old_lake_json_with_a_password_keeps_working_and_warns(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    Lake.init(root).close()
    settings = json.loads((root / "lake.json").read_text())
    (root / "lake.json").write_text(json.dumps({**settings, "database_url": with_secret(SERVER)}))
    with Lake.open(root) as lake:
        assert lake.database_url == with_secret(SERVER)
        assert lake.warnings() == [
            f"{root / 'lake.json'} holds the database password in database_url; remove it from the URL and set "
            f"{PASSWORD_ENV} or keep it in {root / 'credentials.json'} (mode 0600) instead"]


def test_a_credentials_file_others_can_read_is_named_in_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    Lake.init(root, database_url=with_secret(SERVER)).close()
    os.chmod(root / "credentials.json", 0o644)
    with Lake.open(root) as lake:
        assert lake.database_url == with_secret(SERVER)
        assert lake.warnings() == [f"the credentials file {root / 'credentials.json'} can be read by others "
                                   "(mode 0644); make it private with chmod 600"]


def test_a_broken_credentials_file_is_named_without_its_contents(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    Lake.init(root, database_url=SERVER).close()
    (root / "credentials.json").write_text('{"database_passwords": {"x": "hunter2"')
    with Lake.open(root) as lake, pytest.raises(LakeError) as caught:
        _ = lake.database_url
    assert str(caught.value).startswith(f"the credentials file {root / 'credentials.json'} is not a JSON object")
    assert "hunter2" not in str(caught.value)
    (root / "credentials.json").write_text('{"format": 2}')
    with pytest.raises(LakeError, match="has format 2; this version reads up to 1"):
        read_credentials(root / "credentials.json")


def test_a_second_password_is_added_to_the_file_it_shares(tmp_path: Path) -> None:
    shared = tmp_path / "credentials.json"
    Lake.init(tmp_path / "one", database_url=with_secret(SERVER, "one"), credentials_file=shared).close()
    other = "postgresql+psycopg://eventlog@db.internal:5432/other"
    Lake.init(tmp_path / "two", database_url=with_secret(other, "two"), credentials_file=shared).close()
    assert read_credentials(shared).database_passwords == {SERVER: "one", other: "two"} and mode(shared) == 0o600
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_urls_split_and_rejoin() -> None:
    assert split_password(with_secret(SERVER)) == (SERVER, SECRET)
    assert split_password(SERVER) == (SERVER, None)
    assert with_password(SERVER, credentials_path=Path("/nonexistent"), environ={PASSWORD_ENV: "p"}) == \
        with_secret(SERVER, "p")
    with pytest.raises(InputError, match="not a valid SQLAlchemy URL") as caught:
        split_password("no url :hunter2@")
    assert "hunter2" not in str(caught.value)


def test_the_password_reaches_postgresql_on_the_full_path(tmp_path: Path) -> None:
    url = server_url("postgresql")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    root = tmp_path / "lake"
    try:
        with Lake.init(root, database_url=with_secret(url)) as lake:
            assert SECRET not in (root / "lake.json").read_text()
            lake.append([page_record("Ada", 1), page_record("Bea", 1)])
        with Lake.open(root) as lake:
            assert lake.mirror(schema=schema).written == 2
            assert lake.reproject(schema=schema).rows_inserted == 2
            with lake.sql_store(schema=schema) as store, store.begin() as conn:
                # psycopg reports what it sent: the password from the credentials file.
                assert conn.connection.driver_connection.info.password == SECRET  # type: ignore[union-attr]
                assert conn.execute(sa.text(f'SELECT count(*) FROM {schema}."RawExchangeRecord"')).scalar() == 2
    finally:
        drop_test_schema(url, schema)
