#!/usr/bin/env python3
"""Offline checks that a first `terraform apply` + Cloud Build run works as docs/deploy.md says.

Each check is one way the deployment used to fail or misbehave on Google Cloud, written so that
it fails on the files that had the problem (docs/deploy.md, "What the offline checks cover"):

  image-pull        every VM pulls its image as a service account that can read the repository
  results-rewrite   no objectCreator grant: a retried style job rewrites its result object
  model-pins        every model file the image builds require is pinned with a source (a
                    converted one, its download too), and checked by the build of the
                    deployable that uses it (`ongi models verify --for gpu-job` for the worker)
  reprocess-walk    the scheduled batch reprocessing runs to the end (a Cloud Run job running
                    `ongi reprocess`), not one time-budgeted POST /batch/reprocess
  queue-eviction    Memorystore's eviction policy cannot drop a queued style job
  metrics           every process's /metrics has a collector (Cloud Run sidecar, VM collector)
  logs              the VM's container logs keep their JSON structure (no gcplogs driver)
  mutable-tags      no image is run or deployed by a mutable tag (latest); the worker by digest
  gpu-driver        the NVIDIA driver is pinned, and new enough for the worker's CUDA
  dead-letters      every push subscription has a dead-letter topic; no Eventarc trigger
  build-cache       Cloud Build exports a cache of every build stage (mode=max)
  build-context     the functions' build context leaves out the Stable Diffusion weights
  cuda-toolkit      the worker image compiles with the toolkit .ci/cuda-build checks
  build-source      `gcloud builds submit` as the deployer stages its source in a bucket the
                    deployer can read (--gcs-source-staging-dir)
  dead-letter-holds every dead-letter topic has a hold subscription, and the dead-letter alert
                    and dashboard watch every hold subscription
  ack-deadlines     a push subscription to a Cloud Run service waits at least the service's
                    request timeout (var.services) before it delivers again
  bootstrap-push    nothing pushes to the placeholder image: a push subscription to a Cloud Run
                    service stays a pull subscription until var.ongi_deployed
  redis-tier        production's Memorystore has a replica (the prod example is not BASIC)
  cpu-billing       every Cloud Run container (function and sidecar) keeps its CPU between
                    requests (cpu_idle = false, instance-based billing)
  runtime-libraries every Dockerfile stage that runs a binary built with the `heif` feature
                    (the image itself, or `ongi models verify` in a build stage) has libheif1
  model-trust       only the production pins vouch for a deployed image's models
                    (MODELS_MANIFEST=folder and the CPU worker stay out of Cloud Build)
  shared-stages     the worker's image compiles the workspace's dependencies in the same
                    stages as the functions' (one build reuses the other's)

  python3 .ci/check_deploy.py [--root DIR]     (DIR: another checkout, e.g. an older commit)

Needs python-hcl2 (installed by .ci/iac-check).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

try:
    import hcl2
except ImportError:  # pragma: no cover
    sys.exit("check_deploy: python-hcl2 is missing (pip install python-hcl2); .ci/iac-check installs it")


def unquote(value):
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def blocks(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def text_of(node) -> str:
    """Every string in a parsed HCL node, joined (for reference searches)."""
    if isinstance(node, dict):
        return " ".join(f"{k} {text_of(v)}" for k, v in node.items())
    if isinstance(node, list):
        return " ".join(text_of(v) for v in node)
    return str(node)


class Tree:
    def __init__(self, root: Path):
        self.root = root
        self.tf: dict[str, dict] = {}
        for path in sorted((root / "terraform").glob("*.tf")):
            with path.open() as handle:
                self.tf[path.name] = hcl2.load(handle)

    def read(self, rel: str) -> str:
        path = self.root / rel
        return path.read_text() if path.exists() else ""

    def resources(self, rtype: str) -> list[tuple[str, dict]]:
        found = []
        for doc in self.tf.values():
            for block in blocks(doc.get("resource")):
                for kind, instances in block.items():
                    if unquote(kind) != rtype:
                        continue
                    for name, body in instances.items():
                        if not name.startswith("__"):
                            found.append((unquote(name), body))
        return found

    def named_blocks(self, kind: str) -> dict[str, dict]:
        """Every `<kind> "NAME" { ... }` block (output, variable), by name."""
        found = {}
        for doc in self.tf.values():
            for block in blocks(doc.get(kind)):
                for key, body in block.items():
                    if not key.startswith("__"):
                        found[unquote(key)] = body
        return found

    def locals(self) -> dict:
        found = {}
        for doc in self.tf.values():
            for block in blocks(doc.get("locals")):
                found.update({k: v for k, v in block.items() if not k.startswith("__")})
        return found

    def expand_locals(self, text: str, depth: int = 3) -> str:
        """text with each local.NAME followed by the text of its value (references kept)."""
        values = self.locals()
        for _ in range(depth):
            text = re.sub(r"\blocal\.([A-Za-z0-9_]+)",
                          lambda m: f"local.{m.group(1)} ({text_of(values.get(m.group(1), ''))})", text)
        return text

    def variable_default(self, name: str):
        for doc in self.tf.values():
            for block in blocks(doc.get("variable")):
                for key, body in block.items():
                    if unquote(key) == name:
                        return unquote(body.get("default"))
        return None


# --- The checks: each returns a list of problems ---------------------------------------------

def image_pull(t: Tree) -> list[str]:
    problems = []
    readers = {"roles/artifactregistry.reader", "roles/artifactregistry.writer",
               "roles/artifactregistry.repoAdmin", "roles/artifactregistry.admin"}
    granted = " ".join(
        text_of(body.get("member")) for _, body in t.resources("google_artifact_registry_repository_iam_member")
        if unquote(body.get("role")) in readers
    )
    templates = t.resources("google_compute_instance_template") + t.resources("google_compute_instance")
    if not templates:
        problems.append("no VM found (google_compute_instance_template)")
    for name, body in templates:
        for sa in blocks(body.get("service_account")):
            email = text_of(sa.get("email"))
            match = re.search(r"google_service_account\.([A-Za-z0-9_]+)\.email", email)
            if not match:
                problems.append(f"VM {name}: runs as {email!r}, not a service account declared here")
            elif f"google_service_account.{match.group(1)}.email" not in granted:
                problems.append(
                    f"VM {name} pulls its image as google_service_account.{match.group(1)}, which has no "
                    "roles/artifactregistry.reader on the repository: every docker pull is a 403"
                )
    return problems


def results_rewrite(t: Tree) -> list[str]:
    problems = []
    replacing = {"roles/storage.objectUser", "roles/storage.objectAdmin", "roles/storage.admin"}
    gpu_writes = False
    for name, body in t.resources("google_storage_bucket_iam_member"):
        role = unquote(body.get("role"))
        if role == "roles/storage.objectCreator":
            problems.append(
                f"{name}: roles/storage.objectCreator cannot replace an object (no storage.objects.delete); "
                "a retried job writing the same name gets 403"
            )
        if "google_storage_bucket.results" in text_of(body.get("bucket")) and role in replacing \
                and "google_service_account.gpu_job" in text_of(body.get("member")):
            gpu_writes = True
    if not gpu_writes:
        problems.append("the GPU worker has no role on the results bucket that can replace objects (objectUser)")
    return problems


# Which image build checks each deployable's model files, and the `--for` its
# `ongi models verify` needs (without --for it checks the functions' files).
MODEL_CHECKS = {
    "functions": ("functions/Dockerfile", {"functions", "all"}),
    "gpu-job": ("gpu-job/Dockerfile", {"gpu-job", "all"}),
}


def verify_selections(dockerfile: str) -> list[str]:
    """The --for value of every `ongi models verify` the Dockerfile runs ("functions" when absent)."""
    selections = []
    for match in re.finditer(r"ongi models verify([^\n&;|]*)", dockerfile):
        which = re.search(r"--for[= ]\s*([A-Za-z-]+)", match.group(1))
        selections.append(which.group(1) if which else "functions")
    return selections


def model_pins(t: Tree) -> list[str]:
    text = t.read("shared/src/model/production.toml")
    if not text:
        return ["shared/src/model/production.toml is missing"]
    problems = []
    required_by = set()
    for model in tomllib.loads(text).get("model", []):
        file, used_by = model.get("file"), model.get("used_by", "functions")
        if used_by not in MODEL_CHECKS:
            problems.append(f"{file}: used_by = {used_by!r} is none of {', '.join(MODEL_CHECKS)}")
            continue
        if not model.get("required"):
            continue
        required_by.add(used_by)
        if not (model.get("sha256") and model.get("source")):
            problems.append(
                f"{file}: required but not pinned with a source, so `ongi models verify` "
                "(run by functions/Dockerfile and gpu-job/Dockerfile) fails every image build; pin it or "
                "make it optional (required = false) with a degraded mode"
            )
        convert = model.get("convert")
        if convert is not None and not (convert.get("source_sha256") and convert.get("source_bytes")):
            problems.append(
                f"{file}: required and converted ([model.convert]) but its download is not pinned "
                "(source_sha256, source_bytes): `ongi models fetch` cannot install it"
            )
    for who, (dockerfile, covering) in MODEL_CHECKS.items():
        selections = verify_selections(t.read(dockerfile))
        if who in required_by and not covering & set(selections):
            flag = "" if who == "functions" else f" --for {who}"
            problems.append(
                f"{dockerfile} runs no `ongi models verify{flag}`: the {who} files the production manifest "
                "requires would ship unchecked"
            )
    if set(verify_selections(t.read("functions/Dockerfile"))) - {"functions"}:
        problems.append(
            "functions/Dockerfile runs `ongi models verify --for` the GPU worker's files, which its build "
            "context leaves out (functions/Dockerfile.dockerignore): every build would fail"
        )
    return problems


def reprocess_walk(t: Tree) -> list[str]:
    problems = []
    jobs = t.resources("google_cloud_run_v2_job")
    runs_cli = [n for n, body in jobs if re.search(r"\breprocess\b", text_of(body.get("template")))
                and "ongi" in text_of(body.get("template"))]
    if not runs_cli:
        problems.append("no Cloud Run job runs `ongi reprocess` (which chains calls until the walk is complete)")
    schedulers = t.resources("google_cloud_scheduler_job")
    if not schedulers:
        problems.append("nothing schedules the batch reprocessing")
    for name, body in schedulers:
        uri = text_of([h.get("uri") for h in blocks(body.get("http_target"))])
        if "/batch/reprocess" in uri:
            problems.append(
                f"scheduler {name} calls /batch/reprocess once: one call stops after its time budget "
                "(complete:false) and nobody calls again, so a large bucket never finishes"
            )
        elif not re.search(r"jobs/.*:run", uri) or "google_cloud_run_v2_job" not in uri:
            problems.append(f"scheduler {name} does not start the reprocessing Cloud Run job ({uri})")
    return problems


def queue_eviction(t: Tree) -> list[str]:
    problems = []
    policies = []
    for name, body in t.resources("google_redis_instance"):
        configs = body.get("redis_configs") or {}
        policy = unquote(configs.get("maxmemory-policy", "volatile-lru")) if isinstance(configs, dict) else "volatile-lru"
        policies.append((name, policy))
    if not policies:
        return ["no google_redis_instance"]
    scripts = t.read("shared/src/queue/scripts.rs")
    submit = re.search(r"pub static SUBMIT.*?\"\s*,?\s*\)", scripts, re.S)
    submit_text = submit.group(0) if submit else ""
    if not submit_text:
        problems.append("shared/src/queue/scripts.rs: no SUBMIT script found")
    for name, policy in policies:
        if policy.startswith("allkeys"):
            problems.append(f"redis {name}: {policy} evicts keys without a TTL too: queued style jobs can be dropped")
        elif policy.startswith("volatile") and re.search(r"EXPIRE'\s*,\s*KEYS\[2\]", submit_text):
            problems.append(
                f"redis {name} runs {policy} and the SUBMIT script gives a queued job's hash a TTL: "
                "under memory pressure a queued job is evicted with the feature records"
            )
    return problems


def metrics(t: Tree) -> list[str]:
    problems = []
    sidecar = t.variable_default("metrics_sidecar_image") or ""
    for name, body in t.resources("google_cloud_run_v2_service"):
        containers = [c for tpl in blocks(body.get("template")) for c in blocks(tpl.get("containers"))]
        collectors = [c for c in containers if "var.metrics_sidecar_image" in text_of(c.get("image"))]
        if not collectors:
            problems.append(f"Cloud Run service {name}: no metrics collector container (Managed Prometheus sidecar)")
    if "cloud-run-gmp-sidecar" not in sidecar:
        problems.append("var.metrics_sidecar_image is not the Managed Service for Prometheus sidecar")
    startup = t.read("terraform/templates/gpu-startup.sh.tftpl")
    if not re.search(r"docker run .*\n(?:.*\\\n)*.*COLLECTOR_IMAGE", startup) or "127.0.0.1:8080" not in startup \
            or "googlemanagedprometheus" not in startup:
        problems.append("the GPU worker's VM runs no collector scraping 127.0.0.1:8080/metrics to Managed Prometheus")
    return problems


def logs(t: Tree) -> list[str]:
    startup = t.read("terraform/templates/gpu-startup.sh.tftpl")
    problems = []
    if "gcplogs" in startup:
        problems.append(
            "the GPU worker's containers log with --log-driver=gcplogs, which stores each JSON line as a "
            "string: severity, trace and fields are lost"
        )
    metadata = " ".join(text_of(b.get("metadata")) for _, b in t.resources("google_compute_instance_template"))
    if not re.search(r"google-logging-enabled\s+\"?true", metadata):
        problems.append("the GPU worker's VM does not enable the COS logging agent (google-logging-enabled)")
    return problems


MUTABLE = re.compile(r"""[\w./-]+:latest\b""")


def mutable_tags(t: Tree) -> list[str]:
    problems = []
    files = sorted((t.root / "terraform").glob("*.tf")) + sorted((t.root / "terraform").glob("*.tfvars.example")) \
        + sorted((t.root / "terraform" / "templates").glob("*")) + sorted((t.root / "cloudbuild").glob("*.yaml")) \
        + sorted((t.root / "cloudbuild").glob("*.sh"))
    for path in files:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for match in MUTABLE.findall(code):
                problems.append(f"{path.relative_to(t.root)}:{lineno}: mutable tag {match}")
    if re.search(r'variable "gpu_image_tag"', t.read("terraform/variables.tf")):
        default = t.variable_default("gpu_image_tag")
        problems.append(f"var.gpu_image_tag (default {default!r}): the worker runs a tag, not a digest")
    startup = t.read("terraform/templates/gpu-startup.sh.tftpl")
    if "@sha256:" not in startup:
        problems.append("the GPU worker's startup script does not insist on an image digest (@sha256:)")
    if re.search(r"until docker pull", startup):
        problems.append("the GPU worker pulls its image at every boot instead of only when missing")
    for var in ("metrics_sidecar_image", "metrics_collector_image"):
        value = t.variable_default(var)
        if value is not None and not re.search(r":[0-9][^:/]*$|@sha256:[0-9a-f]{64}$", value):
            problems.append(f"var.{var} = {value!r} has no version tag or digest")
    return problems


def gpu_driver(t: Tree) -> list[str]:
    startup = t.read("terraform/templates/gpu-startup.sh.tftpl")
    problems = []
    match = re.search(r"cos-extensions install gpu -- -version=(\S+)", startup)
    if not match:
        return ["the startup script does not install the NVIDIA driver with an explicit -version"]
    version = match.group(1).strip("'\"")
    if version in ("latest", "default"):
        problems.append(f"the NVIDIA driver is '{version}': it moves under a running deployment; pin it (R580+ for CUDA 13.0)")
    elif "$" in version:
        default = t.variable_default("gpu_driver_version") or ""
        if default in ("latest", "default", ""):
            problems.append(f"var.gpu_driver_version defaults to {default!r}: pin a driver branch (R580+)")
        elif not re.match(r"^R?(58\d|59\d|[6-9]\d\d)", default):
            problems.append(f"var.gpu_driver_version = {default!r} is older than R580, which CUDA 13.0 needs")
    return problems


def dead_letters(t: Tree) -> list[str]:
    problems = []
    for name, _ in t.resources("google_eventarc_trigger"):
        problems.append(
            f"Eventarc trigger {name}: the subscription Eventarc creates cannot be given a dead-letter topic "
            "in Terraform; deliver through a push subscription of our own"
        )
    for name, body in t.resources("google_pubsub_subscription"):
        if push_configs(body) and not blocks(body.get("dead_letter_policy")):
            problems.append(f"push subscription {name} has no dead_letter_policy")
    return problems


def build_cache(t: Tree) -> list[str]:
    script = t.read("cloudbuild/build-image.sh")
    problems = []
    if "--cache-to" not in script or "mode=max" not in script:
        problems.append(
            "cloudbuild/build-image.sh exports no registry cache with mode=max: inline cache keeps only the "
            "pushed stage, so the ongi CLI and other intermediate stages recompile on every build"
        )
    return problems


def build_context(t: Tree) -> list[str]:
    ignore = t.read("functions/Dockerfile.dockerignore")
    problems = []
    if not re.search(r"^\.models/sd15/?$", ignore, re.M):
        problems.append(
            "the functions' build context includes .models/sd15 (several GB of Stable Diffusion weights), "
            "copied into every function image's build: list it in functions/Dockerfile.dockerignore"
        )
    return problems


def cuda_toolkit(t: Tree) -> list[str]:
    dockerfile = t.read("gpu-job/Dockerfile")
    requirements = t.read("gpu-job/cuda/requirements.txt")
    problems = []
    if "gpu-job/cuda/toolkit.sh" not in dockerfile and "/cuda/toolkit.sh" not in dockerfile:
        problems.append("gpu-job/Dockerfile does not build with the toolkit of gpu-job/cuda/toolkit.sh (.ci/cuda-build's)")
    if not re.search(r"CUDA_COMPUTE_CAP=75", dockerfile):
        problems.append("gpu-job/Dockerfile does not set CUDA_COMPUTE_CAP=75 (the T4)")
    pins = [line for line in requirements.splitlines() if line.strip() and not line.startswith("#")]
    if not pins:
        problems.append("gpu-job/cuda/requirements.txt pins no wheel")
    for line in pins:
        if not re.search(r"==\S+ --hash=sha256:[0-9a-f]{64}$", line):
            problems.append(f"gpu-job/cuda/requirements.txt: not pinned by version and hash: {line}")
    return problems


STORAGE_READERS = {"roles/storage.objectViewer", "roles/storage.objectUser", "roles/storage.objectAdmin",
                   "roles/storage.admin", "roles/storage.legacyObjectReader"}


def shell_commands(text: str, start: str) -> list[str]:
    """The shell commands of a document that begin with `start`, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip().startswith(start)]


def build_source(t: Tree) -> list[str]:
    problems = []
    docs = sorted((t.root / "docs").glob("*.md")) + [t.root / "cloudbuild" / "README.md"]
    outputs = t.named_blocks("output")
    buckets = {name: unquote(text_of(body.get("name"))) for name, body in t.resources("google_storage_bucket")}
    readable = {
        m.group(1)
        for _, body in t.resources("google_storage_bucket_iam_member")
        if unquote(body.get("role")) in STORAGE_READERS
        and "google_service_account.deployer.email" in text_of(body.get("member"))
        for m in [re.search(r"google_storage_bucket\.([A-Za-z0-9_]+)\.name", text_of(body.get("bucket")))] if m
    }
    for path in docs:
        if not path.exists():
            continue
        for command in shell_commands(path.read_text(), "gcloud builds submit"):
            if "--service-account" not in command:
                continue
            where = f"{path.relative_to(t.root)}: `gcloud builds submit --service-account`"
            flag = re.search(r"--gcs-source-staging-dir[= ](\"\$\([^)]*\)\"|\S+)", command)
            if not flag:
                problems.append(
                    f"{where} has no --gcs-source-staging-dir: the source goes to gs://<project>_cloudbuild, "
                    "which the deployer cannot read, and the build fails to fetch it"
                )
                continue
            value = flag.group(1)
            output = re.search(r"output\s+-raw\s+([A-Za-z0-9_]+)", value)
            if output:
                if output.group(1) not in outputs:
                    problems.append(f"{where}: --gcs-source-staging-dir reads output {output.group(1)}, which is not declared")
                    continue
                named = re.findall(r"google_storage_bucket\.([A-Za-z0-9_]+)", text_of(outputs[output.group(1)].get("value")))
            else:
                # A literal gs://BUCKET/...: the buckets whose name (locals expanded) holds every
                # fixed part of BUCKET between its shell variables.
                bucket = re.sub(r"^[\"']?gs://", "", value).split("/", 1)[0]
                parts = [p for p in re.split(r"\$\{?[A-Za-z_]+\}?", bucket) if len(p) > 2]
                named = [n for n, template in buckets.items()
                         if parts and all(p in t.expand_locals(template) for p in parts)]
            if not named:
                problems.append(f"{where}: --gcs-source-staging-dir {value} is not a bucket Terraform creates")
            elif not any(n in readable for n in named):
                problems.append(
                    f"{where}: --gcs-source-staging-dir {value} is google_storage_bucket.{named[0]}, which the "
                    "deployer cannot read (no objectViewer grant): the build fails to fetch its source"
                )
    return problems


def push_configs(body: dict) -> list[tuple[dict, str | None]]:
    """A subscription's push_config blocks: (body, None) for a static block, (content, for_each)
    for a `dynamic "push_config"` block."""
    found = [(b, None) for b in blocks(body.get("push_config"))]
    for dynamic in blocks(body.get("dynamic")):
        for label, dyn in dynamic.items():
            if unquote(label) == "push_config":
                found += [(c, text_of(dyn.get("for_each"))) for c in blocks(dyn.get("content"))]
    return found


def instance_names(name_template: str, keys: list[str]) -> list[str]:
    """The names of a resource's instances: ${each.key} replaced by each for_each key."""
    if "each.key" in name_template and keys:
        return [re.sub(r"\$\{each\.key\}", k, name_template) for k in keys]
    return [name_template]


def dead_letter_holds(t: Tree) -> list[str]:
    problems = []
    subscriptions = t.resources("google_pubsub_subscription")
    # Dead-letter topics: named in a dead_letter_policy here, or named as one (ongi-results-dead-letter
    # is for the app backend's own subscriptions).
    dead_topics = {
        m for _, body in subscriptions for policy in blocks(body.get("dead_letter_policy"))
        for m in re.findall(r"google_pubsub_topic\.([A-Za-z0-9_]+)", text_of(policy.get("dead_letter_topic")))
    }
    dead_topics |= {name for name, body in t.resources("google_pubsub_topic") if "dead-letter" in text_of(body.get("name"))}
    holds: dict[str, tuple[str, list[str]]] = {}   # topic -> (subscription resource, instance names)
    for name, body in subscriptions:
        if push_configs(body):
            continue
        template = unquote(text_of(body.get("name")))
        for_each = body.get("for_each")
        if "each.value" in text_of(body.get("topic")) and isinstance(for_each, dict):
            for key, value in for_each.items():
                for topic in re.findall(r"google_pubsub_topic\.([A-Za-z0-9_]+)", text_of(value)):
                    holds[topic] = (name, instance_names(template, [key]))
        else:
            for topic in re.findall(r"google_pubsub_topic\.([A-Za-z0-9_]+)", text_of(body.get("topic"))):
                holds[topic] = (name, instance_names(template, list(for_each) if isinstance(for_each, dict) else []))
    for topic in sorted(dead_topics):
        if topic not in holds:
            problems.append(
                f"dead-letter topic google_pubsub_topic.{topic} has no pull subscription: a topic keeps nothing "
                "without one, so its dead letters are discarded"
            )
    watchers = [(f"alert policy {n}", text_of(b.get("conditions")))
                for n, b in t.resources("google_monitoring_alert_policy") if "dead" in n or "dead" in text_of(b.get("display_name"))]
    watchers += [(f"dashboard {n}", text_of(b.get("dashboard_json"))) for n, b in t.resources("google_monitoring_dashboard")]
    if not any(w.startswith("alert") for w, _ in watchers):
        problems.append("no dead-letter alert policy")
    for watcher, text in watchers:
        text = t.expand_locals(text)
        for topic, (resource, names) in sorted(holds.items()):
            if topic not in dead_topics:
                continue
            # Covered when named, or when the filter is built from every instance of the resource.
            derived = re.search(rf"for \w+ in google_pubsub_subscription\.{resource}\b(?!\[)", text)
            for sub in names:
                if sub not in text and not derived:
                    problems.append(f"{watcher}: its filter does not cover the hold subscription {sub}")
    return problems


RUN_SERVICE = re.compile(r'google_cloud_run_v2_service\.([A-Za-z0-9_]+)(?:\[\\?"([A-Za-z0-9_-]+)\\?"\])?')


def pushed_services(t: Tree, body: dict, endpoint: str) -> dict:
    """The Cloud Run services a push endpoint targets: {for_each key or None: function name}.
    `google_cloud_run_v2_service.embedding` is embedding, `...function["k"]` is k."""
    def service(text: str):
        m = RUN_SERVICE.search(text)
        return (m.group(2) or m.group(1)) if m else None

    if "each.value" in endpoint:
        for_each = body.get("for_each")
        if isinstance(for_each, str):
            ref = re.fullmatch(r"\$\{local\.([A-Za-z0-9_]+)\}", for_each)
            for_each = t.locals().get(ref.group(1)) if ref else None
        if isinstance(for_each, dict):
            return {k: service(text_of(v)) for k, v in for_each.items() if not k.startswith("__") and service(text_of(v))}
        return {}
    found = service(endpoint)
    return {None: found} if found else {}


def ack_deadlines(t: Tree) -> list[str]:
    problems = []
    services = t.variable_default("services") or {}
    for name, body in t.resources("google_pubsub_subscription"):
        ack = body.get("ack_deadline_seconds", 10)
        for config, _ in push_configs(body):
            for key, svc in pushed_services(t, body, text_of(config.get("push_endpoint"))).items():
                timeout = (services.get(svc) or {}).get("timeout_seconds")
                where = f"push subscription {name}" + (f"[{key}]" if key else "") + f" to {svc}"
                if timeout is None:
                    problems.append(f"{where}: var.services has no default timeout_seconds for {svc}")
                    continue
                if isinstance(ack, (int, float)):
                    deadline = ack
                else:
                    text = text_of(ack)
                    own = rf'var\.services\[\\?"{re.escape(svc)}\\?"\]\.timeout_seconds'
                    if key == svc and "var.services[each.key].timeout_seconds" in text or re.search(own, text):
                        deadline = min(600, timeout) if re.search(r"min\(\s*600\s*,", text) else timeout
                    else:
                        problems.append(f"{where}: ack_deadline_seconds {text} is not derived from var.services[\"{svc}\"].timeout_seconds")
                        continue
                if deadline < timeout:
                    problems.append(
                        f"{where}: ack deadline {deadline} s is shorter than the service's request timeout ({timeout} s): "
                        "Pub/Sub delivers a slower request again while it still runs, and the photo is computed twice"
                    )
    return problems


def bootstrap_push(t: Tree) -> list[str]:
    problems = []
    variable = t.named_blocks("variable").get("ongi_deployed")
    if variable is None:
        problems.append("no var.ongi_deployed: nothing keeps Pub/Sub from pushing to var.bootstrap_image")
    elif variable.get("default") not in (False, "false", "${false}"):
        problems.append(f"var.ongi_deployed defaults to {variable.get('default')!r}: a first apply would push to "
                        "var.bootstrap_image")
    for example in sorted((t.root / "terraform").glob("*.tfvars.example")):
        with example.open() as handle:
            value = hcl2.load(handle).get("ongi_deployed")
        if value in (True, "true", "${true}"):
            problems.append(f"{example.relative_to(t.root)} sets ongi_deployed = true before any Cloud Build run")
    for name, body in t.resources("google_pubsub_subscription"):
        for config, condition in push_configs(body):
            endpoint = text_of(config.get("push_endpoint"))
            if not (pushed_services(t, body, endpoint) or RUN_SERVICE.search(endpoint)):
                continue
            if condition is None or "var.ongi_deployed" not in condition:
                problems.append(
                    f"push subscription {name} pushes to a Cloud Run service whatever var.ongi_deployed says: until "
                    "Cloud Build deploys Ongi, var.bootstrap_image answers 200 and the messages are acknowledged "
                    "and lost (use a dynamic \"push_config\" on var.ongi_deployed: a pull subscription holds them)"
                )
    return problems


def redis_tier(t: Tree) -> list[str]:
    example = t.root / "terraform" / "prod.tfvars.example"
    if not example.exists():
        return ["terraform/prod.tfvars.example is missing"]
    with example.open() as handle:
        tier = unquote(hcl2.load(handle).get("redis_tier"))
    where = "terraform/prod.tfvars.example"
    if tier is None:
        tier, where = t.variable_default("redis_tier"), "var.redis_tier's default (the prod example sets none)"
    if tier in (None, "BASIC"):
        return [
            f"production runs Memorystore {tier or 'BASIC'} ({where}): one node, no replica, so a maintenance "
            "restart or a node failure empties Redis (queued style jobs, their consumer group, the feature "
            "cache); use STANDARD_HA"
        ]
    return []


def cpu_billing(t: Tree) -> list[str]:
    problems = []
    for name, body in t.resources("google_cloud_run_v2_service"):
        for template in blocks(body.get("template")):
            for container in blocks(template.get("containers")):
                label = unquote(text_of(container.get("name")))
                for resources in blocks(container.get("resources")) or [{}]:
                    value = resources.get("cpu_idle")
                    ref = re.fullmatch(r"\$\{var\.([A-Za-z0-9_]+)\}", value) if isinstance(value, str) else None
                    if ref:
                        value = t.variable_default(ref.group(1))
                    if value in (False, "false"):
                        continue
                    problems.append(
                        f"Cloud Run service {name}, container {label}: cpu_idle = {value!r} (request-based billing, "
                        "or the API's default): CPU only during requests throttles the metrics sidecar and the "
                        "work a function does after start-up; set cpu_idle = false"
                    )
    return problems


class Stage:
    """One stage of a Dockerfile: its name, what it is FROM, and its instructions."""

    def __init__(self, base: str, name: str):
        self.base, self.name = base, name
        self.instructions: list[tuple[str, str]] = []


def dockerfile_stages(text: str) -> dict[str, Stage]:
    joined = re.sub(r"\\\n", " ", text)
    stages: dict[str, Stage] = {}
    current = None
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            current = Stage(m.group(1), m.group(2) or f"#{len(stages)}")
            stages[current.name] = current
        elif current is not None:
            current.instructions.append((keyword, rest))
    return stages


def ancestry(stages: dict[str, Stage], name: str) -> list[Stage]:
    """The stage and the stages it is FROM, nearest first (an ARG in the name: every match)."""
    found, todo = [], [name]
    while todo:
        stage = stages.get(todo.pop())
        if stage is None or stage in found:
            continue
        found.append(stage)
        base = stage.base
        if re.fullmatch(r"\$\{[A-Za-z_]+\}", base):  # ${RUNTIME_IMAGE}: an image, not a stage
            continue
        if "${" in base:  # e.g. models-${FUNCTION}: any stage of that pattern
            pattern = re.escape(base).replace(r"\$\{", "(?:").replace(r"\}", ")")
            pattern = re.sub(r"\(\?:[A-Za-z_]+\)", ".+", pattern)
            todo += [n for n in stages if re.fullmatch(pattern, n)]
        else:
            todo.append(base)
    return found


def heif_stages(stages: dict[str, Stage]) -> set[str]:
    """Stages whose binaries were built with ongi-shared's `heif` feature (they need libheif)."""
    built = {n for n, st in stages.items() for k, v in st.instructions if k == "RUN" and "cargo build" in v
             and "heif" in v}
    return {n for n in stages if any(a.name in built for a in ancestry(stages, n))}


def runtime_libraries(t: Tree) -> list[str]:
    problems = []
    for path in ("functions/Dockerfile", "gpu-job/Dockerfile"):
        stages = dockerfile_stages(t.read(path))
        heif = heif_stages(stages)
        for name, stage in stages.items():
            copied = {m.group(1) for k, v in stage.instructions if k == "COPY"
                      for m in [re.search(r"--from=(\S+)", v)] if m}
            copied_heif = any(c in heif or any(a.name in heif for a in ancestry(stages, c)) for c in copied)
            runs_ongi = any(k == "RUN" and re.search(r"(?:^|&&|;)\s*ongi\s", v) for k, v in stage.instructions)
            final = name == "runtime"
            if not (copied_heif and (runs_ongi or final)):
                continue
            installs = any(k == "RUN" and re.search(r"apt-get install[^&;]*\blibheif1\b", v)
                           for a in ancestry(stages, name) for k, v in a.instructions)
            if not installs:
                what = "runs `ongi`" if runs_ongi else "is the image"
                problems.append(
                    f"{path}: stage {name} {what} with binaries built with ongi-shared's `heif` feature, but "
                    "nothing it is FROM installs libheif1: they cannot start (libheif.so.1 not found)"
                )
    return problems


def model_trust(t: Tree) -> list[str]:
    """The stand-in model check (MODELS_MANIFEST=folder), the CPU worker and CI's cargo
    profile (CARGO_PROFILE=image-check, no LTO) stay out of Cloud Build."""
    problems = []
    for path in ("functions/Dockerfile", "gpu-job/Dockerfile"):
        text = t.read(path)
        m = re.search(r"^ARG MODELS_MANIFEST=(\S*)", text, re.M)
        if "MODELS_MANIFEST" in text and (not m or m.group(1) != "production"):
            problems.append(f"{path}: MODELS_MANIFEST does not default to production")
        m = re.search(r"^ARG CARGO_PROFILE=(\S*)", text, re.M)
        if "CARGO_PROFILE" in text and (not m or m.group(1) != "release"):
            problems.append(f"{path}: CARGO_PROFILE does not default to release")
    variant = re.search(r"^ARG VARIANT=(\S*)", t.read("gpu-job/Dockerfile"), re.M)
    if variant and variant.group(1) != "cuda":
        problems.append("gpu-job/Dockerfile: VARIANT does not default to cuda (the deployed worker)")
    for path in ("cloudbuild/build-image.sh", "cloudbuild/cloudbuild.yaml"):
        text = t.read(path)
        if "MODELS_MANIFEST" in text:
            problems.append(f"{path} sets MODELS_MANIFEST: a deployed image must be checked against the production pins")
        if re.search(r"VARIANT=cpu", text):
            problems.append(f"{path} builds the CPU variant of the worker")
        if "CARGO_PROFILE" in text:
            problems.append(f"{path} sets CARGO_PROFILE: a deployed image is built with the release profile")
    return problems


# The stages both Dockerfiles must hold instruction for instruction: functions/Dockerfile's
# name -> gpu-job/Dockerfile's.
SHARED_STAGES = {"chef": "cpu-chef", "planner": "planner", "cook": "cpu-cook", "builder": "ongi-cli"}


def shared_stages(t: Tree) -> list[str]:
    """The dependency stages of the two Dockerfiles are the same, so one build reuses the
    other's (BuildKit dedups identical stages of concurrent builds; buildah's layer cache)."""
    functions = dockerfile_stages(t.read("functions/Dockerfile"))
    worker = dockerfile_stages(t.read("gpu-job/Dockerfile"))
    problems = []
    for ours, theirs in SHARED_STAGES.items():
        a, b = functions.get(ours), worker.get(theirs)
        if a is None or b is None:
            problems.append(f"stage {ours} (functions/Dockerfile) or {theirs} (gpu-job/Dockerfile) is missing")
            continue
        base = SHARED_STAGES.get(a.base, a.base)
        if base != b.base or a.instructions != b.instructions:
            problems.append(
                f"gpu-job/Dockerfile's stage {theirs} differs from functions/Dockerfile's {ours}: the worker's "
                "image compiles what the functions' images compiled (the dependencies, or ongi-shared) a second time"
            )
    return problems


CHECKS = [
    ("image-pull", image_pull),
    ("results-rewrite", results_rewrite),
    ("model-pins", model_pins),
    ("reprocess-walk", reprocess_walk),
    ("queue-eviction", queue_eviction),
    ("metrics", metrics),
    ("logs", logs),
    ("mutable-tags", mutable_tags),
    ("gpu-driver", gpu_driver),
    ("dead-letters", dead_letters),
    ("build-cache", build_cache),
    ("build-context", build_context),
    ("cuda-toolkit", cuda_toolkit),
    ("build-source", build_source),
    ("dead-letter-holds", dead_letter_holds),
    ("ack-deadlines", ack_deadlines),
    ("bootstrap-push", bootstrap_push),
    ("redis-tier", redis_tier),
    ("cpu-billing", cpu_billing),
    ("runtime-libraries", runtime_libraries),
    ("model-trust", model_trust),
    ("shared-stages", shared_stages),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--only", help="comma-separated check names")
    args = parser.parse_args()
    tree = Tree(args.root.resolve())
    only = set(args.only.split(",")) if args.only else None
    failed = []
    for name, check in CHECKS:
        if only and name not in only:
            continue
        problems = check(tree)
        if problems:
            failed.append(name)
            print(f"FAILED {name}:")
            for problem in problems:
                print(f"  - {problem}")
        else:
            print(f"ok     {name}")
    if failed:
        print(f"\n{len(failed)} deployment check(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
