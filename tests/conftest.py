"""Shared test helpers: where the repository is, and whether a RabbitMQ broker answers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BROKER_HINT = "no RabbitMQ on 127.0.0.1:5672: start one with `rabbitmq-server -detached` (guest/guest)"


def broker_available(host: str = "127.0.0.1", port: int = 5672, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_broker() -> None:
    """Skip without a broker on a developer machine; fail in CI, where .ci/run starts one."""
    if broker_available():
        return
    if IN_CI:
        pytest.fail(BROKER_HINT)
    pytest.skip(BROKER_HINT)


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A throw-away self-signed certificate for 127.0.0.1 (cert, key)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key
