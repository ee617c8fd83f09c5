"""Redaction of every URL and DSN form the settings accept, in values and in free text."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.redact import redact, redact_dsn, redact_text, redact_url
from worker.settings import redact_url as old_home

# Passwords with a fixed prefix (so they are never a substring of the text around them).
PASSWORDS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=24,
).map(lambda s: "Zq9" + s)
HOSTS = st.sampled_from(["db.internal", "127.0.0.1", "[::1]", "redis-0.redis"])


def url_forms(password: str, host: str) -> list[str]:
    pw = quote(password, safe="")
    return [
        f"redis://:{pw}@{host}:6379/0",
        f"rediss://default:{pw}@{host}:6380/1",
        f"postgresql://sgr:{pw}@{host}:5432/sgr",
        f"postgres://sgr:{pw}@{host}/sgr?sslmode=require&sslpassword={pw}",
        f"http://{host}:8000/v1?api_key={pw}",
        f"https://user:{pw}@{host}/v1?token={pw}&x=1",
    ]


def dsn_forms(password: str, host: str) -> list[str]:
    bare = "".join(c for c in password if c not in " '\"\\&;,") or "Zq9x"
    quoted = password.replace("\\", "\\\\").replace("'", "\\'")
    # a backslash escapes inside either quote: a value ending in one escapes its closing quote
    dquoted = password.replace("\\", "\\\\").replace('"', "")
    return [
        f"host={host} port=5432 user=sgr password={bare} dbname=sgr",
        f"host={host} password = {bare}",
        f"host={host} password='{quoted}' dbname=sgr",
        f'dbname=sgr password="{dquoted}" host={host}',
    ]


@given(PASSWORDS, HOSTS)
def test_no_url_form_keeps_its_password(password: str, host: str) -> None:
    for url in url_forms(password, host):
        encoded = quote(password, safe="")
        for shown in (redact_url(url), redact(url), redact_text(f"cannot reach {url}: refused")):
            assert encoded not in shown, (url, shown)
            assert "***" in shown


@given(PASSWORDS, HOSTS)
def test_no_dsn_form_keeps_its_password(password: str, host: str) -> None:
    for dsn in dsn_forms(password, host):
        secret = dsn.split("password", 1)[1].lstrip(" =").strip("'\"").split(" ")[0].strip("'\"")
        for shown in (redact_dsn(dsn), redact(dsn), redact_text(f"failed ({dsn})")):
            assert "***" in shown
            if len(secret) >= 4:
                assert secret not in shown, (dsn, shown)
            assert host in shown  # where it is stays readable


def test_quoted_values_with_spaces_and_escapes_are_covered() -> None:
    shown = redact_dsn(r"host=h password='it\'s a secret' user=u")
    assert "secret" not in shown and "it" not in shown.split("password")[1]
    assert shown.endswith("user=u")


def test_harmless_text_is_left_as_it_is() -> None:
    text = "signal=15 passed=3 host=db port=5432 sqlite:///data/hot.sqlite http://h:8000/v1"
    assert redact_text(text) == text
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    "text",
    [
        "password: hunter22xx",
        "PASSWORD=hunter22xx",
        "sslpassword=hunter22xx",
        "api_key=hunter22xx&x=1",
        "Authorization: hunter22xx",
        "redis://:hunter22xx@h",
        "xpostgresql://u:hunter22xx@h/db",
    ],
)
def test_free_text_forms(text: str) -> None:
    assert "hunter22xx" not in redact_text(text)


def test_the_old_import_still_works() -> None:
    assert old_home is redact_url
