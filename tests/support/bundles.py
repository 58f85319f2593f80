"""Rules bundles for tests: a versioned bucket in moto, the ops CLI run in-process, and rule changes ops make."""

from __future__ import annotations

import io
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.bundles import Bundle, Deployment, bundle_key, deployment_key
from tests.support.shipped import entry, position
from tools.rules import run

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "pipeline-rules-test"
PIPELINE = "twilio_inbound"

ROUTING = (ROOT / "rules" / "40_routing.yaml").read_text(encoding="utf-8")
# A change ops make: VIP conversations (an attribute the shipped rules never read) go to a person.
VIP_ROUTING = ROUTING.replace(
    "rules:\n",
    """rules:
  - id: vip_to_human
    description: VIP customers are served by a person.
    when: "conversation.vip == `true`"
    then: {target: handoff}
""",
    1,
).replace(
    "tests:\n",
    """tests:
  - name: a vip goes to a person
    given: {request: {channel: whatsapp}, conversation: {vip: true}}
    expect: {rule: vip_to_human, target: handoff}
""",
    1,
)
# The same change, broken: its target is not a queue of the pipeline, and its test fails.
BROKEN_ROUTING = VIP_ROUTING.replace(
    "then: {target: handoff}\n  - id: hand_off_to_human", "then: {target: handof}\n  - id: hand_off_to_human", 1
)
# Another change: whoever asks for an agent goes to a person.
AGENT_ROUTING = VIP_ROUTING.replace(
    "  - id: vip_to_human",
    """  - id: asks_for_agent
    when: "has_word(request.body || '', 'agent')"
    then: {target: handoff}
  - id: vip_to_human""",
    1,
).replace(
    "tests:\n",
    """tests:
  - name: asking for an agent goes to a person
    given: {request: {channel: sms, body: Can I talk to an AGENT?}, conversation: {}}
    expect: {rule: asks_for_agent, target: handoff}
""",
    1,
)
PIPELINE_FILE = (ROOT / "pipelines" / f"{PIPELINE}.yaml").read_text(encoding="utf-8")
# The pipeline file as an earlier release deployed it, before conversations.get took types: (a bundle published
# --with-pipeline then carries it): after the code deploy, its steps are not the deployed pipeline's.
BEFORE_TYPES = re.sub(
    r"      # The types the contract[^\n]*\n(?:      #[^\n]*\n)*      types:\n(?:        [^\n]*\n)+",
    "",
    PIPELINE_FILE,
    count=1,
)

# A pipeline file a bundle may not carry: it serves WhatsApp only (which paths a pipeline serves is the code's).
WHATSAPP_ONLY = PIPELINE_FILE.replace("\nchannels: [whatsapp, sms]", "\nchannels: [whatsapp]", 1)
# Nor one that drops a step (here the signature check): which steps run is the code's too.
NO_SIGNATURE = PIPELINE_FILE.replace(
    "  - id: signature\n    uses: twilio.signature\n    with:\n      refetch_interval_seconds: 30\n\n", "", 1
)
# Where NO_SIGNATURE departs from the deployed steps, as the function and pipeline-rules say it.
NO_SIGNATURE_PROBLEM = (
    f"{position(NO_SIGNATURE, '  - ', 'id: status_callback')}: steps: entry {entry(NO_SIGNATURE, 'status_callback')} "
    "is 'status_callback' (control.finish, when: "
    "request.is_status_callback), the deployed pipeline's is 'signature' (twilio.signature); which steps run, "
    "in what order and when, changes with a code deploy, not a rules bundle (publish the pipeline file as deployed)"
)

# Nor one that names its tables otherwise (here no replay table: the records that stop a captured request posted
# again are off): which tables a pipeline uses is the deployment's.
NO_REPLAY_RECORDS = PIPELINE_FILE.replace("  replay: ${env:REPLAY_TABLE_NAME:-}", '  replay: ""', 1)
NO_REPLAY_RECORDS_PROBLEM = (
    f"{position(NO_REPLAY_RECORDS, '  replay: ' + chr(34))}: tables: replay is '', the deployed pipeline's is "
    "'${env:REPLAY_TABLE_NAME:-}'; which tables a pipeline uses changes with a code deploy, not a rules bundle"
)

# Nor one that keeps the steps but changes how the request is authenticated: here the signing key is the secret's
# twilio_account_sid, which every request carries (AccountSid), so anyone could sign.
ACCOUNT_SID_KEY = PIPELINE_FILE.replace("      field: twilio_auth_token\n", "      field: twilio_account_sid\n", 1)
ACCOUNT_SID_KEY_PROBLEM = (
    f"{position(ACCOUNT_SID_KEY, 'field: ', 'twilio_account_sid')}: steps: "
    f"entry {entry(ACCOUNT_SID_KEY, 'auth_token')} 'auth_token' (secrets.fetch) has other with: parameters than "
    "the deployed pipeline's; only the deciding steps' (rules.validate, rules.route) change with a rules bundle: the "
    "others' say how a request is authenticated, recorded and answered, which changes with a code deploy (publish "
    "the pipeline file as deployed)"
)

# Nor one that answers Twilio's transient faults instead of raising: Twilio retries only a 5xx, so one throttled call
# lost the message, below the transient alarm's threshold of two.
TRANSIENT_ANSWERED = PIPELINE_FILE.replace("    on_transient: raise\n", "    on_transient: respond\n", 1)
TRANSIENT_ANSWERED_PROBLEM = (
    f"{position(TRANSIENT_ANSWERED, 'on_transient: ', 'respond')}: responses: twilio.on_transient is 'respond', the "
    "deployed pipeline's is "
    "'raise'; how a pipeline answers (which channels, in what format, whether a transient fault raises) changes with "
    "a code deploy, not a rules bundle"
)

# Nor one that widens which secrets a conversation's credential reference may name: a row pointing at another
# tenant's or another channel's secret (or any secret the function may read) would be fetched and used to sign.
ANY_SECRET = PIPELINE_FILE.replace("${env:WHATSAPP_SECRET_NAME_PATTERN:-.+}", ".+", 1)
ANY_SECRET_PROBLEM = (
    f"{position(ANY_SECRET, 'whatsapp_credentials: ', '.+')}: secrets: whatsapp_credentials is '.+', the deployed "
    "pipeline's is "
    "'${env:WHATSAPP_SECRET_NAME_PATTERN:-.+}'; which secrets a credential "
    "reference may name changes with a code deploy, not a rules bundle"
)

# Nor one that keeps the steps but no longer reads the replay record with the conversation: a request posted again
# was decided afresh, staged and sent again.
REPLAY_UNREAD = PIPELINE_FILE.replace("      replay_table: replay\n", "", 1)
CONVERSATION_WITH = "  - id: conversation\n    uses: conversations.get\n    with:\n      "
REPLAY_UNREAD_PROBLEM = (
    f"{position(REPLAY_UNREAD, CONVERSATION_WITH)}: steps: "
    f"entry {entry(REPLAY_UNREAD, 'conversation')} 'conversation' (conversations.get) has other with: "
    "parameters than the deployed pipeline's; only the deciding steps' (rules.validate, rules.route) change with a "
    "rules bundle: the others' say how a request is authenticated, recorded and answered, which changes with a code "
    "deploy (publish the pipeline file as deployed)"
)


@dataclass
class Ops:
    """An ops person's working copy of the configuration, and the ``pipeline-rules`` command run there."""

    s3: Any
    root: Path

    def edit(self, name: str, text: str) -> None:
        (self.root / "rules" / name).write_text(text, encoding="utf-8")

    def rules(self, *args: str) -> tuple[int, str, str]:
        """Run ``pipeline-rules --bucket BUCKET ARGS`` in the working copy."""
        import os

        out, err = io.StringIO(), io.StringIO()
        cwd = Path.cwd()
        os.chdir(self.root)
        try:
            status = run(["--bucket", BUCKET, *args], client=self.s3, out=out, err=err)
        finally:
            os.chdir(cwd)
        return status, out.getvalue(), err.getvalue()

    def publish(self, *args: str) -> str:
        """Publish the working copy; the new bundle's id."""
        status, out, err = self.rules("publish", *args)
        assert status == 0, out + err
        return next(line.split()[2] for line in out.splitlines() if "published: bundle" in line)

    def deployment(self) -> Deployment:
        body = self.s3.get_object(Bucket=BUCKET, Key=deployment_key("rules/", PIPELINE))["Body"].read()
        return Deployment.from_json(body)

    def sneak_in(self, files: dict[str, str], *, live: bool = True) -> str:
        """Put a bundle and deploy it without the CLI's check (as a hand-made upload would)."""
        bundle = Bundle(PIPELINE, files, "2026-12-01T00:00:00Z", "someone", "unchecked")
        self.s3.put_object(Bucket=BUCKET, Key=bundle_key("rules/", PIPELINE, bundle.id), Body=bundle.to_json())
        try:
            current = self.deployment()
        except self.s3.exceptions.NoSuchKey:
            current = Deployment()
        changed = current.change(
            live=bundle.id if live else current.live,
            shadow=current.shadow if live else bundle.id,
            at="2026-12-01T00:00:00Z",
            by="someone",
        )
        self.s3.put_object(Bucket=BUCKET, Key=deployment_key("rules/", PIPELINE), Body=changed.to_json())
        return bundle.id


def make_bucket(s3: Any) -> None:
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})


def working_copy(root: Path) -> Path:
    for folder in ("pipelines", "rules"):
        shutil.copytree(ROOT / folder, root / folder)
    return root


def rules_files(routing: str) -> dict[str, str]:
    """The shipped rule files with ``routing`` as 40_routing.yaml, as a bundle holds them."""
    files = {f"rules/{path.name}": path.read_text(encoding="utf-8") for path in sorted((ROOT / "rules").glob("*.yaml"))}
    return {**files, "rules/40_routing.yaml": routing}


def with_pipeline_file(files: dict[str, str], text: str = PIPELINE_FILE) -> dict[str, str]:
    """A bundle's files carrying ``text`` as the pipeline file (as ``publish --with-pipeline`` adds it)."""
    return {**files, f"pipelines/{PIPELINE}.yaml": text}


def event_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["message"] == "event"]


def emf_documents(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"message":"metrics"')]


# A rule set deciding a business code the shipped pipeline does not declare (USER_BLOCKED), and the pipeline
# file declaring it and running the set, as rules-guide.md says to add one.
BLOCK_RULES = """\
ruleset: user_block
kind: validation
pipelines: [twilio_inbound]
rules:
  - id: user_blocked
    when: "conversation.user_blocked == `true`"
    then:
      error: USER_BLOCKED
      message: the user is blocked
tests:
  - name: a blocked user is refused
    given: {conversation: {user_blocked: true}}
    expect: {rule: user_blocked, error: USER_BLOCKED}
  - name: others pass
    given: {conversation: {}}
    expect: {error: null}
"""


def with_new_business_code(text: str) -> str:
    """The shipped pipeline with a rule set deciding a new business code, as rules-guide.md says to add one."""
    text = text.replace("errors:\n", "errors:\n  USER_BLOCKED: {description: the user is blocked}\n", 1)
    return text.replace("conversation_lock]", "conversation_lock, user_block]", 1)
