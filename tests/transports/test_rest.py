"""RestTransport against real HTTP servers on 127.0.0.1 (see conftest.ScriptServer), plus httpx.MockTransport
for the pieces a real server cannot easily provoke."""

from __future__ import annotations

import inspect
import itertools
import json
import logging
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadgen.errors import (
    ConfigError,
    ConnectError,
    Overloaded,
    ProtocolError,
    ServerError,
    TransportError,
    TurnTimeout,
)
from loadgen.transports import make_transport
from loadgen.transports.base import TransportConfig
from loadgen.transports.deadline import DeadlineBackend
from loadgen.transports.rest import HTTPX_ERRORS, RestTransport, chat_url, map_httpx_error, shared_ssl_context
from loadgen.types import ChatMessage, ChatRequest, Usage
from tests.conftest import REPO_ROOT

# Timing tolerances: these machines are shared and noisy, so late is allowed more slack than early.
EARLY = 0.005
LATE = 0.040
API_KEY = "sk-test-0123456789abcdef"

# -- wire builders --------------------------------------------------------------------------------------------


def head(status: int = 200, content_type: str = "text/event-stream", reason: str = "OK") -> bytes:
    """Response headers for a chunked body."""
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()


def piece(data: bytes | str) -> bytes:
    """One chunk of a chunked body."""
    raw = data.encode() if isinstance(data, str) else data
    return f"{len(raw):x}\r\n".encode() + raw + b"\r\n"


END = b"0\r\n\r\n"


def sse(payload: dict[str, Any] | str, event: str | None = None) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return piece((f"event: {event}\n" if event else "") + f"data: {data}\n\n")


def delta(content: str | None = None, *, role: str | None = None, finish: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if role is not None:
        d["role"] = role
    if content is not None:
        d["content"] = content
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": d, "finish_reason": finish}],
    }


def usage_chunk(completion_tokens: int, prompt_tokens: int = 5) -> dict[str, Any]:
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    return {"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": usage}


DONE = sse("[DONE]")


def whole(status: int, body: str, content_type: str = "application/json", reason: str = "X") -> bytes:
    """A complete response with a Content-Length body."""
    raw = body.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(raw)}\r\n\r\n".encode()
        + raw
    )


def completion(content: str, completion_tokens: int | None) -> str:
    obj: dict[str, Any] = {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }
    if completion_tokens is not None:
        obj["usage"] = {"prompt_tokens": 4, "completion_tokens": completion_tokens}
    return json.dumps(obj)


def normal_stream(words: list[str], ttft: float = 0.0, gap: float = 0.0) -> list[bytes | float]:
    steps: list[bytes | float] = [head(), sse(delta("", role="assistant")), ttft]
    for i, word in enumerate(words):
        if i:
            steps.append(gap)
        steps.append(sse(delta(word)))
    return [*steps, sse(delta(finish="stop")), sse(usage_chunk(len(words))), DONE, END]


def ask(text: str = "Hi", *, stream: bool = True, session_id: str | None = None) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage("user", text),), max_tokens=32, stream=stream, session_id=session_id)


@pytest.fixture
def rest() -> Iterator[Callable[..., RestTransport]]:
    """Make RestTransports (closed at teardown): ``rest(target, **TransportConfig fields)``."""
    made: list[RestTransport] = []

    def make(target: str, transport: httpx.BaseTransport | None = None, **fields: Any) -> RestTransport:
        t = RestTransport(TransportConfig(target=target, **fields), transport=transport)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


# -- a normal streamed turn -----------------------------------------------------------------------------------


def test_streamed_reply_text_timings_and_request(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    target = http_server.route(normal_stream(["Hello", " world", "!"], ttft=0.10, gap=0.05))
    reply = rest(target).send(ask("Hi there"), timeout=5)

    assert reply.text == "Hello world!"
    assert reply.status == "ok"
    assert reply.usage == Usage(prompt_tokens=5, completion_tokens=3)
    assert reply.chunk_tokens == [1.0, 1.0, 1.0]
    assert reply.t_first_byte is not None
    # the headers came at once; the first token 100 ms later: TTFT is the token, not the headers
    assert reply.t_first_byte - reply.t_sent < 0.05
    ttft = reply.ttft_s()
    assert ttft is not None
    assert 0.10 - EARLY <= ttft <= 0.10 + LATE, ttft
    gaps = [b - a for a, b in itertools.pairwise(reply.chunk_times)]
    assert all(0.05 - EARLY <= g <= 0.05 + LATE for g in gaps), gaps
    assert 0 <= reply.t_done - reply.chunk_times[-1] < LATE
    samples = reply.inter_token_samples()
    assert len(samples) == 2 and all(n == 1 for _, n in samples)

    [sent] = http_server.requests_to(target)
    assert sent.method == "POST"
    assert sent.path.endswith("/v1/chat/completions")
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.headers["content-type"] == "application/json"
    assert "authorization" not in sent.headers
    assert sent.json() == {
        "model": "loadgen-sim",
        "messages": [{"role": "user", "content": "Hi there"}],
        "max_tokens": 32,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_multi_token_first_chunk_rescales_tokens_and_itl_excludes_ttft(
    http_server: Any, rest: Callable[..., RestTransport]
) -> None:
    # three content chunks, the first carrying several tokens; usage says 6 tokens in all
    script = [head(), 0.08, sse(delta("Hello there my")), 0.04, sse(delta(" good")), 0.04, sse(delta(" friend"))]
    script += [sse(delta(finish="stop")), sse(usage_chunk(6)), DONE, END]
    reply = rest(http_server.route(script)).send(ask(), timeout=5)

    assert reply.text == "Hello there my good friend"
    assert sum(reply.chunk_tokens) == pytest.approx(6.0)
    assert reply.chunk_tokens == pytest.approx([2.0, 2.0, 2.0])
    assert reply.output_tokens == 6
    samples = reply.inter_token_samples()
    assert len(samples) == 2  # the time to the first chunk is not an inter-token sample
    for seconds_per_token, tokens in samples:
        assert tokens == 2
        assert 0.02 - EARLY / 2 <= seconds_per_token <= 0.02 + LATE / 2, samples
    ttft = reply.ttft_s()
    assert ttft is not None and 0.08 - EARLY <= ttft <= 0.08 + LATE


def test_stream_ending_on_finish_reason_without_done_is_complete(
    http_server: Any, rest: Callable[..., RestTransport]
) -> None:
    target = http_server.route([head(), sse(delta("ok")), sse(delta(finish="length")), END])
    reply = rest(target).send(ask(), timeout=5)
    assert reply.text == "ok"
    assert reply.usage is None
    assert reply.chunk_tokens == [1.0]


def test_non_streaming_reply_is_one_chunk_at_completion(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    target = http_server.route([0.05, whole(200, completion("The whole answer.", 7))])
    reply = rest(target).send(ask(stream=False), timeout=5)

    assert reply.text == "The whole answer."
    assert reply.chunk_times == [reply.t_done]
    assert reply.chunk_tokens == [7.0]
    assert reply.usage == Usage(4, 7)
    assert reply.inter_token_samples() == []
    ttft = reply.ttft_s()
    assert ttft is not None and 0.05 - EARLY <= ttft <= 0.05 + LATE

    [sent] = http_server.requests_to(target)
    body = sent.json()
    assert body["stream"] is False
    assert "stream_options" not in body
    assert sent.headers["accept"] == "application/json"


def test_session_id_and_model_and_path_overrides(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    target = http_server.route(normal_stream(["x"]))
    t = rest(target, model="my-model", path="/openai/chat")
    t.send(ask(session_id="conv-42"), timeout=5)
    [sent] = http_server.requests_to(target)
    assert sent.path.endswith("/openai/chat")
    assert sent.json()["model"] == "my-model"
    assert sent.json()["session_id"] == "conv-42"


def test_target_that_already_ends_with_v1(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    target = http_server.route(normal_stream(["x"]))
    rest(target + "/v1/").send(ask(), timeout=5)
    [sent] = http_server.requests_to(target)
    assert sent.path == target.removeprefix(http_server.origin) + "/v1/chat/completions"


@pytest.mark.parametrize(
    ("target", "path", "url"),
    [
        ("http://h:1", None, "http://h:1/v1/chat/completions"),
        ("http://h:1/", None, "http://h:1/v1/chat/completions"),
        ("http://h:1/v1", None, "http://h:1/v1/chat/completions"),
        ("https://h/api/v1/", None, "https://h/api/v1/chat/completions"),
        ("http://h:1", "/chat", "http://h:1/chat"),
        ("http://h:1/v1", "v1/other", "http://h:1/v1/other"),
    ],
)
def test_chat_url(target: str, path: str | None, url: str) -> None:
    assert chat_url(target, path) == url


def test_connection_is_reused_across_turns(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    target = http_server.route(normal_stream(["a", "b"]))
    t = rest(target)
    assert t.send(ask(), timeout=5).text == "ab"
    assert t.send(ask(), timeout=5).text == "ab"
    first, second = http_server.requests_to(target)
    assert first.conn_id == second.conn_id  # the body was read to its end after [DONE]


def test_made_by_name_through_the_registry(http_server: Any) -> None:
    t = make_transport("rest", TransportConfig(target=http_server.route(normal_stream(["z"]))))
    try:
        assert isinstance(t, RestTransport)
        assert t.send(ask(), timeout=5).text == "z"
    finally:
        t.close()
        t.close()  # safe twice


# -- the server says no ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_are_overloaded(http_server: Any, rest: Callable[..., RestTransport], status: int) -> None:
    target = http_server.route([whole(status, '{"error": {"message": "too busy, retry later"}}')])
    with pytest.raises(Overloaded) as info:
        rest(target).send(ask(), timeout=5)
    assert info.value.code == status
    assert info.value.reason == f"HTTP {status}: too busy, retry later"


def test_500_is_a_server_error_with_the_servers_message(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    target = http_server.route([whole(500, '{"error": {"message": "engine exploded", "type": "server_error"}}')])
    with pytest.raises(ServerError) as info:
        rest(target).send(ask(), timeout=5)
    assert type(info.value) is ServerError
    assert info.value.code == 500
    assert info.value.reason == "HTTP 500: engine exploded"


def test_long_error_message_is_truncated_and_plain_text_kept(
    http_server: Any, rest: Callable[..., RestTransport]
) -> None:
    long_target = http_server.route([whole(400, json.dumps({"detail": "bad " * 500}))])
    with pytest.raises(ServerError) as info:
        rest(long_target).send(ask(), timeout=5)
    assert info.value.code == 400
    assert len(info.value.reason) <= 220
    text_target = http_server.route([whole(404, "no such model\n", content_type="text/plain")])
    with pytest.raises(ServerError) as info:
        rest(text_target).send(ask(), timeout=5)
    assert info.value.reason == "HTTP 404: no such model"


def test_empty_error_body_uses_the_reason_phrase(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    target = http_server.route([whole(502, "", reason="Bad Gateway")])
    with pytest.raises(ServerError) as info:
        rest(target).send(ask(), timeout=5)
    assert info.value.reason == "HTTP 502: Bad Gateway"


def test_error_event_mid_stream(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    target = http_server.route(
        [head(), sse(delta("par")), sse({"error": {"message": "KV cache exhausted"}}, event="error"), DONE, END]
    )
    with pytest.raises(ServerError) as info:
        rest(target).send(ask(), timeout=5)
    assert info.value.reason == "stream error: KV cache exhausted"


def test_error_object_as_data(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    target = http_server.route([head(), sse({"error": {"message": "context too long", "code": 400}}), END])
    with pytest.raises(ServerError) as info:
        rest(target).send(ask(), timeout=5)
    assert info.value.reason == "server error in stream: context too long"
    assert info.value.code == 400


# -- malformed and cut streams --------------------------------------------------------------------------------


def test_malformed_json_is_a_protocol_error(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    target = http_server.route([head(), sse(delta("ok")), sse('{"choices": [{"delta": {"content": "x"}'), DONE, END])
    with pytest.raises(ProtocolError) as info:
        rest(target).send(ask(), timeout=5)
    assert info.value.reason.startswith("malformed JSON in chunk")
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


def test_wrong_shape_is_a_protocol_error(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    target = http_server.route([head(), sse({"choices": "nope"}), DONE, END])
    with pytest.raises(ProtocolError, match="'choices' is a string"):
        rest(target).send(ask(), timeout=5)


def test_non_json_whole_reply_is_a_protocol_error(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    target = http_server.route([whole(200, "<html>hello</html>", content_type="text/html")])
    with pytest.raises(ProtocolError, match="malformed JSON in response"):
        rest(target).send(ask(stream=False), timeout=5)


def test_stream_cut_mid_way(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    target = http_server.route([head(), sse(delta("Hel")), piece('data: {"choi'), "close"])
    with pytest.raises(ProtocolError) as info:
        rest(target).send(ask(), timeout=5)
    assert info.value.reason.startswith("stream ended early")
    assert isinstance(info.value.__cause__, httpx.RemoteProtocolError)


def test_stream_ending_without_done_or_finish_reason(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    target = http_server.route([head(), sse(delta("Hel")), sse(delta("lo")), END])
    with pytest.raises(ProtocolError) as info:
        rest(target).send(ask(), timeout=5)
    assert info.value.reason == "stream ended early"


def test_server_that_closes_without_answering(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    target = http_server.route(["close"])
    with pytest.raises(ProtocolError, match="server broke off before answering"):
        rest(target).send(ask(), timeout=5)


# -- time-outs ------------------------------------------------------------------------------------------------


def _timed_failure(t: RestTransport, timeout: float) -> tuple[TransportError, float]:
    start = time.perf_counter()
    with pytest.raises(TransportError) as info:
        t.send(ask(), timeout=timeout)
    return info.value, time.perf_counter() - start


def test_server_that_never_answers_times_out(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    err, elapsed = _timed_failure(rest(http_server.route(["hang"])), 0.5)
    assert isinstance(err, TurnTimeout)
    assert err.reason == "turn exceeded its timeout (0.5s) before the reply"
    assert isinstance(err.__cause__, httpx.ReadTimeout)
    assert 0.5 - EARLY <= elapsed <= 0.5 + 0.3


def test_server_that_goes_silent_mid_stream_times_out(http_server: Any, rest: Callable[..., RestTransport]) -> None:
    err, elapsed = _timed_failure(rest(http_server.route([head(), sse(delta("a")), "hang"])), 0.5)
    assert isinstance(err, TurnTimeout)
    assert err.reason == "turn exceeded its timeout (0.5s) while streaming the reply"
    assert elapsed <= 0.5 + 0.3


@pytest.mark.parametrize(
    "script",
    [
        [0.8, head(), "hang"],  # headers late, then silence (httpx's read timeout restarted at the headers)
        [0.8, head(), sse(delta("a")), "hang"],  # ... a token, then silence
        [head(), 0.4, sse(delta("a")), 0.4, sse(delta("b")), "hang"],  # a slow dribble, then silence
    ],
    ids=["headers-then-silence", "headers-a-token-then-silence", "dribble-then-silence"],
)
def test_the_turn_ends_at_its_timeout_whatever_the_server_does(
    http_server: Any, rest: Callable[..., RestTransport], script: list[Any]
) -> None:
    """The whole turn is bounded, not each wait: these ran to 0.8 s + a full second read timeout before."""
    err, elapsed = _timed_failure(rest(http_server.route(script)), 1.0)
    assert isinstance(err, TurnTimeout)
    assert err.reason.startswith("turn exceeded its timeout (1s)")
    assert 1.0 - EARLY <= elapsed < 1.0 + 0.5


def test_a_connect_timeout_shorter_than_the_turn_keeps_its_own_reason(rest: Callable[..., RestTransport]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    with pytest.raises(TurnTimeout) as info:
        rest("http://127.0.0.1:9", transport=httpx.MockTransport(handler), connect_timeout_s=0.1).send(ask(), timeout=5)
    assert info.value.reason == "connect timeout to 127.0.0.1:9"


def test_the_client_reads_through_the_deadline_backend(rest: Callable[..., RestTransport]) -> None:
    """httpx has no parameter for it: the pool is swapped, and this shows it really is (an httpx upgrade that moves
    the pool fails here, not silently)."""
    transport = rest("http://127.0.0.1:9")
    mounted = transport._client._transport
    assert isinstance(mounted, httpx.HTTPTransport)
    backend = mounted._pool._network_backend
    assert isinstance(backend, DeadlineBackend) and backend.deadline is transport._turn_deadline


@pytest.mark.parametrize("drip", [": keep-alive\n", "d"], ids=["comment-lines", "bytes-without-newline"])
def test_server_that_dribbles_forever_hits_the_turn_deadline(
    http_server: Any, rest: Callable[..., RestTransport], drip: str
) -> None:
    target = http_server.route(lambda: itertools.chain([head()], itertools.cycle([piece(drip), 0.03])))
    err, elapsed = _timed_failure(rest(target), 0.5)
    assert isinstance(err, TurnTimeout)
    assert err.reason == "turn exceeded its timeout (0.5s) while streaming the reply"
    assert 0.5 - EARLY <= elapsed <= 0.5 + 0.3


def test_reply_complete_at_done_survives_a_tail_that_never_ends(
    http_server: Any, rest: Callable[..., RestTransport]
) -> None:
    target = http_server.route([head(), sse(delta("fine")), sse(delta(finish="stop")), DONE, "hang"])
    reply = rest(target).send(ask(), timeout=0.5)
    assert reply.text == "fine"
    assert reply.e2e_s() < 0.1  # t_done is the [DONE] line, not the give-up on the tail


def test_connect_timeout_is_bounded_by_the_turn_timeout(rest: Callable[..., RestTransport]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json=json.loads(completion("x", 1)))

    seen: list[dict[str, float]] = []
    whole = ask(stream=False)
    rest("http://127.0.0.1:9", transport=httpx.MockTransport(handler), connect_timeout_s=10).send(whole, timeout=3)
    assert seen == [{"connect": 3, "read": 3, "write": 3, "pool": 3}]
    rest("http://127.0.0.1:9", transport=httpx.MockTransport(handler), connect_timeout_s=1.5).send(whole, timeout=3)
    assert seen[1]["connect"] == 1.5


# -- connecting -----------------------------------------------------------------------------------------------


def test_nothing_listening_is_a_connect_error(free_port: int, rest: Callable[..., RestTransport]) -> None:
    with pytest.raises(ConnectError) as info:
        rest(f"http://127.0.0.1:{free_port}").send(ask(), timeout=5)
    assert info.value.reason == f"connection refused to 127.0.0.1:{free_port}"
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_https_with_verification_off(tls_server: Any, rest: Callable[..., RestTransport]) -> None:
    reply = rest(tls_server.route(normal_stream(["secure"])), tls_verify=False).send(ask(), timeout=5)
    assert reply.text == "secure"


def test_https_with_an_untrusted_certificate(tls_server: Any, rest: Callable[..., RestTransport]) -> None:
    with pytest.raises(ConnectError) as info:
        rest(tls_server.route(normal_stream(["x"]))).send(ask(), timeout=5)
    assert info.value.reason.startswith(f"TLS certificate of 127.0.0.1:{tls_server.port} not trusted")


def test_clients_share_one_ssl_context_per_verify_setting(rest: Callable[..., RestTransport]) -> None:
    def ctx_of(t: RestTransport) -> ssl.SSLContext:
        return t._client._transport._pool._ssl_context  # type: ignore[attr-defined, no-any-return]  # httpx 0.28

    a, b = rest("https://127.0.0.1:1"), rest("https://example.invalid/v1")
    insecure = rest("https://127.0.0.1:1", tls_verify=False)
    assert ctx_of(a) is ctx_of(b) is shared_ssl_context(True)
    assert ctx_of(insecure) is shared_ssl_context(False)
    assert ctx_of(insecure).verify_mode == ssl.CERT_NONE
    # plain http never uses TLS: its clients get a cheap shared context that would still refuse to trust anyone
    plain, plain2 = rest("http://127.0.0.1:1"), rest("http://127.0.0.1:2", tls_verify=False)
    assert ctx_of(plain) is ctx_of(plain2)
    assert ctx_of(plain) is not ctx_of(a)
    assert ctx_of(plain).verify_mode == ssl.CERT_REQUIRED and ctx_of(plain).check_hostname
    assert ctx_of(plain).cert_store_stats()["x509_ca"] == 0


def test_ssl_context_is_lazy_per_process_and_logs_are_quietened() -> None:
    script = textwrap.dedent(
        """
        import logging, os, time
        from loadgen.transports import rest
        from loadgen.transports.base import TransportConfig
        assert rest._ssl_contexts == {} and rest._ssl_pid is None, "built at import"
        assert logging.getLogger("httpx").level == logging.NOTSET
        first = rest.RestTransport(TransportConfig(target="https://127.0.0.1:1"))
        assert logging.getLogger("httpx").level == logging.WARNING
        assert logging.getLogger("httpcore").level == logging.WARNING
        start = time.perf_counter()
        more = [rest.RestTransport(TransportConfig(target="https://127.0.0.1:1")) for _ in range(50)]
        per_client_ms = (time.perf_counter() - start) / 50 * 1000
        assert per_client_ms < 10, per_client_ms  # ~26 ms each when every client builds its own context
        ctx = rest.shared_ssl_context(True)
        pid = os.fork()
        if pid == 0:
            os._exit(0 if rest.shared_ssl_context(True) is not ctx else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "a forked child reused its parent's context"
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_bad_targets_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        RestTransport(TransportConfig(target="grpc://127.0.0.1:1"))
    with pytest.raises(ConfigError) as info:
        RestTransport(TransportConfig(target="http://user:hunter2@"))
    assert "hunter2" not in str(info.value)


# -- the API key ----------------------------------------------------------------------------------------------


def test_api_key_is_sent_and_never_in_an_error(
    http_server: Any, rest: Callable[..., RestTransport], free_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ok = http_server.route(normal_stream(["hi"]))
    echo = http_server.route([whole(401, json.dumps({"error": {"message": f"invalid key {API_KEY} for org"}}))])
    reasons: list[str] = []

    assert rest(ok, api_key=API_KEY).send(ask(), timeout=5).text == "hi"
    [sent] = http_server.requests_to(ok)
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"

    with pytest.raises(ServerError) as info:
        rest(echo, api_key=API_KEY).send(ask(), timeout=5)
    assert info.value.code == 401
    assert info.value.reason == "HTTP 401: invalid key *** for org"
    reasons += [info.value.reason, str(info.value), repr(info.value)]

    for target, timeout in [(f"http://127.0.0.1:{free_port}", 5.0), (http_server.route(["hang"]), 0.3)]:
        with pytest.raises(TransportError) as failed:
            rest(target, api_key=API_KEY).send(ask(), timeout=timeout)
        reasons += [failed.value.reason, str(failed.value), repr(failed.value)]

    reasons.append(repr(TransportConfig(target=ok, api_key=API_KEY)))
    reasons += [record.getMessage() for record in caplog.records]
    assert not [r for r in reasons if API_KEY in r]


def test_api_key_a_header_cannot_carry_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as info:
        RestTransport(TransportConfig(target="http://127.0.0.1:1", api_key="sk-bad\nkey"))
    assert "sk-bad" not in str(info.value)


# -- httpx exceptions: every one is mapped --------------------------------------------------------------------


def httpx_exception_classes() -> list[type[Exception]]:
    """Every exception class httpx defines: its hierarchy walked from the roots, plus every one it exports."""
    roots: list[type[Exception]] = [httpx.HTTPError, httpx.StreamError, httpx.InvalidURL, httpx.CookieConflict]
    found: set[type[Exception]] = set()
    stack = list(roots)
    while stack:
        cls = stack.pop()
        if cls not in found and cls.__module__.startswith("httpx"):
            found.add(cls)
            stack.extend(cls.__subclasses__())
    for name in httpx.__all__:
        obj = getattr(httpx, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            found.add(obj)
    return sorted(found, key=lambda c: c.__name__)


def make_httpx_exception(cls: type[Exception]) -> Exception:
    if issubclass(cls, httpx.HTTPStatusError):
        request = httpx.Request("POST", "http://127.0.0.1:1/v1/chat/completions")
        response = httpx.Response(503, request=request, json={"error": {"message": "busy"}})
        return cls("Server error '503'", request=request, response=response)
    if len(inspect.signature(cls.__init__).parameters) == 1:  # StreamConsumed() and friends
        return cls()
    return cls("boom")


def test_every_httpx_exception_class_has_a_rule() -> None:
    classes = httpx_exception_classes()
    assert len(classes) >= 28  # httpx 0.28.1 defines 28; the walk finds any a later version adds
    missing = [cls.__name__ for cls in classes if cls not in HTTPX_ERRORS]
    assert not missing, f"map these httpx exceptions in HTTPX_ERRORS: {missing}"
    for cls in classes:
        exc = make_httpx_exception(cls)
        for phase in ("send", "body"):
            err = map_httpx_error(exc, where="127.0.0.1:1", phase=phase)
            assert isinstance(err, TransportError) and type(err) is not TransportError, (cls, err)
            assert err.reason and "{" not in err.reason, (cls, err.reason)


@pytest.mark.parametrize("cls", httpx_exception_classes(), ids=lambda c: c.__name__)
def test_httpx_exception_from_send_comes_out_mapped_and_chained(
    cls: type[Exception], rest: Callable[..., RestTransport]
) -> None:
    exc = make_httpx_exception(cls)

    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(TransportError) as info:
        rest("http://127.0.0.1:1", transport=httpx.MockTransport(handler)).send(ask(), timeout=5)
    assert type(info.value) is not TransportError
    assert info.value.__cause__ is exc


def test_timeouts_and_cuts_say_their_phase() -> None:
    assert map_httpx_error(httpx.ConnectTimeout("x"), where="h:1").reason == "connect timeout to h:1"
    assert map_httpx_error(httpx.ReadTimeout("x"), phase="send").reason == "timed out waiting for response headers"
    assert map_httpx_error(httpx.ReadTimeout("x"), phase="body").reason == "read timeout while streaming the reply"
    assert map_httpx_error(httpx.WriteTimeout("x")).reason == "timed out sending the request"
    assert map_httpx_error(httpx.PoolTimeout("x")).reason == "timed out waiting for a free connection"
    cut = map_httpx_error(httpx.ReadError("Connection reset by peer"), phase="body")
    assert isinstance(cut, ProtocolError) and cut.reason == "stream ended early: Connection reset by peer"
    assert isinstance(map_httpx_error(make_httpx_exception(httpx.HTTPStatusError)), Overloaded)


class _FailingStream(httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        yield b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n'
        raise httpx.ReadError("Connection reset by peer")


def test_error_while_reading_the_body_is_mapped_as_streaming(rest: Callable[..., RestTransport]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_FailingStream())

    with pytest.raises(ProtocolError) as info:
        rest("http://127.0.0.1:1", transport=httpx.MockTransport(handler)).send(ask(), timeout=5)
    assert info.value.reason == "stream ended early: Connection reset by peer"
    assert isinstance(info.value.__cause__, httpx.ReadError)


# -- the reply size limit ---------------------------------------------------------------------------------------


def test_a_ten_megabyte_line_is_a_protocol_error_at_the_default_limit(
    http_server: Any, rest: Callable[..., RestTransport]
) -> None:
    """It counted as a success (and went back as history: 418 MB of RSS with 3 users)."""
    line = b"data: " + b"x" * (10 * 1024 * 1024)
    target = http_server.route([head(), *(piece(line[i : i + 65536]) for i in range(0, len(line), 65536)), "hang"])
    err, elapsed = _timed_failure(rest(target), 30)
    assert isinstance(err, ProtocolError)
    assert err.reason == "the reply ran past the reply size limit of 4,194,304 bytes (--max-reply-bytes)"
    assert elapsed < 10  # at the limit, not at the turn timeout


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_the_limit_counts_the_bytes_of_the_reply(
    http_server: Any, rest: Callable[..., RestTransport], stream: bool
) -> None:
    steps = normal_stream(["word "] * 40) if stream else [whole(200, completion("word " * 40, 40))]
    size = sum(len(s) for s in steps if isinstance(s, bytes))
    target = http_server.route(steps)
    assert rest(target, max_reply_bytes=size).send(ask(stream=stream), timeout=5).text == "word " * 40
    with pytest.raises(ProtocolError, match="reply size limit of 200 bytes"):
        rest(target, max_reply_bytes=200).send(ask(stream=stream), timeout=5)


# -- the reply's content type decides how it is read ----------------------------------------------------------


def test_json_reply_to_a_streaming_request_is_a_protocol_error(
    http_server: Any, rest: Callable[..., RestTransport]
) -> None:
    """Read whole, it counted as a success whose TTFT was the whole reply's time."""
    target = http_server.route([head(content_type="application/json"), piece(completion("not streamed", 2)), END])
    with pytest.raises(ProtocolError) as info:
        rest(target).send(ask(stream=True), timeout=5)
    assert info.value.reason == (
        "asked for a stream (text/event-stream) but the server sent a whole reply (application/json); "
        "its time to first token would be the whole reply's"
    )


def test_json_reply_to_a_streaming_request_is_accepted_and_flagged_when_allowed(
    http_server: Any, rest: Callable[..., RestTransport]
) -> None:
    target = http_server.route([head(content_type="application/json"), piece(completion("not streamed", 2)), END])
    reply = rest(target, accept_unstreamed=True).send(ask(stream=True), timeout=5)
    assert reply.text == "not streamed"
    assert reply.chunk_tokens == [2.0]
    assert reply.status == "unstreamed"
    assert rest(target).send(ask(stream=False), timeout=5).status == "ok"  # asked whole: nothing to flag


def test_without_content_type_the_request_mode_decides(rest: Callable[..., RestTransport]) -> None:
    body = b'data: {"choices": [{"delta": {"content": "s"}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    reply = rest("http://127.0.0.1:1", transport=httpx.MockTransport(handler)).send(ask(stream=True), timeout=5)
    assert reply.text == "s"
    assert reply.usage is None and reply.chunk_tokens == [1.0]


def test_redirect_is_a_server_error(rest: Callable[..., RestTransport]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={"location": "http://elsewhere/"})

    with pytest.raises(ServerError) as info:
        rest("http://127.0.0.1:1", transport=httpx.MockTransport(handler)).send(ask(), timeout=5)
    assert info.value.reason == "HTTP 307: unexpected redirect"
    assert info.value.code == 307


def test_non_streamed_reply_without_usage_counts_one_token(rest: Callable[..., RestTransport]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=json.loads(completion("no usage here", None)))

    reply = rest("http://127.0.0.1:1", transport=httpx.MockTransport(handler)).send(ask(stream=False), timeout=5)
    assert reply.chunk_tokens == [1.0] and reply.usage is None


def test_non_positive_timeout_is_refused(rest: Callable[..., RestTransport]) -> None:
    with pytest.raises(ConfigError):
        rest("http://127.0.0.1:1").send(ask(), timeout=0)


# -- under gevent ---------------------------------------------------------------------------------------------

GEVENT_SCRIPT = """
from gevent import monkey

monkey.patch_all()

import json, sys, time

import gevent

from loadgen.transports.base import TransportConfig
from loadgen.transports.rest import RestTransport
from loadgen.types import ChatMessage, ChatRequest

target, users, turns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lateness = []
running = True


def ticker():
    while running:
        start = time.perf_counter()
        gevent.sleep(0.010)
        lateness.append(time.perf_counter() - start - 0.010)


def user(i):
    transport = RestTransport(TransportConfig(target=target, timeout_s=20))
    try:
        out = []
        for k in range(turns):
            reply = transport.send(ChatRequest(messages=(ChatMessage("user", f"user {i} turn {k}"),)))
            out.append({"text": reply.text, "ttft": reply.ttft_s(), "chunks": len(reply.chunk_times)})
        return out
    finally:
        transport.close()


tick = gevent.spawn(ticker)
gevent.sleep(0.05)
start = time.perf_counter()
jobs = [gevent.spawn(user, i) for i in range(users)]
gevent.joinall(jobs, timeout=60, raise_error=True)
wall = time.perf_counter() - start
running = False
tick.join()
print(json.dumps({
    "patched": monkey.is_module_patched("socket"),
    "replies": [r for job in jobs for r in job.value],
    "wall": wall,
    "max_late": max(lateness),
    "ticks": len(lateness),
}))
"""


def test_twenty_greenlets_stream_concurrently_under_gevent(http_server: Any, tmp_path: Path) -> None:
    words = [f"w{i} " for i in range(20)]
    target = http_server.route(normal_stream(words, ttft=0.05, gap=0.01))
    script = tmp_path / "gevent_users.py"
    script.write_text(GEVENT_SCRIPT)
    users, turns = 20, 2
    done = subprocess.run(
        [sys.executable, str(script), target, str(users), str(turns)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["patched"]
    replies = result["replies"]
    assert len(replies) == users * turns
    assert all(r["text"] == "".join(words) and r["chunks"] == len(words) for r in replies)
    # one stream takes ~0.25 s: 40 of them one after another would take 10 s
    assert result["wall"] < 3.0, result["wall"]
    ttfts = sorted(r["ttft"] for r in replies)
    assert 0.05 - EARLY <= ttfts[len(ttfts) // 2] <= 0.05 + LATE, ttfts
    assert result["ticks"] > 20
    assert result["max_late"] < 0.050, (
        f"the hub was blocked: a 10 ms ticker ran {result['max_late'] * 1000:.1f} ms late"
    )
    assert len(http_server.requests_to(target)) == users * turns


def test_a_gzip_coded_stream_is_decoded_before_it_is_read(rest: Callable[..., RestTransport]) -> None:
    import gzip

    events = b"".join(
        f"data: {json.dumps(chunk)}\n\n".encode()
        for chunk in (delta("gz", role="assistant"), delta("ip"), delta(finish="stop"), usage_chunk(2))
    )
    body = gzip.compress(events + b"data: [DONE]\n\n")

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream", "content-encoding": "gzip"}
        return httpx.Response(200, content=body, headers=headers)

    reply = rest("http://127.0.0.1:1", transport=httpx.MockTransport(handler)).send(ask(stream=True), timeout=5)
    assert reply.text == "gzip"
    assert reply.usage == Usage(5, 2)
