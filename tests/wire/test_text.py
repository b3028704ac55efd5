"""Text safe to print: URLs without their password, and the password put back by whoever gave it."""

from __future__ import annotations

import pytest

from loadgen.wire.text import redact_url, with_password_of, without_password


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/?queue=q", "amqp://guest@127.0.0.1:5672/?queue=q"),
        ("amqp://u:p%40ss@h/vh", "amqp://u@h/vh"),
        ("amqp://only-user@h/", "amqp://only-user@h/"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_without_password(url: str, shown: str) -> None:
    assert without_password(url) == shown
    assert ":" not in shown.split("://", 1)[1].split("@")[0] or "@" not in shown


def test_the_password_is_put_back_from_the_url_the_server_was_given() -> None:
    given = "amqp://loader:s3cret@broker.example:5672/"
    printed = "amqp://loader@broker.example:5672/?queue=loadgen.chat.requests.ab12"
    assert (
        with_password_of(printed, given) == "amqp://loader:s3cret@broker.example:5672/?queue=loadgen.chat.requests.ab12"
    )
    assert with_password_of(printed, "amqp://other:x@broker.example:5672/") == printed  # another user
    assert with_password_of(printed, "amqp://loader:x@elsewhere:5672/") == printed  # another host
    assert with_password_of("amqp://loader:already@broker.example:5672/", given).endswith(
        ":already@broker.example:5672/"
    )
    assert with_password_of("http://127.0.0.1:1", given) == "http://127.0.0.1:1"


def test_redact_url_still_hides_the_password() -> None:
    assert redact_url("amqp://u:p@h/") == "amqp://u:***@h/"
