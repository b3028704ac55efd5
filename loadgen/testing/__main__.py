"""``python -m loadgen.testing``: the transport contract kit from the command line; exit 0 when no check failed.

Without ``--host`` the checks run against the reference server (fixed timing, in this process) for a transport it
serves (rest, grpc, amqp, websocket); with ``--host`` against that service, whose fixed timing, if it has one, is
given by ``--fixed-ttft-ms`` and ``--fixed-itl-ms`` (else the checks that need it are skipped).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

from loadgen.errors import ConfigError
from loadgen.server.config import LOCAL_AMQP_URL
from loadgen.testing.reference import ITL_MS, TTFT_MS, reference_target
from loadgen.testing.runner import CHECKS, check_name, run_contract
from loadgen.testing.target import ContractTarget
from loadgen.transports import transport_class
from loadgen.types import HistoryMode


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadgen.testing", description=__doc__)
    p.add_argument("--transport", required=True, help="a registered name or package.module:Class")
    p.add_argument("--host", help="the service's URL (default: the reference server, started here)")
    p.add_argument("--fixed-ttft-ms", type=float, help=f"the service's fixed TTFT (reference server: {TTFT_MS:g})")
    p.add_argument("--fixed-itl-ms", type=float, help=f"the service's fixed ITL (reference server: {ITL_MS:g})")
    p.add_argument("--no-recall", action="store_true", help="the service does not repeat earlier facts: only check "
                   "that both history modes are answered")  # fmt: skip
    p.add_argument(
        "--history", default="client,server", help="history modes the service supports (default %(default)s)"
    )
    p.add_argument("--api-key-env", metavar="NAME", help="send the API key held in this environment variable")
    p.add_argument("--amqp-url", default=LOCAL_AMQP_URL, help="the broker of the reference server's AMQP front")
    p.add_argument(
        "--skip", default="", help=f"checks to leave out, comma-separated: {', '.join(map(check_name, CHECKS))}"
    )
    return p


@contextlib.contextmanager
def target_of(args: argparse.Namespace) -> Iterator[ContractTarget]:
    try:
        modes = tuple(HistoryMode(m.strip()) for m in args.history.split(",") if m.strip())
    except ValueError:
        raise ConfigError(f"--history {args.history!r}: use client, server or both, comma-separated") from None
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env) or None
        if api_key is None:
            raise ConfigError(f"--api-key-env {args.api_key_env}: that environment variable is not set or empty")
    recall = not args.no_recall
    transport_class(args.transport)  # one clear line for an unknown transport, before any server starts
    if args.host:
        yield ContractTarget(
            args.transport, args.host, args.fixed_ttft_ms, args.fixed_itl_ms,
            recall=recall, history_modes=modes, api_key=api_key,
        )  # fmt: skip
        return
    ttft, itl = args.fixed_ttft_ms or TTFT_MS, args.fixed_itl_ms or ITL_MS
    with reference_target(
        args.transport, ttft_ms=ttft, itl_ms=itl, amqp_url=args.amqp_url,
        recall=recall, history_modes=modes, api_key=api_key,
    ) as target:  # fmt: skip
        yield target


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - {check_name(c) for c in CHECKS}
    try:
        if unknown:
            raise ConfigError(f"--skip: no check named {', '.join(sorted(unknown))}")
        with target_of(args) as target:
            print(f"transport {target.spec} against {target.url}", flush=True)
            results = run_contract(target, [c for c in CHECKS if check_name(c) not in skip])
    except ConfigError as exc:
        print(f"loadgen.testing: {exc}", file=sys.stderr)
        return 2
    for result in results:
        print(result.line())
    failed = sum(r.outcome == "fail" for r in results)
    print(f"{len(results) - failed} of {len(results)} checks passed or skipped, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
