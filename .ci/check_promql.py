#!/usr/bin/env python3
"""Check the PromQL of the Grafana dashboard and the alerting rules against a live Prometheus.

Usage:
    check_promql.py --prometheus http://127.0.0.1:9090 \
        --dashboard dashboards/argus-webhooks.json --rules dashboards/alerts.yml [--wait 120]

Every expression is sent to Prometheus's /api/v1/query as an instant query.
One line is printed per expression:

    OK     the query parsed and ran (for a dashboard query: it returned data)
    EMPTY  a dashboard query returned no series (a failure: the panel would show "No data")
    ERROR  Prometheus rejected the query (parse or execution error) or could not be reached

An alerting or recording rule that returns no series is fine (the alert is not firing), so
rules are only checked for errors. With --wait SECONDS, the dashboard queries that come back
empty are retried until the deadline, because a freshly started Prometheus needs a few
scrapes before rate() has two samples.

Grafana variables are replaced before sending: $__rate_interval and $__interval by --interval
(default 1m), $__range by the dashboard's default time range, and every template variable by
its saved current value (or its "All" value, or ".*"). --var NAME=VALUE overrides one.

Standard library only, plus PyYAML for the rules (pip install pyyaml).
Exit status: 0 when every check passed, 1 when any failed, 2 on bad arguments or input files.
"""

import argparse
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

try:
    import yaml
except ImportError:  # pragma: no cover - reported at run time
    yaml = None

DURATION_RE = re.compile(r"^(\d+)(ms|s|m|h|d|w|y)$")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
# ${name}, ${name:format}, $name, [[name]], [[name:format]]
VAR_RE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")


def parse_duration(text):
    """Return seconds for a Prometheus/Grafana duration such as 1m or 90s."""
    m = DURATION_RE.match(text.strip())
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    return int(m.group(1)) * UNIT_SECONDS[m.group(2)]


def format_duration(seconds):
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def dashboard_range_seconds(dashboard):
    """Return the length in seconds of the dashboard's default time range (3600 for now-1h)."""
    time_from = str(dashboard.get("time", {}).get("from", "now-1h"))
    m = re.match(r"^now-(\d+[smhdwy])$", time_from)
    if m:
        return parse_duration(m.group(1))
    return 3600


def variable_values(dashboard, overrides):
    """Return a dict from each template variable's name to the text that replaces it."""
    values = {}
    for var in dashboard.get("templating", {}).get("list", []):
        name = var.get("name")
        if not name:
            continue
        current = var.get("current") or {}
        value = current.get("value")
        if isinstance(value, list):
            # A multi-value variable: Grafana sends several values as a regex alternation.
            if not value:
                value = "$__all"
            elif len(value) == 1:
                value = value[0]
            else:
                value = "(" + "|".join(value) + ")"
        if var.get("type") == "datasource":
            value = value or "prometheus"
        elif value in (None, "", "$__all", "All"):
            value = var.get("allValue") or ".*"
        values[name] = str(value)
    values.update(overrides)
    return values


def substitute(expr, variables, interval_s, range_s):
    builtins = {
        "__rate_interval": format_duration(interval_s),
        "__interval": format_duration(interval_s),
        "__range": format_duration(range_s),
        "__rate_interval_ms": str(int(interval_s * 1000)),
        "__interval_ms": str(int(interval_s * 1000)),
        "__range_s": str(int(range_s)),
        "__range_ms": str(int(range_s * 1000)),
    }
    unknown = []

    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in builtins:
            return builtins[name]
        if name in variables:
            return variables[name]
        unknown.append(name)
        return ".*"

    return VAR_RE.sub(repl, expr), unknown


def walk_panels(panels):
    for panel in panels or []:
        yield panel
        # Collapsed rows keep their panels inside the row.
        yield from walk_panels(panel.get("panels"))


def dashboard_queries(dashboard):
    """Yield (label, expr) for every Prometheus target of every panel."""
    for panel in walk_panels(dashboard.get("panels")):
        title = panel.get("title") or f"panel {panel.get('id')}"
        for target in panel.get("targets") or []:
            expr = target.get("expr")
            if not expr or not str(expr).strip():
                continue
            ref = target.get("refId", "?")
            yield f"{title} [{ref}]", str(expr)


def rule_queries(rules_doc):
    for group in (rules_doc or {}).get("groups") or []:
        for rule in group.get("rules") or []:
            name = rule.get("alert") or rule.get("record") or "?"
            expr = rule.get("expr")
            if expr is None:
                continue
            yield f"{group.get('name', '?')}/{name}", str(expr).strip()


class Prometheus:
    def __init__(self, base_url, timeout):
        self.base = base_url.rstrip("/")
        self.timeout = timeout

    def query(self, expr):
        """Return (status, detail, result list or None)."""
        body = urllib.parse.urlencode({"query": expr}).encode()
        request = urllib.request.Request(
            self.base + "/api/v1/query", data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                payload = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            # Prometheus returns 400, 422 or 503 with a JSON body that contains the error.
            try:
                payload = json.loads(exc.read().decode("utf-8"))
            except (ValueError, OSError):
                return "error", f"HTTP {exc.code}", None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return "error", f"request failed: {exc}", None
        if payload.get("status") != "success":
            return "error", f"{payload.get('errorType', 'error')}: {payload.get('error', payload)}", None
        data = payload.get("data") or {}
        result = data.get("result")
        if data.get("resultType") in ("scalar", "string"):
            return "success", data.get("resultType"), [result]
        return "success", data.get("resultType", "?"), result or []

    def ready(self):
        try:
            with urllib.request.urlopen(self.base + "/-/ready", timeout=self.timeout) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False


def describe(result):
    n = len(result)
    values = []
    for item in result:
        if isinstance(item, dict) and "value" in item:
            values.append(item["value"][1])
        elif isinstance(item, dict) and "values" in item:
            values.extend(v[1] for v in item["values"])
        elif isinstance(item, list) and len(item) == 2:
            values.append(item[1])
    note = ""
    if values and all(str(v).lower() in ("nan", "+inf", "-inf", "inf") or
                      (isinstance(v, float) and math.isnan(v)) for v in values):
        note = ", all values NaN/Inf (no samples in the window)"
    return f"{n} series{note}"


def one_line(expr):
    return " ".join(expr.split())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    parser.add_argument("--dashboard", required=True, help="Grafana dashboard JSON file")
    parser.add_argument("--rules", required=True, help="Prometheus rules YAML file")
    parser.add_argument("--wait", type=float, default=0,
                    help="seconds to keep retrying dashboard queries that return no data "
                         "(and to wait for Prometheus to be ready); default 0")
    parser.add_argument("--interval", default="1m",
                    help="value for $__rate_interval and $__interval (default 1m)")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                    help="value for a dashboard template variable (repeatable)")
    parser.add_argument("--timeout", type=float, default=10, help="HTTP timeout in seconds (default 10)")
    parser.add_argument("--retry-every", type=float, default=5,
                    help="seconds between retries with --wait (default 5)")
    args = parser.parse_args(argv)

    try:
        interval_s = parse_duration(args.interval)
    except ValueError as exc:
        parser.error(str(exc))
    overrides = {}
    for item in args.var:
        if "=" not in item:
            parser.error(f"--var needs NAME=VALUE, got {item!r}")
        name, value = item.split("=", 1)
        overrides[name.strip()] = value

    try:
        with open(args.dashboard, encoding="utf-8") as fh:
            dashboard = json.load(fh)
    except (OSError, ValueError) as exc:
        print(f"cannot read dashboard {args.dashboard}: {exc}", file=sys.stderr)
        return 2
    if yaml is None:
        print("PyYAML is missing: pip install pyyaml", file=sys.stderr)
        return 2
    try:
        with open(args.rules, encoding="utf-8") as fh:
            rules_doc = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        print(f"cannot read rules {args.rules}: {exc}", file=sys.stderr)
        return 2

    variables = variable_values(dashboard, overrides)
    range_s = dashboard_range_seconds(dashboard)

    # Each check is a dict with kind (dashboard or rule), label and expr; run() adds state and detail.
    checks = []
    for label, expr in dashboard_queries(dashboard):
        sent, unknown = substitute(expr, variables, interval_s, range_s)
        if unknown:
            print(f"note: {label}: unknown variable(s) {', '.join(sorted(set(unknown)))} "
                  f"replaced by .*", file=sys.stderr)
        checks.append({"kind": "dashboard", "label": label, "expr": sent})
    for label, expr in rule_queries(rules_doc):
        checks.append({"kind": "rule", "label": label, "expr": expr})
    if not any(c["kind"] == "dashboard" for c in checks):
        print(f"no PromQL target found in {args.dashboard}", file=sys.stderr)
        return 2
    if not any(c["kind"] == "rule" for c in checks):
        print(f"no rule with an expr found in {args.rules}", file=sys.stderr)
        return 2

    prom = Prometheus(args.prometheus, args.timeout)
    deadline = time.monotonic() + max(args.wait, 0)
    while not prom.ready() and time.monotonic() < deadline:
        time.sleep(min(args.retry_every, max(deadline - time.monotonic(), 0.1)))

    def run(check):
        status, detail, result = prom.query(check["expr"])
        if status != "success":
            check["state"], check["detail"] = "ERROR", detail
        elif check["kind"] == "dashboard" and not result:
            check["state"], check["detail"] = "EMPTY", "no series"
        elif not result:
            check["state"], check["detail"] = "OK", "no series (not firing)"
        else:
            check["state"], check["detail"] = "OK", describe(result)

    for check in checks:
        run(check)
    pending = [c for c in checks if c["state"] == "EMPTY"]
    while pending and time.monotonic() < deadline:
        time.sleep(min(args.retry_every, max(deadline - time.monotonic(), 0.1)))
        for check in pending:
            run(check)
        pending = [c for c in checks if c["state"] == "EMPTY"]

    failed = 0
    for check in checks:
        if check["state"] != "OK":
            failed += 1
        print(f"{check['state']:<5}  {check['kind']:<9}  {check['label']}: {check['detail']}"
              f"  ::  {one_line(check['expr'])}")
    total = len(checks)
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
