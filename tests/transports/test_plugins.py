"""Where transports come from (loadgen.transports.plugins): built-ins, entry points of installed packages, and
``package.module:Class``; each refusal one line; ``loadgen transports`` lists them.

A "package" here is a folder on ``sys.path`` holding a module and a ``*.dist-info`` with ``entry_points.txt``:
what ``pip install`` leaves, read by importlib.metadata as it reads any installed distribution.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadgen.cli import main as loadgen_main
from loadgen.errors import ConfigError
from loadgen.transports import API_VERSION, make_transport, plugins, transport_class
from loadgen.transports.base import TransportConfig
from loadgen.transports.rest import RestTransport
from loadgen.types import ChatMessage, ChatRequest

MODULE = """
from typing import ClassVar
from loadgen.transports.base import Transport
from loadgen.types import Reply

class FakeTransport(Transport):
    name: ClassVar[str] = "fake"
    schemes: ClassVar[tuple[str, ...]] = ("fake",)

    def _send(self, request, turn_timeout):
        return Reply(text="hi", t_sent=0.0, t_done=1.0)

class AnyTarget(FakeTransport):
    schemes = ()

class Future(FakeTransport):
    api_version = 2

class Abstract(Transport):
    name = "abstract"
    schemes = ()

class NotATransport:
    pass
"""


def _install(folder: Path, dist: str, version: str, entry_points: dict[str, str]) -> None:
    """A distribution as pip leaves it: its metadata, and its entry points under our group."""
    info = folder / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{name} = {value}" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{plugins.ENTRY_POINT_GROUP}]\n{lines}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path with the module ``fakeplug`` in it; entry points are read afresh around the test."""
    (tmp_path / "fakeplug.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.forget()
    yield tmp_path
    plugins.forget()


def test_an_entry_point_is_found_by_name(site: Path) -> None:
    _install(site, "fake-dist", "1.2.3", {"fake": "fakeplug:FakeTransport"})
    plugins.forget()
    assert plugins.registered_names() == ["amqp", "fake", "grpc", "rest"]
    assert plugins.check_name("fake") == "fake"
    cls = transport_class("fake")
    assert cls.__name__ == "FakeTransport" and cls.__module__ == "fakeplug"
    transport = make_transport("fake", TransportConfig(target="fake://somewhere"))
    assert transport.send(_request()).text == "hi"
    with pytest.raises(ConfigError, match="does not suit transport 'fake': expected a URL starting with fake://"):
        make_transport("fake", TransportConfig(target="http://127.0.0.1:1"))
    row = next(r for r in plugins.describe() if r.name == "fake")
    assert (row.module, row.source, row.version, row.schemes, row.api_version, row.error) == (
        "fakeplug:FakeTransport", "fake-dist", "1.2.3", ("fake",), 1, None
    )  # fmt: skip


def test_a_builtin_name_cannot_be_taken_and_the_first_package_wins(site: Path) -> None:
    _install(site, "greedy", "0.1", {"rest": "fakeplug:FakeTransport", "fake": "fakeplug:FakeTransport"})
    _install(site, "later", "0.2", {"fake": "fakeplug:AnyTarget"})
    plugins.forget()
    assert transport_class("rest") is RestTransport
    errors = {(r.name, r.source): r.error for r in plugins.describe() if r.error}
    assert errors == {
        ("rest", "greedy"): "ignored: the name 'rest' is taken by a built-in",
        ("fake", "later"): "ignored: the name 'fake' is taken by another package",
    }
    assert transport_class("fake").__name__ == "FakeTransport"


def test_a_plugin_that_cannot_load_is_one_line_and_listed(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (site / "needsdep.py").write_text("import nonexistent_dependency_zz\n")
    _install(site, "broken-dist", "0.1", {"broken": "needsdep:Transport"})
    plugins.forget()
    with pytest.raises(ConfigError) as info:
        transport_class("broken")
    assert str(info.value) == (
        "transport 'broken' (needsdep:Transport) cannot be loaded: it needs 'nonexistent_dependency_zz', "
        "which is not installed"
    )
    assert loadgen_main(["transports"]) == 1
    out = capsys.readouterr().out
    assert "broken  broken-dist" in out and "cannot load: transport 'broken'" in out


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fakeplug:FakeTransport", None),
        ("fakeplug:AnyTarget", None),
        ("nope_zz.mod:Thing", "--transport nope_zz.mod:Thing: no module named 'nope_zz' on this Python's path "
         "(is the package installed?)"),
        ("fakeplug:Nope", "--transport fakeplug:Nope: fakeplug has no 'Nope'"),
        ("fakeplug:NotATransport", "transport fakeplug:NotATransport is not a subclass of "
         "loadgen.transports.base.Transport"),
        ("fakeplug:Abstract", "transport fakeplug:Abstract is abstract: it does not implement _send"),
        ("fakeplug:Future", "transport fakeplug:Future was written for transport API version 2; chat-loadgen 0.1.0 "
         "speaks version 1: install a chat-loadgen that supports it"),
        ("fake plug:X", "--transport 'fake plug:X': a transport class is named package.module:Class"),
    ],
)  # fmt: skip
def test_a_class_named_package_module_class(site: Path, spec: str, message: str | None) -> None:
    if message is None:
        assert transport_class(spec).__name__ == spec.split(":")[1]
        return
    with pytest.raises(ConfigError) as info:
        transport_class(spec)
    assert str(info.value) == message


def test_a_class_without_schemes_takes_any_target(site: Path) -> None:
    transport = make_transport("fakeplug:AnyTarget", TransportConfig(target="unix:///run/chat.sock"))
    assert transport.send(_request()).text == "hi"


def test_an_unknown_name_lists_the_choices(site: Path) -> None:
    with pytest.raises(ConfigError) as info:
        plugins.check_name("bogus")
    assert str(info.value) == (
        "--transport 'bogus': unknown transport; installed: amqp, grpc, rest (`loadgen transports` lists them), "
        "or give package.module:Class"
    )


def test_the_api_version_is_one() -> None:
    assert API_VERSION == 1
    assert RestTransport.api_version == 1


def test_loadgen_transports_lists_the_builtins(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert loadgen_main(["transports"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "NAME  FROM                     VERSION  SCHEMES      MODULE",
        "amqp  chat-loadgen (built-in)  0.1.0    amqp, amqps  loadgen.transports.amqp:AmqpTransport",
        "grpc  chat-loadgen (built-in)  0.1.0    grpc, grpcs  loadgen.transports.grpc:GrpcTransport",
        "rest  chat-loadgen (built-in)  0.1.0    http, https  loadgen.transports.rest:RestTransport",
        "transport API version 1",
    ]
    assert loadgen_main(["transports", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[2] == {
        "name": "rest", "module": "loadgen.transports.rest:RestTransport", "source": "chat-loadgen (built-in)",
        "version": "0.1.0", "schemes": ["http", "https"], "api_version": 1, "error": None,
    }  # fmt: skip


def _request() -> ChatRequest:
    return ChatRequest(messages=(ChatMessage("user", "hi"),))
