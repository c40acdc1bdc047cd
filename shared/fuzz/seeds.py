#!/usr/bin/env python3
"""Writes the seed corpora (corpus/<target>/) that are committed next to the fuzz targets.

Seeds are the valid shapes each target must accept plus a few near misses, so the fuzzer
starts from inputs that reach deep into the parsers. The image seeds are the small files of
shared/tests/fixtures/images. Run from anywhere: python3 shared/fuzz/seeds.py
"""

import base64
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "tests" / "fixtures" / "images"


def write(target: str, name: str, data: bytes) -> None:
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def j(v) -> bytes:
    return json.dumps(v, separators=(",", ":")).encode()


def image_ingest() -> None:
    for f in sorted(FIXTURES.iterdir()):
        if f.suffix.lower() in {".jpg", ".png", ".webp", ".gif", ".heic", ".bmp"} and f.stat().st_size <= 4096:
            write("image_ingest", f.name, f.read_bytes())


def storage_event() -> None:
    meta = {"bucket": "uploads", "name": "a/b.jpg", "generation": "1700000000000001", "contentType": "image/jpeg"}

    def binary(ce_type: str, subject: str, source: str, body: bytes) -> bytes:
        out = bytes([0])
        for v in (ce_type, subject, source):
            b = v.encode()
            out += bytes([len(b)]) + b
        return out + body

    write("storage_event", "binary-finalized", binary(
        "google.cloud.storage.object.v1.finalized", "objects/a/b.jpg",
        "//storage.googleapis.com/projects/_/buckets/uploads", j(meta)))
    write("storage_event", "binary-deleted-empty-body", binary(
        "google.cloud.storage.object.v1.deleted", "objects/x.png",
        "//storage.googleapis.com/projects/_/buckets/uploads", b""))
    structured = {"specversion": "1.0", "type": "google.cloud.storage.object.v1.finalized",
                  "source": "//storage.googleapis.com/projects/_/buckets/uploads", "subject": "objects/x.jpg",
                  "id": "1", "data": {**meta, "generation": 7}}
    write("storage_event", "structured-finalized", bytes([1]) + j(structured))
    data = base64.b64encode(j(meta)).decode()
    push = {"message": {"attributes": {"eventType": "OBJECT_FINALIZE", "bucketId": "uploads", "objectId": "p.webp",
                                       "objectGeneration": "42", "payloadFormat": "JSON_API_V1"},
                        "data": data, "messageId": "1"}, "subscription": "projects/p/subscriptions/s"}
    write("storage_event", "pubsub-finalize", bytes([2]) + j(push))
    push["message"]["attributes"]["eventType"] = "OBJECT_DELETE"
    push["message"]["data"] = ""
    write("storage_event", "pubsub-delete-no-data", bytes([2]) + j(push))


def features_push() -> None:
    message = {"schema": "ongi.features.v1", "bucket": "uploads", "object": "a/b.jpg", "generation": 3,
               "content_hash": "ab" * 32, "model": "clip-vit-b32@0123abcd", "computed": True}
    envelope = {"message": {"data": base64.b64encode(j(message)).decode(), "messageId": "9",
                            "attributes": {"schema": "ongi.features.v1"}}, "subscription": "projects/p/subscriptions/f"}
    write("features_push", "valid", j(envelope))
    message["schema"] = "ongi.features.v0"
    envelope["message"]["data"] = base64.b64encode(j(message)).decode()
    write("features_push", "wrong-schema", j(envelope))


def request_json() -> None:
    write("request_json", "images", j({"images": ["a.jpg", "gs://uploads/b/c.webp"]}))
    write("request_json", "images-traversal", j({"images": ["../etc/passwd", "gs://results/x.png", "http://x/y"]}))
    write("request_json", "categories", j({"images": ["a.jpg"], "concepts": ["food", "기타"]}))
    write("request_json", "score", j({"categories": [{"category": "food", "images": ["a.jpg", "b.jpg"]}]}))
    write("request_json", "style", j({"image": "a.jpg", "style": "ghibli", "strength": 0.6, "steps": 20,
                                      "guidance_scale": 7.5, "seed": 42, "idempotency_key": "k1"}))
    write("request_json", "reprocess", j({"bucket": "uploads", "prefix": "2026/", "since": "2026-11-25T00:00:00Z",
                                          "steps": ["embedding"], "dry_run": True, "budget_secs": 5.5,
                                          "page_size": 100, "max_pages": 2}))


def image_ref() -> None:
    for i, r in enumerate(["a.jpg", "album/2026/IMG_0001.HEIC", "gs://uploads/x/y.png", "../a", "a/./b", "a//b",
                           "/etc/passwd", "gs://", "https://example.com/a.jpg", "a\\b", "사진/여름.jpg"]):
        write("image_ref", f"ref-{i:02}", r.encode())


def cache_records() -> None:
    import struct

    # A feature record (shared/src/analysis/record.rs, version 2): 58-byte header, then the
    # embedding as f32 LE. One without an embedding, one with four dimensions.
    header = bytearray(58)
    header[0:3] = b"OF\x02"
    header[4:8] = struct.pack("<I", 4032)
    header[8:12] = struct.pack("<I", 3024)
    header[12] = 1
    write("cache_records", "features-no-embedding", bytes(header))
    header[3] = 1
    header[48:50] = struct.pack("<H", 4)
    write("cache_records", "features-4d", bytes(header) + struct.pack("<4f", 0.5, -0.5, 0.5, -0.5))
    # A faces record (face_record.rs, version 1): count and width, then per face bbox,
    # score, 5 landmarks, quality, sharpness, frontalness and the embedding.
    write("cache_records", "faces-none", b"OP\x01" + struct.pack("<HH", 0, 0))
    face = struct.pack("<18f", *([10.0] * 18)) + struct.pack("<2f", 0.6, 0.8)
    write("cache_records", "faces-one-2d", b"OP\x01" + struct.pack("<HH", 1, 2) + face)


if __name__ == "__main__":
    if (HERE / "corpus").exists():
        shutil.rmtree(HERE / "corpus")
    image_ingest()
    storage_event()
    features_push()
    request_json()
    image_ref()
    cache_records()
    for d in sorted((HERE / "corpus").iterdir()):
        print(d.name, len(list(d.iterdir())))
