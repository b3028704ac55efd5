"""The deployment files read as data: the Kubernetes variants as ``kubectl kustomize`` would build them, the
compose services with their ``${VAR:-default}`` values resolved, the Dockerfile's instructions."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_FILE = DEPLOY / "compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"

#: The folders one applies with ``kubectl apply -k`` (base is only ever part of another).
VARIANTS = ("web", "soak", "reference-server")

Resource = dict[str, Any]


def yaml_documents(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


_KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "configMapGenerator", "generatorOptions"}


def kustomize(folder: Path) -> list[Resource]:
    """The resources ``kubectl kustomize folder`` builds, for the features these kustomizations use (resources
    that are files or folders, ConfigMaps generated from files without a name hash); any other field fails
    here, so using a new kustomize feature means teaching this function (and the test against kubectl) first."""
    (kustomization,) = yaml_documents(folder / "kustomization.yaml")
    unknown = set(kustomization) - _KUSTOMIZATION_FIELDS
    assert not unknown, f"{folder}/kustomization.yaml: fields this reader does not build: {sorted(unknown)}"
    if "configMapGenerator" in kustomization:
        assert kustomization.get("generatorOptions") == {"disableNameSuffixHash": True}, folder
    built: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        built += kustomize(path) if path.is_dir() else yaml_documents(path)
    for generator in kustomization.get("configMapGenerator", []):
        assert set(generator) == {"name", "files"}, generator
        data = {Path(f).name: (folder / f).read_text(encoding="utf-8") for f in generator["files"]}
        built.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data})
    return built


def by_kind_and_name(resources: list[Resource]) -> dict[tuple[str, str], Resource]:
    return {(r["kind"], r["metadata"]["name"]): r for r in resources}


def pod_spec(resource: Resource) -> dict[str, Any]:
    spec: dict[str, Any] = resource["spec"]["template"]["spec"]
    return spec


def only_container(resource: Resource) -> dict[str, Any]:
    (container,) = pod_spec(resource)["containers"]
    return dict(container)


def container_argv(resource: Resource) -> list[str]:
    container = only_container(resource)
    return [*container.get("command", []), *container.get("args", [])]


def option_value(argv: list[str], option: str) -> str:
    assert argv.count(option) == 1, f"{option} given {argv.count(option)} times in {argv}"
    return argv[argv.index(option) + 1]


def options_after(argv: list[str], first: int) -> dict[str, str | None]:
    """``--name value`` and ``--flag`` pairs of ``argv[first:]`` (repeated options joined with a newline)."""
    out: dict[str, str | None] = {}
    i = first
    while i < len(argv):
        name = argv[i]
        assert name.startswith("-"), f"stray value {name!r} in {argv}"
        value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("-") else None
        out[name] = value if name not in out or value is None else f"{out[name]}\n{value}"
        i += 1 if value is None else 2
    return out


# -- compose ------------------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*):-(?P<default>[^}]*)\}")


def compose_file() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


def interpolations(value: str) -> list[tuple[str, str]]:
    """``(NAME, default)`` of every ``${NAME:-default}`` in a compose value; any other ``$`` form fails."""
    found = [(m["name"], m["default"]) for m in _INTERPOLATION.finditer(value)]
    assert value.count("$") == len(found), f"only ${{NAME:-default}} is used in compose.yaml: {value!r}"
    return found


def with_defaults(value: Any) -> str:
    """A compose value as ``docker compose`` resolves it with none of its variables set."""
    text = str(value)
    interpolations(text)
    return _INTERPOLATION.sub(lambda m: m["default"], text)


def compose_argv(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    assert isinstance(command, list), "commands are lists: no shell, the exit code is locust's own"
    return [with_defaults(part) for part in command]


# -- Dockerfile ---------------------------------------------------------------------------------------------


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with comments dropped and continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    assert not pending, "Dockerfile ends in a continuation line"
    return out


def exec_form(arguments: str) -> list[str]:
    """A JSON-array (exec form) CMD/ENTRYPOINT; the shell form would put a shell between Docker and locust."""
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


def copy_sources_and_dest(arguments: str) -> tuple[list[str], str]:
    parts = shlex.split(arguments)
    assert not any(p.startswith("--") for p in parts), f"COPY flags are not expected here: {arguments}"
    assert len(parts) >= 2, arguments
    return parts[:-1], parts[-1]


def dockerignore_patterns(path: Path = DOCKERIGNORE) -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``relative`` (a path in the build context) out: the last pattern matching the path
    or one of its parent folders decides; ``!`` re-includes. ``*`` stays inside one path segment, ``**`` spans
    any number of them (Go's filepath.Match rules, as Docker applies them)."""
    parts = relative.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            verdict = not negate
    return verdict


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)
