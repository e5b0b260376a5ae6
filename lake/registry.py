"""The model registry: artifacts in MinIO under ``s3://models/<name>/v<N>/``, one MongoDB
document per version in the catalog's ``models`` collection.

A version document (``_id`` = ``<name>:v<N>``) holds the stage (candidate / production /
archived / rejected by the promotion gate, with its history: who or what changed it, when, why),
the data set it was trained on (``training_examples@<iceberg snapshot>``), the code version, the training result, the
files with their SHA-256, and the latest evaluation summary.

    from lake.registry import Registry
    reg = Registry.connect()
    doc = reg.register("compact", Path("out/compact"), dataset=ds, train=result, run_id=run_id)
    path = reg.fetch("compact-v1")        # a verified local copy, for models.captioner.load(path)
    reg.get("production")                 # the production version of the default model
    reg.set_stage("compact-v1", "production", by="lake model promote", reason="first model")
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from pymongo.errors import DuplicateKeyError

from lake.config import REPO_ROOT, Settings, get_settings
from lake.events import utcnow
from lake.tables import MODELS_BUCKET, model_prefix, s3_uri

log = structlog.get_logger("lake.registry")

BUCKET = MODELS_BUCKET
DEFAULT_NAME = "compact"
STAGES = ("candidate", "production", "archived", "rejected")
NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,62}"  # a model name: also an object prefix
VERSION_PATTERN = rf"(?:(?P<name>{NAME_PATTERN}?)-)?v(?P<version>\d{{1,6}})"  # compact-v3 or v3
_NAME = re.compile(rf"^{NAME_PATTERN}$")
_VERSION = re.compile(rf"^{VERSION_PATTERN}$")
_STAGE = re.compile(rf"^(?:(?P<name>{NAME_PATTERN}):)?(?P<stage>candidate|production)$")


class ModelNotFound(LookupError):
    """No model version matches; the message says what exists."""


def code_version() -> str:
    """``git describe --always --dirty`` of the checkout, or ``unknown`` outside git."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):  # fullmatch: `$` alone also matches before a trailing newline
        raise ValueError(f"model name {name!r}: lower-case letters, digits, - and _ only (at most 63)")
    return name


def parse_spec(spec: str, default_name: str = DEFAULT_NAME) -> tuple[str, int | None, str | None]:
    """``compact-v3`` / ``v3`` / ``production`` / ``compact:production`` -> (name, version, stage). A version's
    id is the ``model_version`` of docs/architecture.md: ``<name>-v<N>``."""
    spec = spec.strip()
    m = _VERSION.fullmatch(spec) or _STAGE.fullmatch(spec)
    if not m:
        raise ModelNotFound(f"{spec!r} is not a model version: use NAME-vN, vN, production or NAME:production")
    version = m.groupdict().get("version")
    stage = m.groupdict().get("stage")
    return m.group("name") or default_name, int(version) if version else None, stage


def model_source(spec: str, registry: Registry | None = None) -> str:
    """What `models.captioner.load` takes for ``spec``: an existing directory as it is, a registered
    version (``compact-v3``, ``v3``, ``production``) fetched and verified locally, anything else (a hub
    id) unchanged."""
    if Path(spec).expanduser().exists():
        return spec
    try:
        parse_spec(spec)
    except ModelNotFound:
        return spec
    return str((registry or Registry.connect()).fetch(spec))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _complete(target: Path, doc: dict) -> bool:
    """Whether ``target`` holds every file of the version ``doc`` with its registered SHA-256."""
    return target.is_dir() and all(
        (target / f["name"]).is_file() and _sha256(target / f["name"]) == f["sha256"] for f in doc["files"]
    )


@dataclass
class Registry:
    db: Any  # the catalog's MongoDB database
    mc: Any  # a MinIO client
    cache: Path  # local copies: <cache>/<name>/v<N>/

    @classmethod
    def connect(cls, s: Settings | None = None, db=None) -> Registry:
        from lake.clients import minio_client, mongo_client

        s = s or get_settings()
        return cls(db if db is not None else mongo_client(s)[s.mongo_db], minio_client(s), s.state_dir / "models")

    # ---- reading ---------------------------------------------------------------------------------------------------

    def versions(self, name: str | None = None) -> list[dict]:
        return list(self.db.models.find({"name": name} if name else {}, sort=[("name", 1), ("version", -1)]))

    def get(self, spec: str) -> dict:
        """The document of ``spec`` (see `parse_spec`)."""
        name, version, stage = parse_spec(spec)
        # a version still "uploading" (its registration was killed) is not a model yet
        query = {"name": name, **({"version": version, "stage": {"$ne": "uploading"}} if version else {"stage": stage})}
        doc = self.db.models.find_one(query, sort=[("version", -1)])
        if doc is None:
            known = ", ".join(d["_id"] for d in self.versions(name)) or "none"
            hint = " (train one with `lake model train`)" if known == "none" else ""
            raise ModelNotFound(f"no model {spec!r}; versions of {name}: {known}{hint}")
        return doc

    def fetch(self, spec: str) -> Path:
        """A local copy of the version's files, downloaded once and checked against their SHA-256."""
        doc = self.get(spec)
        target = self.cache / doc["name"] / f"v{doc['version']}"
        if _complete(target, doc):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        # One download at a time per version (threads and processes sharing the cache: two model watchers, a
        # watcher and a job): a second fetch must not replace the copy the first one's caller is loading.
        with open(target.parent / f".v{doc['version']}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if _complete(target, doc):  # fetched meanwhile
                return target
            tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".v{doc['version']}-"))
            try:
                for f in doc["files"]:
                    key = f"{doc['prefix']}{f['name']}"
                    self.mc.fget_object(BUCKET, key, str(tmp / f["name"]))
                    if _sha256(tmp / f["name"]) != f["sha256"]:
                        raise OSError(f"{s3_uri(BUCKET, key)} does not match its registered SHA-256")
                shutil.rmtree(target, ignore_errors=True)
                tmp.rename(target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return target

    # ---- writing ---------------------------------------------------------------------------------------------------

    def register(
        self, name: str, local_dir: Path, *, dataset: dict, train: dict, run_id: str, parent: str | None = None
    ) -> dict:
        """Upload ``local_dir`` (not its ``checkpoint/``) as the next version of ``name``, stage candidate."""
        check_name(name)
        files = sorted(p for p in Path(local_dir).iterdir() if p.is_file())
        if not any(p.name == "config.json" for p in files):
            raise ValueError(f"{local_dir} is not a saved model (no config.json)")
        # a list, not a dict by file name: MongoDB-protocol servers refuse keys with dots
        meta = [{"name": p.name, "size": p.stat().st_size, "sha256": _sha256(p)} for p in files]
        while True:  # the unique _id settles a race between two registrations
            last = self.db.models.find_one({"name": name}, sort=[("version", -1)])
            version = (last["version"] if last else 0) + 1
            prefix = model_prefix(name, version)
            doc = {
                "_id": f"{name}-v{version}",
                "name": name,
                "version": version,
                "stage": "candidate",
                "created_at": utcnow(),
                "prefix": prefix,
                "uri": s3_uri(BUCKET, prefix),
                "files": meta,
                "dataset": dataset,
                "code_version": code_version(),
                "train": train,
                "run_id": run_id,
                "parent": parent,
                "evaluation": None,
                "history": [{"stage": "candidate", "at": utcnow(), "by": run_id, "reason": "registered"}],
            }
            try:
                self.db.models.insert_one({**doc, "stage": "uploading"})
                break
            except DuplicateKeyError:
                continue
        try:
            for p in files:
                self.mc.fput_object(BUCKET, prefix + p.name, str(p))
        except BaseException:
            self.db.models.delete_one({"_id": doc["_id"]})  # the number is free again
            raise
        self.db.models.update_one({"_id": doc["_id"]}, {"$set": {"stage": "candidate"}})
        log.info("model registered", model=doc["_id"], uri=doc["uri"], files=len(files))
        return doc

    def put_report(self, spec: str, folder: Path) -> str:
        """Upload an evaluation report folder next to the version's files; its URI."""
        doc = self.get(spec)
        prefix = f"{doc['prefix']}report/"
        for p in sorted(folder.iterdir()):
            if p.is_file():
                self.mc.put_object(
                    BUCKET,
                    prefix + p.name,
                    io.BytesIO(p.read_bytes()),
                    p.stat().st_size,
                    content_type="text/html" if p.suffix == ".html" else "image/png",
                )
        return s3_uri(BUCKET, prefix + "index.html")

    def record(self, spec: str, key: str, value: Any) -> None:
        """Set one field of a version's document (``evaluation``: its latest score; ``retrain``: the plan of the
        retrain that trained it)."""
        self.db.models.update_one({"_id": self.get(spec)["_id"]}, {"$set": {key: value}})

    def set_stage(self, spec: str, stage: str, *, by: str, reason: str) -> dict:
        """Move a version to ``stage``; promoting one archives the production version before it."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}")
        doc = self.get(spec)
        now = utcnow()
        if stage == "production":
            for old in self.db.models.find({"name": doc["name"], "stage": "production", "_id": {"$ne": doc["_id"]}}):
                self.db.models.update_one(
                    {"_id": old["_id"]},
                    {
                        "$set": {"stage": "archived"},
                        "$push": {
                            "history": {"stage": "archived", "at": now, "by": by, "reason": f"replaced by {doc['_id']}"}
                        },
                    },
                )
        self.db.models.update_one(
            {"_id": doc["_id"]},
            {"$set": {"stage": stage}, "$push": {"history": {"stage": stage, "at": now, "by": by, "reason": reason}}},
        )
        log.info("model stage set", model=doc["_id"], stage=stage, by=by, reason=reason)
        return self.get(doc["_id"])
