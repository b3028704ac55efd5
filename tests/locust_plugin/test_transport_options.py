"""The reply size limit and the whole-reply switch reach every transport's TransportConfig from the command line.

Run in a Python of its own: importing the plugin imports Locust, which monkey-patches the process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import REPO_ROOT

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from types import SimpleNamespace
    import configargparse
    from loadgen.locust_plugin import options
    from loadgen.locust_plugin.runtime import LoadgenRuntime

    def parsed(*argv):
        parser = configargparse.ArgumentParser()
        options.add_arguments(parser)
        return options.LoadgenOptions.from_parsed(parser.parse_args(list(argv)))

    default = parsed()
    given = LoadgenRuntime.transport_config(
        SimpleNamespace(options=parsed("--max-reply-bytes", "8MiB", "--accept-unstreamed")), "http://127.0.0.1:1"
    )
    print(json.dumps([default.max_reply_bytes, default.accept_unstreamed, given.max_reply_bytes,
                      given.accept_unstreamed]))
    sys.stdout.flush()
    parsed("--max-reply-bytes", "lots")
    """
)


def test_the_options_reach_the_transport_config_and_a_bad_size_is_refused() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert json.loads(done.stdout.splitlines()[0]) == [4 * 1024 * 1024, False, 8 * 1024 * 1024, True]
    assert done.returncode == 2
    assert "'lots' is not a size: write e.g. 4194304, 4MiB, 512KiB or 10MB" in done.stderr
