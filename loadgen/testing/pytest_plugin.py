"""The contract kit as pytest tests: any test that takes the ``contract_check`` argument runs once per check.

In a ``conftest.py``, load the plug-in and say what to check::

    pytest_plugins = ["loadgen.testing.pytest_plugin"]

    @pytest.fixture(scope="session")
    def contract_target():
        return ContractTarget("my_package.transport:MyTransport", "myproto://127.0.0.1:9000",
                              fixed_ttft_ms=50, fixed_itl_ms=10)

and in a test module::

    def test_contract(contract_target, contract_check):
        contract_check(contract_target)

A check that cannot run against the target (:class:`~loadgen.testing.checks.CheckSkipped`) is a pytest skip.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from loadgen.testing.checks import Check, CheckSkipped
from loadgen.testing.runner import CHECKS, check_name
from loadgen.testing.target import ContractTarget


def as_test(check: Check) -> Callable[[ContractTarget], None]:
    """``check`` with :class:`CheckSkipped` turned into a pytest skip."""

    def run(target: ContractTarget) -> None:
        try:
            check(target)
        except CheckSkipped as exc:
            pytest.skip(str(exc))

    run.__name__ = check.__name__
    return run


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "contract_check" in metafunc.fixturenames:
        metafunc.parametrize("contract_check", [as_test(c) for c in CHECKS], ids=[check_name(c) for c in CHECKS])


__all__ = ["as_test", "pytest_generate_tests"]
