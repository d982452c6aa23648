"""`run_evaluation`: datasets in, cached per-image predictions, metrics and tables out.

Four steps: **plan** (validate the options and read the dataset's splits; no model loads), **jobs**
(one `EvalJob` per category and seed: its pipeline, its sample of Stage 1's normal images, its test
images and their cache records), **run** (per job: fit or reuse the context, then map the images not
yet cached through a `Mapper`, local or Ray) and **score** (metrics from the cached records only, so an
interrupted and resumed run gives exactly the metrics of an uninterrupted one).

Memory: a category's maps are held at the evaluation size as float32 plus a bool mask, i.e. 5 bytes
per pixel: 256 x 256 x 1,344 MTD images = 440 MB; the metrics' sort needs about 3x that at peak.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iapas import __version__
from iapas.config import PipelineConfig
from iapas.context import Context
from iapas.data import DatasetSplit, Sample, get_reader, mask_array
from iapas.engines import LocalMapper, Mapper, Outcome
from iapas.errors import DatasetError, InputError, SettingsError
from iapas.evaluation.cache import context_path, eval_digest, record_path
from iapas.evaluation.operating import OperatingPoint
from iapas.evaluation.presets import category_kind
from iapas.evaluation.progress import EvalProgress
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

MIN_EVAL_SIZE, MAX_EVAL_SIZE = 16, 2048
DEFAULT_SEED = 111


@dataclass(frozen=True)
class EvalOptions:
    """How to evaluate a dataset (everything but the dataset, its root, the output folder and the config).

    Attributes:
        categories: only these categories (None: every category the reader finds).
        protocol: "standard" (every test image, raw maps) or "paper" (the official IAP-AS evaluation).
        seeds: seeds of the normal-image sample, one job per category and seed (None: [111]).
        limit: at most this many test images per category, evenly spread (None: all).
        eval_size: square size maps and masks are compared at (None: the protocol's, 400 paper, 256 standard).
        progress: draw a progress bar on stderr.
        auto_kind: use each category's object/texture threshold preset instead of `config.kind`.
        zero_shot: use no normal image; each test image is scored against the other test images.
    """

    categories: list[str] | None = None
    protocol: str = "standard"
    seeds: list[int] | None = None
    limit: int | None = None
    eval_size: int | None = None
    progress: bool = True
    auto_kind: bool = False
    zero_shot: bool = False


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
    zero_shot: bool = False

    @property
    def resample(self) -> str:
        """How maps and masks are brought to `eval_size` under this protocol."""
        return RESAMPLE.get(self.protocol, "bilinear")


def _check_options(protocol: str, seeds: list[int], limit: int | None, eval_size: int) -> None:
    """Raise SettingsError for an unknown protocol, bad seeds, an out-of-range size or limit."""
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


def _chosen_categories(dataset: str, root: Path, available: list[str], categories: list[str] | None) -> list[str]:
    """The categories asked for, all of them known to the reader under `root`."""
    chosen = list(categories) if categories else available
    unknown = [c for c in chosen if c not in available]
    if unknown:
        raise SettingsError(
            f"{dataset}: unknown categories {', '.join(unknown)}; found under {root}: {', '.join(available)}"
        )
    return chosen


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
    """Validate the settings and read the dataset's splits (no model is loaded here).

    Args:
        dataset: reader name (mvtec, mtd, folder, ...).
        root: the dataset's folder in its publisher's layout.
        out: the results folder (never read back as input).
        categories: only these categories (None: all).
        protocol: "standard" or "paper".
        seeds: the seeds of the normal-image sample.
        limit: at most this many test images per category (None: all).
        eval_size: square evaluation size in pixels.
        zero_shot: no normal image is needed.

    Returns:
        The plan: resolved root, splits per category and the readers' notes.

    Raises:
        SettingsError: bad options, unknown categories, or no normal image for few-shot.
        DatasetError: a category without test images.
    """
    _check_options(protocol, seeds, limit, eval_size)
    reader = get_reader(dataset)
    root = Path(root).expanduser().resolve()
    available = reader.find_categories(root)  # none: DatasetError naming the expected layout
    chosen = _chosen_categories(dataset, root, available, categories)
    splits = {c: reader.load(root, c).excluding(Path(out)) for c in chosen}  # never read our own outputs
    plan = Plan(dataset, root, Path(out), protocol, list(seeds), limit, eval_size, splits, zero_shot=zero_shot)
    for c, s in splits.items():
        if not s.normal_pool and not zero_shot:
            raise SettingsError(f"{dataset}/{c}: no normal images for Stage 1 (rule: {s.pool_rule})")
        if not s.test:
            raise DatasetError(f"{dataset}/{c}: no test images under {root}; expected the {dataset} layout: "
                               f"{reader.layout}")
        plan.notes += [f"{c}: {n}" for n in s.notes]
    return plan


def limit_samples(samples: list[Sample], limit: int | None) -> list[Sample]:
    """An evenly spread subset (keeps every defect type and normal images in view), in order.

    Args:
        samples: the test samples of a category.
        limit: at most this many (None: all).

    Returns:
        The subset, in the original order.
    """
    if limit is None or limit >= len(samples):
        return samples
    idx = np.unique(np.linspace(0, len(samples) - 1, limit).round().astype(int))
    return [samples[i] for i in idx]


def fit_or_load(pipeline: Pipeline, sampled: list[Path], ctx_file: Path, digest: str,
                fingerprint: str | None = None) -> Context:
    """Stage 1 for one category and seed, reusing the saved context made with the same settings and the
    same normal images (by content).

    Args:
        pipeline: the job's pipeline.
        sampled: the seed's r normal images.
        ctx_file: where the job's context is saved.
        digest: settings digest of Stage 1 (includes the fingerprint).
        fingerprint: `files_fingerprint(sampled)` when already computed.

    Returns:
        The saved context when its stamp matches, else a freshly fitted one (saved).
    """
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

    Args:
        pipeline: the job's pipeline.
        ctx: the job's context.
        sample: the test image, its mask (None: all good) and label.
        seed: the job's seed (stored in the record).
        size: evaluation size S: the record holds an (S, S) map and an (S, S) bool mask.
        dest: the record file.
        resample: "bilinear" or "bicubic" (standard protocol).
        protocol: "standard" or "paper".
        per_image: paper protocol: min-max each map on its own.

    Raises:
        InputError: the image or its mask cannot be used (naming that file), or the map is not finite.
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

    @property
    def path(self) -> Path:
        """The test image (what a mapper names in progress and unexpected failures)."""
        return self.sample.image_path


@dataclass(frozen=True)
class EvalImage:
    """`evaluate_one` for one category/seed job as the mappers' picklable per-image work, so it runs in
    this process or on Ray actors; the records land in the same cache files either way."""

    out_dir: Path  # the job's record folder
    seed: int
    size: int
    resample: str
    protocol: str = "standard"
    per_image: bool = True  # paper protocol: min-max each map on its own (not for the "base" row)

    def __call__(self, pipeline: Pipeline, ctx: Context, task: EvalTask) -> dict[str, Any]:
        """Predict `task` and save its record; return nothing to record (the record file is the result)."""
        evaluate_one(pipeline, ctx, task.sample, self.seed, self.size, task.dest, self.resample, self.protocol,
                     self.per_image)
        return {}


@dataclass(frozen=True)
class EvalJob:
    """One category and seed: its pipeline, Stage 1 sample, test images and their cache records.

    Attributes:
        category: the dataset category.
        seed: the seed of the normal-image sample.
        pipeline: the pipeline of this category/seed config.
        sampled: the r normal images Stage 1 uses (empty in zero-shot mode).
        test: the test samples, after `limit`.
        fingerprint: `files_fingerprint(sampled)`.
        dests: one cache record path per test sample, same order.
    """

    category: str
    seed: int
    pipeline: Pipeline
    sampled: list[Path]
    test: list[Sample]
    fingerprint: str
    dests: list[Path]

    def todo(self) -> list[EvalTask]:
        """The test images whose record is not cached yet, in test order."""
        return [EvalTask(s, d) for s, d in zip(self.test, self.dests) if not d.is_file()]


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
    """Stack cached records into preallocated arrays (one category at a time keeps memory bounded).

    Args:
        paths: the N record files.
        size: the evaluation size S.
        dtype: of the maps (float64 for the paper protocol's official maps).

    Returns:
        maps (N, S, S) `dtype`, masks (N, S, S) bool, labels (N,) bool, scores (N,) float64, ranges (N, 2)
        float64, the summed prediction seconds and the first record's thresholds.
    """
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


@dataclass
class Tally:
    """What the run steps accumulate for metrics.json."""

    per_seed: dict[int, dict[str, dict[str, Any]]]
    failures: list[dict[str, Any]] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)
    kind_choices: dict[str, Any] = field(default_factory=dict)
    test_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # per category (first seed)
    n_predicted: int = 0
    n_cached: int = 0
    seconds: float = 0.0
    records: int = 0


def _record_digest(plan: Plan, cfg: PipelineConfig, profile: str, fingerprint: str) -> str:
    """The cache key part shared by a job's records (settings, size, protocol, normal images, mode)."""
    # few-shot maps do not depend on the verdict's target (only the context does): records are reused
    record_cfg = cfg if plan.zero_shot else cfg.model_copy(update={"target_frr": DEFAULT_TARGET_FRR})
    digest = eval_digest(record_cfg, profile, plan.eval_size, plan.resample, normals=fingerprint,
                         record_rule=PAPER_RECORD_RULE if plan.protocol == "paper" else None)
    return digest + ("-zero-shot" if plan.zero_shot else "")


def make_jobs(plan: Plan, config: PipelineConfig, profile: str, auto_kind: bool, tally: Tally) -> list[EvalJob]:
    """One job per category and seed, each with its own pipeline (shared between equal configs).

    Args:
        plan: the checked plan.
        config: the evaluation's settings.
        profile: the profile `config` resolves to.
        auto_kind: use each category's object/texture preset instead of `config.kind`.
        tally: receives each category's kind and test counts.

    Returns:
        The jobs, category by category, seed by seed.
    """
    pipelines: dict[str, Pipeline] = {}  # one per distinct config: a runner never outlives its settings
    jobs: list[EvalJob] = []
    for cat, split in plan.splits.items():
        kind = profile_class(profile).eval_kind(split.kind, category_kind(plan.dataset, split.kind, config.texture_preset))
        for seed in plan.seeds:
            cfg = config.model_copy(update={"seed": seed, **({"kind": kind} if auto_kind else {})})
            tally.kinds[cat] = cfg.kind or "auto"
            key = cfg.model_dump_json() + ("" if cfg.kind else f"|{cat}")  # a kind chosen from the images is per category
            if key not in pipelines:  # models stay loaded across pipelines through the model caches
                pipelines[key] = Pipeline(cfg)
            pipeline = pipelines[key]
            sampled = pipeline.select_normal(list(split.normal_pool)) if split.normal_pool else []
            test = limit_samples(split.test_for(sampled, plan.protocol), plan.limit)
            fp = files_fingerprint(sampled)
            digest = _record_digest(plan, cfg, pipeline.profile, fp)
            dests = [record_path(plan.out, cat, seed, s.image_path, digest) for s in test]
            jobs.append(EvalJob(cat, seed, pipeline, sampled, test, fp, dests))
            defective = sum(1 for t in test if t.label)
            tally.test_counts.setdefault(cat, {"good": len(test) - defective, "defective": defective})
    return jobs


def _failure_entry(job: EvalJob, outcome: Outcome[EvalTask]) -> dict[str, Any]:
    """The failures-list entry of an image whose record could not be made (the run goes on).

    Raises:
        Exception: an unexpected error (not an InputError) stops the run, as an uncaught error would.
    """
    failure = outcome.failure
    assert failure is not None
    if failure.unexpected:
        if failure.cause is not None:
            raise failure.cause
        raise RuntimeError(f"{outcome.task.sample.image_path}: {failure.reason}")
    return {"path": failure.path, "error": failure.reason, "category": job.category, "seed": job.seed,
            "image": str(outcome.task.sample.image_path)}


def predict_todo(job: EvalJob, ctx: Context, todo: list[EvalTask], plan: Plan, mapper: Mapper,
                 bar: EvalProgress, tally: Tally) -> None:
    """Map the job's uncached images; count the predicted ones and list failures in test order.

    Args:
        job: the category/seed job.
        ctx: its context.
        todo: its images without a cached record.
        plan: the plan (size, protocol).
        mapper: where the images run (local or Ray).
        bar: the progress bar.
        tally: receives `n_predicted` and `failures`.
    """
    cfg = job.pipeline.config
    out_dir = todo[0].dest.parent
    work = EvalImage(out_dir, job.seed, plan.eval_size, plan.resample, plan.protocol, per_image=not cfg.baseline)
    failed: dict[Path, dict[str, Any]] = {}
    for outcome in mapper.map(job.pipeline, ctx, work, todo):  # a model or settings problem raises here
        if outcome.status == "ok":
            tally.n_predicted += 1
        else:
            failed[outcome.task.dest] = _failure_entry(job, outcome)
        bar.advance()
    tally.failures += [failed[t.dest] for t in todo if t.dest in failed]  # test order, whatever the mapper's


def run_job(job: EvalJob, todo: list[EvalTask], plan: Plan, mapper: Mapper, bar: EvalProgress,
            tally: Tally) -> Context | None:
    """Stage 1 (fit or reuse) and Stage 2 of the images not cached yet, for one category and seed.

    Args:
        job: the category/seed job.
        todo: its test images whose record is not cached yet (`EvalJob.todo`).
        plan: the plan.
        mapper: where the images run.
        bar: the progress bar.
        tally: receives the counts and failures.

    Returns:
        The job's context (None in zero-shot mode when every record was cached).
    """
    tally.n_cached += len(job.test) - len(todo)
    ctx = None
    if not plan.zero_shot:  # the context's thresholds give the operating point even when every record is cached
        bar.describe(f"{job.category} seed {job.seed}: Stage 1")
        ctx = fit_or_load(job.pipeline, job.sampled, context_path(plan.out, job.category, job.seed),
                          eval_digest(job.pipeline.config, job.pipeline.profile, 0, normals=job.fingerprint),
                          job.fingerprint)  # not protocol-dependent
    if todo:
        if ctx is None:  # zero-shot: the whole test list is the batch, so a resumed run scores alike
            bar.describe(f"{job.category} seed {job.seed}: Stage 1")
            ctx = job.pipeline.fit_zero_shot([s.image_path for s in job.test])
        bar.describe(f"{job.category} seed {job.seed}")
        predict_todo(job, ctx, todo, plan, mapper, bar, tally)
    return ctx


def _operating_thresholds(ctx: Context | None, g: Gathered, zero_shot: bool) -> dict[str, Any] | None:
    """The thresholds the operating point is read at: the context's, or (zero-shot) the batch's record copy."""
    if ctx is not None and ctx.thresholds is not None and not zero_shot:
        return ctx.thresholds.model_dump(exclude_none=True)
    return g.thresholds


def score_job(job: EvalJob, ctx: Context | None, plan: Plan, tally: Tally) -> None:
    """Metrics of one category and seed from its cached records only (into `tally.per_seed`).

    Args:
        job: the category/seed job.
        ctx: its context (gives the kind and the operating point).
        plan: the plan (protocol, size).
        tally: receives the metrics row, kind, timing and record counts.
    """
    keep = [d for d in job.dests if d.is_file()]
    g = gather(keep, plan.eval_size, np.float64 if plan.protocol == "paper" else np.float32)
    tally.seconds += g.seconds
    tally.records += len(keep)
    # paper records already hold the official per-image maps: only the category step is left
    ranges = None if plan.protocol == "paper" else g.ranges
    if ctx is not None and ctx.config.kind:
        tally.kinds[job.category] = ctx.config.kind
        if getattr(ctx, "kind_choice", None):
            tally.kind_choices[job.category] = ctx.kind_choice  # type: ignore[attr-defined]
    th = _operating_thresholds(ctx, g, plan.zero_shot)
    tally.per_seed[job.seed][job.category] = category_metrics(g.maps, g.masks, g.labels, g.scores, plan.protocol,
                                                              ranges, OperatingPoint.from_thresholds(th))


OPERATING_POINT_NOTE = (
    "at each category's own thresholds (context.thresholds; zero-shot: the batch's): good_flagged = good parts "
    "judged defect, defective_missed = defective parts judged ok, image_f1 at the verdict threshold, pixel_f1 "
    "of the written masks (empty for parts judged ok), regions_per_good = mean region count on good parts")
STANDARD_SELECTION = ("every test image (normal ones included), minus the r Stage 1 images where the pool overlaps "
                      "the test set")


def _selection(plan: Plan) -> dict[str, str]:
    """Which test images each category evaluates, in words."""
    return {c: (s.paper_rule if plan.protocol == "paper" else STANDARD_SELECTION) for c, s in plan.splits.items()}


def _mode_note(plan: Plan, config: PipelineConfig) -> str:
    """Few-shot (r normal images) or zero-shot, in words."""
    if plan.zero_shot:
        return "zero-shot: no normal image; each test image scored against the other test images"
    return f"few-shot: r = {config.num_normal} normal images per category and seed"


def build_metrics(plan: Plan, config: PipelineConfig, profile: str, tally: Tally, wall0: float) -> dict[str, Any]:
    """The metrics.json dict (JSON-safe) from the tally: seed-averaged categories, mean row, counts, notes.

    Args:
        plan: the plan.
        config: the evaluation's settings.
        profile: the resolved profile.
        tally: what the run steps accumulated.
        wall0: `time.perf_counter()` at the start.

    Returns:
        The metrics dict, NaN and infinities as None.
    """
    cats, mean, std_cat, std_mean = combine_seeds(tally.per_seed, rounded=plan.protocol == "paper")
    if plan.protocol == "paper":
        plan.notes += [f"{c}: {n}" for c, row in cats.items() for n in row.get("notes", []) if "(official rule)" in n]
    paper_note = "; pixel_*_decided: the paper protocol reading an all-zero map for every part judged ok"
    metrics: dict[str, Any] = {
        "dataset": plan.dataset,
        "profile": profile,
        "protocol": plan.protocol,
        "protocol_note": PROTOCOL_NOTES[plan.protocol],
        "seeds": plan.seeds,
        "mode": "zero-shot" if plan.zero_shot else "few-shot",
        "mode_note": _mode_note(plan, config),
        "categories": cats,
        "mean": mean,
        "images_per_second": (tally.records / tally.seconds) if tally.seconds > 0 else None,
        "failures": tally.failures,
        "eval_size": plan.eval_size,
        "resample": plan.resample,
        "selection": _selection(plan),
        "limit": plan.limit,
        "n_predicted": tally.n_predicted,
        "n_cached": tally.n_cached,
        "wall_seconds": time.perf_counter() - wall0,
        "normal_pool_rules": {c: s.pool_rule for c, s in plan.splits.items()},
        "test_counts": tally.test_counts,
        "kinds": tally.kinds,
        "kind_choices": tally.kind_choices,
        "operating_point_note": OPERATING_POINT_NOTE + (paper_note if plan.protocol == "paper" else ""),
        "root": str(plan.root),
        "config": config.model_dump(mode="json"),
        "iapas_version": __version__,
        "notes": plan.notes,
    }
    if config.profile is None:
        metrics["profile_note"] = f"--profile not given: chose {profile} (paper needs hub weights)"
    if len(plan.seeds) > 1:
        metrics["std"] = {"categories": std_cat, "mean": std_mean}
        metrics["per_seed"] = {str(s): tally.per_seed[s] for s in plan.seeds}
    return json_safe(metrics)


def run_evaluation(dataset: str, root: Path, out: Path, config: PipelineConfig, options: EvalOptions | None = None,
                   mapper: Mapper | None = None) -> dict[str, Any]:
    """Evaluate a dataset end to end and write metrics.json/.csv/.md under `out`.

    Args:
        dataset: reader name (mvtec, mtd, folder, ...).
        root: the dataset's folder.
        out: the results folder (metrics, cache/, contexts/).
        config: the pipeline settings.
        options: protocol, seeds, limit, size, mode (`EvalOptions`; None: the defaults).
        mapper: where the images still to predict run (None: `LocalMapper`; the CLI passes a Ray one for
            `--engine ray`); metrics come from the cache either way.

    Returns:
        The metrics.json dict.
    """
    opts = options or EvalOptions()
    eval_size = default_eval_size(opts.protocol) if opts.eval_size is None else opts.eval_size
    seeds = [DEFAULT_SEED] if opts.seeds is None else list(opts.seeds)
    plan = plan_evaluation(dataset, root, out, opts.categories, opts.protocol, seeds, opts.limit, eval_size,
                           opts.zero_shot)
    plan.out.mkdir(parents=True, exist_ok=True)
    profile = Pipeline(config).profile  # resolved once ("auto" probes for hub weights)
    wall0 = time.perf_counter()
    tally = Tally(per_seed={s: {} for s in seeds})
    jobs = make_jobs(plan, config, profile, opts.auto_kind, tally)
    todos = [job.todo() for job in jobs]  # one look at the cache: the progress total and each job's work
    with EvalProgress(sum(map(len, todos)), enabled=opts.progress) as bar:
        for job, todo in zip(jobs, todos):
            ctx = run_job(job, todo, plan, mapper or LocalMapper(), bar, tally)
            score_job(job, ctx, plan, tally)
    metrics = build_metrics(plan, config, profile, tally, wall0)
    write_outputs(plan.out, metrics)
    return metrics


def write_outputs(out: Path, metrics: dict[str, Any]) -> None:
    """metrics.json/.csv/.md (latest run) plus metrics_<protocol>.* so both protocols can share --out.

    Args:
        out: the results folder.
        metrics: the metrics dict (`protocol` names the second set of files).
    """
    for stem in ("metrics", f"metrics_{metrics['protocol']}"):
        atomic_write_json(out / f"{stem}.json", metrics)
        write_csv(out / f"{stem}.csv", metrics)
        write_markdown(out / f"{stem}.md", metrics)
