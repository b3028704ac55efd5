"""deploy/k8s: every master serves /metrics (--metrics-port) on all its addresses, on the port its Service and its
container name ``metrics``, and its pod says so to a Prometheus that discovers pods by annotation."""

from __future__ import annotations

import pytest

from tests.deploy.deploy_files import K8S, by_kind_and_name, container_argv, kustomize, only_container, option_value

MASTERS = {"web": ("Deployment", "chat-loadgen-master"), "soak": ("Job", "chat-loadgen-soak")}


@pytest.mark.parametrize("variant", sorted(MASTERS))
def test_the_master_serves_metrics_where_its_service_points(variant: str) -> None:
    resources = by_kind_and_name(kustomize(K8S / variant))
    master = resources[MASTERS[variant]]
    service_ports = {p["name"]: p for p in resources[("Service", "chat-loadgen-master")]["spec"]["ports"]}
    argv = container_argv(master)
    port = int(option_value(argv, "--metrics-port"))
    assert option_value(argv, "--metrics-bind") == "0.0.0.0"  # reachable from the Prometheus pod
    assert service_ports["metrics"]["port"] == service_ports["metrics"]["targetPort"] == port
    container_ports = {p["name"]: p["containerPort"] for p in only_container(master)["ports"]}
    assert container_ports["metrics"] == port
    annotations = master["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/scrape"] == "true"
