"""``pipeline-dryrun``: replay recorded events with no side effects, or check configuration (``--check``).

Exit status: 0 done; 1 ``--fail-on-change`` and a decision changed, or an inline rule test failed;
2 bad arguments or configuration (each problem printed as ``FILE:LINE:COLUMN: message``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.console import EXIT_USAGE, console_script, load_project_plugins

__all__ = ["build_parser", "main", "mode_conflict"]

# The options --check reads; every other one belongs to a replay.
_CHECK_OPTIONS = frozenset({"check", "pipeline", "rules", "strict", "strict_env"})


class _Parser(argparse.ArgumentParser):
    """argparse with the contract's exit status (2) and no traceback on bad arguments."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``pipeline-dryrun``."""
    parser = _Parser(
        prog="pipeline-dryrun",
        description="Replay recorded webhook events through the pipeline with no side effects; explain each decision.",
    )
    parser.add_argument("events", nargs="*", type=Path, metavar="EVENTS", help="event files or directories")
    parser.add_argument(
        "--pipeline", type=Path, help="one pipeline file (default: every pipelines/*.yaml, routed by path)"
    )
    parser.add_argument("--rules", type=Path, default=Path("rules"), help="the rules directory (default: rules/)")
    parser.add_argument("--world", type=Path, help="world file (YAML/JSON): conversations, secrets, locks, stage, now")
    parser.add_argument("--json", action="store_true", help="one JSON object per event and line")
    parser.add_argument(
        "--explain", action="store_true", help="readable output: under each row, the trace, rules, actions and response"
    )
    parser.add_argument("--baseline-rules", type=Path, help="compare every decision against these rules")
    parser.add_argument(
        "--baseline-pipeline",
        type=Path,
        help="compare every decision against this pipeline file (with --baseline-rules or --rules)",
    )
    parser.add_argument("--fail-on-change", action="store_true", help="exit 1 when a decision changed")
    parser.add_argument(
        "--now", help="ISO-8601 time the replay runs at (wins over the world's `now`); one without an offset is UTC"
    )
    parser.add_argument("--independent", action="store_true", help="replay every event against the world as loaded")
    parser.add_argument("--show-data", action="store_true", help="do not mask phone numbers and message bodies")
    parser.add_argument("--skip-signature", action="store_true", help="replay events whose signature cannot be checked")
    parser.add_argument(
        "--backend",
        choices=("moto", "memory", "live"),
        help="with --world: moto (reference, the default) or memory (fast, identical output); "
        "live (the default without --world): read the AWS account, keep writes and sends in memory",
    )
    parser.add_argument("--profile", help="live: the AWS profile to read with (default: the default credentials)")
    parser.add_argument(
        "--region", help="live: the AWS region (default: AWS_REGION, else AWS_DEFAULT_REGION or the profile's)"
    )
    parser.add_argument("--endpoint-url", help="live: an AWS endpoint (e.g. a local emulator)")
    parser.add_argument("--report", type=Path, metavar="FILE", help="also write the decision report page (HTML)")
    parser.add_argument("--report-title", metavar="TEXT", help="the report's title (default: the rules compared)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=0,
        metavar="N",
        help="processes replaying a memory world (default 0: every core for long replays); output is the same",
    )
    parser.add_argument("--check", action="store_true", help="validate configuration and run the rules' inline tests")
    parser.add_argument("--strict-env", action="store_true", help="with --check: unset ${env:…} values are errors")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="with --check: warnings fail the check (unset ${env:…} values: --strict-env)",
    )
    return parser


def mode_conflict(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """Why the options given do not go together (one given without the mode it belongs to), or None."""

    def given(dest: str) -> bool:
        value = getattr(args, dest, None)
        return value not in (parser.get_default(dest), None, [])

    if args.check:
        replay_only = [action for action in parser._actions if action.dest not in _CHECK_OPTIONS and given(action.dest)]
        if replay_only:
            names = ", ".join(action.option_strings[0] if action.option_strings else "EVENTS" for action in replay_only)
            return f"--check replays no events: drop {names}, or run the replay without --check"
        return None
    check_only = [f"--{dest.replace('_', '-')}" for dest in ("strict", "strict_env") if given(dest)]
    if check_only:
        return f"{', '.join(check_only)}: only with --check"
    if given("report_title") and not given("report"):
        return "--report-title: only with --report FILE (the page it titles)"
    return None


@console_script("pipeline-dryrun")
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    # EVENTS may be given before, between and after the options, as on any shell line.
    args = parser.parse_intermixed_args(argv)
    conflict = mode_conflict(parser, args)
    if conflict:
        parser.error(conflict)
    from tools.dryrun.paths import path_mistake

    # --baseline-rules is loaded as given, whatever it holds: its problems are reported with the lanes' (a directory
    # of other YAML is no pulled bundle, and lends nothing).
    mistake = path_mistake(
        rules={"--rules": args.rules, "--baseline-rules": None},
        pipelines={"--pipeline": args.pipeline, "--baseline-pipeline": args.baseline_pipeline},
    )
    if mistake:
        parser.error(mistake)

    load_project_plugins()
    if args.check:
        from tools.check import run_check

        return run_check(
            args.pipeline, args.rules, strict_env=args.strict_env, strict=args.strict, out=sys.stdout, err=sys.stderr
        )
    if not args.events:
        parser.error("give at least one events file or directory (or --check)")
    from tools.dryrun.replay import run_replay

    return run_replay(args, out=sys.stdout, err=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
