"""The deployed shape, run here: the emulators, the seven function containers and the GPU
worker's container, each with the settings terraform/ gives it, and flows A to D driven
through the containers only, each result asserted. Started by .ci/stack, which installs
what this needs; read that file first.

Everything this starts is stopped at the end by its PID (host processes) or its container
id (containers), whatever happened.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import stack_terraform

FUNCTIONS = ["embedding", "category", "duplicate", "quality", "score", "people", "style"]
PER_PHOTO = ["category", "quality", "score", "people"]
IMAGE = "localhost/ongi/{}:ci"
PROJECT = "ongi-stack"
REDIS_KEY_PREFIX = "ongi:"  # the default ONGI_CACHE_PREFIX: Terraform does not set one
GEMINI_KEY = "stack-gemini-key-0123456789"
GEMINI_PROMPT = {"positive": "a hand-painted ghibli meadow, soft light", "negative": "blurry, text"}
# Cloud Run gives a stopping instance 10 s after SIGTERM before it kills it.
STOP_GRACE_S = 10


class Failed(Exception):
    pass


def log(msg: str) -> None:
    print(msg, flush=True)


def check(cond: bool, what: str) -> None:
    if not cond:
        raise Failed(what)
    log(f"   ok: {what}")


# --- HTTP --------------------------------------------------------------------------------


def http(method: str, url: str, body=None, headers=None, timeout=60.0) -> tuple[int, bytes, dict]:
    data = None
    headers = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, bytearray)):
        data = json.dumps(body).encode()
        headers.setdefault("content-type", "application/json")
    elif body is not None:
        data = bytes(body)
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def http_json(method: str, url: str, body=None, timeout=60.0) -> tuple[int, dict]:
    status, raw, _ = http(method, url, body, timeout=timeout)
    try:
        return status, json.loads(raw or b"null")
    except json.JSONDecodeError:
        return status, {"raw": raw[:500].decode(errors="replace")}


def wait_until(what: str, probe, timeout: float, every: float = 0.5):
    """Calls probe() until it returns something truthy; fails with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (OSError, urllib.error.URLError) as e:
            last = None
            error = e
        else:
            error = None
        if last:
            return last
        time.sleep(every)
    raise Failed(f"{what}: not within {timeout:.0f} s" + (f" ({error})" if error else ""))


# --- Photos (made here, no fixture files) --------------------------------------------------


def png(width: int, height: int, pixel) -> bytes:
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in pixel(x, y)) for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def png_size(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise Failed("not a PNG")
    return struct.unpack(">II", data[16:24])


def sharp_photo(seed: int) -> bytes:
    """A detailed, well-exposed 256x256 picture: stripes and checks of many colours."""
    return png(256, 256, lambda x, y: (
        (x * 7 + seed * 40) % 256,
        ((x // 8 + y // 8) % 2) * 180 + 40,
        (y * 5 + seed * 70) % 256,
    ))


def blurry_photo() -> bytes:
    """Smooth gradients, no edge anywhere: the Laplacian variance is near zero."""
    return png(256, 256, lambda x, y: (100 + x // 8, 110 + y // 8, 120))


def dark_photo() -> bytes:
    return png(256, 256, lambda x, y: (((x // 8 + y // 8) % 2) * 12, 4, ((x + y) % 9)))


# --- Processes -----------------------------------------------------------------------------


class Stack:
    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="ongi-stack-"))
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.containers: list[str] = []
        self.ports: dict[str, int] = {}
        self.report: dict = {"containers": {}, "flows": {}}
        self.gemini_requests: list[dict] = []
        self.started: dict[str, float] = {}

    # process management ----------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], env=None, group=False) -> subprocess.Popen:
        out = open(self.work / f"{name}.log", "wb")
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            start_new_session=group,
        )
        self.processes.append((name, process))
        return process

    def podman(self, *args: str, check_rc=True, timeout=120) -> subprocess.CompletedProcess:
        done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
        if check_rc and done.returncode != 0:
            raise Failed(f"podman {' '.join(args[:3])} failed: {done.stderr.strip()[-800:]}")
        return done

    def stop_all(self) -> None:
        for cid in reversed(self.containers):
            subprocess.run(["podman", "rm", "-f", "-t", "2", cid], capture_output=True)
        for name, process in reversed(self.processes):
            if process.poll() is None:
                try:
                    if name == "pubsub":  # gcloud leaves its Java child behind: its own group
                        os.killpg(process.pid, signal.SIGTERM)
                    else:
                        process.terminate()
                    process.wait(timeout=10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    process.kill()

    def port(self, name: str) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.ports[name] = s.getsockname()[1]
        return self.ports[name]

    def wait_port(self, name: str, port: int, timeout: float) -> None:
        import socket

        def probe():
            with socket.socket() as s:
                s.settimeout(0.5)
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_until(f"{name} listening on {port}", probe, timeout, every=0.2)

    # the emulators ------------------------------------------------------------------------

    def start_redis(self) -> None:
        port = self.port("redis")
        self.spawn("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(self.work)])
        self.wait_port("redis", port, 10)
        self.redis_url = f"redis://127.0.0.1:{port}"

    def redis(self, *args: str) -> str:
        done = subprocess.run(["redis-cli", "-p", str(self.ports["redis"]), *args], capture_output=True, text=True)
        return done.stdout.strip()

    def start_pubsub(self) -> None:
        port = self.port("pubsub")
        self.spawn("pubsub", ["gcloud", "beta", "emulators", "pubsub", "start", f"--host-port=127.0.0.1:{port}",
                              f"--project={PROJECT}", "--quiet"], group=True)
        self.wait_port("the Pub/Sub emulator", port, 90)
        self.pubsub = f"127.0.0.1:{port}"

    def pubsub_api(self, method: str, path: str, body=None) -> dict:
        status, answer = http_json(method, f"http://{self.pubsub}/v1/projects/{PROJECT}/{path}", body)
        if status >= 300:
            raise Failed(f"Pub/Sub emulator {method} {path}: {status} {answer}")
        return answer

    def start_gcs(self, buckets: list[str], notification: dict, seed: dict[str, dict[str, bytes]]) -> None:
        data = self.work / "gcs"
        for bucket in buckets:
            (data / bucket).mkdir(parents=True, exist_ok=True)
            (data / bucket / ".seed").write_bytes(b"seed")
        for bucket, objects in seed.items():
            for name, content in objects.items():
                path = data / bucket / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
        port = self.port("gcs")
        topic = notification["topic"].rsplit("/", 1)[-1]
        events = ",".join({"OBJECT_FINALIZE": "finalize", "OBJECT_DELETE": "delete",
                           "OBJECT_METADATA_UPDATE": "metadataUpdate"}[e] for e in notification["event_types"])
        self.spawn("fake-gcs", [
            self.args.fake_gcs, "-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "memory",
            "-data", str(data), "-public-host", f"127.0.0.1:{port}", "-log-level", "warn",
            "-event.pubsub-project-id", PROJECT, "-event.pubsub-topic", topic,
            "-event.bucket", notification["bucket"], "-event.list", events,
        ], env={"PUBSUB_EMULATOR_HOST": self.pubsub})
        self.wait_port("fake-gcs-server", port, 20)
        self.gcs = f"http://127.0.0.1:{port}"

    def upload(self, bucket: str, name: str, data: bytes, content_type="image/png") -> dict:
        url = f"{self.gcs}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={urllib.parse.quote(name, safe='')}"
        status, raw, _ = http("POST", url, data, {"content-type": content_type})
        if status != 200:
            raise Failed(f"upload {bucket}/{name}: {status} {raw[:200]!r}")
        return json.loads(raw)

    def download(self, bucket: str, name: str) -> bytes | None:
        url = f"{self.gcs}/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}?alt=media"
        status, raw, _ = http("GET", url)
        return raw if status == 200 else None

    def start_gemini(self) -> None:
        stack = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                stack.gemini_requests.append({"path": self.path, "key": self.headers.get("x-goog-api-key"),
                                              "body": body})
                answer = {"candidates": [{"content": {"role": "model", "parts": [{"text": json.dumps(GEMINI_PROMPT)}]},
                                          "finishReason": "STOP"}]}
                raw = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.gemini = f"http://127.0.0.1:{server.server_address[1]}"

    # the containers --------------------------------------------------------------------------

    def secret(self, marker: str) -> str:
        """The local value of a Secret Manager secret Terraform names ("secret:<resource>")."""
        values = {"secret:redis_url": self.redis_url, "secret:gemini_api_key": GEMINI_KEY}
        if marker not in values:
            raise Failed(f"Terraform gives a process the secret {marker}, which the stack does not know")
        return values[marker]

    def env_of(self, settings: dict, extra: dict) -> dict[str, str]:
        env = dict(settings["env"])
        for name, marker in settings["secrets"].items():
            env[name] = self.secret(marker)
        for name, value in env.items():
            if "unresolved:" in str(value):
                raise Failed(f"Terraform sets {name} to a resource the stack cannot stand in for: {value}")
        env.update(extra)
        return env

    def env_file(self, name: str, env: dict[str, str]) -> Path:
        path = self.work / f"{name}.env"
        path.write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())))
        path.chmod(0o600)
        return path

    def emulators_env(self) -> dict[str, str]:
        # Never set by Terraform (.ci/check_settings.py refuses them there): they point the
        # Google clients at the emulators, and nothing else changes.
        return {"STORAGE_EMULATOR_HOST": self.gcs, "PUBSUB_EMULATOR_HOST": self.pubsub}

    def run_container(self, name: str, image: str, env: dict[str, str], memory: str | None, cpus: str | None,
                      extra: list[str] = ()) -> str:
        args = ["run", "-d", "--name", f"ongi-stack-{name}-{os.getpid()}", "--network", "host",
                "--read-only", "--tmpfs", "/tmp:rw,size=64m", "--env-file", str(self.env_file(name, env)),
                "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]
        if memory:
            args += ["--memory", memory.replace("Gi", "g").replace("Mi", "m")]
        if cpus:
            args += ["--cpus", cpus]
        args += [*extra, image]
        self.started[name] = time.monotonic()
        cid = self.podman(*args).stdout.strip()
        self.containers.append(cid)
        return cid

    def container_logs(self, cid: str, lines: int = 40) -> str:
        return self.podman("logs", "--tail", str(lines), cid, check_rc=False).stdout + \
            self.podman("logs", "--tail", str(lines), cid, check_rc=False).stderr


# --- The run ---------------------------------------------------------------------------------


def photos() -> dict[str, bytes]:
    sharp, other = sharp_photo(1), sharp_photo(2)
    return {
        "sharp.png": sharp,
        "sharp-copy.png": sharp,  # byte-identical: an exact duplicate
        "other.png": other,
        "blurry.png": blurry_photo(),
        "dark.png": dark_photo(),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--terraform", required=True, help="the terraform binary")
    parser.add_argument("--terraform-dir", required=True)
    parser.add_argument("--tfvars", required=True)
    parser.add_argument("--fake-gcs", required=True)
    parser.add_argument("--group-photo", required=True, help="a photo with real faces (people)")
    parser.add_argument("--report", required=True)
    parser.add_argument("--only", type=lambda v: [n for n in v.split(",") if n],
                        help="start only these containers and check them; no flows")
    args = parser.parse_args()
    stack = Stack(args)
    started = time.monotonic()
    try:
        run(stack)
        stack.report["ok"] = True
        return_code = 0
    except Failed as e:
        stack.report["ok"] = False
        stack.report["error"] = str(e)
        log(f"\nFAILED: {e}")
        for name, info in stack.report["containers"].items():
            log(f"--- last lines of container {name} ({info['id']}):")
            for line in stack.container_logs(info["id"], 12).splitlines():
                log("    " + line[:400])
        return_code = 1
    finally:
        stack.stop_all()
        stack.report["seconds"] = round(time.monotonic() - started, 1)
        Path(args.report).write_text(json.dumps(stack.report, indent=2) + "\n")
    return return_code


def run(stack: Stack) -> None:
    args = stack.args
    log("== emulators: Redis, the Pub/Sub emulator, a fake Gemini")
    stack.start_redis()
    stack.start_pubsub()
    stack.start_gemini()

    log("== settings from terraform/ (terraform console over the .tf files, tfvars "
        f"{Path(args.tfvars).name})")
    uris = {f: f"http://127.0.0.1:{stack.port(f)}" for f in FUNCTIONS}
    stack.port("gpu-job")
    overrides = {"project_id": PROJECT, "face_detector": "mtcnn", "ongi_deployed": "true"}
    known = stack_terraform.Module(Path(args.terraform_dir))
    declared = {stack_terraform.unquote(k) for doc in known.docs.values()
                for block in stack_terraform.blocks(doc.get("variable")) for k in block}
    overrides = {k: v for k, v in overrides.items() if k in declared}
    try:
        tf = stack_terraform.evaluate(args.terraform, Path(args.terraform_dir), Path(args.tfvars), uris, overrides)
    except stack_terraform.TerraformError as e:
        raise Failed(str(e)) from None
    log(f"   {len(tf['services'])} services, {len(tf['jobs'])} job(s), {len(tf['topics'])} topics, "
        f"{len(tf['subscriptions'])} subscriptions; variables set here: {overrides}")
    stack.report["terraform_overrides"] = overrides
    uploads, results = tf["buckets"]["uploads"], tf["buckets"]["results"]

    log("== Pub/Sub topics and subscriptions, as terraform/ declares them")
    for topic in tf["topics"]:
        stack.pubsub_api("PUT", f"topics/{topic}", {})
    for sub in tf["subscriptions"]:
        body = {"topic": sub["topic"], "ackDeadlineSeconds": sub["ack_deadline_seconds"]}
        if sub.get("push_endpoint"):
            body["pushConfig"] = {"pushEndpoint": sub["push_endpoint"]}
        if sub.get("dead_letter_topic"):
            body["deadLetterPolicy"] = {"deadLetterTopic": sub["dead_letter_topic"],
                                        "maxDeliveryAttempts": sub["max_delivery_attempts"]}
        stack.pubsub_api("PUT", f"subscriptions/{sub['name']}", body)
        log(f"   {sub['name']}: {sub['topic'].rsplit('/', 1)[-1]} -> {sub.get('push_endpoint') or '(pull)'}")
    # The app backend's own subscription to ongi-results (docs/api.md), pulled by this script.
    stack.pubsub_api("PUT", "subscriptions/stack-app-results", {"topic": f"projects/{PROJECT}/topics/ongi-results",
                                                                 "ackDeadlineSeconds": 60})

    log("== fake-gcs-server, notifying the uploads topic as the bucket notification does")
    if len(tf["notifications"]) != 1:
        raise Failed(f"expected one bucket notification in terraform/, found {len(tf['notifications'])}")
    notification = tf["notifications"][0]
    check(notification["bucket"] == uploads, f"the notification watches the uploads bucket ({uploads})")
    # Photos already in the bucket when the stack starts: no upload event ever announced them
    # (flow D finds them).
    seeded = {f"backlog/{i}.png": sharp_photo(10 + i) for i in range(3)}
    stack.start_gcs(list(tf["buckets"].values()), notification, {uploads: seeded})

    log("== the containers, started as Cloud Run and the worker's VM start them")
    services = tf["services"]
    check(sorted(services) == sorted(FUNCTIONS), f"terraform/ declares the seven functions ({', '.join(FUNCTIONS)})")
    tfvars_services = service_resources(args)
    chosen = [n for n in [*FUNCTIONS, "gpu-job"] if not args.only or n in args.only]
    for name in [n for n in FUNCTIONS if n in chosen]:
        platform = {"PORT": str(stack.ports[name]), "K_SERVICE": f"ongi-{name}", "K_REVISION": f"ongi-{name}-00001-stk",
                    "K_CONFIGURATION": f"ongi-{name}"}
        extra = dict(platform, **stack.emulators_env())
        if name == "style":
            extra["GEMINI_ENDPOINT"] = stack.gemini  # the one stand-in: Gemini cannot run here
        env = stack.env_of(services[name], extra)
        memory, cpus = tfvars_services.get(name, (None, None))
        cid = stack.run_container(name, IMAGE.format(name), env, memory, cpus)
        stack.report["containers"][name] = {"id": cid[:12], "memory": memory, "cpus": cpus,
                                            "env": sorted(services[name]["env"]) + sorted(services[name]["secrets"])}
    if "gpu-job" in chosen:
        worker_env = stack.env_of(tf["gpu_worker"], dict(stack.emulators_env(), PORT=str(stack.ports["gpu-job"])))
        # The worker image here is the CPU variant (no GPU): the one setting changed from gpu.tf.
        check(worker_env.get("ONGI_STYLE_DEVICE") == "cuda", "gpu.tf runs the worker on CUDA (ONGI_STYLE_DEVICE=cuda)")
        worker_env["ONGI_STYLE_DEVICE"] = "cpu"
        stack.report["containers"]["gpu-job"] = {"id": stack.run_container("gpu-job", IMAGE.format("gpu-job"),
                                                                           worker_env, None, None)[:12]}

    log("== each container: started, non-root, read-only, healthy, ready")
    for name in chosen:
        base = f"http://127.0.0.1:{stack.ports[name]}"
        health = wait_until(f"{name} answering /healthz", lambda: http_json("GET", f"{base}/healthz", timeout=3)[0] == 200,
                            60)
        ready_s = round(time.monotonic() - stack.started[name], 1)
        cid = next(c for c in stack.containers if stack.report["containers"][name]["id"] == c[:12])
        inspect = json.loads(stack.podman("inspect", cid).stdout)[0]
        user = stack.podman("exec", cid, "/bin/sh", "-c", "id -u", check_rc=False).stdout.strip()
        check(health and user == "10001" and inspect["HostConfig"]["ReadonlyRootfs"],
              f"{name}: /healthz 200 {ready_s} s after start, as uid {user} (the image's USER), read-only root")
        stack.report["containers"][name].update({"healthz_s": ready_s, "user": user})
        if name != "gpu-job":
            status, ready = wait_until(f"{name} /readyz 200",
                                       lambda: (lambda r: r if r[0] == 200 else None)(http_json("GET", f"{base}/readyz", timeout=5)),
                                       60)
            check(status == 200, f"{name}: /readyz 200 ({json.dumps(ready)[:160]})")

    if args.only:
        log(f"== --only {','.join(chosen)}: no flows (they need every container)")
    else:
        flow_a(stack, uploads)
        flow_b(stack, uploads)
        flow_c(stack, uploads, results)
        flow_d(stack, tf, uploads, seeded)
    stop_all_cleanly(stack, chosen)


def service_resources(args) -> dict[str, tuple[str, str]]:
    """memory and cpu of each function from the tfvars file's `services` (what Cloud Run gets)."""
    import hcl2

    values = hcl2.load(open(args.tfvars))
    services = values.get("services") or {}
    return {name: (stack_terraform.unquote(str(s.get("memory"))), stack_terraform.unquote(str(s.get("cpu"))))
            for name, s in services.items()}


def pull_results(stack: Stack, want, timeout: float) -> list[dict]:
    """Pulls the app backend's ongi-results subscription until `want(messages)` holds."""
    got: list[dict] = []

    def probe():
        answer = stack.pubsub_api("POST", "subscriptions/stack-app-results:pull", {"maxMessages": 100})
        received = answer.get("receivedMessages") or []
        if received:
            stack.pubsub_api("POST", "subscriptions/stack-app-results:acknowledge",
                             {"ackIds": [m["ackId"] for m in received]})
        for m in received:
            got.append(json.loads(base64.b64decode(m["message"]["data"])))
        return want(got)

    wait_until("the expected messages on ongi-results", probe, timeout, every=1.0)
    return got


def metric(stack: Stack, name: str, metric_name: str) -> float:
    _, raw, _ = http("GET", f"http://127.0.0.1:{stack.ports[name]}/metrics")
    total = 0.0
    for line in raw.decode().splitlines():
        if line.startswith(metric_name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[-1])
    return total


def flow_a(stack: Stack, uploads: str) -> None:
    log("== flow A: an upload -> notification -> embedding -> ongi-features -> the per-photo functions")
    t0 = time.monotonic()
    pics = photos()
    for name in ("sharp.png", "blurry.png"):
        stack.upload(uploads, f"flow-a/{name}", pics[name])

    def complete(messages):
        seen = {(m.get("module"), m.get("object")) for m in messages}
        return all((mod, f"flow-a/{n}") in seen for mod in PER_PHOTO for n in ("sharp.png", "blurry.png"))

    messages = pull_results(stack, complete, 120)
    by = {(m["module"], m["object"]): m for m in messages}
    check(all(m["schema"] == "ongi.results.v1" and m["bucket"] == uploads for m in by.values()),
          "every per-photo result is an ongi.results.v1 message about the uploads bucket")
    blurry, sharp = by[("quality", "flow-a/blurry.png")]["result"], by[("quality", "flow-a/sharp.png")]["result"]
    check(blurry["low_quality"] and "blurry" in blurry["reasons"] and not sharp["low_quality"],
          f"quality: blurry.png is low quality {blurry['reasons']}, sharp.png is not")
    check(isinstance(by[("score", "flow-a/sharp.png")]["result"]["score"], (int, float)), "score: a number")
    check(isinstance(by[("category", "flow-a/sharp.png")]["result"]["tags"], list), "category: a list of tags")
    check(isinstance(by[("people", "flow-a/sharp.png")]["result"]["faces"], list), "people: a list of faces")
    digest = hashlib.sha256(pics["sharp.png"]).hexdigest()
    features = stack.redis("--scan", "--pattern", f"{REDIS_KEY_PREFIX}v*:feat:*:{digest}").split()
    check(len(features) == 1, f"the photo's features are cached in Redis under its content hash ({features})")
    check(all(m["content_hash"] == hashlib.sha256(pics[m["object"].split("/")[-1]]).hexdigest()
              for m in by.values()), "every result names the photo's content hash")
    computed = metric(stack, "embedding", "ongi_photos_processed_total")
    check(computed >= 2, f"the embedding container computed the photos ({computed:.0f})")
    stack.report["flows"]["A"] = {"seconds": round(time.monotonic() - t0, 1), "results": len(messages)}


def album(stack: Stack, name: str, route: str, body: dict) -> dict:
    status, answer = http_json("POST", f"http://127.0.0.1:{stack.ports[name]}{route}", body, timeout=120)
    if status != 201 or answer.get("message") != "success":
        raise Failed(f"{name} {route}: {status} {json.dumps(answer)[:400]}")
    return answer


def flow_b(stack: Stack, uploads: str) -> None:
    log("== flow B: each album route, answered by its own container")
    t0 = time.monotonic()
    pics = photos()
    for name, data in pics.items():
        stack.upload(uploads, f"flow-b/{name}", data)
    group = Path(stack.args.group_photo).read_bytes()
    stack.upload(uploads, "flow-b/group.png", group)
    stack.upload(uploads, "flow-b/group-copy.png", group)
    stack.upload(uploads, "flow-b/broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg")
    refs = [f"flow-b/{n}" for n in pics]
    before = {f: metric(stack, f, "ongi_photos_processed_total") for f in FUNCTIONS if f != "style"}

    answer = album(stack, "embedding", "/api/albums/embedding?include=embedding",
                   {"images": [*refs, "flow-b/broken.jpg", "flow-b/missing.png"]})
    vectors = answer["data"]
    invalid = {i["image"]: i["reason"] for i in answer.get("invalid_images", [])}
    check(invalid == {"flow-b/broken.jpg": invalid.get("flow-b/broken.jpg"), "flow-b/missing.png": "not_found"}
          and invalid["flow-b/broken.jpg"] in ("corrupt", "unsupported_format"),
          f"embedding: the bad photos are reported per photo {invalid}, the rest succeed")
    embeddings = {e["image"]: e["embedding"] for e in (vectors or {}).get("embeddings", [])}
    check(set(embeddings) == set(refs) and {len(v or []) for v in embeddings.values()} == {512},
          f"embedding: a 512-d vector for each of the {len(refs)} readable photos")
    norms = [sum(x * x for x in v) ** 0.5 for v in embeddings.values()]
    check(all(abs(n - 1) < 1e-3 for n in norms), "embedding: unit-length vectors")

    dup = album(stack, "duplicate", "/api/albums/duplicates", {"images": refs})["data"]
    check(any(set(g) == {"flow-b/sharp.png", "flow-b/sharp-copy.png"} for g in dup),
          f"duplicates: the byte-identical copy is grouped with its original {dup}")

    quality = album(stack, "quality", "/api/albums/quality", {"images": refs})["data"]
    check("flow-b/blurry.png" in quality and "flow-b/dark.png" in quality and "flow-b/sharp.png" not in quality,
          f"quality: blurry.png and dark.png are low quality, sharp.png is not {quality}")

    cats = album(stack, "category", "/api/albums/categories",
                 {"images": refs, "concepts": ["beach", "food", "city"]})["data"]
    listed = [i for c in cats for i in c["images"]]
    check(all(isinstance(c["category"], str) for c in cats) and set(listed) <= set(refs),
          f"categories: {len(cats)} categories over the album's photos")

    scored = album(stack, "score", "/api/albums/score",
                   {"categories": [{"category": "all", "images": refs}]})["data"]
    scores = {i["image"]: i["score"] for c in scored for i in c["images"]}
    check(set(scores) == set(refs) and all(isinstance(s, (int, float)) for s in scores.values()),
          f"score: a score for each of the {len(refs)} photos")

    people = album(stack, "people", "/api/albums/people?detail=true",
                   {"images": ["flow-b/group.png", "flow-b/group-copy.png", "flow-b/sharp.png"]})["data"]
    both = {"flow-b/group.png", "flow-b/group-copy.png"}
    boxes = [p["representative_face"]["bbox"] for p in people]
    check(len(people) >= 5 and all(set(p["images"]) == both for p in people)
          and all(0 <= b[0] < b[2] <= 1666 and 0 <= b[1] < b[3] <= 1136 for b in boxes),
          f"people: {len(people)} people, each found in the group photo and its copy (real MTCNN faces)")

    after = {f: metric(stack, f, "ongi_photos_processed_total") for f in before}
    by_embedding = after["embedding"] - before["embedding"]
    elsewhere = {f: after[f] - before[f] for f in after if f != "embedding" and after[f] != before[f]}
    check(by_embedding >= 1 and not elsewhere,
          f"features were computed by the embedding container only ({by_embedding:.0f} photos), "
          f"the others asked it over HTTP (EMBEDDING_URL)")
    stack.report["flows"]["B"] = {"seconds": round(time.monotonic() - t0, 1)}


def flow_c(stack: Stack, uploads: str, results: str) -> None:
    log("== flow C: a style request -> Gemini -> the Redis stream -> the worker container -> results bucket")
    t0 = time.monotonic()
    stack.upload(uploads, "flow-c/photo.png", sharp_photo(5))
    base = f"http://127.0.0.1:{stack.ports['style']}"
    status, answer = http_json("POST", f"{base}/api/albums/style", {"image": "flow-c/photo.png", "style": "ghibli"})
    check(status == 202 and answer.get("data", {}).get("job_id"), f"style: 202 with a job id ({status})")
    job = answer["data"]["job_id"]

    def done():
        code, state = http_json("GET", f"{base}/api/albums/style/{job}")
        data = state.get("data") or {}
        if data.get("status") == "failed":
            raise Failed(f"the style job failed: {data}")
        return data if data.get("status") == "done" else None

    state = wait_until("the style job done", done, 300, every=1.0)
    check(state.get("prompt", "").startswith(GEMINI_PROMPT["positive"][:20]) and stack.gemini_requests
          and stack.gemini_requests[-1]["key"] == GEMINI_KEY,
          f"Gemini wrote the prompt ({len(stack.gemini_requests)} call(s), the key from the secret)")
    image = stack.download(results, f"style/{job}.png")
    check(image is not None, f"the result is in the results bucket: {results}/style/{job}.png")
    width, height = png_size(image)
    check(width >= 64 and height >= 64, f"the result is a {width}x{height} PNG")
    # No result_url here: the emulator path has no signer (on Cloud Run the style service signs
    # with IAM signBlob, granted in terraform/iam.tf), so the URL is left out, as the API says.
    messages = pull_results(stack, lambda ms: any(m.get("job_id") == job for m in ms), 60)
    style = next(m for m in messages if m.get("job_id") == job)
    check(style["schema"] == "ongi.style.v1" and style["status"] == "done",
          "the worker published ongi.style.v1 done on ongi-results")
    stack.report["flows"]["C"] = {"seconds": round(time.monotonic() - t0, 1)}


def flow_d(stack: Stack, tf: dict, uploads: str, seeded: dict[str, bytes]) -> None:
    log("== flow D: the reprocessing job, run as its Cloud Run job runs it")
    t0 = time.monotonic()
    jobs = tf["jobs"]
    check(list(jobs) == ["reprocess"], "terraform/ declares the reprocessing job")
    job = jobs["reprocess"]
    env = stack.env_of(job, stack.emulators_env())
    memory = service_resources(stack.args).get("embedding", (None, None))[0]
    name = f"ongi-stack-reprocess-{os.getpid()}"
    args = ["run", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp:rw,size=64m",
            "--env-file", str(stack.env_file("reprocess", env)), "--ulimit", "nofile=1024:1024",
            "--ulimit", "nproc=4096:4096"]
    if memory:
        args += ["--memory", memory.replace("Gi", "g").replace("Mi", "m")]
    args += ["--entrypoint", job["command"][0], IMAGE.format("embedding"), *job.get("args", [])]
    stack.containers.append(name)
    done = stack.podman(*args, check_rc=False, timeout=600)
    output = done.stdout + done.stderr
    check(done.returncode == 0, f"the job exited 0 (command {job['command'] + job.get('args', [])})")
    # The report is one JSON object (pretty-printed) among the JSON log lines.
    summary, decoder, at = None, json.JSONDecoder(), 0
    while (at := done.stdout.find("{", at)) >= 0:
        try:
            parsed, end = decoder.raw_decode(done.stdout, at)
        except json.JSONDecodeError:
            at += 1
            continue
        if isinstance(parsed, dict) and "complete" in parsed and "scanned" in parsed:
            summary = parsed
        at = end
    if summary is None:
        raise Failed(f"no summary line from `ongi reprocess`: {output[-600:]}")
    check(summary["complete"] is True and summary.get("processed", 0) >= len(seeded),
          f"the walk completed and processed the {len(seeded)} photos no upload event announced "
          f"({json.dumps({k: summary[k] for k in summary if k in ('scanned', 'processed', 'skipped', 'failed')})})")
    seeded_names = set(seeded)

    def announced(messages):
        return all(({m.get("object") for m in messages if m.get("module") == module}) >= seeded_names
                   for module in PER_PHOTO)

    messages = pull_results(stack, announced, 120)
    low = [m["object"] for m in messages if m.get("module") == "quality" and m["object"] in seeded_names
           and m["result"]["low_quality"]]
    check(not low, f"the per-photo functions published results for the {len(seeded)} photos the job announced on "
                   f"ongi-features ({', '.join(PER_PHOTO)}; none of the sharp ones is low quality)")
    stack.report["flows"]["D"] = {"seconds": round(time.monotonic() - t0, 1), "summary": summary}


def stop_all_cleanly(stack: Stack, names: list[str]) -> None:
    log(f"== SIGTERM: each container stops within Cloud Run's {STOP_GRACE_S} s, exit code 0")
    for name in names:
        cid = next(c for c in stack.containers if stack.report["containers"].get(name, {}).get("id") == c[:12])
        t0 = time.monotonic()
        stack.podman("stop", "-t", str(STOP_GRACE_S), cid, timeout=STOP_GRACE_S + 30)
        seconds = round(time.monotonic() - t0, 2)
        state = json.loads(stack.podman("inspect", cid).stdout)[0]["State"]
        check(state["ExitCode"] == 0 and seconds < STOP_GRACE_S and not state.get("OOMKilled"),
              f"{name}: stopped in {seconds} s, exit code {state['ExitCode']}")
        stack.report["containers"][name]["stop_s"] = seconds


if __name__ == "__main__":
    sys.exit(main())
