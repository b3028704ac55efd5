"""Adapter files: the shipped profiles load, and every mistake is named by file, line and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loadgen.adapters import AdapterError, Format, Protocol, load_adapter, shipped_profiles
from loadgen.adapters.paths import parse_path
from loadgen.errors import ConfigError
from loadgen.types import HistoryMode
from tests.adapters.conftest import write_adapter
from tests.conftest import REPO_ROOT

PROFILES = ["anthropic", "example-amqp", "example-grpc", "ollama", "openai", "rasa-rest"]


def test_the_shipped_profiles_are_found_and_load() -> None:
    assert sorted(shipped_profiles()) == PROFILES
    for name in PROFILES:
        assert load_adapter(name).name == name


def test_what_the_ollama_profile_says() -> None:
    adapter = load_adapter("ollama")
    assert adapter.protocol is Protocol.REST
    assert adapter.transport == "adapter-rest"
    assert adapter.rest is not None
    reply = adapter.rest.reply
    assert (reply.format, reply.text, reply.end and reply.end.field) == (
        Format.NDJSON, parse_path("message.content"), parse_path("done"))  # fmt: skip
    assert adapter.describe() == "ollama (rest, POST /api/chat, ndjson)"
    assert load_adapter("rasa-rest").history.mode is HistoryMode.SERVER


def test_a_profile_can_be_named_by_its_file(tmp_path: Path) -> None:
    path = REPO_ROOT / "scenarios" / "adapters" / "anthropic.yaml"
    assert load_adapter(str(path)).name == "anthropic"


def test_an_unknown_name_lists_the_shipped_profiles() -> None:
    with pytest.raises(ConfigError, match="no shipped profile of that name \\(shipped: anthropic, example-amqp"):
        load_adapter("olama")


GOOD = """
name: mine
protocol: rest
request:
  path: /chat
  body: {q: "{message}"}
reply:
  text: answer
"""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "1: is empty; expected a mapping with `name:`, `protocol:`, `request:` and `reply:`"),
        ("name: [a\n", "2: YAML syntax"),
        (GOOD.replace("protocol: rest", "protocol: soap"), "2: field `protocol`: unknown protocol 'soap'"),
        (GOOD.replace("name: mine", "name: my adapter"), "1: field `name`: 'my adapter' is not a name"),
        (GOOD.replace("name: mine\n", ""), "1: field `name`: is missing"),
        (GOOD.replace("  path: /chat\n", ""), "3: field `request.path`: is missing"),
        (GOOD.replace("/chat", "chat"), "4: field `request.path`: 'chat' must start with /"),
        (GOOD.replace('"{message}"', '"{mesage}"'), "5: field `request.body.q`: unknown placeholder `{mesage}`"),
        (GOOD.replace("text: answer", "text: answer[x]"), "7: field `reply.text`: `answer[x]`: bad step"),
        (GOOD.replace("text: answer", "txt: answer"), "7: field `reply.txt`: unknown key `txt`; did you mean `text`?"),
        (GOOD.replace("text: answer", "text: answer\n  format: xml"), "8: field `reply.format`: unknown format"),
        (
            GOOD.replace("text: answer", "text: answer\n  events: [a]"),
            "8: field `reply.events`: is not used with format json",
        ),
        (
            GOOD.replace("text: answer", "text: a\n  format: ndjson\n  end: {event: stop}"),
            "9: field `reply.end.event`: unknown key `event`",
        ),
        (
            GOOD.replace("text: answer", "text: a\n  format: sse\n  end: {event: stop, data: x}"),
            "9: field `reply.end`: gives 2 end markers",
        ),
        (
            GOOD.replace("text: answer", "text: a\n  error: {field: e, kinds: {x: broken}}"),
            "8: field `reply.error.kinds.x`: unknown failure 'broken'",
        ),
        (GOOD.replace("text: answer", "text: a\n  error: {code: e}"), "8: field `reply.error`: needs `field:`"),
        (
            GOOD.replace("text: answer", "text: a\n  usage: {prompt_tokens: p}"),
            "8: field `reply.usage`: prompt_tokens needs completion_tokens",
        ),
        (GOOD.replace("  body:", "  method: GET\n  body:"), "6: field `request.body`: a GET request has no body"),
        (
            GOOD.replace("  body:", "  headers: {'bad header': x}\n  body:"),
            "5: field `request.headers.bad header`: 'bad header' is not a header name",
        ),
        (GOOD + "history: {mode: sometimes}\n", "8: field `history.mode`: 'sometimes': expected client or server"),
        (GOOD + "history: {item: {r: '{rol}'}}\n", "8: field `history.item.r`: unknown placeholder `{rol}`"),
        (GOOD + "reply_whole: {format: json}\n", "8: field `reply_whole.text`: is missing"),
        (GOOD + "extra: 1\n", "8: field `extra`: unknown key `extra`"),
        (GOOD.replace("reply:\n  text: answer\n", ""), "1: field `reply`: is missing"),
    ],
)
def test_a_mistake_is_named_by_file_line_and_field(tmp_path: Path, text: str, problem: str) -> None:
    path = write_adapter(tmp_path, text)
    with pytest.raises(AdapterError) as info:
        load_adapter(str(path))
    assert f"{path}:{problem}" in str(info.value).splitlines()[0] or any(
        f"{path}:{problem}" in line for line in str(info.value).splitlines()
    ), str(info.value)


def test_every_problem_is_listed_and_a_run_gets_one_line(tmp_path: Path) -> None:
    text = GOOD.replace("protocol: rest", "protocol: rest\nextra: 1").replace("text: answer", "text: '['")
    path = write_adapter(tmp_path, text)
    with pytest.raises(AdapterError) as info:
        load_adapter(str(path))
    assert len(info.value.problems) == 2
    line = info.value.first_line()
    assert "\n" not in line
    assert line.endswith(f"(and 1 more: run `loadgen adapters check {path}`)")


AMQP = """
name: queue-bot
protocol: amqp
request:
  routing_key: bot.requests
  body: {text: "{message}"}
reply:
  text: delta
  end: {field: last}
"""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (AMQP.replace("  end: {field: last}\n", ""), "6: field `reply.end`: is missing; chunked replies need"),
        (AMQP.replace("  routing_key: bot.requests\n", ""), "3: field `request.routing_key`: is missing"),
        (AMQP.replace("{field: last}", "{event: last}"), "8: field `reply.end.event`: unknown key `event`"),
        (AMQP.replace("  text: delta", "  format: sse\n  text: delta"), "7: field `reply.format`: unknown key"),
        (AMQP + "reply_whole: {text: x}\n", "9: field `reply_whole`: is for rest adapters only"),
    ],
)
def test_amqp_adapter_mistakes(tmp_path: Path, text: str, problem: str) -> None:
    path = write_adapter(tmp_path, text)
    with pytest.raises(AdapterError) as info:
        load_adapter(str(path))
    assert any(f"{path}:{problem}" in line for line in str(info.value).splitlines()), str(info.value)


def test_a_single_reply_needs_no_end_marker(tmp_path: Path) -> None:
    text = AMQP.replace("  end: {field: last}\n", "  chunked: false\n")
    adapter = load_adapter(str(write_adapter(tmp_path, text)))
    assert adapter.amqp is not None and not adapter.amqp.reply.chunked


def test_a_merge_key_can_be_overridden(tmp_path: Path) -> None:
    merged = '  body: &b {q: "{message}", n: 1}\n  body_whole: {<<: *b, n: null}'
    text = GOOD.replace('  body: {q: "{message}"}', merged)
    adapter = load_adapter(str(write_adapter(tmp_path, text)))
    assert adapter.rest is not None and adapter.rest.body_whole is not None
    assert adapter.rest.body_whole.render({"message": "hi"}) == {"q": "hi"}


GRPC = """
name: grpc-bot
protocol: grpc
request:
  proto: chat.proto
  method: demo.Bot/Talk
  body: {text: "{message}", turns: "{previous}"}
history:
  item: {who: "{role}", said: "{content}"}
reply:
  text: answer
  usage: {prompt_tokens: counts.prompt, completion_tokens: counts.output}
"""
PROTO = """
syntax = "proto3";
package demo;
service Bot { rpc Talk(Ask) returns (stream Answer); rpc Upload(stream Ask) returns (Answer); }
message Turn { string who = 1; string said = 2; }
message Ask { string text = 1; repeated Turn turns = 2; }
message Counts { int32 prompt = 1; int32 output = 2; }
message Answer { string answer = 1; Counts counts = 2; bool done = 3; }
"""


def _grpc_problems(tmp_path: Path, adapter: str, proto: str = PROTO) -> list[str]:
    (tmp_path / "chat.proto").write_text(proto.lstrip())
    path = write_adapter(tmp_path, adapter)
    try:
        load_adapter(str(path))
    except AdapterError as exc:
        return [p.format().replace(f"{path}:", "") for p in exc.problems]
    return []


def test_a_grpc_adapter_is_checked_against_its_proto(tmp_path: Path) -> None:
    assert _grpc_problems(tmp_path, GRPC) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            ("demo.Bot/Talk", "demo.Bot/Walk"),
            "5: field `request.method`: demo.Bot has no method 'Walk' (its methods: Talk, Upload)",
        ),
        (
            ("demo.Bot/Talk", "demo.Robot/Talk"),
            "5: field `request.method`: no service 'demo.Robot' (services: demo.Bot)",
        ),
        (("demo.Bot/Talk", "demo.Bot/Upload"), "5: field `request.method`: demo.Bot/Upload streams requests"),
        (
            ('text: "{message}"', 'txt: "{message}"'),
            '6: field `request.body`: does not fit demo.Ask: Message type "demo.Ask" has no field named "txt"',
        ),
        (('said: "{content}"', 'say: "{content}"'), "6: field `request.body`: does not fit demo.Ask"),
        (("text: answer", "text: answers"), "10: field `reply.text`: `answers`: demo.Answer has no field `answers`"),
        (("text: answer", "text: done"), "10: field `reply.text`: `done` is not a string field of demo.Answer"),
        (("counts.output}", "counts}"), "11: field `reply.usage.completion_tokens`: `counts` is not an integer"),
        (("proto: chat.proto", "proto: nowhere.proto"), "4: field `request.proto`: no such file"),
        (("proto: chat.proto", "reflection: true\n  proto: chat.proto"), "3: field `request`: give either"),
    ],
)
def test_grpc_mistakes_are_found_at_start(tmp_path: Path, change: tuple[str, str], problem: str) -> None:
    problems = _grpc_problems(tmp_path, GRPC.replace(*change))
    assert any(problem in p for p in problems), problems


def test_a_proto_that_does_not_compile_says_protoc_s_words(tmp_path: Path) -> None:
    problems = _grpc_problems(tmp_path, GRPC, PROTO.replace("Counts counts = 2;", "Countz counts = 2;"))
    assert len(problems) == 1
    assert problems[0].startswith("4: field `request.proto`: protoc cannot compile chat.proto: chat.proto:7:")
    assert '"Countz" is not defined' in problems[0]


def test_a_reflection_adapter_is_checked_when_the_server_answers(tmp_path: Path) -> None:
    text = GRPC.replace("proto: chat.proto", "reflection: true")
    assert _grpc_problems(tmp_path, text) == []


def _check(*refs: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loadgen", "adapters", "check", *refs], capture_output=True,
                          text=True, cwd=cwd, timeout=120, check=False)  # fmt: skip


def test_cli_check_says_ok_or_lists_problems(tmp_path: Path) -> None:
    good = _check("ollama", "example-grpc")
    assert good.returncode == 0, good.stderr
    assert good.stdout.splitlines() == [
        "ok: ollama (rest, POST /api/chat, ndjson)",
        "ok: example-grpc (grpc, example.assistant.v1.Assistant/AskStream from example_chat.proto)",
    ]
    bad = write_adapter(tmp_path, GOOD.replace("/chat", "chat").replace("text: answer", "txt: answer"))
    result = _check(str(bad), "openai")
    assert result.returncode == 2
    assert result.stdout == "ok: openai (rest, POST /v1/chat/completions, sse)\n"
    assert result.stderr.splitlines() == [
        f"{bad}:4: field `request.path`: 'chat' must start with /",
        f"{bad}:6: field `reply.text`: is missing; expected the path to the reply's text",
        f"{bad}:7: field `reply.txt`: unknown key `txt`; did you mean `text`? expected one of format, text, join, "
        "events, end, error, usage, tokens",
        "3 problems in adapter files",
    ]
    assert "Traceback" not in result.stderr


def test_cli_list_names_the_profiles() -> None:
    result = subprocess.run([sys.executable, "-m", "loadgen", "adapters", "list"], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == PROFILES


def test_without_grpcio_tools_a_proto_adapter_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from loadgen.adapters import protos

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "grpc_tools" else real(name, *a))
    protos._compile.cache_clear()
    problems = _grpc_problems(tmp_path, GRPC)
    protos._compile.cache_clear()
    assert problems == ["4: field `request.proto`: compiling chat.proto needs grpcio-tools: pip install "
                        "'chat-loadgen[adapters]' (grpcio-tools)"]  # fmt: skip
