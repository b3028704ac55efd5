"""Loading and validating dialogue files: every problem names file, line and field."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from loadgen.dialogues import (
    DEFAULT_DIALOGUES_DIR,
    Dialogue,
    DialogueError,
    Problem,
    ThinkTime,
    default_dialogues_dir,
    load_dialogue,
    load_dialogues,
)
from loadgen.errors import ConfigError
from tests.conftest import REPO_ROOT
from tests.dialogues.conftest import JAPAN_DIALOGUE

SHIPPED = REPO_ROOT / "scenarios" / "dialogues"
DATA = Path(__file__).resolve().parent / "data"
BAD_FILES = sorted(DATA.glob("*.yaml"))
_EXPECT = re.compile(r"#\s*expect:\s*(?P<field>\S+)\s*\|\s*(?P<fragment>.+?)\s*$")


def _expectations(path: Path) -> list[tuple[int, str, str]]:
    """(line, field, message fragment) from the ``# expect: FIELD | fragment`` markers in a bad fixture."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _EXPECT.search(line)
        if match:
            field = "" if match["field"] == "-" else match["field"]
            out.append((number, field, match["fragment"]))
    return out


def test_every_bad_fixture_has_expectations() -> None:
    assert len(BAD_FILES) >= 25
    for path in BAD_FILES:
        assert _expectations(path), f"{path.name} has no '# expect: FIELD | fragment' marker"


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda p: p.stem)
def test_bad_fixture_names_file_line_and_field(path: Path) -> None:
    with pytest.raises(DialogueError) as caught:
        load_dialogue(path)
    error = caught.value
    text = str(error)
    expected = _expectations(path)
    for line, field, fragment in expected:
        where = f"{path}:{line}: " + (f"field `{field}`: " if field else "")
        matching = [p for p in error.problems if p.format().startswith(where)]
        assert matching, f"expected a problem at {where!r}; got:\n{text}"
        assert any(fragment in p.message for p in matching), f"{fragment!r} not in:\n{text}"
        assert path.name in text
    # no knock-on problems: every problem is one the fixture expects
    expected_at = {(line, field) for line, field, _ in expected}
    for problem in error.problems:
        assert (problem.line, problem.field) in expected_at, f"unexpected problem: {problem}"
    assert len(text.splitlines()) == len(error.problems)


def test_dialogue_error_is_a_config_error_formatted_one_per_line() -> None:
    problems = [
        Problem("a.yaml", 3, "turns[0].user", "is empty; expected the message text"),
        Problem("b.yaml", None, "", "no such file"),
    ]
    error = DialogueError(problems)
    assert isinstance(error, ConfigError)
    assert str(error) == "a.yaml:3: field `turns[0].user`: is empty; expected the message text\nb.yaml: no such file"
    assert error.problems == problems


def test_problems_of_all_files_are_collected_in_one_error() -> None:
    files = [DATA / "weight_zero.yaml", DATA / "unknown_top_key.yaml", SHIPPED / "travel_booking.yaml"]
    with pytest.raises(DialogueError) as caught:
        load_dialogues(files)
    named = {Path(p.file).name for p in caught.value.problems}
    assert named == {"weight_zero.yaml", "unknown_top_key.yaml"}


def test_duplicate_names_across_files() -> None:
    folder = DATA / "duplicate_names"
    with pytest.raises(DialogueError) as caught:
        load_dialogues([folder])
    (problem,) = caught.value.problems
    assert problem.file == str(folder / "b.yaml")
    assert problem.line == 1
    assert problem.field == "name"
    assert f"already the name of the dialogue in {folder / 'a.yaml'}:1" in problem.message


def test_missing_file_and_empty_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DialogueError) as caught:
        load_dialogues([tmp_path / "nope.yaml", empty])
    messages = [p.format() for p in caught.value.problems]
    assert any(m.startswith(f"{tmp_path / 'nope.yaml'}: no such file") for m in messages)
    assert any(m.startswith(f"{empty}: folder has no *.yaml") for m in messages)


def test_nothing_given_is_an_error() -> None:
    with pytest.raises(DialogueError, match="no dialogue files given"):
        load_dialogues([])


def test_folder_means_its_yaml_and_yml_files_sorted(write_dialogue: Callable[..., Path], tmp_path: Path) -> None:
    write_dialogue("zeta")
    write_dialogue("alpha", file="alpha.yml")
    (tmp_path / "notes.txt").write_text("not a dialogue")
    dialogues = load_dialogues([tmp_path])
    assert [d.name for d in dialogues] == ["alpha", "zeta"]
    # the same file named twice (folder and file) is loaded once
    assert [d.name for d in load_dialogues([tmp_path, tmp_path / "zeta.yaml"])] == ["alpha", "zeta"]
    # a single path (not in a list) is accepted too
    assert [d.name for d in load_dialogues(tmp_path / "zeta.yaml")] == ["zeta"]


def test_load_dialogue_of_a_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DialogueError, match="is a folder"):
        load_dialogue(tmp_path)


def test_small_dialogue_model(write_dialogue: Callable[..., Path]) -> None:
    path = write_dialogue("small", weight=2.5)
    d = load_dialogue(path)
    assert isinstance(d, Dialogue)
    assert (d.name, d.path, d.weight, d.min_turns, d.max_tokens) == ("small", str(path), 2.5, 5, 64)
    assert d.description == ""
    assert d.system == "You help {name}."
    assert list(d.slots) == ["name", "code", "colour"]
    assert d.slots["name"].provider == "first_name" and d.slots["name"].kind == "faker"
    assert d.slots["code"].args == {"text": "??####", "letters": "ABCDEFGHJKLMNPQRSTUVWXYZ"}
    assert d.slots["colour"].choices == ("Vermilion", "Chartreuse", "Turquoise")
    assert d.slots["colour"].kind == "choice" and d.slots["colour"].line == 7
    assert [t.index for t in d.turns] == [1, 2, 3, 4, 5]
    assert [t.line for t in d.turns] == [9, 11, 15, 16, 18]
    t1, t2, t3, t4, t5 = d.turns
    assert t1.plant == ("name", "colour") and t1.probe == ()
    assert t4.probe == ("code",) and t5.probe == ("name", "colour")
    assert t3.user == "Tell me a {{short}} joke."
    assert d.think_time == ThinkTime(1.0, 3.0)
    assert d.think_time_before(t2) == ThinkTime(0.5, 0.75)
    assert d.think_time_before(t3) == ThinkTime(1.0, 3.0)
    assert d.max_tokens_for(t2) == 32 and d.max_tokens_for(t3) == 64
    assert d.probed_slots == {"code", "name", "colour"}
    hash(d)  # frozen and hashable
    with pytest.raises(AttributeError):
        d.name = "other"  # type: ignore[misc]


def test_yaml_anchors_and_merge_keys(write_dialogue: Callable[..., Path]) -> None:
    text = """\
name: anchors
think_time: &slow {min: 2, max: 5}
slots:
  code: {faker: bothify, args: {text: "??####"}}
turns:
  - &plain {user: "Hello."}
  - {user: "My code is {code}.", plant: [code]}
  - {<<: *plain, think_time: *slow}
  - *plain
  - {user: "What was my code?", probe: [code]}
"""
    d = load_dialogue(write_dialogue(text=text))
    assert d.think_time == ThinkTime(2.0, 5.0)
    assert d.turns[2].think_time == ThinkTime(2.0, 5.0) and d.turns[2].user == "Hello."


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"),
    [
        ("- a\n- b\n", 1, "", "expected a mapping with at least `name:` and `turns:`"),
        ("name: x\n---\nname: y\n", 2, "", "YAML syntax"),
        ("turns: []\n", 1, "name", "is missing"),
        ("name: x\nturns: []\n", 2, "turns", "expected a list of turns"),
        ("name: x\n1: y\nturns: []\n", 2, "", "is not a name"),
        ("name: x\nslots: [a]\nturns: []\n", 2, "slots", "expected a mapping of slot name"),
        ("name: x\nslots:\n  a: {faker: city, choice: [b]}\nturns: []\n", 3, "slots.a", "both `faker` and `choice`"),
        ("name: x\nslots:\n  a: {choice: []}\nturns: []\n", 3, "slots.a.choice", "non-empty list"),
        ("name: x\nslots:\n  a: {args: {}}\nturns: []\n", 3, "slots.a", "needs `faker` or `choice`"),
        ("name: x\nslots:\n  a-b: city\nturns: []\n", 3, "slots.a-b", "is not a slot name"),
        ("name: x\nmax_tokens: 1.5\nturns: []\n", 2, "max_tokens", "whole number"),
        ("name: x\nweight: true\nturns: []\n", 2, "weight", "the boolean true"),
        ("name: x\nthink_time: {min: 1}\nturns: []\n", 2, "think_time", "`max` is missing"),
        ("name: x\nthink_time: 2\nturns: []\n", 2, "think_time", "expected a mapping like {min: 1.0, max: 3.0}"),
        ("name: x\nsystem: 'Hi {who}'\nturns: []\n", 2, "system", "unknown slot `{who}`"),
        ("name: x\nturns:\n  - user: 'a {x!r}'\n", 3, "turns[0].user", "format spec or conversion"),
        ("name: x\nturns:\n  - user: 'a {}'\n", 3, "turns[0].user", "empty field"),
        ("name: x\nturns:\n  - 'just text'\n", 3, "turns[0]", "expected a mapping like {user:"),
        ("name: x\nturns:\n  - user: 42\n", 3, "turns[0].user", "the number 42; expected text"),
    ],
)
def test_more_validation_errors(
    write_dialogue: Callable[..., Path], text: str, line: int, field: str, fragment: str
) -> None:
    path = write_dialogue(text=text, file="inline.yaml")
    with pytest.raises(DialogueError) as caught:
        load_dialogue(path)
    hits = [p for p in caught.value.problems if p.line == line and p.field == field and fragment in p.message]
    assert hits, str(caught.value)
    assert all(p.file == str(path) for p in caught.value.problems)


def test_not_utf8(write_dialogue: Callable[..., Path], tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: x\n# caf\xe9\n")
    with pytest.raises(DialogueError, match=r"latin1.yaml:2: is not UTF-8"):
        load_dialogue(path)


def test_slot_providers_are_checked_for_the_locale(write_dialogue: Callable[..., Path]) -> None:
    path = write_dialogue(text=JAPAN_DIALOGUE)
    with pytest.raises(DialogueError, match="not a Faker provider for locale en_US"):
        load_dialogue(path)
    assert load_dialogue(path, locale="ja-JP").slots["prefecture"].provider == "prefecture"
    with pytest.raises(ConfigError, match="unknown Faker locale"):
        load_dialogue(path, locale="xx_YY")


# -- the shipped dialogues ------------------------------------------------------------------------------


def test_shipped_dialogues_load() -> None:
    dialogues = load_dialogues([SHIPPED])
    names = {d.name for d in dialogues}
    assert {"travel_booking", "tech_support", "coding_help"} <= names
    for d in dialogues:
        assert 5 <= len(d.turns) <= 8, d.name
        assert d.description
        planted = {slot: t.index for t in d.turns for slot in t.plant}
        assert len(planted) >= 2, d.name
        probes = [(slot, t.index) for t in d.turns for slot in t.probe]
        assert {slot for slot, _ in probes} == set(planted), f"{d.name}: every planted fact is probed"
        for slot, at in probes:
            assert at - planted[slot] >= 2, f"{d.name}: {slot} probed too soon"
        assert d.turns[-1].probe, f"{d.name}: the last turn must probe"


def test_default_dialogues_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEFAULT_DIALOGUES_DIR.is_dir()
    monkeypatch.chdir(tmp_path)
    assert default_dialogues_dir().resolve() == SHIPPED.resolve()  # no ./scenarios/dialogues: the package's
    own = tmp_path / "scenarios" / "dialogues"
    own.mkdir(parents=True)
    assert default_dialogues_dir() == own


_STOP_TEXT = """a about again am an and any are as at be before but by can could did do does for from get give go
    had has
    have how i i'm if in is it its just like me more my next not of on one or our please remind say said should
    so still than thanks that the their them then there these they this to up usually very want was we were
    what when where which who why will with would you your"""
_STOP = set(_STOP_TEXT.split())


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in _STOP and len(w) > 1}


def test_shipped_probes_lead_back_to_their_planting_message() -> None:
    """The reference server answers a probe by quoting the earlier user message sharing the most content
    words with it: for every probe that message must be the one that planted the facts, and unambiguously."""
    from loadgen.dialogues import ConversationFactory

    dialogues = load_dialogues([SHIPPED])
    factory = ConversationFactory(dialogues, seed=3)
    for d in dialogues:
        for n in range(5):
            conversation = factory.new(0, n)
            if conversation.dialogue is not d:
                continue
            for turn in d.turns:
                if not turn.probe:
                    continue
                question = _content_words(conversation.render(turn))
                earlier = [conversation.render(t) for t in d.turns if t.index < turn.index]
                scores = [len(question & _content_words(text)) for text in earlier]
                best = max(scores)
                assert best >= 1, f"{d.name} turn {turn.index} shares no content word with any earlier message"
                assert scores.count(best) == 1, f"{d.name} turn {turn.index}: ambiguous {scores}"
                quoted = earlier[scores.index(best)]
                for slot in turn.probe:
                    assert conversation.slots[slot] in quoted, (d.name, turn.index, slot, quoted)
