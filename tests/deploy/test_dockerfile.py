"""The Dockerfile, checked without a Docker engine: what it copies exists and is in the build context, the
package is installed from a folder holding what ``pip install .`` needs, the default command's locustfile is
where the command looks for it, and the image runs as a non-root user."""

from __future__ import annotations

import tomllib
from pathlib import Path, PurePosixPath

from tests.conftest import REPO_ROOT
from tests.deploy.deploy_files import (
    copy_sources_and_dest,
    dockerfile_instructions,
    dockerignore_patterns,
    exec_form,
    ignored,
)

BASE_IMAGE = "python:3.11-slim"


def _replay() -> tuple[dict[str, str], list[tuple[str, str, set[str]]]]:
    """Replays WORKDIR and COPY as Docker does: the image paths COPY made (-> their context path), and every
    RUN with its folder and the image paths that existed then."""
    workdir = "/"
    image: dict[str, str] = {}
    runs: list[tuple[str, str, set[str]]] = []
    for keyword, args in dockerfile_instructions():
        if keyword == "WORKDIR":
            workdir = str(PurePosixPath(workdir) / args)
        elif keyword == "COPY":
            sources, dest = copy_sources_and_dest(args)
            target = PurePosixPath(workdir) / dest
            into_folder = dest.endswith("/") or len(sources) > 1
            for source in sources:
                is_file = (REPO_ROOT / source).is_file()
                path = target / PurePosixPath(source).name if is_file and into_folder else target
                image[str(path)] = source.rstrip("/")  # a folder's contents go into the destination folder
        elif keyword == "RUN":
            runs.append((workdir, args, set(image)))
    return image, runs


def test_one_pinned_python_base_that_the_project_supports() -> None:
    froms = [args for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert froms == [BASE_IMAGE]
    requires = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"  # the base's 3.11 satisfies it; change both together


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    patterns = dockerignore_patterns()
    sources = set(_replay()[0].values())
    assert sources, "nothing copied"
    for source in sources:
        path = REPO_ROOT / source
        assert path.exists(), f"COPY {source}: no such file in the repository"
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            relative = file.relative_to(REPO_ROOT).as_posix()
            if "__pycache__" in file.parts or file.suffix == ".pyc":
                assert ignored(relative, patterns), relative
            else:
                assert not ignored(relative, patterns), f"{relative} is copied but .dockerignore leaves it out"


def test_the_build_context_leaves_out_what_the_image_does_not_need() -> None:
    patterns = dockerignore_patterns()
    for path in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", "reports/BENCHMARKS.md", "Dockerfile"):
        assert ignored(path, patterns), path
    for path in ("pyproject.toml", "loadgen/cli.py", "scenarios/multiturn.py", "scenarios/dialogues/x.yaml"):
        assert not ignored(path, patterns), path


def test_pip_install_runs_where_the_package_was_copied() -> None:
    image, runs = _replay()
    installs = [(workdir, present) for workdir, args, present in runs if "pip install ." in args]
    assert len(installs) == 1, runs
    workdir, present = installs[0]
    # what setuptools needs for `pip install .`, copied before it runs: the metadata, the readme it names,
    # the package
    for name in ("pyproject.toml", "README.md", "loadgen"):
        assert image.get(f"{workdir}/{name}") == name and f"{workdir}/{name}" in present, name


def test_default_command_finds_its_locustfile_and_dialogues() -> None:
    instructions = dockerfile_instructions()
    (cmd,) = [args for keyword, args in instructions if keyword == "CMD"]
    assert exec_form(cmd) == ["locust", "-f", "scenarios/multiturn.py"]
    assert not [k for k, _ in instructions if k == "ENTRYPOINT"], "the deployments give a whole command"
    workdir = [args for keyword, args in instructions if keyword == "WORKDIR"][-1]
    image, runs = _replay()
    assert image[f"{workdir}/scenarios"] == "scenarios"
    assert (REPO_ROOT / "scenarios" / "multiturn.py").is_file()
    assert (REPO_ROOT / "scenarios" / "dialogues").is_dir()  # the default --dialogues, relative to the workdir
    # the run folder's parent exists and belongs to the user the image runs as
    assert any(w == workdir and "mkdir reports" in args and f"chown {_user()} reports" in args for w, args, _ in runs)


def _user() -> str:
    users = [args for keyword, args in dockerfile_instructions() if keyword == "USER"]
    assert users, "no USER: the image would run as root"
    return users[-1]


def test_runs_as_a_numeric_non_root_user_the_image_creates() -> None:
    user = _user()
    uid, _, gid = user.partition(":")
    # numeric, so Kubernetes can check runAsNonRoot without reading /etc/passwd
    assert uid.isdigit() and gid.isdigit() and int(uid) != 0 and int(gid) != 0
    runs = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "RUN")
    assert f"useradd --uid {uid} --gid {gid}" in runs
    instructions = [keyword for keyword, _ in dockerfile_instructions()]
    assert instructions.index("USER") > max(i for i, k in enumerate(instructions) if k in ("RUN", "COPY"))


def test_the_commands_the_deployments_run_are_installed() -> None:
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "loadgen" in scripts  # `loadgen serve` of the reference server
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("locust==") for d in dependencies)  # the `locust` command
    assert Path(REPO_ROOT / "README.md").is_file()
