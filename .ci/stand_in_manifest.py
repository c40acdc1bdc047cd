#!/usr/bin/env python3
"""Prints the manifest of a stand-in model folder: the production manifest, each entry's
hash, size and source replaced by those of the stand-in file of the same name.

    python3 .ci/stand_in_manifest.py shared/src/model/production.toml FOLDER > FOLDER/manifest.toml

.ci/images builds the images with the tiny generated models under the production file names;
`ongi models verify` in the image builds (MODELS_MANIFEST=folder) checks them against this
manifest. Roles, file names, licences and I/O contracts stay the production ones, so a stand-in
folder is laid out exactly like a production one. An entry whose file the folder lacks fails:
every production file must have a stand-in.
"""

from __future__ import annotations

import hashlib
import re
import sys
import tomllib
from pathlib import Path

HEADER = """# Stand-in model folder made by .ci/stand_in_manifest.py from the production manifest:
# tiny generated models (random weights) under the production names and I/O contracts.
# For image builds and the container stack only (.ci/images, .ci/stack); never deployed.

"""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def main() -> int:
    production, folder = Path(sys.argv[1]), Path(sys.argv[2])
    text = production.read_text()
    files = [m["file"] for m in tomllib.loads(text)["model"]]
    # Split at each [[model]] table; the part before the first is the production header.
    parts = re.split(r"(?m)^(?=\[\[model\]\]\s*$)", text)
    out = [HEADER]
    missing = []
    for part in parts[1:]:
        # A table's trailing comment lines belong to the next table in the production file;
        # keep them, they describe it.
        match = re.search(r'(?m)^file = "([^"]+)"\s*$', part)
        if not match:
            out.append(part)
            continue
        name = match.group(1)
        path = folder / name
        if not path.is_file():
            missing.append(name)
            continue
        size = path.stat().st_size
        part = re.sub(r'(?m)^sha256 = "[^"]*"\s*$', f'sha256 = "{sha256(path)}"', part)
        if re.search(r"(?m)^bytes = \d+\s*$", part):
            part = re.sub(r"(?m)^bytes = \d+\s*$", f"bytes = {size}", part)
        else:
            part = re.sub(r'(?m)^(sha256 = "[0-9a-f]+")\s*$', rf"\1\nbytes = {size}", part)
        part = re.sub(r'(?m)^source = "[^"]*"\s*$', 'source = ""', part)
        out.append(part)
    if missing:
        sys.exit(f"stand_in_manifest: no stand-in in {folder} for " + ", ".join(missing))
    result = "".join(out)
    parsed = tomllib.loads(result)["model"]
    assert [m["file"] for m in parsed] == files, "the stand-in manifest lost an entry"
    sys.stdout.write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
