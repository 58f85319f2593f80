"""``pipeline-rules``: publish rules bundles to S3 and deploy them (live or shadow) without a code deploy.

    pipeline-rules publish [--pipeline FILE] [--rules DIR] [--with-pipeline] [--shadow | --live] [--note TEXT]
                           [--strict] [--strict-env]
    pipeline-rules list [--pipeline NAME]
    pipeline-rules shadow BUNDLE | --clear
    pipeline-rules shadow-status [--stack NAME] [--namespace NS]   # the shadow candidate's record in CloudWatch
    pipeline-rules promote [BUNDLE] [--require-agreement]   # without BUNDLE: the shadow becomes live
    pipeline-rules rollback [--to BUNDLE|packaged]
    pipeline-rules pull BUNDLE --out DIR       # the bundle's files, e.g. as a dry-run baseline
    pipeline-rules diff [A] [B]                # a unified diff of their files (bundle, live, shadow, packaged, DIR)

``publish`` first checks the pipeline and its rules exactly as ``pipeline-dryrun --check`` does and refuses
them when the check fails; ``--strict`` also refuses any warning but an unset ``${env:…}`` value (resolved in the
function's environment, usually absent where one publishes), which only ``--strict-env`` refuses. It then uploads
the rule files that belong to the pipeline (the pipeline file too with ``--with-pipeline``) as an immutable
bundle named by its digest, and optionally deploys it. Deploying rewrites the pipeline's deployment document,
conditional on the version read (two people deploying at once cannot overwrite each other). The bucket comes from
``--bucket`` or ``RULES_BUCKET``, the prefix from ``--prefix`` or ``RULES_PREFIX`` (``rules/``).
A bundle is a pipeline's own: one stored under another pipeline is refused, as is a pipeline file
that renames the pipeline or changes what is the code's: its channels, its steps (and every step's ``with:``
but the deciding ones'), ``tables:``, ``secrets:`` patterns, ``targets:``, the time bounds (``deadline_seconds``,
``aws:``) or ``responses:`` families (``runtime.verify``;
the function would refuse them all). A rollback undoes the latest live change not yet rolled back, so a
second one steps further back; a command that would change neither the live nor the shadow bundle writes
no revision. ``shadow-status`` prints the shadow candidate's record since it became the shadow (the CloudWatch
sums of its shadow metrics, ``tools.shadow_record``); ``promote`` of the shadow prints it on stderr before deploying,
with a WARNING line for a candidate that decided no event, or had mismatches, timeouts or failures, and deploys all
the same unless ``--require-agreement`` is given. Who publishes or deploys is recorded as ``--by`` gives it, else
as the AWS caller identity's ARN (STS; the login name, said on stderr, when STS cannot be called).
The layout and formats are ``runtime.bundles``'; the running Lambda picks a change up within its
refresh interval (``runtime.bundlewatch``).

Exit status: 0 done (diff: the same files); 1 an inline rule test failed (publish), the files differ (diff); 2 bad
arguments, a name that is no bundle, directory, ``live``, ``shadow`` or ``packaged`` (diff), a configuration that
does not check or cannot be read, a bundle that changes what is the code's (above) or is another
pipeline's, S3 refused or could not be called (no credentials, no connection), CloudWatch could not be read
(shadow-status; promote --require-agreement, which also refuses a record with a WARNING), or the files cannot be
written (pull).
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from engine.config import content_digest
from engine.errors import ConfigError, did_you_mean
from runtime.aws import error_code
from runtime.bundles import MAX_BYTES, Bundle, BundleError, Deployment, bundle_key, deployment_key, size_error
from runtime.layout import PIPELINES_DIR, listing, pipeline_files, yaml_files
from runtime.metrics import DEFAULT_NAMESPACE, configured_namespace
from runtime.verify import Settings, StepOutline, code_owned, owned_settings, steps_outline
from tools.console import EXIT_CHANGED, EXIT_OK, EXIT_USAGE, console_script, load_project_plugins, problem_lines
from tools.shadow_record import LiveChange, Record, RecordUnreadable, find_stacks, read, window_end

__all__ = ["main", "run"]

DEFAULT_PIPELINE = Path("pipelines/twilio_inbound.yaml")
LISTED = 20
# What S3 answers a conditional write (If-None-Match / If-Match) that another write got to first.
_WRITTEN_MEANWHILE = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
# Writes of the deployment document tried before giving up, each after S3 refused the one before (changed meanwhile).
_ATTEMPTS = 3


class _Failed(Exception):
    """The command cannot go on; the message says why."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeline-rules", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bucket", default=os.environ.get("RULES_BUCKET"), help="the rules bucket (RULES_BUCKET)")
    parser.add_argument("--prefix", default=os.environ.get("RULES_PREFIX", "rules/"), help="key prefix (rules/)")
    parser.add_argument("--endpoint-url", help="an S3 endpoint other than AWS's (an emulator)")
    parser.add_argument(
        "--pipeline",
        default=str(DEFAULT_PIPELINE),
        help="the pipeline: its file (default pipelines/twilio_inbound.yaml) or its name",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    publish = commands.add_parser("publish", help="check, then upload the rules as a bundle (and deploy it)")
    publish.add_argument("--rules", type=Path, default=Path("rules"), help="the rules directory (rules/)")
    publish.add_argument("--with-pipeline", action="store_true", help="the pipeline file is part of the bundle")
    publish.add_argument("--note", default="", help="what changed, for the list")
    publish.add_argument(
        "--strict", action="store_true", help="warnings refuse the bundle too (unset ${env:…} values: --strict-env)"
    )
    publish.add_argument("--strict-env", action="store_true", help="unset ${env:…} values refuse the bundle too")
    deploy = publish.add_mutually_exclusive_group()
    deploy.add_argument("--shadow", action="store_true", help="deploy it as the shadow candidate")
    deploy.add_argument("--live", action="store_true", help="deploy it live")
    commands.add_parser("list", help="the deployment, its history and the bundles")
    shadow = commands.add_parser("shadow", help="deploy a published bundle as the shadow candidate")
    shadow.add_argument("bundle", nargs="?", help="the bundle id")
    shadow.add_argument("--clear", action="store_true", help="deploy no shadow candidate")
    status = commands.add_parser(
        "shadow-status", help="the shadow candidate's record since it became the shadow (CloudWatch's sums)"
    )
    promote = commands.add_parser("promote", help="make a bundle live (by default the shadow candidate)")
    promote.add_argument("bundle", nargs="?", help="the bundle id (default: the shadow candidate)")
    promote.add_argument(
        "--require-agreement",
        action="store_true",
        help="refuse the shadow unless its record was read and shows events decided, none otherwise, no timeout "
        "or failure",
    )
    for command in (status, promote):
        command.add_argument(
            "--stack",
            default=os.environ.get("STACK_NAME") or None,
            help="the stack whose metrics to read (STACK_NAME; default: the one CloudWatch lists shadow metrics of)",
        )
        command.add_argument(
            "--namespace",
            default=configured_namespace(os.environ),
            help=f"the metrics namespace (METRICS_NAMESPACE; {DEFAULT_NAMESPACE})",
        )
    rollback = commands.add_parser("rollback", help="make the previously live bundle live again")
    rollback.add_argument("--to", help="a bundle id, or 'packaged' for the rules beside the handler")
    pull = commands.add_parser("pull", help="write a bundle's files to a directory")
    pull.add_argument("bundle", help="the bundle id")
    pull.add_argument("--out", type=Path, required=True, help="the directory (gets pipelines/ and rules/)")
    diff = commands.add_parser(
        "diff",
        help="a unified diff of two versions' files (default: the live rules and the shadow candidate, else the "
        "previous live bundle and the live one)",
    )
    for operand, what in (("a", "the old side (default: live, or the previous live bundle)"), ("b", "the new side")):
        diff.add_argument(
            operand, nargs="?", help=f"{what}: a bundle id, live, shadow, packaged (the local rules/) or a directory"
        )
    for command in commands.choices.values():
        # After the command too, as most tools take them; given there, they win over the ones before it.
        command.add_argument("--bucket", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        command.add_argument("--prefix", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        command.add_argument("--endpoint-url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        command.add_argument("--pipeline", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    for command in (publish, shadow, promote, rollback):
        command.add_argument(
            "--by", help="who deploys, recorded as given (default: the AWS caller identity's ARN, else the login name)"
        )
    for command in (shadow, promote, rollback):
        command.add_argument("--note", default="", help="why, for the history")
    return parser


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _brief_client(service: str, endpoint_url: str | None) -> Any:
    """A boto3 client whose calls give up soon (5 s to connect, 10 s to read, 2 attempts).

    What it reads is a note (a record, who runs the command): a service that does not answer must not hold a
    deployment up for long.
    """
    import boto3
    import botocore.config

    config = botocore.config.Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2})
    return boto3.client(service, endpoint_url=endpoint_url, config=config)


def _caller(args: argparse.Namespace, err: TextIO) -> str:
    """Who runs a command that writes, for the records: ``--by`` as given, else the AWS caller identity's ARN.

    The ARN (``arn:aws:sts::123456789012:assumed-role/ops/alice``) is the principal S3 records the writes for, where
    the login name is ``root`` on a build box or in a container. One STS call per command (``args.by`` keeps it); STS
    that cannot be called leaves the login name, said on ``err``. GetCallerIdentity needs no permission.
    """
    if args.by:
        return str(args.by)
    import botocore.exceptions

    try:
        args.by = str(_brief_client("sts", args.endpoint_url).get_caller_identity()["Arn"])
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, KeyError) as exc:
        why = error_code(exc) if isinstance(exc, botocore.exceptions.ClientError) else type(exc).__name__
        args.by = _user()
        print(
            f"pipeline-rules: note: the AWS caller identity could not be read ({why}): recorded as by {args.by!r}, "
            "the login name; pass --by NAME to name who",
            file=err,
        )
    return str(args.by)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _another_pipelines(stored: str, pipeline: str) -> str:
    """Why a bundle stored under ``pipeline``'s ``bundles/`` that names pipeline ``stored`` cannot be deployed."""
    return f"it is a bundle of pipeline {stored!r}, not of {pipeline!r}"


class _Store:
    """One pipeline's bundles and deployment document in the bucket."""

    def __init__(self, client: Any, bucket: str, prefix: str, pipeline: str) -> None:
        self.client, self.bucket, self.prefix, self.pipeline = client, bucket, prefix, pipeline
        # The bundles ``bundle`` returned, by key: a bundle's id is its files' digest, so one read is the bundle.
        self._bundles: dict[str, Bundle] = {}

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _call(self, what: str, function: Callable[[], Any]) -> Any:
        import botocore.exceptions

        try:
            return function()
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise _Failed(f"{what}: {error_code(exc) or exc}") from None

    def pipelines(self) -> list[str]:
        """The pipelines the bucket holds bundles or a deployment of."""
        listing = self._call(
            "cannot list the pipelines",
            lambda: self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"),
        )
        return [entry["Prefix"][len(self.prefix) :].rstrip("/") for entry in listing.get("CommonPrefixes", [])]

    def exists(self, bundle_id: str) -> bool:
        import botocore.exceptions

        key = bundle_key(self.prefix, self.pipeline, bundle_id)
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise _Failed(f"cannot read {self.uri(key)}: {error_code(exc)}") from None
        except botocore.exceptions.BotoCoreError as exc:
            raise _Failed(f"cannot read {self.uri(key)}: {exc}") from None
        return True

    def bundle(self, bundle_id: str) -> Bundle:
        """The stored bundle of this pipeline (_Failed when there is none, or it is not whole, or another's)."""
        key = bundle_key(self.prefix, self.pipeline, bundle_id)
        if key in self._bundles:
            return self._bundles[key]
        if not self.exists(bundle_id):
            raise _Failed(
                f"no bundle {bundle_id} of {self.pipeline} at {self.uri(key)}"
                + (self._version_of(bundle_id) or "; `pipeline-rules list` lists them")
            )
        try:
            bundle = self.load(bundle_id)
        except BundleError as exc:
            raise _Failed(f"{self.uri(key)}: {exc}") from None
        if bundle.pipeline != self.pipeline:
            raise _Failed(f"{self.uri(key)}: {_another_pipelines(bundle.pipeline, self.pipeline)}")
        self._bundles[key] = bundle
        return bundle

    def _version_of(self, version: str) -> str | None:
        """What a bundle id that is no bundle's is, when it is the rules version the function reports for a bundle.

        That is one of the pipeline's 50 newest bundles, with the pipeline file it carries, else the local one; None
        when none has that version.
        """
        if not re.fullmatch(r"[0-9a-f]{12}", version):
            return None
        local = _local_pipelines().get(self.pipeline)
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}{self.pipeline}/bundles/"
        )
        try:
            listed = self._call("cannot list", lambda: [item for page in pages for item in page.get("Contents", [])])
        except _Failed:  # a hint only: bundles that cannot be listed are not compared
            return None
        for item in sorted(listed, key=lambda item: item["LastModified"], reverse=True)[:50]:
            bundle_id = item["Key"].rsplit("/", 1)[-1].removesuffix(".json")
            try:
                bundle = self.load(bundle_id)
            except (_Failed, BundleError):
                continue
            carried = bundle.pipeline_file
            if carried is None and local is None:
                continue
            files = [*bundle.files.items()]
            if carried is None and local is not None:
                files.append((f"pipelines/{local.name}", local.read_text(encoding="utf-8")))
            if content_digest(files) == version:
                source = "it carries" if carried else f"pipelines/{local.name}" if local else ""
                return (
                    f": {version} is the rules version the function reports for bundle {bundle.id} (with the pipeline "
                    f"file {source}), not a bundle id; give the bundle: --to {bundle.id}"
                )
        return None

    def load(self, bundle_id: str) -> Bundle:
        """The bundle stored under ``bundle_id``; BundleError when it is not a whole bundle of that id."""
        key = bundle_key(self.prefix, self.pipeline, bundle_id)
        body = self._call(f"cannot read {self.uri(key)}", lambda: self.client.get_object(Bucket=self.bucket, Key=key))
        return Bundle.from_json(body["Body"].read(), bundle_id)

    def upload(self, bundle: Bundle, *, absent: bool | None = None) -> Bundle | None:
        """Store the bundle unless it is there already; None when it was uploaded, else the one stored.

        One there already (or uploaded meanwhile, by another publish of the same files) must be this bundle, whole.
        ``absent``: whether the caller found it missing just now (else it is looked for).
        """
        import botocore.exceptions

        key = bundle_key(self.prefix, self.pipeline, bundle.id)
        if absent if absent is not None else not self.exists(bundle.id):
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=bundle.to_json(), ContentType="application/json", IfNoneMatch="*"
                )
                return None
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) not in _WRITTEN_MEANWHILE:
                    raise _Failed(f"cannot write {self.uri(key)}: {error_code(exc)}") from None
            except botocore.exceptions.BotoCoreError as exc:
                raise _Failed(f"cannot write {self.uri(key)}: {exc}") from None
        return self._same(bundle)

    def _same(self, bundle: Bundle) -> Bundle:
        """The bundle stored under the bundle's key; _Failed unless it is that bundle, of this pipeline."""
        key = bundle_key(self.prefix, self.pipeline, bundle.id)
        try:
            stored = self.load(bundle.id)
        except BundleError as exc:
            raise _Failed(f"{self.uri(key)} is not bundle {bundle.id}: {exc}; delete it and publish again") from None
        if stored.pipeline != bundle.pipeline:
            raise _Failed(
                f"{self.uri(key)} is a bundle of pipeline {stored.pipeline!r}, not of {bundle.pipeline!r}; "
                "delete it and publish again"
            )
        return stored

    def deployment(self) -> tuple[Deployment, str | None]:
        """The deployment document and its ETag (a new one and None when there is none yet)."""
        import botocore.exceptions

        key = deployment_key(self.prefix, self.pipeline)
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return Deployment(), None
            raise _Failed(f"cannot read {self.uri(key)}: {error_code(exc)}") from None
        except botocore.exceptions.BotoCoreError as exc:
            raise _Failed(f"cannot read {self.uri(key)}: {exc}") from None
        try:
            return Deployment.from_json(answer["Body"].read()), str(answer["ETag"])
        except BundleError as exc:
            versions = f"aws s3api list-object-versions --bucket {self.bucket} --prefix {key}"
            source = f"{self.bucket}/{key}?versionId=ID"
            restore = f'aws s3api copy-object --bucket {self.bucket} --key {key} --copy-source "{source}"'
            raise _Failed(
                f"{self.uri(key)}: {exc}; put its last good version back (the bucket is versioned): {versions}, "
                f"then {restore}"
            ) from None

    def deploy(self, change: Callable[[Deployment], Deployment]) -> tuple[Deployment, bool]:
        """Rewrite the deployment document, conditional on the version read; whether it was written.

        A change that leaves the live and shadow bundles as they are writes nothing (no empty revision). When S3
        refuses the write because the document changed since it was read (someone else deployed), ``change`` is
        made again of the document read anew: it decides whether it still applies (_Failed when not).
        """
        for _ in range(_ATTEMPTS):
            current, etag = self.deployment()
            updated = change(current)
            if (updated.live, updated.shadow) == (current.live, current.shadow):
                return current, False
            if self._written(updated, etag):
                return updated, True
        raise _Failed(_changed_meanwhile(self.deployment()[0]))

    def _written(self, updated: Deployment, etag: str | None) -> bool:
        """Write ``updated`` if the document is still the one of ``etag``; False when it changed meanwhile."""
        import botocore.exceptions

        key = deployment_key(self.prefix, self.pipeline)
        body = updated.to_json()
        if len(body) > MAX_BYTES:  # the function would refuse it, and every command after this one
            raise _Failed(
                f"the deployment document would be {len(body)} bytes, more than the {MAX_BYTES} (1 MiB) it may be: "
                "nothing was written; give a shorter --note"
            )
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json", **condition)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in _WRITTEN_MEANWHILE:
                return False
            raise _Failed(f"cannot write {self.uri(key)}: {error_code(exc)}") from None
        except botocore.exceptions.BotoCoreError as exc:
            raise _Failed(f"cannot write {self.uri(key)}: {exc}") from None
        return True


def _changed_meanwhile(read: Deployment) -> str:
    """Why a command that chose from an earlier deployment writes nothing: the change made since, named."""
    note = f": {read.note}" if read.note else ""
    return (
        f"the deployment changed while this ran: {_describe(read)} ({read.updated_at} by {read.updated_by}{note}); "
        "nothing was written: `pipeline-rules list` shows the change; run it again if it is still wanted"
    )


def _note_deployed_meanwhile(deployed: Deployment, read: Deployment, err: TextIO) -> None:
    """Name who made the deployment what this command would have made it, when that was done since ``read``."""
    if deployed.revision != read.revision:
        note = f": {deployed.note}" if deployed.note else ""
        print(
            f"pipeline-rules: note: {deployed.updated_by} deployed this at revision {deployed.revision} while "
            f"this ran ({deployed.updated_at}){note}",
            file=err,
        )


def _declared_name(path: Path) -> str:
    """The ``pipeline:`` name of the pipeline file given; its YAML errors are reported at their line."""
    from engine.yamlsource import load_yaml

    if not path.exists():
        raise _Failed(
            f"{path}: no such file; run pipeline-rules in the project's directory (beside pipelines/ and rules/), "
            "or pass --pipeline FILE"
        )
    data = load_yaml(path).data if path.is_file() else None
    name = data.get("pipeline") if isinstance(data, dict) else None
    if not isinstance(name, str):
        raise _Failed(f"{path}: no pipeline file with a `pipeline:` name; pass --pipeline NAME or FILE")
    return name


def _local_pipelines() -> dict[str, Path]:
    """The pipeline files of ``pipelines/`` by the name each declares (files that do not say are left out)."""
    from tools.check import declared_pipeline_name

    found: dict[str, Path] = {}
    for path in pipeline_files(PIPELINES_DIR):
        name = declared_pipeline_name(path)
        if name is not None:
            found.setdefault(name, path)
    return found


def _resolve(pipeline: str, store: _Store | None) -> tuple[str, Path | None]:
    """The pipeline's name and file (None when only the bucket knows it) from ``--pipeline FILE_OR_NAME``.

    A name must be a pipeline file's under ``pipelines/`` or, with ``store``, have objects in the bucket: a
    misspelt name would otherwise deploy rules for a pipeline that does not exist.
    """
    path = Path(pipeline)
    if path.suffix in (".yaml", ".yml"):
        return _declared_name(path), path
    local = _local_pipelines()
    if pipeline in local:
        return pipeline, local[pipeline]
    remote = store.pipelines() if store is not None else []
    if pipeline in remote:
        return pipeline, None
    known = sorted({*local, *remote})
    where = "no file under pipelines/ declares it" + (
        f" and {store.uri(store.prefix)} holds none of its bundles" if store is not None else ""
    )
    listed = ", ".join(known) or "none"
    raise _Failed(f"unknown pipeline {pipeline!r}{did_you_mean(pipeline, known)}: {where}; pipelines: {listed}")


def _refuse_live_as_shadow(bundle_id: str, deployment: Deployment) -> None:
    """A shadow candidate is decided beside the live rules: the live bundle itself would only agree with itself."""
    if bundle_id == deployment.live:
        raise _Failed(f"bundle {bundle_id} is live already; a shadow candidate is another bundle")


class _Origin(NamedTuple):
    """Who deployed a deployment's shadow candidate, at which revision, and their note."""

    by: str
    revision: int
    note: str
    at: str = ""

    @classmethod
    def of_shadow(cls, deployment: Deployment) -> _Origin:
        """The oldest revision of the latest run of revisions naming the deployment's shadow candidate."""
        origin = _made(deployment, "shadow")
        return cls(
            str(origin.get("updated_by", "")),
            int(origin.get("revision") or 0),
            str(origin.get("note") or ""),
            str(origin.get("updated_at") or ""),
        )

    def noted(self) -> str:
        return f": {self.note}" if self.note else ""


def _made(deployment: Deployment, role: str) -> Mapping[str, Any]:
    """The revision that made the deployment's ``role`` (``live`` or ``shadow``) bundle so (``Deployment.made``).

    As the function's ``rules_source`` names it: the oldest of the latest run of revisions naming it so.
    """
    return deployment.made(role, deployment.live if role == "live" else deployment.shadow) or deployment.entry()


def _live_change(deployment: Deployment) -> LiveChange | None:
    """The revision that made the live bundle live while the shadow candidate was in shadow (None: no such).

    A candidate is published from the files that were live then: promoting it undoes what such a revision changed,
    unless the candidate carries that too.
    """
    origin = _made(deployment, "shadow")
    if origin.get("live") == deployment.live:
        return None
    made = _made(deployment, "live")  # within the shadow's run: its oldest revision had another live bundle
    return LiveChange(
        int(made.get("revision") or 0),
        str(made.get("updated_at") or ""),
        str(made.get("updated_by") or ""),
        str(made.get("note") or ""),
        deployment.live,
        int(origin.get("revision") or 0),
        origin.get("live"),
    )


def _note_replaced(replaced: Deployment, shadow: str | None, err: TextIO) -> None:
    """Say whose shadow candidate a new one replaces: its evaluation stops, and ``promote`` takes the new one."""
    if replaced.shadow is None or replaced.shadow == shadow:
        return
    origin = _Origin.of_shadow(replaced)
    print(
        f"pipeline-rules: note: this replaces the shadow candidate {replaced.shadow} (deployed by {origin.by} at "
        f"revision {origin.revision}{origin.noted()}), whose evaluation stops",
        file=err,
    )


def _unchanged(deployment: Deployment) -> str:
    return f"unchanged, nothing written: {_describe(deployment)}"


def _describe(deployment: Deployment) -> str:
    live = deployment.live or "the packaged rules"
    shadow = f", shadow {deployment.shadow}" if deployment.shadow else ""
    return f"revision {deployment.revision}: live {live}{shadow}"


def _changes_code_owned(store: _Store, pipeline: Path, name: str, out: TextIO, err: TextIO) -> bool:
    """Whether the pipeline file to carry changes what the deployed one fixes (each change printed to ``out``).

    The deployed file is known here from the live bundle's carried copy only (``pipeline`` is the local file). After
    a code deploy that changed what that copy differs in, the function refuses the live bundle as well: ``err`` is
    told which copy was compared, and the way on (the bundle the function decides with instead made live first).
    """
    current = store.deployment()[0]
    owned = _deployed(store, current, None)
    changes = code_owned(pipeline, name, owned.channels, owned.steps, owned.settings)
    for problem in changes:
        print(problem, file=out)
    if changes and current.live is not None:
        print(
            f"pipeline-rules: compared with the pipeline file the live bundle {current.live} carries (the deployed "
            "one is not known here); if a code deploy changed it since, the function refuses that bundle too and "
            "decides with the last good one its ERROR line names: 'pipeline-rules rollback --to' that bundle (or "
            "packaged), then publish again",
            file=err,
        )
    return bool(changes)


def _owners(path: Path) -> list[str] | None:
    """The pipelines a rule file names under ``pipelines:`` ([]: none, so every one); None when it cannot be read.

    Read as the engine reads rule files (``load_yaml``, leniently: of a key written twice, the first).
    """
    from engine.yamlsource import load_yaml

    try:
        document = load_yaml(path, strict=False).data
    except ConfigError:
        return None
    return _named_owners(document)


def _named_owners(document: Any) -> list[str]:
    """The pipelines a rule file's parsed ``document`` names under ``pipelines:`` ([]: none, so every one)."""
    owners = document.get("pipelines") if isinstance(document, dict) else None
    return [str(owner) for owner in owners] if isinstance(owners, list) else []


def _left_out(rules_dir: Path, bundled: set[str]) -> dict[str, list[str]]:
    """The rule files of ``rules_dir`` a bundle left out (other pipelines'), by the pipelines they name."""
    found: dict[str, list[str]] = {}
    for path in yaml_files(rules_dir):
        if f"rules/{path.name}" in bundled:
            continue
        owners = _owners(path)
        if owners:
            found.setdefault(", ".join(owners), []).append(f"rules/{path.name}")
    return found


def _refuse_foreign_rules(out: Path, bundle: Bundle) -> None:
    """Refuse to pull into a directory whose ``rules/`` holds rules of the bundle's pipeline the bundle has not.

    Written beside the bundle's, they would decide in a baseline pulled there (an earlier bundle's, say); rule
    files naming only other pipelines (a project's) are no part of the comparison and stay.
    """
    rules_dir = out / "rules"
    found = [
        f"rules/{path.name}"
        for path in (yaml_files(rules_dir) if rules_dir.is_dir() else [])
        if f"rules/{path.name}" not in bundle.files and bundle.pipeline in (_owners(path) or [bundle.pipeline])
    ]
    if found:
        raise _Failed(
            f"{rules_dir} holds {', '.join(found)} of {bundle.pipeline}, which bundle {bundle.id} has not: a baseline "
            f"pulled there would hold {'them' if len(found) > 1 else 'it'} too; pull into an empty directory (or "
            "remove it first)"
        )


def _note_left_out(rules_dir: Path, bundle: Bundle, err: TextIO) -> None:
    """Name the rule files the bundle does not carry, so that an edit to another pipeline's is not taken as shipped."""
    for owners, names in _left_out(rules_dir, set(bundle.files)).items():
        several = len(names) > 1
        print(
            f"pipeline-rules: note: {', '.join(names)} ({owners}) {'are' if several else 'is'} not in this bundle of "
            f"{bundle.pipeline}; publish {'them' if several else 'it'} with --pipeline {owners.split(', ')[0]}",
            file=err,
        )


def _note_shared(store: _Store, rules_dir: Path, bundle: Bundle, current: Deployment, err: TextIO) -> None:
    """Name the rule files the bundle shares with other pipelines (naming none, or them too) and changes.

    Another pipeline decides with its own copy: its live bundle's, else the packaged one, which is known here only
    as far as this pipeline's live bundle holds the same files (else nothing is said).
    """
    owners = {name: _owners(rules_dir / name[6:]) for name in sorted(bundle.files) if name.startswith("rules/")}
    try:
        own = store.bundle(current.live).files if current.live else None
        for other in sorted(set(_local_pipelines()) - {bundle.pipeline}):
            shared = [name for name, named in owners.items() if named == [] or (named and other in named)]
            others = _Store(store.client, store.bucket, store.prefix, other)
            live = others.deployment()[0].live if shared else None
            copies = others.bundle(live).files if live else own
            changed = [name for name in shared if copies is not None and copies.get(name) != bundle.files[name]]
            if changed:
                print(
                    f"pipeline-rules: note: this bundle changes {', '.join(changed)}, {other}'s too, for "
                    f"{bundle.pipeline} only: {other} decides with its own copy "
                    f"({f'bundle {live}' if live else 'the packaged rules'}) until it is published with --pipeline "
                    f"{other}",
                    file=err,
                )
    except _Failed:  # a note only: what cannot be read is not compared
        return


def _deployed_elsewhere(store: _Store) -> list[str]:
    """The bucket's other top-level prefixes holding a deployment of the pipeline (none when it cannot be listed)."""
    client, bucket = store.client, store.bucket

    def deployed_under(prefix: str) -> bool:
        key = deployment_key(prefix, store.pipeline)
        found = store._call("cannot list", lambda: client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1))
        return any(item["Key"] == key for item in found.get("Contents", []))

    try:
        listing = store._call("cannot list", lambda: client.list_objects_v2(Bucket=bucket, Delimiter="/"))
        prefixes = [entry["Prefix"] for entry in listing.get("CommonPrefixes", [])]
        return [prefix for prefix in prefixes if prefix != store.prefix and deployed_under(prefix)]
    except _Failed:  # a note only: a bucket that cannot be listed is not compared
        return []


def _note_other_prefixes(store: _Store, err: TextIO, *, deployed: bool) -> None:
    """Name the bucket's other prefixes holding a deployment of the pipeline (a mistyped ``--prefix``).

    ``deployed``: this command made the pipeline's first deployment here; else there is none here.
    """
    from runtime.bundlewatch import DEFAULT_PREFIX

    others = _deployed_elsewhere(store)
    if others:
        held = ", ".join(store.uri(prefix) for prefix in others)
        here = "this is the first deployment" if deployed else "no deployment"
        print(
            f"pipeline-rules: note: {here} of {store.pipeline} under {store.uri(store.prefix)}, while {held} "
            f"{'hold' if len(others) > 1 else 'holds'} one{' too' if deployed else ''}: the function reads only under "
            f"its RULES_PREFIX ({DEFAULT_PREFIX} by default){'' if deployed else '; check --prefix'}",
            file=err,
        )


def _note_stale_unread(stored: Bundle, bundle: Bundle, err: TextIO) -> None:
    """Say which entries the stored bundle names as not read that ``--rules`` no longer holds.

    Moving a .bak copy out of ``--rules`` leaves the same files, so the same bundle: the function goes on naming it.
    """
    gone = [entry for entry in stored.unread if entry not in bundle.unread]
    if gone:
        it = "it" if len(gone) == 1 else "them"
        print(
            f"pipeline-rules: note: bundle {bundle.id} was first published naming {', '.join(gone)} as not read, which "
            f"--rules no longer holds: the function names {it} as long as the bundle is deployed (a bundle is "
            f"immutable; its files are the same without {it})",
            file=err,
        )


def _publish(args: argparse.Namespace, store: _Store | None, out: TextIO, err: TextIO) -> tuple[int, _Store | None]:
    from tools.check import check_config, summary_line
    from tools.dryrun.paths import path_mistake

    # --pipeline is a file or a name here: _resolve says what is wrong with it.
    mistake = path_mistake(rules={"--rules": args.rules}, pipelines={"--pipeline": None})
    if mistake:
        raise _Failed(mistake)
    name, found = _resolve(args.pipeline, None)
    if found is None:
        raise _Failed(f"no pipeline file of {name} to publish with; pass --pipeline FILE")
    pipeline = found
    report = check_config(pipeline, args.rules, os.environ, strict_env=args.strict_env, strict=args.strict)
    for finding in report.findings:
        print(finding, file=out)
    print(summary_line(report), file=err)
    if report.exit_code:
        print("pipeline-rules: the check failed: nothing was published", file=err)
        return report.exit_code, None
    assert store is not None
    store.pipeline = name
    if args.with_pipeline and _changes_code_owned(store, pipeline, name, out, err):
        print("pipeline-rules: the pipeline file changes what only a code deploy may: nothing was published", file=err)
        return EXIT_USAGE, None
    files = {f"rules/{Path(name).name}": Path(name).read_text(encoding="utf-8") for name in report.files[1:]}
    if args.with_pipeline:
        files[f"pipelines/{pipeline.name}"] = pipeline.read_text(encoding="utf-8")
    # What --rules holds that the function would not read (warned above) goes out named, for the function to say. A
    # name the file system holds as bytes that are not UTF-8 (caf\xe9.yaml.bak) goes with them as escapes: the
    # bundle is UTF-8 JSON, which cannot carry them.
    unread = tuple(
        f"rules/{os.fsencode(entry.name).decode('utf-8', 'backslashreplace')}{'/' if entry.is_dir else ''}"
        for entry in listing(args.rules).unread
    )
    bundle = Bundle(name, files, _now(), args.by or "", args.note, unread)
    # Who publishes is read (an STS call without --by) only when the bundle is to be written.
    absent = not store.exists(bundle.id)
    if absent:
        bundle = bundle._replace(published_by=_caller(args, err))
    oversize = size_error(len(bundle.to_json()), f"bundle {bundle.id}")
    if oversize is not None:
        raise _Failed(f"{oversize}: the function would refuse it; keep long lists out of the rules")
    stored = store.upload(bundle, absent=absent)
    where = store.uri(bundle_key(store.prefix, name, bundle.id))
    verb = "published" if stored is None else "already published"
    print(f"{verb}: bundle {bundle.id} of {name} ({len(files)} files) at {where}", file=out)
    if stored is not None:
        _note_stale_unread(stored, bundle, err)
    _note_left_out(args.rules, bundle, err)
    seen = store.deployment()[0]  # as deployed when this command first read it
    _note_shared(store, args.rules, bundle, seen, err)
    if not args.with_pipeline:
        from engine.config import content_digest

        version = content_digest([(f"pipelines/{pipeline.name}", pipeline.read_text(encoding="utf-8")), *files.items()])
        print(f"rules version with the pipeline file {pipeline} as deployed: {version}", file=out)
    if args.shadow or args.live:
        role = "shadow" if args.shadow else "live"
        replaced: list[Deployment] = []

        def change(current: Deployment) -> Deployment:
            if args.shadow:
                _refuse_live_as_shadow(bundle.id, current)
            live = bundle.id if args.live else current.live
            shadow = (
                None if args.live and current.shadow == bundle.id else (bundle.id if args.shadow else current.shadow)
            )
            # Read again after S3 refused the write: what was deployed meanwhile is not replaced unseen.
            if replaced and (current.live, current.shadow) not in {
                (replaced[0].live, replaced[0].shadow),
                (live, shadow),
            }:
                raise _Failed(_changed_meanwhile(current))
            replaced[:] = replaced or [current]
            by = _caller(args, err) if (live, shadow) != (current.live, current.shadow) else ""
            return current.change(live=live, shadow=shadow, at=_now(), by=by, note=args.note)

        deployed, written = store.deploy(change)
        print(f"deployed as {role}: {_describe(deployed)}" if written else _unchanged(deployed), file=out)
        if not written:
            _note_deployed_meanwhile(deployed, seen, err)
        if written and deployed.revision == 1:
            _note_other_prefixes(store, err, deployed=True)
        if written and args.shadow:
            _note_replaced(replaced[0], deployed.shadow, err)
    return EXIT_OK, store


_MISSING_EFFECT = {
    "live": "new containers decide with an earlier live bundle (an ERROR line each), warm ones keep it",
    "shadow": "new containers do not evaluate it (an ERROR line each), warm ones keep it",
}


def _print_missing(store: _Store, deployment: Deployment, stored: set[str], out: TextIO) -> None:
    """A line for the live or shadow bundle the deployment names that has no object (deleted, or never uploaded)."""
    for role, bundle_id in (("live", deployment.live), ("shadow", deployment.shadow)):
        key = bundle_key(store.prefix, store.pipeline, bundle_id) if bundle_id else None
        if key is not None and key not in stored:
            print(
                f"missing: the {role} bundle {bundle_id} has no object at {store.uri(key)}: {_MISSING_EFFECT[role]}; "
                "publish it again, or deploy another bundle",
                file=out,
            )


def _list(store: _Store, out: TextIO, err: TextIO) -> None:
    deployment, _ = store.deployment()
    # Every page: S3 lists keys in key order, a page at a time, and the newest may be on any page.
    pages = store.client.get_paginator("list_objects_v2").paginate(
        Bucket=store.bucket, Prefix=f"{store.prefix}{store.pipeline}/bundles/"
    )
    listing = store._call(
        "cannot list the bundles", lambda: [item for page in pages for item in page.get("Contents", [])]
    )
    print(f"pipeline {store.pipeline}: {store.uri(store.prefix + store.pipeline + '/')}", file=out)
    if not deployment.revision:
        print("no deployment: the rules packaged beside the handler decide", file=out)
        _note_other_prefixes(store, err, deployed=False)
    else:
        print(f"deployment {_describe(deployment)} ({deployment.updated_at} by {deployment.updated_by})", file=out)
        _print_missing(store, deployment, {item["Key"] for item in listing}, out)
        if deployment.shadow is not None:
            origin = _Origin.of_shadow(deployment)
            print(
                f"pipeline-rules: note: the shadow candidate {deployment.shadow} has decided events again since "
                f"revision {origin.revision} at {origin.at or 'a time not recorded'}: `pipeline-rules shadow-status` "
                "shows its record (CloudWatch's sums), which promote prints too",
                file=err,
            )
        changes = "the shadow candidate changes" if deployment.shadow else "the latest live change changed"
        print(f"history (newest first; `pipeline-rules diff` shows what {changes}):", file=out)
        for entry in (deployment.entry(), *deployment.history):
            shadow = f", shadow {entry['shadow']}" if entry.get("shadow") else ""
            note = f"  {entry['note']}" if entry.get("note") else ""
            note += "  (rollback)" if entry.get("rollback") is True else ""
            live = entry.get("live") or "packaged"
            print(
                f"  r{entry['revision']}  {entry['updated_at']}  {entry['updated_by']}: live {live}{shadow}{note}",
                file=out,
            )
    objects = sorted(listing, key=lambda item: item["LastModified"], reverse=True)[:LISTED]
    print(f"bundles (newest first, up to {LISTED}):", file=out)
    for item in objects:
        key = Path(item["Key"])
        if key.suffix != ".json":
            print(f"  {key.name}  unreadable: not a bundle (a bundle is stored as <id>.json)", file=out)
            continue
        bundle_id = key.stem
        try:
            bundle = store.load(bundle_id)
        except BundleError as exc:
            print(f"  {bundle_id}  unreadable: {exc}", file=out)
            continue
        if bundle.pipeline != store.pipeline:
            print(f"  {bundle_id}  unreadable: {_another_pipelines(bundle.pipeline, store.pipeline)}", file=out)
            continue
        roles = [
            role for role, value in (("live", deployment.live), ("shadow", deployment.shadow)) if value == bundle_id
        ]
        marks = f"  [{', '.join(roles)}]" if roles else ""
        files = ", ".join(sorted(bundle.files))
        print(f"  {bundle_id}  {bundle.published_at}  {bundle.published_by}{marks}  {bundle.note}  ({files})", file=out)


class _CodeOwned(NamedTuple):
    """What the deployed pipeline file fixes, as far as known here (None: not known, not compared)."""

    channels: list[str] | None = None
    steps: StepOutline | None = None
    settings: Settings | None = None


def _code_owned_of(text: str) -> _CodeOwned:
    """The ``channels:`` and steps of a pipeline file's text (None each when it cannot be read or has none)."""
    from engine.yamlsource import parse_yaml

    try:
        data = parse_yaml(text, "pipeline", strict=False).data
    except ConfigError:
        return _CodeOwned()
    if not isinstance(data, dict):
        return _CodeOwned()
    channels = data.get("channels")
    listed = [str(channel) for channel in channels] if isinstance(channels, list) else None
    steps = steps_outline(data) if "steps" in data else None
    return _CodeOwned(listed, steps, owned_settings(data))


def _deployed(store: _Store, current: Deployment, local: Path | None) -> _CodeOwned:
    """The channels and steps the deployed pipeline has, as far as known here.

    Those of ``local`` (the pipeline's file in the project, as the code deploy ships it), else those of the
    pipeline file the live bundle carries.
    """
    if local is not None and local.is_file():
        return _code_owned_of(local.read_text(encoding="utf-8"))
    if current.live is None:
        return _CodeOwned()
    live = store.bundle(current.live)
    carried = live.pipeline_file
    return _code_owned_of(live.files[carried]) if carried else _CodeOwned()


def _refuse_unless_checked(bundle: Bundle, pipeline: Path | None, deployed: _CodeOwned) -> None:
    """Check a bundle about to be deployed as the function will (an upload by hand skipped ``publish``'s check).

    Its rules are checked with its own pipeline file, else with ``pipeline`` (the local file of that pipeline);
    with neither it cannot be checked here, and is refused. A pipeline file it carries must keep the pipeline's
    name and the ``deployed`` channels and steps (when known).
    """
    import tempfile

    from tools.check import check_config

    with tempfile.TemporaryDirectory(prefix="rules-bundle-") as workdir:
        root = Path(workdir)
        bundle.write(root)
        carried = bundle.pipeline_file
        checked = root / carried if carried else pipeline
        if checked is None:
            raise _Failed(
                f"cannot check bundle {bundle.id}: it carries no pipeline file and no file under pipelines/ "
                "declares its pipeline; run this in the project's directory, or pass --pipeline FILE"
            )
        if carried:
            owned = code_owned(checked, bundle.pipeline, deployed.channels, deployed.steps, deployed.settings)
            found = [str(problem).replace(f"{root}/", "") for problem in owned]
            if found:
                shown = "; ".join(found)
                raise _Failed(f"bundle {bundle.id} changes what only a code deploy changes: {shown}")
        report = check_config(checked, root / "rules", os.environ)
        failed = [str(problem).replace(f"{root}/", "") for problem in (*report.errors, *report.failures)]
    if failed:
        shown = "".join(f"\n  {problem}" for problem in failed)
        raise _Failed(f"bundle {bundle.id} does not pass the check, so the function would refuse it:{shown}")


def _chosen(args: argparse.Namespace, current: Deployment) -> tuple[str | None, str | None]:
    """The live and shadow bundles ``shadow``, ``promote`` or ``rollback`` (``args.command``) make of ``current``.

    None: the packaged rules live, no shadow. _Failed when the command cannot choose.
    """
    live, shadow = current.live, current.shadow
    if args.command == "shadow":
        if args.clear == bool(args.bundle):
            raise _Failed("give a bundle id, or --clear")
        shadow = None if args.clear else args.bundle
        if shadow is not None:
            _refuse_live_as_shadow(shadow, current)
    elif args.command == "promote":
        chosen = args.bundle or current.shadow
        if chosen is None:
            raise _Failed("there is no shadow candidate to promote; give a bundle id")
        live, shadow = chosen, (None if current.shadow == chosen else current.shadow)
    elif args.to is not None:
        live = None if args.to == "packaged" else args.to
    else:
        chain = current.rollback_chain()
        if not current.earlier_live():
            raise _Failed("no earlier live bundle in the history; give --to BUNDLE or --to packaged")
        if not chain:
            raise _Failed(
                "no earlier live bundle to roll back to (every later one was rolled back from); "
                "give --to BUNDLE or --to packaged"
            )
        live = chain[0]
    if shadow == live:  # a bundle made live leaves the shadow: it would only agree with itself
        shadow = None
    return live, shadow


def _choice(args: argparse.Namespace, read: Deployment) -> tuple[str | None, str | None] | None:
    """What the command would choose from ``read`` (None: nothing): a rollback's target depends on the history too."""
    try:
        return _chosen(args, read)
    except _Failed:
        return None


def _deploy(
    args: argparse.Namespace,
    store: _Store,
    pipeline: Path | None,
    cloudwatch: Callable[[], Any],
    out: TextIO,
    err: TextIO,
) -> None:
    current, _ = store.deployment()
    live, shadow = _chosen(args, current)
    promoting_shadow = args.command == "promote" and live is not None and live == current.shadow
    if getattr(args, "require_agreement", False) and not promoting_shadow:
        raise _Failed(
            f"--require-agreement reads the shadow candidate's record, and {live} is not the shadow candidate"
        )
    # What becomes live or shadow is checked, the shadow made live too (it may have been deployed by hand), and a
    # bundle that was live before: a code deploy since may make the function refuse it and keep the one rolled back
    # from. Only a rollback run where nothing can check it (no pipeline file here or in the bundle) goes unchecked.
    owned: _CodeOwned | None = None
    for bundle_id in dict.fromkeys([live, shadow]):
        if bundle_id is None or bundle_id == current.live or (bundle_id == shadow == current.shadow):
            continue
        bundle = store.bundle(bundle_id)
        if pipeline is None and bundle.pipeline_file is None and bundle_id in current.earlier_live():
            continue
        owned = owned or _deployed(store, current, pipeline)
        _refuse_unless_checked(bundle, pipeline, owned)

    if promoting_shadow:
        _note_record(args, store, current, cloudwatch, err)
    rollback = args.command == "rollback"
    # What a rollback goes back to once this is deployed: a deployment of the same bundles that is no rollback (a
    # promote of the rollback's target) leaves the bundle rolled back from on that chain, so it is not this one done.
    chain = tuple(current.change(live=live, shadow=shadow, at="", by="", rollback=rollback).rollback_chain())

    def change(read: Deployment) -> Deployment:
        if (read.live, read.shadow) == (live, shadow) and (
            read.revision == current.revision or tuple(read.rollback_chain()) == chain
        ):  # as this would make it (someone did the same meanwhile)
            return read
        if (read.live, read.shadow) != (current.live, current.shadow) or _choice(args, read) != (live, shadow):
            raise _Failed(_changed_meanwhile(read))
        # Who deploys is read (an STS call without --by) only when the deployment is to be written.
        by = _caller(args, err) if (live, shadow) != (read.live, read.shadow) else ""
        return read.change(live=live, shadow=shadow, at=_now(), by=by, note=args.note, rollback=rollback)

    deployed, written = store.deploy(change)
    if not written:
        print(_unchanged(deployed), file=out)
        _note_deployed_meanwhile(deployed, current, err)
        return
    promoted = ""
    if args.command == "promote" and args.bundle is None:
        origin = _Origin.of_shadow(current)
        promoted = f" (the shadow candidate {origin.by} deployed at revision {origin.revision}{origin.noted()})"
    print(f"deployed: {_describe(deployed)}{promoted}", file=out)
    if args.command == "shadow":
        _note_replaced(current, deployed.shadow, err)
    if args.command == "promote" and args.bundle is not None and _untried(args.bundle, current):
        print(
            f"pipeline-rules: note: bundle {args.bundle} was never the shadow candidate (in the history kept): it went "
            "live untried on live traffic; `pipeline-rules shadow BUNDLE` tries one first",
            file=err,
        )


def _parsed_time(text: str) -> datetime | None:
    """A time the deployment or a bundle records (``2026-12-01T10:05:00Z``), in UTC; None when it is none."""
    from tools.dryrun.world import parse_instant

    try:
        return parse_instant(text).astimezone(UTC)
    except ValueError:
        return None


def _rulesets(store: _Store, current: Deployment) -> list[str]:
    """The rule sets of the candidate and of the live rules (the live bundle's, else the local ``rules/``).

    A set may differ as either side has it. What cannot be read here is left out (a note only).
    """
    from engine.yamlsource import load_yaml, parse_yaml

    documents: list[Any] = []
    for bundle_id in dict.fromkeys((current.shadow, current.live)):
        try:
            bundle = store.bundle(bundle_id) if bundle_id else None
        except _Failed:
            continue
        for name, text in sorted(bundle.files.items()) if bundle else []:
            if name.startswith("rules/"):
                try:
                    documents.append(parse_yaml(text, "rules", strict=False).data)
                except ConfigError:
                    continue
    # Each local file read and parsed once, for the pipelines it names and its rule set.
    for path in yaml_files(Path("rules")) if current.live is None else []:
        try:
            document = load_yaml(path, strict=False).data
        except ConfigError:
            continue
        owners = _named_owners(document)
        if not owners or store.pipeline in owners:
            documents.append(document)
    names: dict[str, None] = {}
    for data in documents:
        ruleset = data.get("ruleset") if isinstance(data, dict) else None
        if isinstance(ruleset, str):
            names[ruleset] = None
    return list(names)


def _shadow_record(
    args: argparse.Namespace, store: _Store, current: Deployment, cloudwatch: Callable[[], Any]
) -> Record:
    """The record of ``current``'s shadow candidate since it became the shadow; RecordUnreadable when it cannot be.

    The window starts at the time of the oldest revision of the latest run naming the candidate (as ``_Origin``
    finds it); a revision that records none (a document edited by hand) starts it when the bundle was published.
    """
    assert current.shadow is not None
    origin = _Origin.of_shadow(current)
    notes: list[str] = []
    since = _parsed_time(origin.at)
    recorded = f"revision {origin.revision} records"
    if since is None:
        recorded = f"bundle {current.shadow} records"
        try:
            since = _parsed_time(store.bundle(current.shadow).published_at)
        except _Failed as exc:
            raise RecordUnreadable(f"revision {origin.revision} records no time, and {exc}") from None
        if since is None:
            raise RecordUnreadable(f"revision {origin.revision} records no time, nor bundle {current.shadow} one")
        notes.append(
            f"(revision {origin.revision} records no time: the window starts when bundle {current.shadow} was "
            "published)"
        )
    now = datetime.now(UTC)
    until = window_end(now)
    if since >= until:  # CloudWatch refuses a window that ends before it starts (ValidationError)
        raise RecordUnreadable(
            f"{recorded} {since:%Y-%m-%dT%H:%M:%SZ}, after this machine's clock ({now:%Y-%m-%dT%H:%M:%SZ}): one of "
            "the two clocks is wrong"
        )
    client = cloudwatch()
    stack = args.stack
    where = ""
    if not stack:
        stacks = find_stacks(client, args.namespace, store.pipeline)
        if len(stacks) > 1:
            listed = ", ".join(name or "(none)" for name in stacks)
            raise RecordUnreadable(
                f"the shadow metrics of {store.pipeline} are counted by several stacks ({listed}): pass --stack"
            )
        stack = stacks[0] if stacks else None
        where = " (the stack CloudWatch lists shadow metrics of; --stack chooses)" if stack else ""
    rulesets = _rulesets(store, current)
    sums = read(client, args.namespace, store.pipeline, stack, rulesets, since, until)
    dimensions = f"Pipeline={store.pipeline}" + (f", Stack={stack}{where}" if stack else "")
    return Record(
        current.shadow,
        store.pipeline,
        origin.revision,
        since,
        until,
        sums,
        rulesets,
        f"namespace {args.namespace}, {dimensions}",
        chosen=f" (deployed by {origin.by}{origin.noted()})",
        notes=notes,
        region=str(getattr(getattr(client, "meta", None), "region_name", None) or ""),
        live_change=_live_change(current),
    )


def _shadow_status(args: argparse.Namespace, store: _Store, cloudwatch: Callable[[], Any], out: TextIO) -> None:
    current, _ = store.deployment()
    if current.shadow is None:
        deployed = _describe(current) if current.revision else "no deployment"
        print(
            f"no shadow candidate for {store.pipeline} ({deployed}): no event is decided again; "
            "`pipeline-rules shadow BUNDLE` deploys one",
            file=out,
        )
        return
    try:
        record = _shadow_record(args, store, current, cloudwatch)
    except RecordUnreadable as exc:
        raise _Failed(
            f"cannot read the record of the shadow candidate {current.shadow} from CloudWatch: {exc}"
        ) from None
    for line in record.lines():
        print(line, file=out)
    for warning in record.warnings():
        print(f"warning: {warning}", file=out)


def _note_record(
    args: argparse.Namespace, store: _Store, current: Deployment, cloudwatch: Callable[[], Any], err: TextIO
) -> None:
    """Before the shadow is promoted: its record on ``err``, a WARNING line for each thing that should stop one.

    With ``--require-agreement`` an unreadable record or any WARNING refuses the promotion (_Failed).
    """
    required = "not promoted (--require-agreement)"
    try:
        record = _shadow_record(args, store, current, cloudwatch)
    except RecordUnreadable as exc:
        if args.require_agreement:
            raise _Failed(
                f"the record of the shadow candidate {current.shadow} could not be read from CloudWatch ({exc}): "
                f"{required}"
            ) from None
        print(
            f"pipeline-rules: WARNING: the record of the shadow candidate {current.shadow} could not be read from "
            f"CloudWatch ({exc}): it is promoted unseen",
            file=err,
        )
        return
    first, *rest = record.lines()
    print(f"pipeline-rules: note: {first}", file=err)
    for line in rest:
        print(line, file=err)
    print(
        f"pipeline-rules: note: `pipeline-rules diff {current.live or 'packaged'} {current.shadow}` shows what "
        "promoting it changes",
        file=err,
    )
    warnings = record.warnings()
    for warning in warnings:
        print(f"pipeline-rules: WARNING: {warning}", file=err)
    if warnings and args.require_agreement:
        raise _Failed(f"the shadow candidate {current.shadow} has {len(warnings)} WARNING(s) above: {required}")


def _untried(bundle_id: str, deployment: Deployment) -> bool:
    """Whether the bundle was neither the shadow candidate nor live in any revision the deployment keeps."""
    entries = (deployment.entry(), *deployment.history)
    return all(bundle_id not in (entry.get("shadow"), entry.get("live")) for entry in entries)


class _Side(NamedTuple):
    """One side of ``diff``: the name its files are shown under, what it is (for the summary) and its files."""

    label: str
    what: str
    files: dict[str, str]


def _revision_of(entry: Mapping[str, Any]) -> str:
    note = f": {entry['note']}" if entry.get("note") else ""
    return f"revision {entry.get('revision')} by {entry.get('updated_by')}{note}"


def _local_side(directory: Path, label: str, what: str, pipeline: str) -> _Side:
    """The pipeline's files under ``directory``: its ``rules/`` (else the directory itself) and ``pipelines/``.

    The rule files are those a bundle of the pipeline would carry (naming it, or no pipeline); the pipeline file,
    the one of ``pipelines/`` that declares the pipeline.
    """
    from tools.check import declared_pipeline_name

    rules_dir = directory / "rules" if (directory / "rules").is_dir() else directory
    try:
        files = {
            f"rules/{path.name}": path.read_text(encoding="utf-8")
            for path in yaml_files(rules_dir)
            if pipeline in (_owners(path) or [pipeline])
        }
        for path in pipeline_files(directory / "pipelines") if (directory / "pipelines").is_dir() else []:
            if declared_pipeline_name(path) == pipeline:
                files[f"pipelines/{path.name}"] = path.read_text(encoding="utf-8")
                break
    except (OSError, UnicodeDecodeError) as exc:
        raise _Failed(f"cannot read {what}: {exc}") from None
    return _Side(label, what, files)


def _side(name: str, store: _Store, current: Deployment) -> _Side:
    """What ``diff`` compares for ``name``: a bundle id, ``live``, ``shadow``, ``packaged`` or a directory."""
    bundle_id: str | None = name
    what = f"bundle {name}"
    made_live = _revision_of(_made(current, "live"))
    if name == "live":
        bundle_id = current.live
        what = f"live bundle {bundle_id} ({made_live})"
    elif name == "shadow":
        if current.shadow is None:
            deployed = _describe(current) if current.revision else "no deployment"
            raise _Failed(f"there is no shadow candidate of {store.pipeline} ({deployed})")
        bundle_id, origin = current.shadow, _Origin.of_shadow(current)
        what = f"shadow bundle {bundle_id} (revision {origin.revision} by {origin.by}{origin.noted()})"
    elif name != "packaged" and Path(name).is_dir():
        return _local_side(Path(name), name.rstrip("/") or name, f"directory {name}", store.pipeline)
    elif "/" in name or name.startswith("."):
        raise _Failed(f"{name}: no such directory (nor a bundle id)")
    if bundle_id is None or name == "packaged":
        if not Path("rules").is_dir():  # not the directory itself, as for a DIR: any YAML there is no rule file
            raise _Failed(
                f"the packaged rules are the project's rules/, and {Path.cwd()} has none: run the command in the "
                "project, or give the directory"
            )
        live = f"live: {made_live}, " if name == "live" else ""
        return _local_side(Path("."), "packaged", f"the packaged rules ({live}the local rules/)", store.pipeline)
    return _Side(bundle_id, what, dict(store.bundle(bundle_id).files))


def _default_sides(args: argparse.Namespace, store: _Store, current: Deployment) -> tuple[str, str]:
    """The names ``diff`` compares when not given: one given is compared with the live rules."""
    if args.a is not None:
        return ("live", args.a) if args.b is None else (args.a, args.b)
    if not current.revision:
        raise _Failed(
            f"no deployment of {store.pipeline}: nothing to compare by default; give two of a bundle id, live, "
            "shadow, packaged (the local rules/) or a directory"
        )
    if current.shadow is not None:
        return "live", "shadow"
    earlier = current.earlier_live()
    return (earlier[0] or "packaged") if earlier else "packaged", "live"


def _diff(args: argparse.Namespace, store: _Store, out: TextIO, err: TextIO) -> int:
    """Print a unified diff of two versions' files, file by file; 0 when they are the same, 1 when not.

    A side without the pipeline file, the other side carrying one, is compared with the local pipeline file (the
    function decides with the one deployed with the code).
    """
    import difflib

    current, _ = store.deployment()
    first, second = (_side(name, store, current) for name in _default_sides(args, store, current))
    carried = [name for name in (*first.files, *second.files) if name.startswith("pipelines/")]
    local = _local_side(Path("."), "packaged", "the local pipeline file", store.pipeline) if carried else None
    differ = 0
    names = sorted({*first.files, *second.files})
    for name in names:
        old, new = first.files.get(name), second.files.get(name)
        labels = [first.label, second.label]
        if name.startswith("pipelines/") and local is not None and (old is None) != (new is None):
            local_text = local.files.get(name)
            old, new = (local_text, new) if old is None else (old, local_text)
            labels[0 if first.files.get(name) is None else 1] = "packaged"
        if old == new:
            continue
        differ += 1
        for line in difflib.unified_diff(
            (old or "").splitlines(keepends=True),
            (new or "").splitlines(keepends=True),
            f"{labels[0]}/{name}" if old is not None else "/dev/null",
            f"{labels[1]}/{name}" if new is not None else "/dev/null",
        ):
            out.write(line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n")
    count = f"{differ} of {len(names)} files {'differs' if differ == 1 else 'differ'}"
    print(
        f"pipeline-rules: {first.what} against {second.what}: {count if differ else f'the same {len(names)} files'}",
        file=err,
    )
    return EXIT_CHANGED if differ else EXIT_OK


def _cloudwatch_maker(args: argparse.Namespace, given: Any) -> Callable[[], Any]:
    """What makes the CloudWatch client, when one is needed (``given``, else one at ``--endpoint-url``)."""

    def make() -> Any:
        if given is not None:
            return given
        import botocore.exceptions

        if args.endpoint_url:
            from tools.localaws import stand_in_credentials

            stand_in_credentials()
        try:
            return _brief_client("cloudwatch", args.endpoint_url)
        except botocore.exceptions.BotoCoreError as exc:
            raise RecordUnreadable(f"{type(exc).__name__}: {exc}") from None

    return make


def run(
    argv: Sequence[str] | None = None,
    *,
    client: Any = None,
    cloudwatch: Any = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run the command line with ``client`` (a boto3 S3 client; one is made when None); the exit status.

    ``cloudwatch`` is the CloudWatch client ``shadow-status`` and ``promote`` read the shadow's record with (one is
    made when None, only when needed).
    """
    args = _parser().parse_args(argv)

    load_project_plugins()
    if not args.bucket:
        print("pipeline-rules: error: no bucket: pass --bucket or set RULES_BUCKET", file=err)
        return EXIT_USAGE
    prefix = args.prefix if not args.prefix or args.prefix.endswith("/") else f"{args.prefix}/"
    try:
        if client is None:
            import boto3

            if args.endpoint_url:
                from tools.localaws import stand_in_credentials

                stand_in_credentials()
            client = boto3.client("s3", endpoint_url=args.endpoint_url)
        if args.command == "publish":
            status, _ = _publish(args, _Store(client, args.bucket, prefix, ""), out, err)
            return status
        store = _Store(client, args.bucket, prefix, "")
        store.pipeline, pipeline = _resolve(args.pipeline, store)
        if args.command == "list":
            _list(store, out, err)
        elif args.command == "pull":
            bundle = store.bundle(args.bundle)
            _refuse_foreign_rules(args.out, bundle)
            try:
                bundle.write(args.out)
            except OSError as exc:
                raise _Failed(f"cannot write the bundle under {args.out}: {exc.strerror or exc}") from None
            written = "pipelines/, rules/" if bundle.pipeline_file else "rules/"
            print(f"wrote bundle {args.bundle} to {args.out}/ ({written})", file=out)
        elif args.command == "diff":
            return _diff(args, store, out, err)
        elif args.command == "shadow-status":
            _shadow_status(args, store, _cloudwatch_maker(args, cloudwatch), out)
        else:
            _deploy(args, store, pipeline, _cloudwatch_maker(args, cloudwatch), out, err)
    except _Failed as exc:
        print(f"pipeline-rules: error: {exc}", file=err)
        return EXIT_USAGE
    except ConfigError as exc:
        err.write(problem_lines(exc.problems))
        return EXIT_USAGE
    return EXIT_OK


@console_script("pipeline-rules")
def main() -> int:
    """Entry point of the console script."""
    return run()


if __name__ == "__main__":
    sys.exit(main())
