"""Entry point: subcommands, and the one place where user errors become a line and exit code 2."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shlex
import signal
import sys
import threading
from typing import NoReturn

from ctrobust import __version__
from ctrobust.cli import (
    audit_attack_cmd,
    audit_cmd,
    eval_cmd,
    leaderboard_cmd,
    models_cmd,
    report_cmd,
    reproduce_cmd,
    train_cmd,
)
from ctrobust.ct.errors import CTError
from ctrobust.errors import CtrobustError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what `yes | head` leaves


class _Parser(argparse.ArgumentParser):
    """Command-line mistakes in one line with a pointer to --help, exit code 2 (not argparse's usage block)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"ctrobust: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(EXIT_USER_ERROR)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ctrobust",
        description="Robustness evaluation of Curvature Tuning (CT): does smoothing a network's ReLUs "
        "make it more robust, and by how much?",
    )
    parser.add_argument("--version", action="version", version=f"ctrobust {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    eval_cmd.add_parser(sub)
    reproduce_cmd.add_parser(sub)
    report_cmd.add_parser(sub)
    leaderboard_cmd.add_parser(sub)
    train_cmd.add_parser(sub)
    models_cmd.add_parser(sub)
    audit_cmd.add_parser(sub)
    audit_attack_cmd.add_parser(sub)
    for command_parser in sub.choices.values():
        _add_verbosity(command_parser)
    return parser


def _add_verbosity(parser: argparse.ArgumentParser) -> None:
    """-q / -v on every command, through Python's logging (see ctrobust.stages.progress.configure_logging)."""
    group = parser.add_argument_group("messages")
    quiet_or_verbose = group.add_mutually_exclusive_group()
    quiet_or_verbose.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1, default=0,
                                  help="only warnings and errors (no progress bar)")
    quiet_or_verbose.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1,
                                  help="more detail, AutoAttack's own log included")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["ctrobust", *(sys.argv[1:] if argv is None else argv)])
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USER_ERROR
    from ctrobust.stages.progress import configure_logging

    configure_logging(getattr(args, "verbosity", 0))
    in_main_thread = threading.current_thread() is threading.main_thread()  # only it may set a handler
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None  # `kill`: as Ctrl-C
    try:
        code = int(args.handler(args))
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # The reader went away (`ctrobust models | head`): stop quietly, and keep Python's exit-time
        # flush of stdout from raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (CtrobustError, CTError) as exc:
        print(f"ctrobust: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        print(_interrupted(exc), file=sys.stderr)
        return EXIT_INTERRUPTED
    except RuntimeError as exc:
        # Ctrl-C inside torch's function-mode bookkeeping surfaces as a RuntimeError raised while the
        # KeyboardInterrupt was being handled: it is still an interruption, not a crash.
        if isinstance(exc.__context__, KeyboardInterrupt) or "mode stack" in str(exc):
            print(_interrupted(exc), file=sys.stderr)
            return EXIT_INTERRUPTED
        raise
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EIO, errno.EBADF):
            raise
        # Standard output on a full device or closed: what was computed is in the store already.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        kept = WHAT_IS_KEPT.get(getattr(args, "command", None) or "")
        print(f"ctrobust: error: cannot write to standard output ({exc.strerror})" + (f"; {kept}" if kept else ""),
              file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


# What a command has kept when its standard output fails (a full disk): only what that command writes.
WHAT_IS_KEPT = {
    "eval": "what was computed is in the store and the files named by --out",
    "reproduce": "what was computed is in the store and the tables named by --out",
    "audit-attack": "what was computed is in the store",
    "train": "the weights are in the file named by --out",
    "report": "the report is in the folder named by --out",
    "leaderboard": "the leaderboard is in the folder named by --out",
}


def _terminate(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt("terminated (SIGTERM)")


def _interrupted(exc: BaseException) -> str:
    """One line: the run is interrupted, what is kept, and (from the exception's notes) which bound the user has."""
    notes = [*getattr(exc, "__notes__", []), *getattr(exc.__context__, "__notes__", [])]
    return "; ".join(["ctrobust: interrupted; what was finished is in the store", *notes])


if __name__ == "__main__":
    sys.exit(main())
