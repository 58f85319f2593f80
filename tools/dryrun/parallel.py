"""Replaying on several cores without changing a single output line (``--jobs``, memory worlds only).

Events are split into partitions that cannot see each other's writes: an event only writes the stage
and lock rows of the conversation its lookup finds, and that lookup is keyed by the end user's
number (an email's: its sender's address), and the replay record of its message, keyed by the message's id
(Twilio's ``MessageSid``; an email's ``EM…`` id, from its Message-ID and parse address, not its sender: one email
posted again from another sender is the same message). ``conversation_groups`` joins user keys and conversation
ids that share rows in the world, and ``partition`` joins the users whose events carry one message id;
every event of one group goes to the same worker, in the original order, so each conversation and each message
sees exactly the history it sees in a single process. Workers are forked after the lanes are built (each
gets its own copy of the world); their rendered lines are merged back in event order.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar
from urllib.parse import unquote_plus

from runtime.apigateway import EventError, http_request

__all__ = ["conversation_groups", "available_workers", "event_keys", "partition", "run_partitioned", "user_key"]

T = TypeVar("T")
BATCH = 100


def available_workers() -> int:
    """How many workers this machine can usefully run (0 when processes cannot be forked)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 0
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _email_keys(body: bytes, content_type: str) -> tuple[str | None, str | None]:
    """The sender an Inbound Parse post's lookup is keyed by and its message's id, read as ``sendgrid.parse`` does."""
    from steps.sendgrid import multipart
    from steps.sendgrid.message import read_addressing

    try:
        email = read_addressing(multipart.parse(body, content_type), body)
    except multipart.MultipartError:
        return None, None
    return (email.sender.lower() if email.sender else None), email.message_id


def _first(body: str, name: str) -> str | None:
    """The first (still encoded) value of ``name`` in a form body."""
    key = name + "="
    if body.startswith(key):
        begin = len(key)
    else:
        found = body.find("&" + key)
        if found < 0:
            return None
        begin = found + 1 + len(key)
    end = body.find("&", begin)
    return body[begin:] if end < 0 else body[begin:end]


def event_keys(event: Any) -> tuple[str | None, str | None]:
    """The end user an event's lookup is keyed by, and the id its message's replay record is keyed by (None: none).

    A Twilio form's number (``To`` of a status callback) without ``whatsapp:``, and its ``MessageSid``; an Inbound
    Parse email's sender, and its ``EM…`` id.
    """
    try:
        request = http_request(event)
    except EventError:
        return None, None
    content_type = request.header("content-type") or ""
    if content_type.lower().startswith("multipart/form-data"):
        return _email_keys(request.body, content_type)
    form = request.body.decode("utf-8", "replace")
    number = _first(form, "To" if _first(form, "MessageStatus") is not None else "From")
    sid = _first(form, "MessageSid")
    return (unquote_plus(number).split(":", 1)[-1] if number else None), (unquote_plus(sid) if sid else None)


def user_key(event: Any) -> str | None:
    """The end user an event's lookup is keyed by (None when it names none): ``event_keys``' first."""
    return event_keys(event)[0]


def _root(parent: dict[str, str], node: str) -> str:
    """The representative of ``node``'s set in the disjoint-set forest ``parent`` (a new node is its own set)."""
    root = node
    while parent.setdefault(root, root) != root:
        root = parent[root]
    parent[node] = root
    return root


def conversation_groups(conversations: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """User key → group: numbers and addresses whose conversations share an id (and so rows) are in one group."""
    parent: dict[str, str] = {}

    for item in conversations:
        nodes = [f"id:{item.get('conversation_id')}"]
        nodes += [
            f"key:{item[name]}"
            for name in ("primary_channel", "gsi_recipient_tel", "gsi_recipient_email")
            if item.get(name)
        ]
        first = _root(parent, nodes[0])
        for node in nodes[1:]:
            parent[_root(parent, node)] = first
    return {node[4:]: _root(parent, node) for node in list(parent) if node.startswith("key:")}


def partition(events: Sequence[Any], groups: Mapping[str, str], workers: int) -> list[list[int]]:
    """Event indexes per worker, in event order; a group's events (or an unknown user's) share a worker.

    So do the groups whose events carry one message id (its replay record is one row). Groups go to the least loaded
    worker, largest first, so that the workers finish together.
    """
    parent: dict[str, str] = {}

    nodes: list[str] = []
    for event in events:
        user, message = event_keys(event)
        node = groups.get(user, user) if user else ""
        if message and node:  # an event naming no user writes nothing: it joins nobody
            parent[_root(parent, "message:" + message)] = _root(parent, node)
        nodes.append(node)
    keys = [_root(parent, node) for node in nodes]
    load = [0] * workers
    owner: dict[str, int] = {}
    for key, count in sorted(Counter(keys).items(), key=lambda entry: (-entry[1], entry[0])):
        owner[key] = min(range(workers), key=load.__getitem__)
        load[owner[key]] += count
    parts: list[list[int]] = [[] for _ in range(workers)]
    for index, key in enumerate(keys):
        parts[owner[key]].append(index)
    return parts


def _work(connection: Connection, indexes: list[int], events: Sequence[Any], render: Callable[[Any], T]) -> None:
    try:
        batch: list[tuple[int, T]] = []
        for index in indexes:
            batch.append((index, render(events[index])))
            if len(batch) >= BATCH:
                connection.send(batch)
                batch = []
        connection.send(batch)
        connection.send(None)
    except BaseException:  # noqa: BLE001 - whatever went wrong is reported to the parent, which raises it
        connection.send(traceback.format_exc())
    finally:
        connection.close()


def run_partitioned(events: Sequence[Any], parts: list[list[int]], render: Callable[[Any], T]) -> Iterator[T]:
    """``render(event)`` for every event, computed by one forked worker per partition, yielded in event order."""
    context = multiprocessing.get_context("fork")
    connections: dict[Connection, Any] = {}
    for indexes in parts:
        if not indexes:
            continue
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_work, args=(sender, indexes, events, render), daemon=True)
        process.start()
        sender.close()
        connections[receiver] = process
    pending: dict[int, T] = {}
    order = 0
    try:
        while True:
            while order in pending:
                yield pending.pop(order)
                order += 1
            if not connections:
                break
            for ready in wait(list(connections)):
                assert isinstance(ready, Connection)
                try:
                    message = ready.recv()
                except EOFError:
                    raise RuntimeError("a replay worker exited without finishing") from None
                if isinstance(message, str):
                    raise RuntimeError(f"a replay worker failed:\n{message}")
                if message is None:
                    connections.pop(ready).join()
                    continue
                pending.update(message)
        if order != len(events):
            raise RuntimeError(f"replay workers returned {order} of {len(events)} events")
    finally:
        for process in connections.values():
            process.kill()
            process.join()
