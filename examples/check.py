#!/usr/bin/env python3
"""Validate examples/platform-events.jsonl and print counts per event type and account.

Each line must match the PlatformEventInput shape: the exact field set, UUID v4 ids,
RFC 3339 UTC timestamps in November 2026 that increase through the file, and fewer
than 4096 bytes. The file must meet the per-type and per-account minimums. No event
may concern a resource before it is created or after it is deleted or expired, and
ids referenced in "data" must point at live resources of the same account.
The script prints every problem it finds and exits with status 1 if there is any.

Usage: python3 examples/check.py [FILE]
"""

import json
import re
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

FIELDS = {"id", "eventType", "accountId", "resourceType", "resourceId", "timestamp", "data"}
FAMILIES = {
    "property": ("created", "updated", "deleted"),
    "valuation": ("created", "updated"),
    "lease": ("created", "updated", "expired"),
    "portfolio": ("created", "updated", "deleted"),
    "report": ("completed", "failed"),
    "cashflow": ("updated",),
    "tenant": ("created", "updated"),
}
EVENT_TYPES = {f"{family}.{action}" for family, actions in FAMILIES.items() for action in actions}
ACCOUNTS = {"acme-capital", "harbor-reit", "northwind-properties"}
UUID_V4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
ACCOUNT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
START = datetime(2026, 11, 1, tzinfo=timezone.utc)
END = datetime(2026, 12, 1, tzinfo=timezone.utc)
MIN_PER_TYPE, MIN_PER_ACCOUNT, MIN_TOTAL = 15, 100, 520


def check(path: Path) -> list[str]:
    problems: list[str] = []
    types: Counter = Counter()
    accounts: Counter = Counter()
    event_ids: set[str] = set()
    state: dict[tuple[str, str], str] = {}  # (accountId, resourceId) -> "live" or "ended"
    reused: Counter = Counter()
    previous = None
    lines = path.read_bytes().split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    for number, raw in enumerate(lines, start=1):
        def fail(message: str) -> None:
            problems.append(f"line {number}: {message}")

        if len(raw) >= 4096:
            fail(f"{len(raw)} bytes, limit is 4096")
        event = json.loads(raw)
        if set(event) != FIELDS:
            fail(f"fields {sorted(event)}")
            continue
        event_type, account, resource = event["eventType"], event["accountId"], event["resourceId"]
        types[event_type] += 1
        accounts[account] += 1
        reused[(account, resource)] += 1
        if event_type not in EVENT_TYPES:
            fail(f"unknown eventType {event_type}")
        if event["resourceType"] != event_type.split(".")[0]:
            fail(f"resourceType {event['resourceType']} for {event_type}")
        if account not in ACCOUNTS or not ACCOUNT_ID.match(account):
            fail(f"accountId {account}")
        for key in ("id", "resourceId"):
            if not UUID_V4.match(event[key]):
                fail(f"{key} {event[key]} is not a UUID v4")
        if event["id"] in event_ids:
            fail(f"duplicate id {event['id']}")
        event_ids.add(event["id"])
        if not isinstance(event["data"], dict) or not event["data"]:
            fail("data is not a non-empty object")
        if not TIMESTAMP.match(event["timestamp"]):
            fail(f"timestamp {event['timestamp']}")
            continue
        when = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        if not START <= when < END:
            fail(f"timestamp {event['timestamp']} outside November 2026")
        if previous is not None and when <= previous:
            fail(f"timestamp {event['timestamp']} does not increase")
        previous = when

        # Lifecycle of the event's own resource.
        action = event_type.split(".")[1]
        key = (account, resource)
        current = state.get(key)
        if current == "ended":
            fail(f"{event_type} after the {resource} was deleted or expired")
        elif action == "created" and current is not None:
            fail(f"{event_type} for an existing {resource}")
        elif action in ("updated", "deleted", "expired") and current is None and \
                event["resourceType"] != "cashflow":
            fail(f"{event_type} before the {resource} was created")
        if action == "created" or event["resourceType"] in ("cashflow", "report"):
            state[key] = "live"
        if action in ("deleted", "expired"):
            state[key] = "ended"

        # Resources referenced from data must be live in the same account.
        data = event["data"]
        referenced = [data[k] for k in ("propertyId", "tenantId", "portfolioId") if k in data]
        referenced += data.get("propertyIds", []) + data.get("addedPropertyIds", [])
        for ref in referenced:
            if state.get((account, ref)) != "live":
                fail(f"data references {ref}, which is not live in {account}")

    total = sum(types.values())
    if total < MIN_TOTAL:
        problems.append(f"{total} events, expected at least {MIN_TOTAL}")
    for event_type in sorted(EVENT_TYPES):
        if types[event_type] < MIN_PER_TYPE:
            problems.append(f"{event_type}: {types[event_type]} events, expected {MIN_PER_TYPE}")
    if set(accounts) != ACCOUNTS or min(accounts.values()) < MIN_PER_ACCOUNT:
        problems.append(f"accounts {dict(accounts)}")

    print(f"{path}: {total} events, {first_last(lines)}")
    print("per event type:")
    for event_type in sorted(EVENT_TYPES):
        print(f"  {event_type:20} {types[event_type]:4}")
    print("per account:")
    for account in sorted(accounts):
        print(f"  {account:20} {accounts[account]:4}")
    repeated = sum(1 for n in reused.values() if n > 1)
    print(f"resources with more than one event: {repeated} of {len(reused)}")
    return problems


def first_last(lines: list[bytes]) -> str:
    first, last = json.loads(lines[0]), json.loads(lines[-1])
    return f"{first['timestamp']} to {last['timestamp']}"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        Path(__file__).resolve().parent / "platform-events.jsonl")
    problems = check(path)
    for problem in problems:
        print(problem)
    print("OK" if not problems else f"{len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
