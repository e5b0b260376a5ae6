"""The learning loop: retrain the production model on what is new in gold, gate, promote or reject,
and roll back.

    lake model retrain --min-new 100 --replay 1.0 --minutes 5     # nothing to do, or train + evaluate + gate
    lake model retrain --steps 200 --focus-slice shape=star --tolerance 0.05
    lake model retrain --drill --minutes 2      # a gate drill: the candidate learns shuffled captions
    lake model rollback [--to compact-v1] --reason "stars look wrong"

    from lake.retrain import gate, retrain, rollback

The steps, each its own call (Airflow's lake_retrain runs one per task; `retrain` runs them in a row):
``plan`` (what is new: the check), ``train_candidate`` (its registry document carries the plan as
``retrain``), ``evaluate_candidate``, ``decide`` (the gate; the decision in ``catalog.lake.promotions``)
and ``conclude`` (the stage the gate chose; a promotion publishes `models.promoted`).

New examples are the train-split rows of the latest ``training_examples`` data set that are not in
the production model's data set (an ``EXCEPT`` of the two Iceberg snapshots through Trino). The
candidate starts from the production weights and trains on them plus a seeded replay sample of
older train rows; both models are scored on the candidate data set's test split, and `gate` decides.

The gate (CIDEr): reject if the candidate's overall score or any slice's falls below
``production * (1 - tolerance)`` beyond noise, or if any focus slice fails to beat production beyond
noise (both by a paired bootstrap of per-image scores, `change_interval`). Default focus
slices: those over-represented among the new examples (share of new examples at least
`FOCUS_SHARE` and at least `FOCUS_RATIO` times their share of the older examples), e.g. ``star``
and ``shape=star`` when star images arrive after a star-free first data set.

A drill (``drill=True``) trains the candidate on the same examples with their captions shuffled
across images, a deliberately worse model: the gate must reject it, and a drill candidate is never
promoted whatever the gate says (a gate that passes it is reported as a failed drill). Every run
leaves ``gate.png`` (production vs candidate per slice) in the candidate's report.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import structlog

from lake.catalog import Catalog
from lake.config import get_settings
from lake.events import ModelPromoted, utcnow
from lake.tables import EXAMPLE_SELECT, TrainingExample
from lake.training import DatasetError, as_of, for_target, read_examples, resolve_dataset

log = structlog.get_logger("lake.retrain")

RETRAIN_JOB = "model.retrain"
METRIC = "CIDEr"
FOCUS_SHARE = 0.2  # a focus slice covers at least 20% of the new examples ...
FOCUS_RATIO = 3.0  # ... and at least 3x its share of the older ones (a 2x margin is reached by chance)


class NothingToRollBack(LookupError):
    """Nothing to change: no earlier production version to go back to, or the version is production already."""


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: list[str]
    table: list[dict] = field(default_factory=list)  # one row per slice: production, candidate, change, focus, ok


def _change(c: float, p: float) -> float | None:
    return (c - p) / p if p > 1e-6 else None  # from (about) zero a relative change means nothing


def change_interval(
    candidate: dict, production: dict, name: str, metric: str = METRIC, level: float = 0.8, draws: int = 2000
) -> tuple[float, float] | None:
    """The ``level`` bootstrap interval of slice ``name``'s relative change in mean per-image ``metric``, the two
    models paired on the images both reports scored (``per_image`` of `lake.training.evaluate_version`); None
    without per-image scores. Seeded: the same reports give the same interval."""
    import numpy as np

    c, p = candidate.get("per_image") or {}, production.get("per_image") or {}
    ids = [i for i in sorted(c.keys() & p.keys()) if name == "overall" or name in c[i]["slices"]]
    if len(ids) < 2:
        return None
    cv, pv = (np.array([r[i][metric] for i in ids]) for r in (c, p))
    pick = np.random.default_rng(0).integers(0, len(ids), size=(draws, len(ids)))
    pm, cm = pv[pick].mean(axis=1), cv[pick].mean(axis=1)
    rel = cm[pm > 1e-6] / pm[pm > 1e-6] - 1
    if rel.size < draws // 2:
        return None
    lo, hi = np.quantile(rel, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def gate(
    candidate: dict, production: dict, tolerance: float = 0.05, focus_slices: Sequence[str] = (), metric: str = METRIC
) -> Decision:
    """Promote only if neither ``overall`` nor any slice drops ``metric`` by more than ``tolerance``
    (relative to production) and every focus slice improves. Reports as from `evaluate_version`; where both carry
    per-image scores, a drop past the tolerance fails the slice only if it is beyond noise too: the 80 % paired
    bootstrap interval of the change (`change_interval`) lies wholly below zero (a drop at least 90 % sure).
    A small slice's drop that chance explains (an interval that holds zero) is shown, not a reason to reject.
    Likewise a focus slice improves only beyond noise: its interval lies wholly above zero."""
    slices = {"overall": (candidate["overall"], production["overall"])}
    for name in sorted(set(candidate.get("slices", {})) | set(production.get("slices", {})) | set(focus_slices)):
        slices[name] = (candidate.get("slices", {}).get(name), production.get("slices", {}).get(name))
    reasons, table = [], []
    for name, (c, p) in slices.items():
        focus = name in focus_slices
        if c is None or p is None:
            missing = "candidate" if c is None else "production"
            if focus:
                reasons.append(f"focus slice {name} is not in the {missing} report (no test images?)")
            table.append(
                {
                    "slice": name,
                    "production": p and p[metric],
                    "candidate": c and c[metric],
                    "change": None,
                    "focus": focus,
                    "ok": not focus,
                }
            )
            continue
        cv, pv = float(c[metric]), float(p[metric])
        ok = cv >= pv * (1 - tolerance)
        interval = change_interval(candidate, production, name, metric) if not ok else None
        if not ok and interval is not None and interval[1] >= 0:
            ok = True  # past the tolerance, but within noise: no change is inside the interval
        elif not ok:
            beyond = f" (80% interval {interval[0]:+.1%} to {interval[1]:+.1%})" if interval else ""
            reasons.append(f"{name}: {metric} {pv:.3f} -> {cv:.3f}, drops more than {tolerance:.0%}{beyond}")
        if focus and not cv > pv:
            ok = False
            reasons.append(f"focus slice {name}: {metric} {pv:.3f} -> {cv:.3f}, does not improve")
        elif focus and (gain := change_interval(candidate, production, name, metric)) and gain[0] <= 0:
            ok, interval = False, gain  # a gain that chance explains is no improvement
            reasons.append(
                f"focus slice {name}: {metric} {pv:.3f} -> {cv:.3f}, does not improve beyond noise "
                f"(80% interval {gain[0]:+.1%} to {gain[1]:+.1%})"
            )
        table.append(
            {
                "slice": name,
                "production": pv,
                "candidate": cv,
                "change": _change(cv, pv),
                "focus": focus,
                "ok": ok,
                "n": c.get("n", candidate.get("n")),
                "interval": list(interval) if interval else None,
            }
        )
    promote = not reasons
    if promote:
        reasons.append(
            f"no slice drops more than {tolerance:.0%}"
            + (" beyond noise" if any(r.get("interval") for r in table) else "")
            + (f"; {', '.join(focus_slices)} improve" if focus_slices else "; no focus slices")
        )
    return Decision(promote, reasons, table)


# ---- what is new ---------------------------------------------------------------------------------------------------


def new_examples(old: dict, new: dict, target: str = "first") -> list[TrainingExample]:
    """Train rows of data set ``new`` that are not in data set ``old`` (both by Iceberg time travel)."""
    from lake.clients import trino_query

    if old["table"] != new["table"]:
        raise DatasetError(f"{old['_id']} and {new['_id']} are different tables: cannot compare them")
    first = " AND caption_index = 0" if target == "first" else ""
    rows = trino_query(
        f"SELECT {EXAMPLE_SELECT} FROM {as_of(new)} WHERE split = 'train'{first} "
        f"EXCEPT SELECT {EXAMPLE_SELECT} FROM {as_of(old)} WHERE split = 'train'{first} "
        "ORDER BY image_id, caption_index"
    )
    return [TrainingExample.from_row(r) for r in rows]


def slice_shares(rows: Sequence[TrainingExample]) -> dict[str, float]:
    """The share of ``rows`` in each slice (slices of the parsed caption, as `lake.training.score`)."""
    from models.captioner.data import slices_for
    from models.captioner.evaluate import parse_shapes_caption

    counts = Counter(s for e in rows for s in slices_for(parse_shapes_caption(e.caption)))
    return {s: n / len(rows) for s, n in sorted(counts.items())} if rows else {}


def focus_slices(new: Sequence[TrainingExample], old: Sequence[TrainingExample]) -> list[str]:
    """Slices over-represented among the new examples (see the module docstring)."""
    new_share, old_share = slice_shares(new), slice_shares(old)
    return [
        s
        for s, v in new_share.items()
        if s != "other" and v >= FOCUS_SHARE and v >= FOCUS_RATIO * old_share.get(s, 0.0)
    ]


# ---- promotion events ----------------------------------------------------------------------------------------------


def shuffle_captions(examples: Sequence[TrainingExample], seed: int = 0) -> list[TrainingExample]:
    """The same images with each other's captions (a seeded permutation): what a gate drill trains on."""
    captions = [e.caption for e in examples]
    random.Random(seed).shuffle(captions)
    return [e.model_copy(update={"caption": c}) for e, c in zip(examples, captions)]


def publish_promoted(
    model: dict, previous: str | None, metrics: dict | None = None, producer=None, topic: str | None = None
) -> ModelPromoted:
    """Send `models.promoted` (key = model name) and wait for the broker's acknowledgement."""
    from lake.bus import get_producer

    event = ModelPromoted(
        model_version=model["_id"],
        previous_version=previous,
        metrics={k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))},
    )
    (producer or get_producer()).send(
        topic or get_settings().topic_models_promoted,
        key=model["name"].encode(),
        value=event.model_dump_json().encode(),
    ).get(timeout=15)
    return event


# ---- retrain and rollback ------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What a retrain of ``name`` would train on now: the production version, its data set (``since``), the
    latest one (``dataset``) and the train examples new since."""

    name: str
    production: dict
    since: dict
    dataset: dict
    fresh: list[TrainingExample]
    min_new: int
    target: str = "first"

    @property
    def due(self) -> bool:
        return len(self.fresh) >= self.min_new

    def summary(self) -> dict:
        n, since = len(self.fresh), self.since["_id"]
        return {
            "status": "due" if self.due else "nothing to do",
            "new": n,
            "production": self.production["_id"],
            "message": f"retrain due: {n} new examples in {self.dataset['_id']} since {since} (need {self.min_new})"
            if self.due
            else f"nothing to do: {n} new examples since {since} (need {self.min_new})",
        }


def plan(
    *, name: str = "compact", min_new: int = 100, target: str = "first", catalog: Catalog | None = None, registry=None
) -> Plan:
    """The check step: the train examples new since the production model's data set (Iceberg time travel)."""
    from lake.registry import Registry

    cat = catalog or Catalog.connect()
    reg = registry or Registry.connect(db=cat.db)
    prod = reg.get(f"{name}:production")
    old_ds, new_ds = resolve_dataset(cat, prod["dataset"]["id"]), resolve_dataset(cat, None)
    fresh = new_examples(old_ds, new_ds, target) if new_ds["_id"] != old_ds["_id"] else []
    return Plan(name, prod, old_ds, new_ds, fresh, min_new, target)


def train_candidate(
    p: Plan,
    *,
    replay: float = 1.0,
    config=None,
    tolerance: float = 0.05,
    focus: Sequence[str] | None = None,
    seed: int = 0,
    drill: bool = False,
    progress=None,
    catalog: Catalog | None = None,
    registry=None,
) -> dict:
    """The train step: warm-start from production on the new examples plus a seeded replay sample of older ones;
    the candidate's registry document, whose ``retrain`` field carries the plan to the later steps."""
    from lake.registry import Registry
    from lake.training import train_from_lake

    cat = catalog or Catalog.connect()
    reg = registry or Registry.connect(db=cat.db)
    fresh_keys = {(e.image_id, e.caption_index) for e in p.fresh}
    older = [
        e
        for e in for_target(read_examples(p.dataset, ["train"]), p.target)
        if (e.image_id, e.caption_index) not in fresh_keys
    ]
    sample = random.Random(seed).sample(older, min(len(older), round(replay * len(p.fresh))))
    focus = list(focus) if focus is not None else focus_slices(p.fresh, older)
    plan_doc = {
        "production": p.production["_id"],
        "dataset": p.dataset["_id"],
        "since": p.since["_id"],
        "min_new": p.min_new,
        "replay": replay,
        "tolerance": tolerance,
        "focus": focus,
        "seed": seed,
        "drill": drill,
    }
    with cat.run(RETRAIN_JOB, plan_doc) as rec:
        examples = shuffle_captions(p.fresh + sample, seed) if drill else p.fresh + sample
        cand = train_from_lake(
            dataset=p.dataset["_id"],
            name=p.name,
            config=config,
            target=p.target,
            init_from=p.production["_id"],
            progress=progress,
            catalog=cat,
            registry=reg,
            examples=examples,
            run_inputs={"new_examples": len(p.fresh), "replay_examples": len(sample), "drill": drill},
        )
        counts = {"new_examples": len(p.fresh), "replay_examples": len(sample)}
        reg.record(cand["_id"], "retrain", {**plan_doc, **counts, "run_id": rec.run_id})
        rec.outputs, rec.counts = {"candidate": cand["_id"]}, counts
    return reg.get(cand["_id"])


def _retrain_of(reg, candidate: str) -> dict:
    doc = reg.get(candidate)
    if "retrain" not in doc:
        raise LookupError(f"{doc['_id']} was not trained by a retrain (`lake model retrain`): no gate to pass")
    return doc


def evaluate_candidate(
    candidate: str, *, meteor: bool = False, catalog: Catalog | None = None, registry=None, report_root=None
) -> dict[str, dict]:
    """The evaluate step: the candidate and the production version it started from, on the same test split
    (the candidate's data set); {version: report}, each also in ``lake.gold.model_evaluations``."""
    from lake.registry import Registry
    from lake.training import evaluate_version

    cat = catalog or Catalog.connect()
    reg = registry or Registry.connect(db=cat.db)
    doc = _retrain_of(reg, candidate)
    return {
        m: evaluate_version(
            m,
            dataset=doc["retrain"]["dataset"],
            meteor=meteor,
            catalog=cat,
            registry=reg,
            report_dir=report_root / m if report_root else None,
        )
        for m in (doc["_id"], doc["retrain"]["production"])
    }


def _stored_report(cat: Catalog, model: str, dataset: str) -> dict:
    """The latest full test-split evaluation of ``model`` on ``dataset`` (what `evaluate_candidate` left)."""
    doc = cat.db.evaluations.find_one(
        {"model": model, "dataset": dataset, "split": "test", "limit": 0}, sort=[("evaluated_at", -1)]
    )
    if doc is None:
        raise LookupError(f"{model} has no evaluation on {dataset}'s test split: run the evaluate step first")
    from lake.training import report_folder

    return {**doc, "local_report": str(report_folder(model))}


def decide(
    candidate: str,
    reports: dict[str, dict] | None = None,
    *,
    catalog: Catalog | None = None,
    registry=None,
) -> dict:
    """The gate step: `gate` on the two evaluations (``reports`` from `evaluate_candidate`, else the stored ones),
    ``gate.png``, and the decision in ``catalog.lake.promotions``; nothing is promoted or rejected yet."""
    from lake.registry import Registry

    cat = catalog or Catalog.connect()
    reg = registry or Registry.connect(db=cat.db)
    cand = _retrain_of(reg, candidate)
    r = cand["retrain"]
    prod, drill = r["production"], r["drill"]
    reports = reports or {m: _stored_report(cat, m, r["dataset"]) for m in (cand["_id"], prod)}
    decision = gate(reports[cand["_id"]], reports[prod], r["tolerance"], r["focus"])
    chart = gate_chart(decision, cand["_id"], prod, reports[cand["_id"]]["local_report"], reg, drill)
    promote = decision.promote and not drill  # a drill candidate is never promoted
    reasons = (
        decision.reasons
        if not drill
        else [
            (
                "DRILL FAILED: the gate passed a candidate trained on shuffled captions: "
                if decision.promote
                else "drill (shuffled captions): "
            )
            + "; ".join(decision.reasons)
        ]
    )
    doc = {
        "_id": r["run_id"],
        "kind": "drill" if drill else "retrain",
        "model": cand["name"],
        "candidate": cand["_id"],
        "production": prod,
        "decision": "promote" if promote else "reject",
        **asdict(decision),
        "promote": promote,
        "reasons": reasons,
        "tolerance": r["tolerance"],
        "focus_slices": r["focus"],
        "metric": METRIC,
        "dataset": r["dataset"],
        "since": r["since"],
        "new_examples": r["new_examples"],
        "replay_examples": r["replay_examples"],
        "run_id": r["run_id"],
        "chart": chart,
        "at": utcnow(),
    }
    cat.db.promotions.replace_one({"_id": doc["_id"]}, doc, upsert=True)  # a retried gate step decides again
    log.info("promotion gate", candidate=cand["_id"], production=prod, decision=doc["decision"], drill=drill)
    status = (
        ("drill failed" if decision.promote else "drill passed") if drill else ("promoted" if promote else "rejected")
    )
    return {"status": status, **doc}


def decision_of(candidate: str, catalog: Catalog | None = None) -> dict:
    """The gate's decision on ``candidate`` (`decide` recorded it); LookupError if the gate has not run."""
    cat = catalog or Catalog.connect()
    doc = cat.db.promotions.find_one({"candidate": candidate, "kind": {"$in": ["retrain", "drill"]}}, sort=[("at", -1)])
    if doc is None:
        raise LookupError(f"the gate has not decided on {candidate}: run the gate step first")
    return doc


def conclude(decision: dict, *, registry=None, producer=None) -> str:
    """The promote or reject step: the candidate's stage as the gate decided (promotion archives production and
    publishes `models.promoted`); the stage set. A promotion is refused when production is no longer the version
    the gate compared with (a rollback or a promotion by hand came in between); a retried promotion sends the
    event again (the first send may be what failed)."""
    from lake.registry import ModelNotFound, Registry

    reg = registry or Registry.connect()
    why = "; ".join(decision["reasons"])
    stage = "production" if decision["promote"] else "rejected"
    current = reg.get(decision["candidate"])["stage"]
    if current == stage and not decision["promote"]:
        return stage  # a retried step: done already
    if current != stage and decision["promote"]:
        try:
            now = reg.get(f"{decision['model']}:production")["_id"]
        except ModelNotFound:
            now = None
        if now != decision["production"]:
            raise LookupError(
                f"production is {now} now, not {decision['production']} that the gate compared "
                f"{decision['candidate']} with: retrain again (or `lake model promote {decision['candidate']}`)"
            )
    if current != stage:
        reg.set_stage(decision["candidate"], stage, by=decision["run_id"], reason=f"promotion gate: {why}")
    if decision["promote"]:
        cand = reg.get(decision["candidate"])
        publish_promoted(cand, decision["production"], (cand.get("evaluation") or {}).get("overall"), producer)
    return stage


def retrain(
    *,
    name: str = "compact",
    min_new: int = 100,
    replay: float = 1.0,
    config=None,
    tolerance: float = 0.05,
    focus: Sequence[str] | None = None,
    target: str = "first",
    seed: int = 0,
    meteor: bool = False,
    drill: bool = False,
    progress=None,
    catalog: Catalog | None = None,
    registry=None,
    producer=None,
    report_root: Path | None = None,
) -> dict:
    """One turn of the loop, every step in this process (Airflow's lake_retrain runs them as tasks): a summary
    dict (``status``: ``nothing to do``, ``promoted``, ``rejected``, or for a drill ``drill passed`` /
    ``drill failed``). ``focus``: None picks the focus slices
    from the new examples, ``[]`` means none. ``report_root``: a folder for the evaluation reports (default: the
    usual ``.lake/reports/<name>-v<N>``)."""
    from lake.registry import Registry

    cat = catalog or Catalog.connect()
    reg = registry or Registry.connect(db=cat.db)
    p = plan(name=name, min_new=min_new, target=target, catalog=cat, registry=reg)
    if not p.due:
        return p.summary()
    cand = train_candidate(
        p,
        replay=replay,
        config=config,
        tolerance=tolerance,
        focus=focus,
        seed=seed,
        drill=drill,
        progress=progress,
        catalog=cat,
        registry=reg,
    )
    reports = evaluate_candidate(cand["_id"], meteor=meteor, catalog=cat, registry=reg, report_root=report_root)
    out = decide(cand["_id"], reports, catalog=cat, registry=reg)
    conclude(out, registry=reg, producer=producer)
    return out


def gate_chart(decision: Decision, candidate: str, production: str, report: str, reg, drill: bool = False) -> str:
    """``gate.png`` beside the candidate's evaluation report, locally and in the registry; its local path."""
    from lake.model_report import compare_png

    verdict = "promote" if decision.promote and not drill else "reject"
    title = f"{'drill: ' if drill else ''}{candidate} vs {production} (CIDEr per slice; * focus): {verdict}"
    path = compare_png(decision.table, production, candidate, Path(report) / "gate.png", title)
    reg.put_report(candidate, path.parent)
    return str(path)


def version_of(name: str, spec: str) -> str:
    """``v3`` or ``<name>-v3`` -> ``<name>-v3``; a version of another model, or a stage, is refused."""
    from lake.registry import ModelNotFound, parse_spec

    other, version, _ = parse_spec(spec, default_name=name)
    if version is None or other != name:
        raise ModelNotFound(f"{spec!r} is not a version of {name}: use v<N> or {name}-v<N>")
    return f"{name}-v{version}"


def previous_production(reg, name: str) -> dict:
    """The most recently archived version that had been production."""
    was = [
        d
        for d in reg.versions(name)
        if d["stage"] == "archived" and any(h["stage"] == "production" for h in d.get("history", []))
    ]
    if not was:
        raise NothingToRollBack(f"nothing to roll back to: no archived version of {name} was ever production")
    return max(was, key=lambda d: d["history"][-1]["at"])


def promote(
    version: str,
    *,
    by: str = "lake model promote",
    reason: str = "promoted by hand",
    catalog: Catalog | None = None,
    registry=None,
    producer=None,
) -> dict:
    """Make ``version`` production by hand (the production version before it is archived): recorded in
    ``promotions`` beside the gate's decisions and announced on `models.promoted`."""
    from lake.registry import ModelNotFound, Registry

    cat = catalog or Catalog.connect()
    reg = registry or Registry.connect(db=cat.db)
    target = reg.get(version)
    try:
        current = reg.get(f"{target['name']}:production")["_id"]
    except ModelNotFound:
        current = None
    if current == target["_id"]:
        raise NothingToRollBack(f"{target['_id']} is already production")
    doc = reg.set_stage(target["_id"], "production", by=by, reason=reason)
    _announce("promote", doc, current, reason, cat, producer)
    log.info("model promoted by hand", model=doc["_id"], previous=current, by=by, reason=reason)
    return doc


def _announce(kind: str, doc: dict, previous: str | None, reason: str, cat: Catalog, producer) -> bool:
    """Record a change made by hand and announce it; an unreachable Kafka only delays the swap (the API polls the
    registry every ``caption_poll_s``), so it is logged, not raised: the change itself is done."""
    from kafka.errors import KafkaError

    cat.db.promotions.insert_one(
        {
            "kind": kind,
            "model": doc["name"],
            "candidate": doc["_id"],
            "production": previous,
            "decision": kind,
            "promote": True,
            "reasons": [reason],
            "table": [],
            "at": utcnow(),
        }
    )
    try:
        publish_promoted(doc, previous, (doc.get("evaluation") or {}).get("overall"), producer)
    except KafkaError as e:
        log.warning(
            "models.promoted not sent: replicas find the change at their next registry poll",
            model=doc["_id"],
            error=str(e)[:200],
        )
        return False
    return True


def rollback(
    *,
    name: str = "compact",
    to: str | None = None,
    reason: str = "rolled back by hand",
    by: str = "lake model rollback",
    catalog: Catalog | None = None,
    registry=None,
    producer=None,
) -> dict:
    """Make the previous production version (or ``to``) production again; the current one is archived."""
    from lake.registry import Registry

    cat = catalog or Catalog.connect()
    reg = registry or Registry.connect(db=cat.db)
    current = reg.get(f"{name}:production")
    target = reg.get(version_of(name, to)) if to else previous_production(reg, name)
    if target["_id"] == current["_id"]:
        raise NothingToRollBack(f"{target['_id']} is already production")
    if not any(h["stage"] == "production" for h in target.get("history", [])):
        raise NothingToRollBack(f"{target['_id']} was never production: promote it with `lake model promote`")
    reg.set_stage(current["_id"], "archived", by=by, reason=f"rolled back to {target['_id']}: {reason}")
    doc = reg.set_stage(target["_id"], "production", by=by, reason=f"rollback from {current['_id']}: {reason}")
    _announce("rollback", doc, current["_id"], reason, cat, producer)
    log.info("model rolled back", model=doc["_id"], previous=current["_id"], by=by, reason=reason)
    return doc
