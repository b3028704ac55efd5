"""The contract kit's tests: the plug-in package's source on the path, and the kit's pytest hook (a test taking
``contract_check`` runs once per check)."""

from loadgen.testing.pytest_plugin import pytest_generate_tests
from tests.plugins.plugin_path import add_plugin_to_path

add_plugin_to_path()

__all__ = ["pytest_generate_tests"]
