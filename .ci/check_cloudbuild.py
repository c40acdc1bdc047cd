#!/usr/bin/env python3
"""Offline checks of cloudbuild/*.yaml that the JSON schema does not make.

  - every $VAR / ${VAR} is a Cloud Build built-in or a declared substitution (with
    substitutionOption ALLOW_LOOSE a typo such as ${_REGOIN} would silently become empty),
    and every declared substitution is used;
  - every function has a build step and a deploy step, gpu-job has a build step, and the
    GPU worker is rolled;
  - every waitFor names an earlier step.
Needs PyYAML (installed with yamllint by .ci/iac-check).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ["embedding", "category", "duplicate", "quality", "score", "people", "style"]
BUILT_INS = {
    "PROJECT_ID", "PROJECT_NUMBER", "BUILD_ID", "LOCATION", "TRIGGER_NAME", "COMMIT_SHA",
    "REVISION_ID", "SHORT_SHA", "REPO_NAME", "REPO_FULL_NAME", "BRANCH_NAME", "TAG_NAME",
    "REF_NAME", "TRIGGER_BUILD_CONFIG_PATH", "SERVICE_ACCOUNT_EMAIL", "SERVICE_ACCOUNT",
    "_HEAD_BRANCH", "_BASE_BRANCH", "_HEAD_REPO_URL", "_PR_NUMBER",
}
VAR = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, str):
        yield node


def check(path: Path) -> list[str]:
    errors = []
    doc = yaml.safe_load(path.read_text())
    name = path.relative_to(ROOT)
    declared = set((doc.get("substitutions") or {}).keys())
    used = set()
    for text in strings(doc):
        for braced, bare in VAR.findall(text.replace("$$", "")):
            var = braced or bare
            used.add(var)
            if var not in BUILT_INS and var not in declared:
                errors.append(f"{name}: ${var} is neither a built-in nor a declared substitution")
    for var in sorted(declared - used):
        errors.append(f"{name}: substitution {var} is declared but never used")

    steps = doc.get("steps") or []
    seen = set()
    for step in steps:
        for wait in step.get("waitFor") or []:
            if wait != "-" and wait not in seen:
                errors.append(f"{name}: step {step.get('id')} waits for {wait!r}, which is not an earlier step")
        seen.add(step.get("id"))
    joined = [" ".join(str(a) for a in (step.get("args") or [])) for step in steps]
    for function in FUNCTIONS + ["gpu-job"]:
        if not any(re.search(rf"build-image\.sh {re.escape(function)}$", args) for args in joined):
            errors.append(f"{name}: no step builds {function}")
    for function in FUNCTIONS:
        if not any(args.startswith("run deploy") and f"/{function}:" in args for args in joined):
            errors.append(f"{name}: no step deploys {function}")
    if not any("rolling-action replace" in args for args in joined):
        errors.append(f"{name}: no step rolls the GPU worker's instance group")
    return errors


def main() -> int:
    files = sorted((ROOT / "cloudbuild").glob("*.yaml"))
    if not files:
        print("check_cloudbuild: no cloudbuild/*.yaml", file=sys.stderr)
        return 1
    errors = list(dict.fromkeys(e for path in files for e in check(path)))
    print(f"cloudbuild/: {len(files)} file(s): substitutions, steps and waitFor checked")
    if errors:
        print(f"FAILED: {len(errors)} problem(s)", file=sys.stderr)
        for error in errors:
            print(f"  - {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
