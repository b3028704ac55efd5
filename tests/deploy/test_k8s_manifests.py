"""deploy/k8s: every variant validates offline against the Kubernetes schemas (kubernetes-validate carries them),
and its parts fit together: workers find the master, the soak waits for as many workers as run, every pod
mounts the dialogues where --dialogues points and runs as the image's non-root user."""

from __future__ import annotations

import copy
import shutil
import subprocess
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from loadgen.dialogues import load_dialogues
from tests.conftest import REPO_ROOT
from tests.deploy.deploy_files import (
    K8S,
    VARIANTS,
    Resource,
    by_kind_and_name,
    container_argv,
    dockerfile_instructions,
    kustomize,
    only_container,
    option_value,
    pod_spec,
)

#: The oldest Kubernetes still commonly run, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
DIALOGUES_PATH = "/etc/chat-loadgen/dialogues"
MASTERS = {"web": ("Deployment", "chat-loadgen-master"), "soak": ("Job", "chat-loadgen-soak")}
WORKERS = ("Deployment", "chat-loadgen-worker")


def _variant(name: str) -> dict[tuple[str, str], Resource]:
    return by_kind_and_name(kustomize(K8S / name))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_resource_validates_strictly(variant: str, version: str) -> None:
    resources = kustomize(K8S / variant)
    assert resources
    for resource in resources:
        # strict: a misspelt or misplaced field fails instead of being ignored by the API server
        kubernetes_validate.validate(resource, version, strict=True)


def test_validation_rejects_a_misspelt_field_and_a_wrong_type() -> None:
    job = _variant("soak")[MASTERS["soak"]]
    misspelt = copy.deepcopy(job)
    pod_spec(misspelt)["containers"][0]["imagePulPolicy"] = "IfNotPresent"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES_VERSIONS[-1], strict=True)
    wrong_type = copy.deepcopy(job)
    wrong_type["spec"]["backoffLimit"] = "none"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, KUBERNETES_VERSIONS[-1], strict=True)


def test_every_yaml_file_is_part_of_a_variant() -> None:
    used: set[Path] = set()
    for variant in (*VARIANTS, "base"):
        (kustomization,) = yaml.safe_load_all((K8S / variant / "kustomization.yaml").read_text())
        used |= {(K8S / variant / r).resolve() for r in kustomization.get("resources", [])}
        for generator in kustomization.get("configMapGenerator", []):
            used |= {(K8S / variant / f).resolve() for f in generator["files"]}
    files = {p.resolve() for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert files - used == set(), "manifests no kustomization applies"


@pytest.mark.parametrize("variant", VARIANTS)
def test_kubectl_kustomize_builds_the_same(variant: str) -> None:
    """Where kubectl is installed, its own kustomize agrees with the reader the other tests use."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl on PATH: the reader in deploy_files.py stands in for kustomize")
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S / variant)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    theirs = by_kind_and_name([d for d in yaml.safe_load_all(done.stdout) if d])
    assert theirs == _variant(variant)


def test_dialogues_configmap_holds_valid_dialogues_mounted_where_dialogues_points(tmp_path: Path) -> None:
    soak = _variant("soak")
    configmap = soak[("ConfigMap", "chat-loadgen-dialogues")]
    assert configmap["data"], "no dialogue in the ConfigMap"
    for key, text in configmap["data"].items():
        assert key.endswith(".yaml"), key  # the loader reads *.yaml and *.yml files of the mounted folder
        (tmp_path / key).write_text(text, encoding="utf-8")
    dialogues = load_dialogues([tmp_path])
    assert len(dialogues) == len(configmap["data"])
    assert any(turn.probe for d in dialogues for turn in d.turns), "a soak should check context retention"

    pods = [soak[MASTERS["soak"]], soak[WORKERS], _variant("web")[MASTERS["web"]]]
    for pod in pods:
        argv = container_argv(pod)
        assert option_value(argv, "--dialogues") == DIALOGUES_PATH
        volumes = {v["name"]: v for v in pod_spec(pod)["volumes"]}
        (mount,) = [m for m in only_container(pod)["volumeMounts"] if m["mountPath"] == DIALOGUES_PATH]
        assert mount.get("readOnly") is True
        assert volumes[mount["name"]]["configMap"]["name"] == configmap["metadata"]["name"]


def test_workers_find_the_master_through_its_service() -> None:
    for variant, master_key in MASTERS.items():
        resources = _variant(variant)
        service = resources[("Service", "chat-loadgen-master")]
        master, workers = resources[master_key], resources[WORKERS]
        worker_argv = container_argv(workers)
        assert "--worker" in worker_argv and "--master" in container_argv(master)
        assert option_value(worker_argv, "--master-host") == service["metadata"]["name"]
        ports = {p["name"]: p for p in service["spec"]["ports"]}
        assert ports["workers"]["port"] == int(option_value(worker_argv, "--master-port")) == 5557
        assert ports["web"]["port"] == 8089
        container_ports = {p["containerPort"] for p in only_container(master).get("ports", [])}
        assert ports["workers"]["targetPort"] in container_ports
        selector = service["spec"]["selector"].items()
        assert selector <= master["spec"]["template"]["metadata"]["labels"].items()
        worker_labels = workers["spec"]["template"]["metadata"]["labels"].items()
        assert not selector <= worker_labels and workers["spec"]["selector"]["matchLabels"].items() <= worker_labels
    web_master = _variant("web")[MASTERS["web"]]
    assert {p["containerPort"] for p in only_container(web_master)["ports"]} == {5557, 8089, 9646}


def test_soak_job_waits_for_every_worker_and_returns_the_verdict() -> None:
    soak = _variant("soak")
    job, workers = soak[MASTERS["soak"]], soak[WORKERS]
    argv = container_argv(job)
    assert argv[:3] == ["locust", "-f", "scenarios/multiturn.py"]
    assert {"--master", "--headless", "--only-summary"} <= set(argv)
    assert int(option_value(argv, "--expect-workers")) == workers["spec"]["replicas"] >= 2
    assert int(option_value(argv, "--expect-workers-max-wait")) > 0  # no workers: exit 1, not a hang
    assert option_value(argv, "-t") and option_value(argv, "--host").startswith("http")
    assert argv.count("--threshold") >= 3
    # a broken threshold is exit 3; failed requests alone must not decide (errors < 1% does)
    assert option_value(argv, "--exit-code-on-error") == "0"
    assert job["spec"]["backoffLimit"] == 0 and pod_spec(job)["restartPolicy"] == "Never"
    assert "--headless" not in container_argv(_variant("web")[MASTERS["web"]])
    # the run folders outlive the Job's pod
    reports = {m["name"]: m["mountPath"] for m in only_container(job)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    (name,) = [n for n, path in reports.items() if path == "/app/reports"]
    claim = volumes[name]["persistentVolumeClaim"]["claimName"]
    assert ("PersistentVolumeClaim", claim) in soak


def test_workers_take_the_target_from_the_master() -> None:
    # a worker's users get the master's --host with their first spawn message (Locust sends it), so the
    # target is named once per variant; the workers keep the options the runtime reads from their own argv
    for variant, master_key in MASTERS.items():
        resources = _variant(variant)
        master_argv, worker_argv = container_argv(resources[master_key]), container_argv(resources[WORKERS])
        assert "--host" not in worker_argv
        assert option_value(master_argv, "--host") == "http://reference-server:8000"
        for option in ("-f", "--dialogues"):
            assert option_value(master_argv, option) == option_value(worker_argv, option)
    reference = _variant("reference-server")
    service = reference[("Service", "reference-server")]
    assert service["spec"]["ports"][0]["port"] == 8000
    assert container_argv(reference[("Deployment", "reference-server")]) == [
        "loadgen", "serve", "--rest-port", "8000", "--bind", "0.0.0.0",
    ]  # fmt: skip


def _image_user() -> int:
    users = [args for keyword, args in dockerfile_instructions() if keyword == "USER"]
    return int(users[-1].split(":")[0])


def test_every_pod_runs_the_projects_image_as_its_non_root_user() -> None:
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    for variant in VARIANTS:
        for resource in kustomize(K8S / variant):
            if "template" not in resource.get("spec", {}):
                continue
            spec = pod_spec(resource)
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert spec["securityContext"]["runAsUser"] == _image_user() != 0
            container = only_container(resource)
            assert container["image"] == f"chat-loadgen:{version}", "the placeholder README documents"
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["resources"]["limits"]["cpu"]
