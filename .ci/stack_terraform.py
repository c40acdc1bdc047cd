"""What terraform/ gives each process and wires between them, evaluated by Terraform itself,
for the container stack (.ci/stack).

The .tf files are parsed with python-hcl2. Every `locals` value, and the settings and wiring
the stack needs from the resources (each Cloud Run service's and the reprocessing job's env
blocks, the GPU worker's env file, the Pub/Sub topics and subscriptions, the bucket
notification), are written back as HCL expressions into a small module beside a copy of
variables.tf, and `terraform console` evaluates them with the variables of a tfvars file.
References to cloud resources are replaced on the way by what stands in for them here:

    google_storage_bucket.X.name              the bucket's own `name` expression
    google_pubsub_topic.X.name / .id          the topic's `name` expression / projects/P/topics/NAME
    google_cloud_run_v2_service.*.uri         the URL of that function's container (stack_uri)
    google_secret_manager_secret.X.secret_id  "secret:X", which the stack resolves to a local value
    a resource as a whole (for s in google_X.Y)   {} (no instance exists here)
    anything else                             "unresolved:<reference>": an error if a process needs it

So a setting renamed, dropped or pointed at the wrong resource in Terraform reaches the
containers exactly as it would reach Cloud Run, and a variable without a value fails here.

    python .ci/stack_terraform.py TERRAFORM TFVARS URIS_JSON [VAR=VALUE...]
                                        prints the evaluated settings as JSON
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import hcl2

ROOT = Path(__file__).resolve().parent.parent
TERRAFORM_DIR = ROOT / "terraform"

REF = re.compile(
    r"\b(?P<data>data\.)?(?P<type>google_[a-z0-9_]+)\.(?P<name>[a-z0-9_]+)"
    r"(?P<index>\[[^\]]*\])?(?:\.(?P<attr>[a-z0-9_]+))?"
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class TerraformError(Exception):
    pass


def unquote(s: str) -> str:
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] == '"' else s


def blocks(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def hcl(value) -> str:
    """A python-hcl2 value written back as an HCL expression."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if value.startswith("${") and value.endswith("}"):
            return value[2:-1]
        if value.startswith('"'):
            return value
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(hcl(v) for v in value) + "]"
    if isinstance(value, dict):
        if value.get("__is_block__"):
            raise TerraformError(f"a block where an expression was expected: {sorted(value)}")
        items = (f"{json.dumps(unquote(k))} = {hcl(v)}" for k, v in value.items() if not k.startswith("__"))
        return "{" + ", ".join(items) + "}"
    if value is None:
        return "null"
    raise TerraformError(f"cannot write {value!r} back as HCL")


class Module:
    """The parsed terraform/ folder."""

    def __init__(self, root: Path = TERRAFORM_DIR):
        self.root = root
        self.docs = {p.name: hcl2.load(p.open()) for p in sorted(root.glob("*.tf"))}

    def resources(self, rtype: str) -> dict[str, dict]:
        found: dict[str, dict] = {}
        for doc in self.docs.values():
            for block in blocks(doc.get("resource")):
                for kind, instances in block.items():
                    if unquote(kind) == rtype:
                        for name, body in instances.items():
                            found[unquote(name)] = body
        return found

    def resource(self, rtype: str, name: str) -> dict:
        try:
            return self.resources(rtype)[name]
        except KeyError:
            raise TerraformError(f"terraform/ has no resource {rtype}.{name}") from None

    def locals(self) -> dict[str, object]:
        found: dict[str, object] = {}
        for doc in self.docs.values():
            for block in blocks(doc.get("locals")):
                for k, v in block.items():
                    if not k.startswith("__"):
                        found[k] = v
        return found

    # --- references to resources, replaced by the stack's stand-ins ----------------------

    def substitute(self, expr: str, depth: int = 0) -> str:
        if depth > 5:
            raise TerraformError(f"references nest too deep in {expr}")

        def replace(m: re.Match) -> str:
            rtype, name, index, attr = m["type"], m["name"], m["index"] or "", m["attr"]
            ref = m.group(0)
            if attr is None:
                # A resource as a whole (e.g. iterated over): none exists here.
                return "{}"
            if m["data"]:
                return json.dumps(f"unresolved:{ref}")
            if rtype == "google_storage_bucket" and attr == "name":
                return "(" + self.substitute(hcl(self.resource(rtype, name)["name"]), depth + 1) + ")"
            if rtype == "google_pubsub_topic" and attr in ("name", "id"):
                topic = "(" + self.substitute(hcl(self.resource(rtype, name)["name"]), depth + 1) + ")"
                if attr == "name":
                    return topic
                return f'"projects/${{var.project_id}}/topics/${{{topic}}}"'
            if rtype == "google_cloud_run_v2_service" and attr == "uri":
                if index:
                    return f"local.stack_uri[{index[1:-1]}]"
                return f'local.stack_uri["{name}"]'
            if rtype == "google_secret_manager_secret" and attr == "secret_id":
                return json.dumps(f"secret:{name}")
            return json.dumps(f"unresolved:{ref}")

        return REF.sub(replace, expr)

    def expr(self, value, each: tuple[str, str] | None = None) -> str:
        text = self.substitute(hcl(value))
        if each:
            text = re.sub(r"\beach\.key\b", each[0], text)
            text = re.sub(r"\beach\.value\b", each[1], text)
        return text

    # --- what the stack reads --------------------------------------------------------------

    def container_settings(self, container: dict, each) -> str:
        """{env = {...}, secrets = {...}} of one container: its env blocks, plain and dynamic."""
        env, secrets = [], []
        for block in blocks(container.get("env")):
            name = unquote(block["name"])
            if "value" in block:
                env.append(f"{{{json.dumps(name)} = {self.expr(block['value'], each)}}}")
            else:
                ref = blocks(blocks(block["value_source"])[0]["secret_key_ref"])[0]
                secrets.append(f"{{{json.dumps(name)} = {self.expr(ref['secret'], each)}}}")
        for dyn in blocks(container.get("dynamic")):
            for label, body in dyn.items():
                if unquote(label) != "env":
                    continue
                content = blocks(body["content"])[0]
                source = self.expr(body["for_each"], each)
                if hcl(content.get("name")) != "env.key":
                    raise TerraformError("a dynamic env block whose name is not env.key")
                if "value" in content:
                    if hcl(content["value"]) != "env.value":
                        raise TerraformError("a dynamic env block whose value is not env.value")
                    env.append(source)
                else:
                    ref = blocks(blocks(content["value_source"])[0]["secret_key_ref"])[0]
                    if hcl(ref["secret"]) != "env.value":
                        raise TerraformError("a dynamic secret env block whose secret is not env.value")
                    secrets.append(source)
        merge = lambda parts: "merge(" + ", ".join(parts) + ")" if parts else "{}"  # noqa: E731
        extra = ""
        for key in ("command", "args"):
            if key in container:
                extra += f", {key} = {self.expr(container[key], each)}"
        return f"{{env = {merge(env)}, secrets = {merge(secrets)}{extra}}}"

    def keyed(self, body: dict, build) -> str:
        """A map from each instance's key to build((k, v) or None): for_each or one instance."""
        if "for_each" in body:
            return f"{{for k, v in {self.expr(body['for_each'])} : k => {build(('k', 'v'))}}}"
        return None

    def services(self) -> str:
        parts = []
        for name, body in self.resources("google_cloud_run_v2_service").items():
            def build(each, body=body):
                template = blocks(body["template"])[0]
                container = blocks(template["containers"])[0]
                return self.container_settings(container, each)

            keyed = self.keyed(body, build)
            parts.append(keyed if keyed else f"{{{json.dumps(name)} = {build(None)}}}")
        return "merge(" + ", ".join(parts) + ")"

    def jobs(self) -> str:
        parts = []
        for name, body in self.resources("google_cloud_run_v2_job").items():
            template = blocks(blocks(body["template"])[0]["template"])[0]
            container = blocks(template["containers"])[0]
            parts.append(f"{{{json.dumps(name)} = {self.container_settings(container, None)}}}")
        return "merge(" + ", ".join(parts) + ")" if parts else "{}"

    def gpu_worker(self) -> str:
        """The env and secret env the GPU worker's startup script writes to its env file."""
        body = self.resource("google_compute_instance_template", "gpu_job")
        script = hcl(blocks(body["metadata"])[0]["startup-script"])
        env = re.search(r"\benv\s*=\s*(local\.[a-z0-9_]+)", script)
        secrets = re.search(r"\bsecret_env\s*=\s*(local\.[a-z0-9_]+)", script)
        if not env or not secrets:
            raise TerraformError("the GPU worker's startup script is not given env and secret_env locals")
        return f"{{env = {env.group(1)}, secrets = {secrets.group(1)}}}"

    def topics(self) -> str:
        names = [self.expr(b["name"]) for b in self.resources("google_pubsub_topic").values()]
        return "[" + ", ".join(names) + "]"

    def subscriptions(self) -> str:
        parts = []
        for name, body in self.resources("google_pubsub_subscription").items():
            def build(each, body=body):
                fields = [
                    f"name = {self.expr(body['name'], each)}",
                    f"topic = {self.expr(body['topic'], each)}",
                    f"ack_deadline_seconds = {self.expr(body.get('ack_deadline_seconds', 10), each)}",
                ]
                push = blocks(body.get("push_config"))
                for dyn in blocks(body.get("dynamic")):
                    for label, dbody in dyn.items():
                        if unquote(label) == "push_config":
                            # Present when its for_each is not empty.
                            content = blocks(dbody["content"])[0]
                            endpoint = self.expr(content["push_endpoint"], each)
                            fields.append(
                                f"push_endpoint = length({self.expr(dbody['for_each'], each)}) > 0 ? {endpoint} : null"
                            )
                if push:
                    fields.append(f"push_endpoint = {self.expr(push[0]['push_endpoint'], each)}")
                dead = blocks(body.get("dead_letter_policy"))
                if dead:
                    fields.append(f"dead_letter_topic = {self.expr(dead[0]['dead_letter_topic'], each)}")
                    fields.append(f"max_delivery_attempts = {self.expr(dead[0]['max_delivery_attempts'], each)}")
                return "{" + ", ".join(fields) + "}"

            keyed = self.keyed(body, build)
            parts.append(
                f"values({keyed})" if keyed else f"[{build(None)}]"
            )
        return "concat(" + ", ".join(parts) + ")"

    def notifications(self) -> str:
        items = []
        for body in self.resources("google_storage_notification").values():
            items.append(
                f"{{bucket = {self.expr(body['bucket'])}, topic = {self.expr(body['topic'])}, "
                f"event_types = {self.expr(body.get('event_types', []))}}}"
            )
        return "[" + ", ".join(items) + "]"

    def buckets(self) -> str:
        items = [f"{json.dumps(n)} = {self.expr(b['name'])}" for n, b in self.resources("google_storage_bucket").items()]
        return "{" + ", ".join(items) + "}"


def evaluate(terraform: str, terraform_dir: Path, tfvars: Path, uris: dict[str, str], overrides: dict[str, str]) -> dict:
    """Everything the stack needs from `terraform_dir`, evaluated by `terraform console` with `tfvars`."""
    module = Module(terraform_dir)
    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        variables = terraform_dir / "variables.tf"
        if {k for k in hcl2.load(variables.open()) if not k.startswith("__")} - {"variable"}:
            raise TerraformError("terraform/variables.tf holds more than variable blocks")
        (work_dir / "variables.tf").write_text(variables.read_text())
        lines = ["locals {"]
        for name, value in module.locals().items():
            lines.append(f"  {name} = {module.expr(value)}")
        lines.append(f"  stack_uri = {json.dumps(uris)}")
        lines.append("}")
        (work_dir / "locals.tf").write_text("\n".join(lines) + "\n")
        query = (
            "jsonencode({"
            f"services = {module.services()}, "
            f"jobs = {module.jobs()}, "
            f"gpu_worker = {module.gpu_worker()}, "
            f"topics = {module.topics()}, "
            f"subscriptions = {module.subscriptions()}, "
            f"notifications = {module.notifications()}, "
            f"buckets = {module.buckets()}"
            "})"
        )
        args = [terraform, "console", f"-var-file={tfvars.resolve()}"]
        for key, value in overrides.items():
            args.append(f"-var={key}={value}")
        env = dict(os.environ, CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1")
        done = subprocess.run(args, input=query + "\n", cwd=work_dir, capture_output=True, text=True, env=env)
        stdout, stderr = ANSI.sub("", done.stdout), ANSI.sub("", done.stderr)
        if done.returncode != 0 or "Error:" in stdout + stderr or not stdout.strip():
            raise TerraformError(
                "terraform console could not evaluate the deployment's settings:\n" + (stderr + stdout).strip()[-3000:]
            )
        try:
            return json.loads(json.loads(stdout.strip()))
        except json.JSONDecodeError:
            raise TerraformError(
                "terraform console did not answer JSON:\n" + (stdout + stderr).strip()[-2000:]
            ) from None


def main() -> int:
    terraform, tfvars, uris = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    overrides = dict(a.split("=", 1) for a in sys.argv[4:])
    try:
        print(json.dumps(evaluate(terraform, TERRAFORM_DIR, tfvars, uris, overrides), indent=2))
    except TerraformError as e:
        print(f"stack_terraform: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
