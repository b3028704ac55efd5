"""Dialogue scripts: YAML files of five or more scripted user turns, with Faker-filled slots and retention probes.

    from loadgen.dialogues import ConversationFactory, load_dialogues

    dialogues = load_dialogues([DEFAULT_DIALOGUES_DIR])   # DialogueError (a ConfigError) names file:line:field
    factory = ConversationFactory(dialogues, seed=7, locale="en_US")
    conversation = factory.new(user_index=0)

Modules: ``model`` (the frozen :class:`Dialogue`, its turns and slots), ``loader`` with ``yaml_nodes``,
``slot_checks`` and ``turn_checks`` (reading and validating files, every problem with its line), ``text``
(templates, normalisation, which values a probe can rely on), ``fakers`` (Faker per locale), ``history`` (what
each turn sends in client and server history mode), ``conversation`` (one run through a dialogue:
``request(turn)`` builds the :class:`~loadgen.types.ChatRequest`, ``record(turn, reply, error)`` checks
retention and updates the history, returning a :class:`TurnResult`).

``DEFAULT_DIALOGUES_DIR`` is ``scenarios/dialogues`` under the current working directory when that folder
exists (running from a checkout, or a project of your own that keeps its dialogues there), else the
repository's own ``scenarios/dialogues`` next to the installed ``loadgen`` package (an editable install). It is
worked out once, at import; :func:`default_dialogues_dir` works it out again.
"""

from __future__ import annotations

from pathlib import Path

from loadgen.dialogues.conversation import Conversation, ConversationFactory, RetentionVerdict, TurnResult
from loadgen.dialogues.history import RequestSettings
from loadgen.dialogues.loader import load_dialogue, load_dialogues
from loadgen.dialogues.model import Dialogue, DialogueError, Problem, SlotSpec, ThinkTime, Turn

_RELATIVE = Path("scenarios") / "dialogues"


def default_dialogues_dir() -> Path:
    """``./scenarios/dialogues`` if it exists, else the one beside the ``loadgen`` package (see module doc)."""
    here = Path.cwd() / _RELATIVE
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent.parent / _RELATIVE


DEFAULT_DIALOGUES_DIR = default_dialogues_dir()

__all__ = [
    "DEFAULT_DIALOGUES_DIR",
    "Conversation",
    "ConversationFactory",
    "Dialogue",
    "DialogueError",
    "Problem",
    "RequestSettings",
    "RetentionVerdict",
    "SlotSpec",
    "ThinkTime",
    "Turn",
    "TurnResult",
    "default_dialogues_dir",
    "load_dialogue",
    "load_dialogues",
]
