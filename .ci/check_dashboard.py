#!/usr/bin/env python3
"""Checks the Grafana dashboard (terraform/dashboards/ongi.json) against the code.

Every `ongi_*` metric a panel queries must be one the Rust sources emit
(`metrics::counter!/histogram!/gauge!("name"`), with the suffixes Prometheus adds to a
histogram (_bucket, _sum, _count) allowed for histograms only; and every metric the code emits
must appear on some panel, so a new metric is not silently left off the dashboard. The JSON
must parse and every panel must have a title and at least one query.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "terraform" / "dashboards" / "ongi.json"
SOURCES = [ROOT / "shared" / "src", ROOT / "gpu-job" / "src", ROOT / "functions"]
EMIT = re.compile(r'metrics::(counter|histogram|gauge)!\(\s*"(ongi_[a-z0-9_]+)"')
QUERIED = re.compile(r"\b(ongi_[a-z0-9_]+)\b")


def emitted() -> dict[str, str]:
    found: dict[str, str] = {}
    for base in SOURCES:
        for path in base.rglob("*.rs"):
            for kind, name in EMIT.findall(path.read_text(encoding="utf-8")):
                found[name] = kind
    return found


def main() -> int:
    metrics = emitted()
    if len(metrics) < 10:
        print(f"check_dashboard: only {len(metrics)} metrics found in the sources; the extraction broke")
        return 1
    try:
        dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        print(f"check_dashboard: {DASHBOARD.relative_to(ROOT)} does not parse: {e}")
        return 1
    problems: list[str] = []
    queried: set[str] = set()
    for panel in dashboard.get("panels", []):
        title = panel.get("title") or f"panel {panel.get('id')}"
        targets = panel.get("targets") or []
        if not panel.get("title") or not targets:
            problems.append(f"{title}: needs a title and at least one query")
        for target in targets:
            for name in QUERIED.findall(target.get("expr", "")):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                if name in metrics:
                    queried.add(name)
                elif base in metrics and metrics[base] == "histogram":
                    queried.add(base)
                else:
                    problems.append(f"{title}: queries {name}, which no code emits")
    for name in sorted(set(metrics) - queried):
        problems.append(f"{name} ({metrics[name]}) is emitted but on no panel")
    if problems:
        print("check_dashboard: the dashboard and the code disagree:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"check_dashboard: {len(dashboard['panels'])} panels query {len(queried)} metrics, all emitted by the code")
    return 0


if __name__ == "__main__":
    sys.exit(main())
