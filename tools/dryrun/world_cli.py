"""``pipeline-world``: world files from live data, and worlds fit to share.

``pipeline-world snapshot [EVENTS…] [--user NUMBER…]`` reads, read-only, the rows those events need
from the account (``tools.dryrun.snapshot``; the tables the Lambda's environment variables name) and
writes them as a world file (``-o FILE``: readable by its owner only, mode 0600, ``tools.private``), masked as
the capture masks events (``--mask``, default ``text``; ``all`` pseudonymizes numbers and addresses with
``--key-env``'s key) and with its credentials redacted unless ``--keep-secrets`` (which needs ``-o``): the
events and the world can then be replayed offline together::

    pipeline-world snapshot captured/ -o world.json
    pipeline-dryrun --world world.json --skip-signature captured/

``pipeline-world pseudonymize WORLD`` does the same masking to an existing world file.

Exit status: 0 done; 2 bad arguments, an unreadable file, a configuration that does not load, or a read of the
account that failed (denied, throttled, a table it lacks: no world is written).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from engine.errors import ConfigError
from runtime.masking import MASK_MODES, Pseudonyms
from steps.support import json_text
from tools.console import EXIT_OK, EXIT_USAGE, console_script, load_project_plugins, problem_lines
from tools.dryrun.mask import MASK_MODES_HELP
from tools.private import write_private

__all__ = ["main"]

# Queue URLs are needed to load a pipeline, never to read from: a snapshot stands in for any that is unset, the
# shipped ones' and those of any other pipeline's targets (tools.needs reads them).
_SHIPPED_QUEUES = ("WHATSAPP_QUEUE_URL", "SMS_QUEUE_URL", "HANDOFF_QUEUE_URL", "EMAIL_QUEUE_URL")


def _queue_placeholders(pipelines: list[Path]) -> dict[str, str]:
    """A stand-in URL for every queue variable of ``pipelines``' targets (and the shipped ones)."""
    from tools.needs import pipeline_needs

    try:
        names = [*_SHIPPED_QUEUES, *(queue.env for queue in pipeline_needs(pipelines).queues)]
    except ConfigError:  # loading the pipelines reports it, located
        names = list(_SHIPPED_QUEUES)
    return {name: f"https://sqs.invalid/snapshot/{name.lower()}" for name in names}


class Refused(Exception):
    """Arguments that cannot work; the message says why."""


def _pseudonyms(args: argparse.Namespace) -> Pseudonyms | None:
    from tools.dryrun.capture import key_pseudonyms

    try:
        return key_pseudonyms(args.mask, args.key_env)
    except ValueError as exc:
        raise Refused(str(exc)) from None


def _refuse_printed_credentials(args: argparse.Namespace) -> None:
    """Refuse ``--keep-secrets`` without ``-o``: printed, tokens reach a terminal's scrollback or a job's log."""
    if args.keep_secrets and args.output is None:
        raise Refused(
            "--keep-secrets needs -o FILE: the world then holds credentials, which are written to a file readable "
            "by its owner only, never printed"
        )


def _write(document: Any, target: Path | None, out: TextIO, err: TextIO) -> None:
    """Print the world, or write it to ``target`` readable by its owner only (it holds numbers, maybe tokens)."""
    from tools.dryrun.world import binary_paths, dotted

    binary = [dotted(path) for path in binary_paths(document)]
    if binary:
        # The world is written as JSON, which holds no bytes; the values are not shown (they may be anything).
        raise Refused(
            f"{', '.join(binary)}: binary data (not shown), which a world file written as JSON cannot hold; "
            "remove the attribute, or write it as text"
        )
    text = json_text(document, ensure_ascii=False, indent=1) + "\n"
    if target is None:
        out.write(text)
    else:
        try:
            private = write_private(target, text)
        except OSError as exc:
            raise Refused(f"cannot write {target}: {exc.strerror or exc}") from None
        err.write(f"pipeline-world: wrote {target}{' (readable by its owner only)' if private else ''}\n")


def _snapshot(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import botocore.exceptions

    from runtime.app import load_configs, shared_limits
    from runtime.layout import PIPELINES_DIR, pipeline_files
    from tools.dryrun.capture import shareable_world
    from tools.dryrun.coverage import rules_dir_problem
    from tools.dryrun.events import load_events
    from tools.dryrun.lanes import ReplayClock
    from tools.dryrun.live import AccountAccess, live_clients, process_reads_only
    from tools.dryrun.paths import path_mistake
    from tools.dryrun.snapshot import SECTION_TABLES, UnreadableAccount, snapshot_world
    from tools.dryrun.world import now_option

    if not args.events and not args.user:
        raise Refused("name the events whose rows to read (EVENTS) or the users (--user NUMBER)")
    mistake = path_mistake(rules={"--rules": args.rules}, pipelines={"--pipeline": args.pipeline})
    if mistake:
        raise Refused(mistake)
    pseudonyms = _pseudonyms(args)
    missing = [name for name in SECTION_TABLES.values() if not os.environ.get(name)]
    if missing:
        raise Refused(f"set {', '.join(missing)} to the tables to read (as the Lambda's environment names them)")
    tables = {section: os.environ[name] for section, name in SECTION_TABLES.items()}
    try:
        # Without --now, each event is read at its arrival time and the world pins no time, as a live replay decides;
        # an empty --now (a script's unset variable) is refused, as pipeline-dryrun and pipeline-event refuse it.
        now = now_option(args.now) if args.now is not None else None
    except ValueError as exc:
        raise Refused(str(exc)) from None
    unusable = rules_dir_problem(args.rules, "--rules", baseline=False)
    if unusable is not None:
        raise ConfigError([unusable])
    load_project_plugins()
    events = load_events(args.events) if args.events else []
    pipelines = [args.pipeline] if args.pipeline is not None else pipeline_files(PIPELINES_DIR)
    configs = load_configs(pipelines, args.rules, {**_queue_placeholders(pipelines), **os.environ})
    access = AccountAccess(args.profile, args.region, args.endpoint_url)
    try:
        try:
            clients = live_clients(shared_limits(configs), access)
        except ValueError as exc:  # botocore's refusal of an endpoint that is no URL
            raise Refused(f"--endpoint-url {args.endpoint_url!r}: {exc}") from None
        with process_reads_only([]):
            snapshot = snapshot_world(
                events, configs, clients, tables, clock=ReplayClock(now), users=tuple(args.user or ()), now=now
            )
    except UnreadableAccount as exc:
        raise Refused(
            f"reading the account failed ({exc}): no world written; check the credentials, --profile, --region, "
            "--endpoint-url and the table variables"
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise Refused(f"reading the account failed: {exc}") from None
    except botocore.exceptions.ClientError as exc:
        raise Refused(f"reading the account failed: {exc.response.get('Error', {}).get('Code')}") from None
    for note in snapshot.notes:
        err.write(f"pipeline-world: note: {note}\n")
    shared = shareable_world(snapshot.document, mask=args.mask, pseudonyms=pseudonyms, keep_secrets=args.keep_secrets)
    _write(shared, args.output, out, err)
    counts = ", ".join(f"{len(shared.get(section) or [])} {section}" for section in SECTION_TABLES)
    err.write(f"pipeline-world: {counts}, {len(shared.get('secrets') or {})} secrets (mask={args.mask})\n")
    return EXIT_OK


def _pseudonymize(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from tools.dryrun.capture import shareable_world, world_document
    from tools.dryrun.world import load_world

    pseudonyms = _pseudonyms(args)
    document = world_document(load_world(args.world))
    _write(
        shareable_world(document, mask=args.mask, pseudonyms=pseudonyms, keep_secrets=args.keep_secrets),
        args.output,
        out,
        err,
    )
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeline-world", description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    snapshot = commands.add_parser("snapshot", help="read the rows events need from the account, as a world file")
    snapshot.add_argument("events", nargs="*", type=Path, metavar="EVENTS", help="event files or directories")
    snapshot.add_argument("--user", action="append", metavar="NUMBER", help="also every conversation of this user")
    snapshot.add_argument("--pipeline", type=Path, help="one pipeline file (default: every pipelines/*.yaml)")
    snapshot.add_argument("--rules", type=Path, default=Path("rules"), help="the rules directory (default: rules/)")
    snapshot.add_argument(
        "--now",
        help="the time to read at, and the world's `now` (ISO-8601; UTC without an offset; default: each event's "
        "arrival time, and no `now`); an email "
        "signed longer ago than its window (EMAIL_SIGNATURE_MAX_AGE_SECONDS, 4 days) before --now is refused before "
        "any read, so snapshot older emails without --now, or with --now at their time",
    )
    snapshot.add_argument("--profile", help="the AWS profile to read with")
    snapshot.add_argument(
        "--region", help="the AWS region (default: AWS_REGION, else AWS_DEFAULT_REGION or the profile's)"
    )
    snapshot.add_argument("--endpoint-url", help="an AWS endpoint (e.g. a local emulator)")
    pseudonymize = commands.add_parser("pseudonymize", help="mask (and pseudonymize) a world file to share it")
    pseudonymize.add_argument("world", type=Path, metavar="WORLD", help="the world file (.yaml or .json)")
    for command, default in ((snapshot, "text"), (pseudonymize, "all")):
        command.add_argument(
            "--mask", choices=MASK_MODES, default=default, help=f"{MASK_MODES_HELP} (default: {default})"
        )
        command.add_argument("--key-env", metavar="NAME", help="environment variable holding the pseudonym key")
        command.add_argument(
            "--keep-secrets", action="store_true", help="keep credentials (default: redacted); needs -o FILE"
        )
        command.add_argument(
            "-o", "--output", type=Path, metavar="FILE", help="write here, readable by its owner only (default: stdout)"
        )
    return parser


@console_script("pipeline-world")
def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Entry point of the console script."""
    from tools.dryrun.events import EventFileError

    stdout, stderr = out or sys.stdout, err or sys.stderr
    args = _parser().parse_args(argv)
    try:
        _refuse_printed_credentials(args)
        return _snapshot(args, stdout, stderr) if args.command == "snapshot" else _pseudonymize(args, stdout, stderr)
    except Refused as exc:
        stderr.write(f"pipeline-world: error: {exc}\n")
    except (ConfigError, EventFileError) as exc:
        stderr.write(problem_lines(exc.problems))
    except BrokenPipeError:
        raise  # the reader went away (`| head`): console_script ends the command quietly, as a shell's SIGPIPE
    except OSError as exc:
        stderr.write(f"pipeline-world: error: {exc}\n")
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
