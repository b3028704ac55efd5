"""deploy/compose.yaml is the soak of deploy/k8s/soak on one host: with its variables unset, every service runs
the same command as its Kubernetes counterpart, mounts the same dialogues at the same path, and starts as
many workers as the master waits for."""

from __future__ import annotations

from typing import Any

from tests.deploy.deploy_files import (
    COMPOSE_FILE,
    K8S,
    by_kind_and_name,
    compose_argv,
    compose_file,
    container_argv,
    interpolations,
    kustomize,
    only_container,
    option_value,
    with_defaults,
)

#: compose service -> its Kubernetes counterpart (variant, kind, name)
COUNTERPARTS = {
    "chat-loadgen-master": ("soak", "Job", "chat-loadgen-soak"),
    "chat-loadgen-worker": ("soak", "Deployment", "chat-loadgen-worker"),
    "reference-server": ("reference-server", "Deployment", "reference-server"),
}
VARIABLES = {"WORKERS", "USERS", "SPAWN_RATE", "RUN_TIME", "TARGET_URL"}


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose_file()["services"]
    return services


def _counterpart(service: str) -> dict[str, Any]:
    variant, kind, name = COUNTERPARTS[service]
    return by_kind_and_name(kustomize(K8S / variant))[(kind, name)]


def test_each_service_has_a_kubernetes_counterpart_with_the_same_command() -> None:
    services = _services()
    assert set(services) == set(COUNTERPARTS)
    for name, service in services.items():
        k8s = _counterpart(name)
        assert compose_argv(service) == container_argv(k8s), name
        assert service["image"] == only_container(k8s)["image"]


def test_the_master_waits_for_as_many_workers_as_compose_starts() -> None:
    services = _services()
    master, worker = services["chat-loadgen-master"], services["chat-loadgen-worker"]
    raw_expect = master["command"][master["command"].index("--expect-workers") + 1]
    replicas = worker["deploy"]["replicas"]
    # one variable sizes both, so `WORKERS=8 docker compose up` stays consistent
    assert interpolations(str(raw_expect)) == interpolations(str(replicas)) == [("WORKERS", "4")]
    assert int(with_defaults(replicas)) == _counterpart("chat-loadgen-worker")["spec"]["replicas"]
    assert option_value(compose_argv(worker), "--master-host") == "chat-loadgen-master"


def test_dialogues_are_the_configmaps_files_at_the_same_path() -> None:
    services = _services()
    configmap_folder = (K8S / "base" / "dialogues").resolve()
    for name in ("chat-loadgen-master", "chat-loadgen-worker"):
        target = option_value(compose_argv(services[name]), "--dialogues")
        mounts = [v.split(":") for v in services[name]["volumes"]]
        (mount,) = [m for m in mounts if m[1] == target]
        assert (COMPOSE_FILE.parent / mount[0]).resolve() == configmap_folder
        assert mount[2:] == ["ro"]
    reports = [v.split(":") for v in services["chat-loadgen-master"]["volumes"] if v.endswith(":/app/reports")]
    assert reports == [["reports", "/app/reports"]] and "reports" in compose_file()["volumes"]


def test_the_reference_server_is_optional() -> None:
    services = _services()
    assert services["reference-server"]["profiles"] == ["reference"]
    dependency = services["chat-loadgen-master"]["depends_on"]["reference-server"]
    assert dependency["required"] is False  # without the profile the master starts, aimed at TARGET_URL
    raw_host = services["chat-loadgen-master"]["command"]
    host = raw_host[raw_host.index("--host") + 1]
    assert interpolations(host) == [("TARGET_URL", "http://reference-server:8000")]


def test_every_variable_has_a_default_and_is_documented() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    used = {name for line in text.splitlines() if not line.lstrip().startswith("#") for name, _ in interpolations(line)}
    assert used == VARIABLES
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert all(name in header for name in VARIABLES)
