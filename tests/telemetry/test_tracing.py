"""The client's spans (``gevent_tracing_cases.py``) run in a Python of their own: importing Locust monkey-patches
the process with gevent, which the rest of the test session must not get. Locust is imported before pytest there,
as the ``locust`` command does. Also here: with tracing off a whole conversation imports no OpenTelemetry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.gevent_cases import run_gevent_cases

CASES = Path(__file__).with_name("gevent_tracing_cases.py")

#: A conversation of five turns with tracing off, then: which OpenTelemetry modules were imported.
OFF = """
import locust, sys
from types import SimpleNamespace
import configargparse
from locust.env import Environment
from locust.event import Events
from loadgen.locust_plugin import ConversationUser, options, runtime
from loadgen.telemetry import locust_tracing
sys.path.insert(0, sys.argv[2])
from gevent_tracing_cases import DIALOGUE, ScriptedTransport
import importlib
for name in [m for m in sys.modules if m.startswith("opentelemetry")]:
    del sys.modules[name]  # the cases module set up a provider; forget it: only what follows counts
class ChatUser(ConversationUser):
    pass
open(sys.argv[1], "w").write(DIALOGUE)
parser = configargparse.ArgumentParser()
options.add_arguments(parser)
parsed = parser.parse_args(["--dialogues", sys.argv[1], "--think-min", "0", "--think-max", "0"])
env = Environment(user_classes=[ChatUser], events=Events(), host="http://scripted")
rt = runtime.build_runtime(parsed, "local", env.events.request)
locust_tracing.setup(SimpleNamespace(parsed_options=parsed, events=env.events), rt, "local")
user = ChatUser(env)
user.transport = transport = ScriptedTransport()
user.converse()
assert len(transport.requests) == 5 and all(r.trace_headers is None for r in transport.requests)
print("imported:", sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""


def test_turn_spans_in_a_gevent_process(tmp_path: Path) -> None:
    run_gevent_cases(CASES, tmp_path)


def test_tracing_off_imports_no_opentelemetry(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", OFF, str(tmp_path / "plan.yaml"), str(CASES.parent)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert done.stdout.strip().splitlines()[-1] == "imported: []"
