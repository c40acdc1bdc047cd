#!/usr/bin/env python3
"""Checks that the deployment gives every process exactly the settings it reads.

Three sources are compared:

1. What the binaries read: every environment variable name read in shared/src/config/
   (the `get("NAME")` / `lookup("NAME")` calls and the helpers that take the getter, such as
   `setting(&get, "NAME", ...)`; its table of documented settings, table.rs, and its tests
   are left out: they name settings without reading them), plus direct reads elsewhere in the binaries' sources
   (`std::env::var("NAME")`, `var_os`, clap's `env = "NAME"`, tracing's RUST_LOG).
2. What the deployment sets: for a `google_cloud_run_v2_service` with
   `for_each = local.<map>` (terraform/run.tf: local.function_services), the keys of each
   function's `env` map (plain values) and `secrets` map (Secret Manager), which the resource
   turns into its two `dynamic "env"` blocks; for a service without for_each (embedding), its
   `env` blocks (a plain `value`, or `value_source.secret_key_ref` = Secret Manager); and the
   GPU worker's `local.gpu_job_env` / `local.gpu_job_secret_env` (terraform/gpu.tf).
3. What the images set: the `ENV` instructions of the final stage of functions/Dockerfile and
   gpu-job/Dockerfile.

Rules (any violation prints the table and exits 1):
  (a) nothing is set that no binary reads; PORT and K_SERVICE are never set (Cloud Run sets
      them itself and rejects them), nor the emulator settings (STORAGE_EMULATOR_HOST,
      PUBSUB_EMULATOR_HOST), which would send production traffic to an emulator;
  (b) every process gets what it NEEDS on Google Cloud (table REQUIRED below, each entry with
      the reason), from an allowed source: secrets only from Secret Manager, the ONNX Runtime
      path only from the image;
  (c) fixed values are right (ONGI_STORAGE=gcs, ONGI_LOG_FORMAT=json), and where the image and
      Terraform both set a variable, they agree.

Only the standard library and python-hcl2 are used.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

try:
    import hcl2
except ImportError:  # pragma: no cover - the message is the point
    sys.exit("check_settings: python-hcl2 is missing (pip install python-hcl2); .ci/iac-check installs it")

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "shared" / "src" / "config"
# Name settings without reading them: the table `ongi serve --help` prints, and the tests.
CONFIG_NOT_READS = {"table.rs", "tests.rs"}
TERRAFORM = ROOT / "terraform"
FUNCTIONS_DOCKERFILE = ROOT / "functions" / "Dockerfile"
GPU_DOCKERFILE = ROOT / "gpu-job" / "Dockerfile"

# Fewer names than this means the extraction broke (config read 24 when this was written).
MIN_CONFIG_NAMES = 15

FUNCTIONS = ["embedding", "category", "duplicate", "quality", "score", "people", "style"]
PROCESSES = FUNCTIONS + ["gpu-job", "reprocess-job"]

# Set by Cloud Run (and forbidden to set: Cloud Run rejects reserved names).
PLATFORM_SET = {
    "PORT": "Cloud Run sets it (8080 here) and rejects it as an env var",
    "K_SERVICE": "Cloud Run sets it; the binaries use it to know they run on Cloud Run",
}
# Read by the dynamic loader or when starting programs, not as settings: an image may set them.
LOADER_READS = {
    "LD_LIBRARY_PATH": "the GPU worker's image points the loader at its CUDA libraries and the driver's",
    "PATH": "the GPU worker's image adds the driver's nvidia-smi (mounted from the VM)",
}
# Read by the binaries, but never to be set in a deployment.
NEVER_SET = {
    "STORAGE_EMULATOR_HOST": "would point storage at the GCS emulator",
    "PUBSUB_EMULATOR_HOST": "would point publishing at the Pub/Sub emulator",
}

# What each process needs on Google Cloud, and why. "Needs" means: without it the process
# fails to start, silently does the wrong thing (reads a local folder, keeps a private
# cache), or depends on a default that must match a resource Terraform names.
_COMMON = {
    "ONGI_LOG_FORMAT": "JSON for Cloud Logging; explicit so the GPU worker (no K_SERVICE) matches",
    "ONGI_STORAGE": "the default is the local folder: without gcs the photos are never found",
    "ONGI_BUCKET": "bucket names are global, the default 'uploads' is not the deployed bucket",
    "REDIS_URL": "without it each instance keeps a private in-process cache and queue",
    "GOOGLE_CLOUD_PROJECT": "config refuses to start on Cloud Run (publishing) or with gcs without it",
}
_MODELS = {
    "ONGI_MODEL_DIR": "loads models (CLIP, aesthetic head, face models); on Cloud Run a missing model is a deployment error",
    "ORT_DYLIB_PATH": "runs ONNX models through ONNX Runtime loaded at run time",
}
_FEATURE_READER = {
    "EMBEDDING_URL": "reads cached features and asks the embedding service for missing ones (else it would embed in-process)",
}
REQUIRED: dict[str, dict[str, str]] = {
    "embedding": {
        **_COMMON,
        **_MODELS,
        "ONGI_FEATURES_TOPIC": "publishes to the topic Terraform creates; wired, not left to a matching default",
    },
    "category": {**_COMMON, **_MODELS, **_FEATURE_READER},
    "duplicate": {**_COMMON, **_MODELS, **_FEATURE_READER},
    "quality": {**_COMMON, **_MODELS, **_FEATURE_READER},
    "score": {**_COMMON, **_MODELS, **_FEATURE_READER},
    "people": {
        **_COMMON,
        **_MODELS,
        **_FEATURE_READER,
        "ONGI_FACE_DETECTOR": "the face detector is a deployment choice (yunet or mtcnn)",
    },
    "style": {
        **_COMMON,
        "ONGI_RESULTS_BUCKET": "signs URLs of results in the deployed results bucket",
        "GEMINI_API_KEY": "writes the diffusion prompt with Gemini",
        "GEMINI_MODEL": "the Gemini model is a deployment choice",
    },
    "reprocess-job": {
        **_COMMON,
        **_MODELS,
        "ONGI_FEATURES_TOPIC": "announces each photo on the topic Terraform creates, as the embedding service does",
        "ONGI_PUBLISH": "a Cloud Run job has no K_SERVICE: without it nothing is announced on ongi-features",
    },
    "gpu-job": {
        **_COMMON,
        "ONGI_RESULTS_BUCKET": "writes style results to the deployed results bucket",
        "ONGI_MODEL_DIR": "loads the Stable Diffusion weights",
        "ONGI_PUBLISH": "a VM has no K_SERVICE: without it the ongi.style.v1 results are only logged",
    },
}

# Where a variable may come from. Default: Terraform (plain value or secret) or the image.
ONLY_FROM_SECRET = {"REDIS_URL", "GEMINI_API_KEY"}  # they carry credentials
ONLY_FROM_IMAGE = {"ORT_DYLIB_PATH"}  # the image decides where it puts the library
FIXED_VALUES = {"ONGI_STORAGE": "gcs", "ONGI_LOG_FORMAT": "json"}

ENV_NAME = r"[A-Z][A-Z0-9_]*[A-Z0-9]"


# --- 1. What the binaries read -----------------------------------------------------------


def _strip_rust(src: str) -> str:
    """Drops the inline test module and comments, keeping string literals."""
    # `#[cfg(test)] mod tests { ... }` ends a file; `#[cfg(test)] mod tests;` only declares one.
    inline = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", src)
    if inline:
        src = src[: inline.start()]
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    return re.sub(r"(?m)//.*$", "", src)


def config_sources() -> str:
    paths = sorted(p for p in CONFIG_DIR.rglob("*.rs") if p.name not in CONFIG_NOT_READS)
    if not paths:
        sys.exit(f"check_settings: no sources in {CONFIG_DIR.relative_to(ROOT)}")
    return "\n".join(_strip_rust(p.read_text()) for p in paths)


def names_read_by_config() -> set[str]:
    src = config_sources()
    reads = set(re.findall(rf'\b(?:get|lookup)\(\s*"({ENV_NAME})"\s*\)', src))
    reads |= set(re.findall(rf'\(\s*&?\s*(?:get|lookup)\s*,\s*"({ENV_NAME})"', src))
    if len(reads) < MIN_CONFIG_NAMES:
        sys.exit(
            f"check_settings: only {len(reads)} setting names found in {CONFIG_DIR.relative_to(ROOT)} "
            f"(expected at least {MIN_CONFIG_NAMES}); the get(\"NAME\") extraction is broken: fix this script"
        )
    # Every env-like literal in config must be accounted for as a read, so that a new way
    # of reading a setting fails here instead of being missed silently.
    literals = set(re.findall(rf'"({ENV_NAME})"', src))
    unexplained = sorted(literals - reads)
    if unexplained:
        sys.exit(
            "check_settings: shared/src/config/ names " + ", ".join(unexplained) + " but the extraction did not see them "
            "read through get()/lookup()/a helper taking the getter: teach this script the new form"
        )
    return reads


def names_read_elsewhere() -> dict[str, str]:
    """Direct reads in the binaries' other sources: name -> first place seen."""
    found: dict[str, str] = {}
    sources = [ROOT / "shared" / "src", ROOT / "gpu-job" / "src", *sorted((ROOT / "functions").glob("*/src"))]
    patterns = [
        rf'env::var(?:_os)?\(\s*"({ENV_NAME})"',
        rf'\benv\s*=\s*"({ENV_NAME})"',
    ]
    for base in sources:
        for path in sorted(base.rglob("*.rs")):
            text = path.read_text()
            src = _strip_rust(text)
            for pattern in patterns:
                for name in re.findall(pattern, src):
                    found.setdefault(name, str(path.relative_to(ROOT)))
            if re.search(r"EnvFilter::(?:try_)?from_default_env", src):
                found.setdefault("RUST_LOG", str(path.relative_to(ROOT)))
    return found


# --- 2. What Terraform sets ----------------------------------------------------------------


def _unquote(value):
    """python-hcl2 >= 7 keeps the quotes of string literals; older versions drop them."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _blocks(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def load_terraform() -> list[tuple[str, dict]]:
    parsed = []
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as handle:
            parsed.append((path.name, hcl2.load(handle)))
    if not parsed:
        sys.exit(f"check_settings: no .tf files in {TERRAFORM}")
    return parsed


def terraform_locals(parsed) -> dict:
    result = {}
    for _, doc in parsed:
        for block in _blocks(doc.get("locals")):
            for key, value in block.items():
                if not key.startswith("__"):
                    result[key] = value
    return result


def resolve(value, local_values: dict):
    """The literal behind a value, following `${local.x}` to a literal local; else None."""
    value = _unquote(value)
    if not isinstance(value, str):
        return value
    match = re.fullmatch(r"\$\{local\.([A-Za-z0-9_]+)\}", value)
    if match:
        target = local_values.get(match.group(1))
        if isinstance(target, str) and "${" not in _unquote(target):
            return _unquote(target)
        return None
    return None if "${" in value else value


def _dynamic_env_sources(filename: str, rname: str, container: dict) -> dict[str, str]:
    """The for_each of each `dynamic "env"` block: "plain" / "secret" -> expression."""
    sources: dict[str, str] = {}
    for dynamic in _blocks(container.get("dynamic")):
        for label, body in dynamic.items():
            if _unquote(label) != "env":
                continue
            for block in _blocks(body):
                content = [c for c in _blocks(block.get("content"))]
                if len(content) != 1:
                    sys.exit(f"check_settings: {filename}: service {rname}: a dynamic \"env\" block needs one content block")
                refs = [r for vs in _blocks(content[0].get("value_source")) for r in _blocks(vs.get("secret_key_ref"))]
                kind = "secret" if refs else "plain"
                if kind in sources:
                    sys.exit(f"check_settings: {filename}: service {rname} has two {kind} dynamic \"env\" blocks")
                sources[kind] = _unquote(block.get("for_each"))
    return sources


def cloud_run_env(parsed, local_values: dict) -> dict[str, dict[str, tuple[str, object]]]:
    """function -> name -> ("tf", raw value) or ("secret", secret ref).

    A service with for_each = local.<map> is one service per key of the map, its settings
    the keys of that key's `env` (plain) and `secrets` (Secret Manager) maps; a service
    without for_each is the function its resource name says, its settings its `env` blocks.
    """
    services: dict[str, dict[str, tuple[str, object]]] = {}

    def add(filename: str, function: str, env: dict) -> None:
        if function in services:
            sys.exit(f"check_settings: {filename}: service {function} is declared twice")
        services[function] = env

    for filename, doc in parsed:
        for block in _blocks(doc.get("resource")):
            for rtype, instances in block.items():
                if _unquote(rtype) != "google_cloud_run_v2_service":
                    continue
                for rname, body in instances.items():
                    rname = _unquote(rname)
                    containers = [c for t in _blocks(body.get("template")) for c in _blocks(t.get("containers"))]
                    # The function is the container that takes the requests (it has ports);
                    # the others are sidecars (the metrics collector) and read no setting.
                    serving = [c for c in containers if _blocks(c.get("ports"))]
                    if len(serving) != 1:
                        sys.exit(f"check_settings: {filename}: service {rname} has {len(serving)} containers with ports, expected 1")
                    container = serving[0]
                    for sidecar in containers:
                        if sidecar is not container and (_blocks(sidecar.get("env")) or _blocks(sidecar.get("dynamic"))):
                            sys.exit(f"check_settings: {filename}: service {rname}: sidecar {_unquote(sidecar.get('name'))} sets env")
                    if "for_each" in body:
                        for_each = _unquote(body.get("for_each"))
                        match = re.fullmatch(r"\$\{local\.([A-Za-z0-9_]+)\}", for_each) if isinstance(for_each, str) else None
                        specs = local_values.get(match.group(1)) if match else None
                        if not isinstance(specs, dict):
                            sys.exit(
                                f"check_settings: {filename}: service {rname} has for_each = {for_each!r}; "
                                "expected a map local.<name> (function => { env = {...}, secrets = {...} })"
                            )
                        if _blocks(container.get("env")):
                            sys.exit(f"check_settings: {filename}: service {rname} has for_each: set its env in {for_each}, not in env blocks")
                        sources = _dynamic_env_sources(filename, rname, container)
                        expected = {"plain": "${each.value.env}", "secret": "${each.value.secrets}"}
                        if sources != expected:
                            sys.exit(
                                f"check_settings: {filename}: service {rname} must have two dynamic \"env\" blocks, "
                                f"for_each = each.value.env (plain value) and each.value.secrets (secret_key_ref); has {sources}"
                            )
                        for key, spec in specs.items():
                            if key.startswith("__"):
                                continue
                            function = _unquote(key)
                            env: dict[str, tuple[str, object]] = {}
                            for field, kind in (("env", "tf"), ("secrets", "secret")):
                                values = spec.get(field) if isinstance(spec, dict) else None
                                if not isinstance(values, dict):
                                    sys.exit(f"check_settings: {filename}: {for_each}[{function!r}].{field} must be a map NAME => value")
                                for name, value in values.items():
                                    if name.startswith("__"):
                                        continue
                                    name = _unquote(name)
                                    if name in env:
                                        sys.exit(f"check_settings: {filename}: service {function} sets {name} twice")
                                    env[name] = (kind, value)
                            add(filename, function, env)
                        continue
                    function = rname
                    env = {}
                    if _blocks(container.get("dynamic")):
                        sys.exit(f"check_settings: {filename}: service {function}: dynamic blocks need for_each = local.<map>")
                    for item in _blocks(container.get("env")):
                        name = _unquote(item.get("name"))
                        if name in env:
                            sys.exit(f"check_settings: {filename}: service {function} sets {name} twice")
                        refs = [r for vs in _blocks(item.get("value_source")) for r in _blocks(vs.get("secret_key_ref"))]
                        if refs:
                            env[name] = ("secret", _unquote(refs[0].get("secret")))
                        else:
                            env[name] = ("tf", item.get("value"))
                    add(filename, function, env)
    return services


def local_env(local_values: dict, plain_name: str, secret_name: str) -> dict[str, tuple[str, object]]:
    """A process whose settings are two locals: plain values and Secret Manager ids."""
    plain = local_values.get(plain_name)
    secret = local_values.get(secret_name)
    if not isinstance(plain, dict) or not isinstance(secret, dict):
        sys.exit(f"check_settings: terraform/ must define the maps local.{plain_name} and local.{secret_name}")
    env: dict[str, tuple[str, object]] = {}
    for name, value in plain.items():
        if not name.startswith("__"):
            env[_unquote(name)] = ("tf", value)
    for name, value in secret.items():
        if not name.startswith("__"):
            env[_unquote(name)] = ("secret", value)
    return env


# --- 3. What the images set ----------------------------------------------------------------


def dockerfile_final_env(path: Path) -> dict[str, str]:
    """ENV of the last stage, with ${ARG} defaults substituted."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    global_args: dict[str, str] = {}
    stages: list[list[str]] = []
    for line in lines:
        keyword = line.split(None, 1)[0].upper()
        if keyword == "FROM":
            stages.append([])
        elif stages:
            stages[-1].append(line)
        elif keyword == "ARG":
            _parse_arg(line, global_args)
    if not stages:
        sys.exit(f"check_settings: {path.relative_to(ROOT)} has no FROM")
    args = dict(global_args)
    env: dict[str, str] = {}
    for line in stages[-1]:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG":
            _parse_arg(line, args)
        elif keyword == "ENV":
            for token in shlex.split(rest):
                if "=" not in token:
                    sys.exit(f"check_settings: {path.relative_to(ROOT)}: use ENV NAME=value, not '{line}'")
                name, value = token.split("=", 1)
                env[name] = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), value)
    return env


def _parse_arg(line: str, into: dict[str, str]) -> None:
    spec = line.split(None, 1)[1]
    name, _, default = spec.partition("=")
    if default or name not in into:
        into[name] = default


# --- The check -------------------------------------------------------------------------------


def main() -> int:
    config_reads = names_read_by_config()
    other_reads = names_read_elsewhere()
    read = config_reads | set(other_reads)

    parsed = load_terraform()
    local_values = terraform_locals(parsed)
    deployed = cloud_run_env(parsed, local_values)
    missing_services = [f for f in FUNCTIONS if f not in deployed]
    extra_services = [f for f in deployed if f not in FUNCTIONS]
    deployed["gpu-job"] = local_env(local_values, "gpu_job_env", "gpu_job_secret_env")
    # The batch reprocessing job (terraform/scheduler.tf) runs the embedding image's ongi CLI.
    deployed["reprocess-job"] = local_env(local_values, "reprocess_job_env", "reprocess_job_secrets")
    images = {f: dockerfile_final_env(FUNCTIONS_DOCKERFILE) for f in FUNCTIONS}
    images["gpu-job"] = dockerfile_final_env(GPU_DOCKERFILE)
    images["reprocess-job"] = dockerfile_final_env(FUNCTIONS_DOCKERFILE)

    errors: list[str] = []
    for f in missing_services:
        errors.append(f"terraform: no google_cloud_run_v2_service \"{f}\" (nor a key \"{f}\" of its for_each map)")
    for f in extra_services:
        errors.append(f"terraform: Cloud Run service \"{f}\" is not one of the functions {FUNCTIONS}")

    cells: dict[tuple[str, str], str] = {}
    for process in PROCESSES:
        tf = deployed.get(process, {})
        image = images[process]
        needs = REQUIRED[process]
        for name in sorted(set(tf) | set(image) | set(needs)):
            sources = []
            if name in tf:
                sources.append(tf[name][0])
            if name in image:
                sources.append("image")
            cell = "+".join(sources) if sources else "-"
            problems = []
            where = f"{process}: {name}"
            # (a) nothing set that nothing reads; reserved and emulator names never set
            if sources and name in PLATFORM_SET:
                problems.append("RESERVED")
                errors.append(f"{where} is set, but must not be: {PLATFORM_SET[name]}")
            elif sources and name in NEVER_SET:
                problems.append("FORBIDDEN")
                errors.append(f"{where} is set, but must not be in a deployment: it {NEVER_SET[name]}")
            elif sources and name not in read and not (name in LOADER_READS and sources == ["image"]):
                problems.append("UNREAD")
                errors.append(f"{where} is set, but no binary reads it (typo, or a setting that was removed?)")
            # (b) every need met, from an allowed source
            if name in needs and not sources:
                problems.append("MISSING")
                errors.append(f"{where} is missing (needed: {needs[name]})")
            if name in ONLY_FROM_SECRET and name in tf and tf[name][0] != "secret":
                problems.append("NOT-SECRET")
                errors.append(f"{where} must come from Secret Manager (value_source.secret_key_ref), not a plain value")
            if name in ONLY_FROM_SECRET and name in image:
                problems.append("IN-IMAGE")
                errors.append(f"{where} must not be baked into the image")
            if name in ONLY_FROM_IMAGE and name in tf:
                problems.append("NOT-IMAGE")
                errors.append(f"{where} must come from the image (it knows where it put the library), not Terraform")
            if name in ONLY_FROM_IMAGE and name in needs and name not in image:
                problems.append("NOT-IN-IMAGE")
                errors.append(f"{where} must be set by the image's ENV")
            # (c) fixed values, and image/Terraform agreement
            if name in tf and tf[name][0] == "tf":
                value = resolve(tf[name][1], local_values)
                if name in FIXED_VALUES and value != FIXED_VALUES[name]:
                    problems.append("VALUE")
                    errors.append(f"{where} must be {FIXED_VALUES[name]!r}, is {_unquote(tf[name][1])!r}")
                if name in image and value is not None and value != image[name]:
                    problems.append("DIFFERS")
                    errors.append(f"{where}: Terraform sets {value!r} but the image sets {image[name]!r}")
            if name in image and name in FIXED_VALUES and image[name] != FIXED_VALUES[name]:
                problems.append("VALUE")
                errors.append(f"{where}: the image sets {image[name]!r}, must be {FIXED_VALUES[name]!r}")
            if name in needs and sources:
                cell += "*"
            if problems:
                cell += " " + ",".join(problems)
            cells[(process, name)] = cell

    names = sorted({n for (_, n) in cells})
    width = max(len(n) for n in names) + 2
    col = max(10, *(len(c) + 2 for c in cells.values()))
    print(
        f"Settings read by the binaries: {len(read)} ({len(config_reads)} in shared/src/config/"
        + (f"; elsewhere: {', '.join(f'{n} ({p})' for n, p in sorted(other_reads.items()))}" if other_reads else "")
        + ")"
    )
    print("Cells: tf = Terraform value, secret = Secret Manager, image = Dockerfile ENV, * = needed, - = unset\n")
    print("setting".ljust(width) + "".join(p.ljust(col) for p in PROCESSES))
    print("-" * (width + col * len(PROCESSES)))
    for name in names:
        print(name.ljust(width) + "".join(cells.get((p, name), "").ljust(col) for p in PROCESSES))
    unset = sorted(read - set(names) - set(PLATFORM_SET))
    print(f"\nRead but left to their defaults everywhere: {', '.join(unset) if unset else '(none)'}")
    print(f"Set by the platform, never by the deployment: {', '.join(sorted(PLATFORM_SET))}")

    if errors:
        print(f"\nFAILED: {len(errors)} problem(s)", file=sys.stderr)
        for error in errors:
            print(f"  - {error}", file=sys.stderr)
        return 1
    print("\nOK: every process gets the settings it needs, and only settings a binary reads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
