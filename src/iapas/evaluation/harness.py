"""`run_evaluation`: datasets in, cached per-image predictions, metrics and tables out.

Per category and seed: sample Stage 1's normal images from the dataset's pool (the seed decides),
fit (or reuse the saved context), predict every test image not yet cached, then compute metrics from
the cached records only, so an interrupted and resumed run gives exactly the metrics of an
uninterrupted one. Everything is validated before any model loads.

Memory: a category's maps are held at the evaluation size as float32 plus a bool mask, i.e. 5 bytes
per pixel: 256 x 256 x 1,344 MTD images = 440 MB; the metrics' sort needs about 3x that at peak.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iapas import __version__
from iapas.config import PipelineConfig
from iapas.context import Context
from iapas.data import DatasetSplit, Sample, get_reader, mask_array
from iapas.errors import DatasetError, InputError, SettingsError
from iapas.evaluation.cache import context_path, eval_digest, record_path
from iapas.evaluation.progress import EvalProgress
from iapas.evaluation.operating import OperatingPoint
from iapas.evaluation.protocols import (
    PROTOCOL_NOTES, PROTOCOLS, RESAMPLE, category_metrics, default_eval_size, official_map,
)
from iapas.evaluation.records import EvalRecord, load_record, save_record
from iapas.evaluation.resample import resize_map, resize_mask
from iapas.evaluation.summary import combine_seeds, json_safe
from iapas.evaluation.tables import write_csv, write_markdown
from iapas.io.atomic import atomic_write_json
from iapas.io.fingerprint import files_fingerprint
from iapas.io.images import load_image
from iapas.io.resume import Stamp
from iapas.pipeline import Pipeline, reuse_or_make
from iapas.settings import DEFAULT_TARGET_FRR
from iapas.profiles.registry import profile_class
from iapas.stages.presets import category_kind

MIN_EVAL_SIZE, MAX_EVAL_SIZE = 16, 2048


@dataclass
class Plan:
    """Everything checked and listed before a model loads."""

    dataset: str
    root: Path
    out: Path
    protocol: str
    seeds: list[int]
    limit: int | None
    eval_size: int
    splits: dict[str, DatasetSplit]
    notes: list[str] = field(default_factory=list)


def plan_evaluation(
    dataset: str,
    root: Path,
    out: Path,
    categories: list[str] | None,
    protocol: str,
    seeds: list[int],
    limit: int | None,
    eval_size: int,
    zero_shot: bool = False,
) -> Plan:
    """Validate the settings and read the dataset's splits (no model is loaded here)."""
    if protocol not in PROTOCOLS:
        raise SettingsError(f"unknown protocol {protocol!r}; allowed: {', '.join(PROTOCOLS)}")
    if not seeds:
        raise SettingsError("--seeds needs at least one seed, e.g. 111 or 111,112,113")
    if len(set(seeds)) != len(seeds):
        raise SettingsError(f"--seeds has duplicates: {seeds}")
    if not MIN_EVAL_SIZE <= eval_size <= MAX_EVAL_SIZE:
        raise SettingsError(f"--eval-size {eval_size} is out of range {MIN_EVAL_SIZE}..{MAX_EVAL_SIZE}")
    if limit is not None and limit < 1:
        raise SettingsError(f"--limit must be at least 1, got {limit}")
    reader = get_reader(dataset)
    root = Path(root).expanduser().resolve()
    available = reader.find_categories(root)  # none: DatasetError naming the expected layout
    chosen = list(categories) if categories else available
    unknown = [c for c in chosen if c not in available]
    if unknown:
        raise SettingsError(
            f"{dataset}: unknown categories {', '.join(unknown)}; found under {root}: {', '.join(available)}"
        )
    splits = {c: reader.load(root, c).excluding(Path(out)) for c in chosen}  # never read our own outputs
    plan = Plan(dataset, root, Path(out), protocol, list(seeds), limit, eval_size, splits)
    for c, s in splits.items():
        if not s.normal_pool and not zero_shot:
            raise SettingsError(f"{dataset}/{c}: no normal images for Stage 1 (rule: {s.pool_rule})")
        if not s.test:
            raise DatasetError(f"{dataset}/{c}: no test images under {root}; expected the {dataset} layout: "
                               f"{reader.layout}")
        plan.notes += [f"{c}: {n}" for n in s.notes]
    return plan


def limit_samples(samples: list[Sample], limit: int | None) -> list[Sample]:
    """An evenly spread subset (keeps every defect type and normal images in view), in order."""
    if limit is None or limit >= len(samples):
        return samples
    idx = np.unique(np.linspace(0, len(samples) - 1, limit).round().astype(int))
    return [samples[i] for i in idx]


def fit_or_load(pipeline: Pipeline, sampled: list[Path], ctx_file: Path, digest: str,
                fingerprint: str | None = None) -> Context:
    """Stage 1 for one category and seed, reusing the saved context made with the same settings and the
    same normal images (by content: `fingerprint` is `files_fingerprint(sampled)`, part of `digest`)."""
    fingerprint = fingerprint if fingerprint is not None else files_fingerprint(sampled)

    def make() -> Context:
        ctx = pipeline.fit(sampled)  # already the seed's r images: fit keeps them as they are
        ctx.normal_fingerprint = fingerprint
        return ctx

    return reuse_or_make(ctx_file, Stamp(digest, fingerprint), make)[0]


# what a paper-protocol record holds (part of its cache key): official masks and maps
PAPER_RECORD_RULE = "mask grey > 128; map float64, min-max per image at full size, then cubic"


def evaluate_one(
    pipeline: Pipeline, ctx: Context, sample: Sample, seed: int, size: int, dest: Path, resample: str = "bilinear",
    protocol: str = "standard", per_image: bool = True,
) -> None:
    """Predict one test image, bring map and ground truth to size x size, save the record.

    Under the paper protocol the record holds the official forms: the mask read with the official rule
    (grey > 128) and the map from `protocols.official_map` (float64; `per_image=False` for the "base" row).
    """
    t0 = time.perf_counter()
    loaded = load_image(sample.image_path)
    w, h = loaded.original_size
    paper = protocol == "paper"
    if sample.mask_path is not None:
        gt = mask_array(sample.mask_path, "official" if paper else "publisher")
        if gt.shape != (h, w):
            raise InputError(sample.mask_path, f"mask size {gt.shape[1]}x{gt.shape[0]} differs from image size {w}x{h}")
    else:
        gt = np.zeros((h, w), dtype=bool)
    pred = pipeline.predict_one(loaded, ctx)
    score = official_map(pred.score_map, size, per_image) if paper else resize_map(pred.score_map, size, resample)
    th = ctx.thresholds  # zero-shot: set by the batch's calibration during the first prediction
    if not np.isfinite(score).all():
        raise InputError(sample.image_path, "the profile returned a score map with NaN or infinite values")
    info = pred.to_json()
    info["eval_seconds"] = time.perf_counter() - t0
    if th is not None or ctx.thresholds is not None:
        info["thresholds"] = (ctx.thresholds or th).model_dump(exclude_none=True)  # type: ignore[union-attr]
    save_record(
        dest,
        EvalRecord(
            category=sample.category, seed=seed, image_path=str(sample.image_path),
            mask_path=str(sample.mask_path) if sample.mask_path else None, defect_type=sample.defect_type,
            label=int(sample.label), score_map=score, gt_mask=resize_mask(gt, size, resample),
            image_score=float(pred.image_score), prediction=info,
            map_range=None if paper else [float(pred.score_map.min()), float(pred.score_map.max())],
        ),
    )


@dataclass(frozen=True)
class EvalTask:
    """One test image of a category/seed job still to predict, and the cache record it goes to."""

    sample: Sample
    dest: Path


@dataclass(frozen=True)
class EvalImage:
    """`evaluate_one` for one category/seed job as a picklable per-image callable, so an engine can run it
    in this process or ship it to Ray actors; the records land in the same cache files either way."""

    seed: int
    size: int
    resample: str
    protocol: str = "standard"
    per_image: bool = True  # paper protocol: min-max each map on its own (not for the "base" row)

    def __call__(self, pipeline: Pipeline, ctx: Context, task: EvalTask) -> None:
        evaluate_one(pipeline, ctx, task.sample, self.seed, self.size, task.dest, self.resample, self.protocol,
                     self.per_image)


# map_images(pipeline, ctx, tasks, fn): run fn on every task and yield (task, None) when its record is saved
# or (task, InputError) when the image cannot be used, once per task in any order; any other error stops the run.
MapImages = Callable[[Pipeline, Context, list[EvalTask], EvalImage], Iterator[tuple[EvalTask, InputError | None]]]


def map_locally(pipeline: Pipeline, ctx: Context, tasks: list[EvalTask],
                fn: EvalImage) -> Iterator[tuple[EvalTask, InputError | None]]:
    """The default engine: each image in this process, in order, with the models it already holds."""
    for task in tasks:
        try:
            fn(pipeline, ctx, task)
        except InputError as exc:
            yield task, exc
        else:
            yield task, None


@dataclass
class Gathered:
    """A category's cached records stacked: maps/masks (N, S, S), labels/scores (N,), ranges (N, 2)."""

    maps: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    ranges: np.ndarray
    seconds: float
    thresholds: dict[str, Any] | None = None  # the first record's copy of its context's thresholds


def gather(paths: list[Path], size: int, dtype: type = np.float32) -> Gathered:
    """Stack cached records into preallocated arrays (one category at a time keeps memory bounded);
    maps in `dtype` (float64 for the paper protocol's official maps)."""
    n = len(paths)
    g = Gathered(np.empty((n, size, size), dtype=dtype), np.empty((n, size, size), dtype=bool),
                 np.empty(n, dtype=bool), np.empty(n, dtype=np.float64), np.empty((n, 2), dtype=np.float64), 0.0)
    for i, p in enumerate(paths):
        rec = load_record(p)
        g.maps[i], g.masks[i], g.labels[i], g.scores[i] = rec.score_map, rec.gt_mask, bool(rec.label), rec.image_score
        g.ranges[i] = rec.map_range if rec.map_range else (float(rec.score_map.min()), float(rec.score_map.max()))
        g.seconds += float(rec.prediction.get("eval_seconds", 0.0))
        if g.thresholds is None and rec.prediction.get("thresholds"):
            g.thresholds = rec.prediction["thresholds"]
    return g


def run_evaluation(
    dataset: str,
    root: Path,
    out: Path,
    config: PipelineConfig,
    categories: list[str] | None = None,
    protocol: str = "standard",
    seeds: list[int] | None = None,
    limit: int | None = None,
    eval_size: int | None = None,
    progress: bool = True,
    auto_kind: bool = False,
    zero_shot: bool = False,
    map_images: MapImages | None = None,
) -> dict[str, Any]:
    """Evaluate a dataset end to end and write metrics.json/.csv/.md under `out`; return the JSON dict.

    `auto_kind=True` uses each category's object/texture threshold preset (the paper's choice)
    instead of `config.kind`. `eval_size=None` takes the protocol's size (400 paper, 256 standard).
    `zero_shot=True` uses no normal image: each category's test images are scored against each other
    (the offline profile's mutual scoring); the test set is the same as with normal images, so the
    two modes compare on the same images. `map_images` runs the images still to predict (default
    `map_locally`; the CLI passes a Ray one for `--engine ray`); metrics come from the cache either way.
    """
    map_images = map_images or map_locally
    seeds = [111] if seeds is None else list(seeds)
    eval_size = default_eval_size(protocol) if eval_size is None else eval_size
    resample = RESAMPLE.get(protocol, "bilinear")
    plan = plan_evaluation(dataset, root, out, categories, protocol, seeds, limit, eval_size, zero_shot)
    out = plan.out
    out.mkdir(parents=True, exist_ok=True)
    profile = Pipeline(config).profile  # resolved once ("auto" probes for hub weights)
    pipelines: dict[str, Pipeline] = {}  # one per distinct config: a runner never outlives its settings
    failures: list[dict[str, Any]] = []
    per_seed: dict[int, dict[str, dict[str, Any]]] = {s: {} for s in seeds}
    kinds: dict[str, str] = {}
    kind_choices: dict[str, Any] = {}
    n_predicted = n_cached = 0
    total_seconds, total_records = 0.0, 0
    wall0 = time.perf_counter()
    jobs = []
    test_counts: dict[str, dict[str, int]] = {}  # per category (first seed): test images counted good / defective
    for cat, split in plan.splits.items():
        for seed in seeds:
            kind = profile_class(profile).eval_kind(split.kind, category_kind(dataset, split.kind, config.texture_preset))
            cfg = config.model_copy(update={"seed": seed, **({"kind": kind} if auto_kind else {})})
            kinds[cat] = cfg.kind or "auto"
            key = cfg.model_dump_json() + ("" if cfg.kind else f"|{cat}")  # a kind chosen from the images is per category
            if key not in pipelines:  # models stay loaded across pipelines through the model caches
                pipelines[key] = Pipeline(cfg)
            pipeline = pipelines[key]
            sampled = pipeline.select_normal(list(split.normal_pool)) if split.normal_pool else []
            test = limit_samples(split.test_for(sampled, protocol), limit)
            fp = files_fingerprint(sampled)
            # few-shot maps do not depend on the verdict's target (only the context does): records are reused
            record_cfg = cfg if zero_shot else cfg.model_copy(update={"target_frr": DEFAULT_TARGET_FRR})
            digest = eval_digest(record_cfg, pipeline.profile, eval_size, resample, normals=fp,
                                 record_rule=PAPER_RECORD_RULE if protocol == "paper" else None)
            digest += "-zero-shot" if zero_shot else ""
            dests = [record_path(out, cat, seed, s.image_path, digest) for s in test]
            jobs.append((cat, seed, pipeline, split, sampled, test, fp, dests))
            defective = sum(1 for t in test if t.label)
            test_counts.setdefault(cat, {"good": len(test) - defective, "defective": defective})
    total_todo = sum(sum(not d.is_file() for d in j[7]) for j in jobs)
    with EvalProgress(total_todo, enabled=progress) as bar:
        for cat, seed, pipeline, split, sampled, test, fp, dests in jobs:
            cfg = pipeline.config
            todo = [(s, d) for s, d in zip(test, dests) if not d.is_file()]
            n_cached += len(test) - len(todo)
            ctx = None
            if not zero_shot:  # the context's thresholds give the operating point even when every record is cached
                bar.describe(f"{cat} seed {seed}: Stage 1")
                ctx = fit_or_load(pipeline, sampled, context_path(out, cat, seed),
                                  eval_digest(cfg, pipeline.profile, 0, normals=fp), fp)  # not protocol-dependent
            if todo:
                if ctx is None:  # zero-shot: the whole test list is the batch, so a resumed run scores alike
                    bar.describe(f"{cat} seed {seed}: Stage 1")
                    ctx = pipeline.fit_zero_shot([s.image_path for s in test])
                bar.describe(f"{cat} seed {seed}")
                tasks = [EvalTask(s, d) for s, d in todo]
                failed: dict[Path, dict[str, Any]] = {}
                fn = EvalImage(seed, eval_size, resample, protocol, per_image=not cfg.baseline)
                for task, exc in map_images(pipeline, ctx, tasks, fn):
                    if exc is None:
                        n_predicted += 1
                    else:
                        failed[task.dest] = {"path": exc.path, "error": exc.reason, "category": cat, "seed": seed,
                                             "image": str(task.sample.image_path)}
                    bar.advance()
                failures += [failed[t.dest] for t in tasks if t.dest in failed]  # test order, whatever the engine's
            keep = [d for d in dests if d.is_file()]
            g = gather(keep, eval_size, np.float64 if protocol == "paper" else np.float32)
            total_seconds += g.seconds
            total_records += len(keep)
            # paper records already hold the official per-image maps: only the category step is left
            ranges = None if protocol == "paper" else g.ranges
            if ctx is not None and ctx.config.kind:
                kinds[cat] = ctx.config.kind
                if getattr(ctx, "kind_choice", None):
                    kind_choices[cat] = ctx.kind_choice  # type: ignore[attr-defined]
            th = ctx.thresholds.model_dump(exclude_none=True) if ctx is not None and ctx.thresholds is not None and not zero_shot else g.thresholds
            per_seed[seed][cat] = category_metrics(g.maps, g.masks, g.labels, g.scores, protocol, ranges,
                                                   OperatingPoint.from_thresholds(th))
            del g
    cats, mean, std_cat, std_mean = combine_seeds(per_seed, rounded=protocol == "paper")
    if protocol == "paper":
        plan.notes += [f"{c}: {n}" for c, row in cats.items() for n in row.get("notes", []) if "(official rule)" in n]
    metrics: dict[str, Any] = {
        "dataset": dataset,
        "profile": profile,
        "protocol": protocol,
        "protocol_note": PROTOCOL_NOTES[protocol],
        "seeds": seeds,
        "mode": "zero-shot" if zero_shot else "few-shot",
        "mode_note": ("zero-shot: no normal image; each test image scored against the other test images" if zero_shot
                      else f"few-shot: r = {config.num_normal} normal images per category and seed"),
        "categories": cats,
        "mean": mean,
        "images_per_second": (total_records / total_seconds) if total_seconds > 0 else None,
        "failures": failures,
        "eval_size": eval_size,
        "resample": resample,
        "selection": {c: (s.paper_rule if protocol == "paper" else "every test image (normal ones included), "
                          "minus the r Stage 1 images where the pool overlaps the test set")
                      for c, s in plan.splits.items()},
        "limit": limit,
        "n_predicted": n_predicted,
        "n_cached": n_cached,
        "wall_seconds": time.perf_counter() - wall0,
        "normal_pool_rules": {c: s.pool_rule for c, s in plan.splits.items()},
        "test_counts": test_counts,
        "kinds": kinds,
        "kind_choices": kind_choices,
        "operating_point_note": (
            "at each category's own thresholds (context.thresholds; zero-shot: the batch's): good_flagged = good parts "
            "judged defect, defective_missed = defective parts judged ok, image_f1 at the verdict threshold, pixel_f1 "
            "of the written masks (empty for parts judged ok), regions_per_good = mean region count on good parts"
            + ("; pixel_*_decided: the paper protocol reading an all-zero map for every part judged ok" if protocol == "paper" else "")),
        "root": str(plan.root),
        "config": config.model_dump(mode="json"),
        "iapas_version": __version__,
        "notes": plan.notes,
    }
    if config.profile is None:
        metrics["profile_note"] = f"--profile not given: chose {profile} (paper needs hub weights)"
    if len(seeds) > 1:
        metrics["std"] = {"categories": std_cat, "mean": std_mean}
        metrics["per_seed"] = {str(s): per_seed[s] for s in seeds}
    metrics = json_safe(metrics)
    write_outputs(out, metrics)
    return metrics


def write_outputs(out: Path, metrics: dict[str, Any]) -> None:
    """metrics.json/.csv/.md (latest run) plus metrics_<protocol>.* so both protocols can share --out."""
    for stem in ("metrics", f"metrics_{metrics['protocol']}"):
        atomic_write_json(out / f"{stem}.json", metrics)
        write_csv(out / f"{stem}.csv", metrics)
        write_markdown(out / f"{stem}.md", metrics)
