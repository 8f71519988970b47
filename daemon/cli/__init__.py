"""The `ticketd` command line: the parser and `main`; the commands live in `ml` (train, classify, evaluate,
models, split) and `service` (run, serve, check-config, check, report, bootstrap, forget).

Heavy modules are imported inside each command, so serving stays torch-free.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from daemon import __version__
from daemon.cli import ml, service
from daemon.errors import TicketdError, answer, cli_line
from daemon.logging import configure, get_logger


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad option or value as one line (the usage is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for tests and shell completion."""
    parser = _Parser(prog="ticketd", description="On-premise helpdesk ticket triage.")
    parser.add_argument("--version", action="version", version=f"ticketd {__version__}")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error", "critical"],
        help="log level of the command (default: info)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ml.add_commands(sub)
    service.add_commands(sub)
    return parser


def _command(name: str) -> Any:
    return {**ml.COMMANDS, **service.COMMANDS}[name]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: an error prints one line and exits with its code (daemon.errors.ANSWERS), never a traceback."""
    from daemon import conflicts

    found = conflicts.conflicts()
    if found:
        print(f"ticketd: error: {conflicts.message(found)}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    configure(args.log_level)
    try:
        return int(_command(args.command)(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # line and exit code from the one table (daemon.errors.ANSWERS)
        if not isinstance(exc, TicketdError):  # a bug, not bad input: the log gets the traceback (secrets hidden)
            get_logger("ticketd").error("command failed unexpectedly", command=args.command, exc_info=exc)
        print(cli_line(exc, args.command), file=sys.stderr)
        return answer(exc).exit_code
