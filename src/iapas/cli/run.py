"""`iapas run` (Stage 1 + 2), `iapas prompts` (Stage 1 only), `iapas segment` (Stage 2 from a context)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from iapas.cli import options as o
from iapas.cli.engine_options import EngineOpt, RayActorsOpt, RayAddressOpt, engine_choice
from iapas.cli.common import EXIT_STATUS_HELP, check_output_file, err_console, progress_bar, user_errors
from iapas.config import PipelineConfig, settings_digest
from iapas.context import Context
from iapas.cli.console import printable, safe
from iapas.cli.inputs import list_checked, warn_few_normals
from iapas.cli.run_common import WriteOutputs, output_folder, zero_shot_config
from iapas.engines import EngineChoice, ImageJob, Mapper, Outcome, make_mapper
from iapas.errors import EXIT_BAD_SETTINGS, SettingsError
from iapas.io.fingerprint import files_fingerprint
from iapas.preflight import ModelsMissing, check_models
from iapas.io.progress import PlainProgress, stderr_is_terminal
from iapas.outputs.run_items import cached_item, exit_code, finalize_run
from iapas.outputs.writer import RunSummary, display_path, is_done, output_names, remove_stale_temp_files
from iapas.io.resume import Stamp
from iapas.io.scoremaps import DEFAULT_MAPS, MAP_FORMATS
from iapas.pipeline import Pipeline, reuse_or_make
from iapas.verdict import decision_threshold, threshold_rule, with_verdict_threshold

RUN_EXAMPLES = f"""
Examples:

  iapas run --normal good/ --images to_check/ --out results/

  iapas run --normal good/ --images a.png b.png --out results/ --profile paper --kind texture

  iapas run --normal good/ --images lot7/ --out r/ --tagger none --object "magnetic tile"

  iapas run --normal good/ --images lot7/ --out r/ ; echo $?   # 0 ok, 3 some failed, 4 none

  iapas run --normal good/ --images lot7/ --out r/ --fail-on-defect --export coco   # 5: defect

  (verdicts: r/results.csv; overview: r/report.html; COCO annotations: r/annotations.json)

  (killed or Ctrl-C? run the same command again: finished images are reused)

{EXIT_STATUS_HELP}
"""
PROMPTS_EXAMPLES = f"""
Examples:

  iapas prompts --normal good/ --out context.json

  iapas prompts --normal good/ --out context.json --tagger none --object "magnetic tile" --llm none

{EXIT_STATUS_HELP}
"""
SEGMENT_EXAMPLES = f"""
Examples:

  iapas segment --context context.json --images lot7/ --out results/

  iapas segment --context context.json --images a.png "b c.tif" --out results/ || cat results/summary.json

{EXIT_STATUS_HELP}
"""


def check_normal_folder(
    normal: Path, config: PipelineConfig, r_given: bool, out: Path | None = None,
    include: list[str] | None = None, exclude: list[str] | None = None,
) -> list[Path]:
    """The normal images Stage 1 samples from (no output folder, no masks); reject unusable folders
    and impossible r before any model loads.

    Args:
        normal: the `--normal` folder.
        config: the run's settings (r = `num_normal`).
        r_given: `--num-normal` was given on the command line.
        out: the output folder (never read as input).
        include: glob patterns an input must match.
        exclude: glob patterns that drop an input.

    Returns:
        The normal image files.
    """
    if not normal.exists():
        raise SettingsError(f"--normal {printable(normal)} does not exist")
    found = [p for p in list_checked([normal], "--normal", out, include or (), exclude or ()) if not p.is_dir()]
    r_given = r_given or "num_normal" in config.model_fields_set  # from a flag or the config file
    if r_given and config.num_normal > len(found):
        raise SettingsError(
            f"--num-normal {config.num_normal} is larger than the {len(found)} normal images in "
            f"{printable(normal)}; allowed: 1..{len(found)}"
        )
    warn_few_normals(len(found), config.num_normal, normal)
    return found


def collect_images(
    images: list[Path], extra: list[str], out: Path | None = None,
    include: list[str] | None = None, exclude: list[str] | None = None,
) -> list[Path]:
    """All inputs (files as given, folders expanded), never the run's own output folder nor mask files.

    Args:
        images: the `--images` values.
        extra: further paths given after them.
        out: the output folder.
        include: glob patterns an input must match.
        exclude: glob patterns that drop an input.

    Returns:
        The input files, in listing order.
    """
    return list_checked([*images, *map(Path, extra)], "--images", out, include or (), exclude or ())


def fit_or_reuse(pipeline: Pipeline, normal: Path | list[Path], out: Path) -> Context:
    """Stage 1, reusing OUT/context.json when it was made from the same settings and the same normal
    images, by content (files overwritten under the same names redo Stage 1).

    Args:
        pipeline: the run's pipeline.
        normal: the normal folder or images.
        out: the output folder (holds context.json).

    Returns:
        The Stage 1 context.
    """
    sampled = pipeline.select_normal(normal)
    fingerprint = files_fingerprint(sampled)  # paths, sizes and bytes of the r images
    stamp = Stamp(settings_digest(pipeline.config, pipeline.profile, purpose="stage1"), fingerprint)

    def make() -> Context:
        context = pipeline.fit(sampled)  # the r images chosen above: no second listing of the folder
        context.normal_fingerprint = fingerprint
        return context

    context, reused = reuse_or_make(out / "context.json", stamp, make)
    if reused:
        err_console.print(f"reusing Stage 1 context {safe(out / 'context.json')}")
    return context


def zero_shot_or_reuse(pipeline: Pipeline, paths: list[Path], out: Path) -> Context:
    """The zero-shot context of this batch (OUT/context.json is reused when it was made for the same batch).

    Args:
        pipeline: the run's pipeline (offline profile).
        paths: the batch's images.
        out: the output folder.

    Returns:
        The batch's context.
    """
    batch = [str(Path(p).expanduser().resolve()) for p in paths]
    stamp = Stamp(settings_digest(pipeline.config, pipeline.profile, purpose="zero-shot", batch=batch))
    return reuse_or_make(out / "context.json", stamp, lambda: pipeline.fit_zero_shot(paths))[0]


def kind_record(context: Context) -> dict | None:
    """The kind of the run for summary.json: the choice with its evidence, or the one given.

    Args:
        context: the Stage 1 context.

    Returns:
        The kind record, or None when the kind was neither given nor chosen.
    """
    choice = getattr(context, "kind_choice", None)
    if isinstance(choice, dict):
        return choice
    return {"kind": context.config.kind, "rule": "given (--kind or the config file)"} if context.config.kind else None


def show_kind(context: Context) -> None:
    """Say which kind (object / texture) the run uses, and why when it was chosen from the images.

    Args:
        context: the Stage 1 context.
    """
    choice = getattr(context, "kind_choice", None)
    if isinstance(choice, dict) and choice.get("kind"):
        share = choice.get("position_share")
        err_console.print(f"kind: {choice['kind']} (chosen from {choice.get('images')} images without --kind: position "
                          f"explains {max(0.0, 100 * float(share)):.0f}% of the feature variance; {choice.get('rule', '')})"
                          if isinstance(share, (int, float)) else f"kind: {choice['kind']} ({choice.get('rule', '')})")
    elif context.config.kind:
        err_console.print(f"kind: {context.config.kind}")


def show_warnings(context: Context) -> None:
    """Print the context's warnings (odd normal images, in-sample calibration, ...) on the console.

    Args:
        context: the Stage 1 context.
    """
    for warning in context.warnings:
        err_console.print(f"[yellow]warning[/]: {safe(warning)}", soft_wrap=True)


def check_maps(maps: str) -> str:
    """`--maps` checked before any model loads.

    Args:
        maps: the flag's value.

    Returns:
        The format name, lower case.
    """
    chosen = maps.strip().lower()
    if chosen not in MAP_FORMATS:
        raise SettingsError(f"--maps {maps!r} is not known; allowed: {', '.join(MAP_FORMATS)}")
    return chosen


def _new_summary(context: Context, paths: list[Path], names: dict[Path, str], out: Path, context_file: Path,
                 digest: str) -> RunSummary:
    """summary.json with every input pending, saved before any image is processed."""
    summary = RunSummary(out_dir=out, profile=context.profile, settings_digest=digest, context=str(context_file),
                         threshold=decision_threshold(context), mode=context.reference.mode,
                         threshold_rule=threshold_rule(context), kind=kind_record(context))
    for path in paths:
        summary.record(path, names[path], "pending")
    summary.save()
    return summary


def _record_outcome(summary: RunSummary, outcome: Outcome[ImageJob]) -> bool:
    """Put one mapped image into the summary (a failure is also printed); return True when it succeeded."""
    job = outcome.task
    if outcome.status == "ok":
        summary.record(job.path, job.name, "ok", **(outcome.value or {}))
        return True
    reason = outcome.failure.reason if outcome.failure else "failed"
    err_console.print(f"[red]failed[/] {safe(display_path(job.path))}: {safe(reason)}", soft_wrap=True)
    summary.record(job.path, job.name, "failed", error=reason)
    return False


def _map_todo(pipeline: Pipeline, context: Context, paths: list[Path], names: dict[Path, str],
              summary: RunSummary, work: WriteOutputs, mapper: Mapper) -> None:
    """Record the images finished by an earlier run, map the others, and keep summary.json current."""
    start, done_now = time.perf_counter(), 0
    plain = None if stderr_is_terminal() else PlainProgress(f"{context.profile} profile", len(paths))
    with progress_bar() as bar:
        task = bar.add_task(f"{context.profile} profile", total=len(paths), rate="")
        todo: list[ImageJob] = []
        for path in paths:
            name = names[path]
            if is_done(work.out_dir, name, work.digest, source=path, maps=work.maps):
                summary.record(path, name, "ok", cached=True, **cached_item(work.out_dir, name, context))
                bar.update(task, advance=1)
            else:
                todo.append(ImageJob(path, name))
        summary.save()
        i = len(paths) - len(todo)
        for outcome in mapper.map(pipeline, context, work, todo):  # a model or settings problem raises here
            done_now += _record_outcome(summary, outcome)
            summary.save()
            i += 1
            rate = done_now / max(time.perf_counter() - start, 1e-9)
            bar.update(task, advance=1, rate=f"{rate:.1f} img/s")
            if plain is not None:
                v = summary.verdicts()
                plain.update(i, done_now, f"; {v['defect']} defect, {summary.counts().get('failed', 0)} failed")


def _print_totals(summary: RunSummary, files: Any, out: Path, context: Context) -> None:
    """The closing line: processed, reused, failed, verdicts and where the results are."""
    counts, verdicts = summary.counts(), summary.verdicts()
    n_ok, n_failed = counts.get("ok", 0), counts.get("failed", 0)
    n_cached = sum(1 for i in summary.items.values() if i.get("cached"))
    reused = f" ({n_cached} reused from an earlier run)" if n_cached else ""
    extra = f", {files.annotations.name}" if files.annotations else ""
    err_console.print(
        f"{n_ok} processed{reused}, {n_failed} failed; {verdicts['defect']} defect, {verdicts['ok']} ok at image-score "
        f"threshold {summary.threshold:.3f}; results in {safe(out)} (report.html, results.csv, summary.json"
        f"{extra}), profile: {context.profile}"
        + (f", mode: {context.reference.mode}" if context.reference.mode else ""),
        soft_wrap=True,
    )


def process_images(pipeline: Pipeline, context: Context, paths: list[Path], out: Path, context_file: Path,
                   roots: list[Path] | None = None, export: tuple[str, ...] = (), fail_on_defect: bool = False,
                   engine: EngineChoice | None = None, maps: str = DEFAULT_MAPS) -> int:
    """Stage 2 over all paths: skip finished ones, record failures, keep going; return the exit code.

    The images still to do go to the chosen mapper (`local`: this process; `ray`: a Ray actor pool), which
    applies `WriteOutputs` to each and yields one outcome per image in any order; summary.json is rewritten
    after every outcome (atomically), so a killed run leaves an accurate record; at the end (and on Ctrl-C /
    SIGTERM, with `interrupted: true`) `finalize_run` writes summary.json, results.csv, report.html and the
    exports.

    Args:
        pipeline: the pipeline whose models predict.
        context: the Stage 1 context.
        paths: the inputs, in order.
        out: the output folder (locked by the caller).
        context_file: where the context is stored (recorded in the summary).
        roots: input folders whose sub-folders are mirrored under `out`.
        export: extra export formats ("coco").
        fail_on_defect: exit 5 when a part is judged defect.
        engine: the engine flags (None: local).
        maps: the score maps' format (io.scoremaps); an image finished in another format is redone.

    Returns:
        The exit status (0 ok, 3 some failed, 4 none processed, 5 defect with `fail_on_defect`).
    """
    digest = settings_digest(context.config, context.profile, context=context.model_dump_json())
    names = output_names(paths, roots)
    summary = _new_summary(context, paths, names, out, context_file, digest)
    mapper = make_mapper(engine, tidy=remove_stale_temp_files)
    try:
        _map_todo(pipeline, context, paths, names, summary, WriteOutputs(out, digest, maps), mapper)
        settled_threshold(summary, context)
        files = finalize_run(out, summary, context, export)
    except KeyboardInterrupt:  # also while the whole-run files are written: the summary must say so
        summary.interrupted = True
        summary.save()
        try:  # results.csv and report.html of what was done; the interrupt goes on up whatever happens
            finalize_run(out, summary, context, export)
        except Exception:  # noqa: BLE001
            pass
        raise
    _print_totals(summary, files, out, context)
    return exit_code(summary, fail_on_defect)


def settled_threshold(summary: RunSummary, context: Context) -> None:
    """The threshold the images were judged at: a zero-shot batch sets its own while it is scored.

    Args:
        summary: the run's summary (updated in place).
        context: the Stage 1 context.
    """
    seen = [i["threshold"] for i in summary.items.values() if i.get("status") == "ok" and i.get("threshold") is not None
            and not i.get("cached")]
    if seen:
        summary.threshold = float(seen[-1])
    if context.thresholds is not None and context.thresholds.verdict is not None:
        summary.threshold_rule = threshold_rule(context)  # zero-shot: set by the batch (context.json keeps none,
        # so a rerun's settings digest, and with it the reuse of finished images, stays the same)


def input_roots(images: list[Path], extra: list[str]) -> list[Path]:
    """The folders given as inputs: their sub-folders are mirrored under OUT.

    Args:
        images: the `--images` values.
        extra: further paths given after them.

    Returns:
        The inputs that are folders.
    """
    return [p for p in (*images, *map(Path, extra)) if p.is_dir()]


def models_missing(out: Path, profile: str, exc: ModelsMissing) -> None:
    """Record in OUT/summary.json that the run stopped before any image because models are missing.

    Args:
        out: the output folder.
        profile: the resolved profile.
        exc: the preflight's error (which models, why, how to fetch them).
    """
    try:
        summary = RunSummary(out_dir=out, profile=profile, settings_digest="", setup_error={
            "kind": "models_missing", "message": str(exc), "exit_status": EXIT_BAD_SETTINGS,
            "missing": [{"flag": m.flag, "ref": m.ref, "reason": m.reason, "fetch": m.fetch} for m in exc.missing]})
        out.mkdir(parents=True, exist_ok=True)
        summary.save()
    except OSError:
        pass  # the error message itself still reaches the user


def _pipeline(config: PipelineConfig, stage2_only: bool = False, out: Path | None = None) -> Pipeline:
    """The pipeline with its profile resolved and every model reference checked, still without loading any;
    when models are missing, OUT/summary.json says so (exit status 2)."""
    pipeline = Pipeline(config)
    try:
        check_models(config, pipeline.profile, stage2_only=stage2_only)
    except ModelsMissing as exc:
        if out is not None:
            models_missing(out, pipeline.profile, exc)
        raise
    if config.profile is None:
        err_console.print(f"profile: {pipeline.profile} (auto: {pipeline.auto_reason})")
    return pipeline


def register(app: typer.Typer) -> None:
    """Add run, prompts and segment.

    Args:
        app: the typer application the commands join.
    """
    _register_run(app)
    _register_prompts(app)
    _register_segment(app)


def _register_run(app: typer.Typer) -> None:
    """Add `run`: Stage 1 then Stage 2."""

    @app.command(
        context_settings={"allow_extra_args": True},
        epilog=RUN_EXAMPLES,
        help="Run Stage 1 on normal images and Stage 2 on the images to check.",
    )
    @user_errors
    @o.with_pipeline_flags
    def run(
        ctx: typer.Context,
        images: Annotated[list[Path], typer.Option("--images", help="image files or folders to check (several after one --images)")],
        out: Annotated[Path, typer.Option("--out", help="output folder")],
        normal: Annotated[Optional[Path], typer.Option("--normal", help="folder of normal (good) images; without it: zero-shot mode (offline profile), the images are scored against each other")] = None,
        include: o.IncludeOpt = None,
        exclude: o.ExcludeOpt = None,
        maps: o.MapsOpt = DEFAULT_MAPS,
        export: o.ExportOpt = None,
        verdict_threshold: o.VerdictThresholdOpt = None,
        fail_on_defect: o.FailOnDefectOpt = False,
        engine: EngineOpt = "local",
        ray_address: RayAddressOpt = None,
        ray_actors: RayActorsOpt = None,
        flags: dict | None = None,
    ) -> None:
        config = o.config_from_flag_dict(flags or {})
        formats = o.parse_export(export)
        maps = check_maps(maps)
        chosen = engine_choice(engine, ray_address, ray_actors)
        if normal is None:
            config = zero_shot_config(config)
            normals: list[Path] = []
        else:
            normals = check_normal_folder(normal, config, (flags or {}).get("num_normal") is not None, out, include, exclude)
        paths = collect_images(images, ctx.args, out, include, exclude)
        pipeline = _pipeline(config, out=out)
        with output_folder(out):
            if normal is None:
                err_console.print(f"zero-shot mode: no --normal given, the {len(paths)} images are scored against each other")
                context = zero_shot_or_reuse(pipeline, paths, out)
            else:
                context = fit_or_reuse(pipeline, normals, out)
            context = with_verdict_threshold(context, verdict_threshold)
            show_kind(context)
            show_warnings(context)
            code = process_images(pipeline, context, paths, out, out / "context.json", input_roots(images, ctx.args),
                                  formats, fail_on_defect, chosen, maps)
        raise typer.Exit(code)


def _register_prompts(app: typer.Typer) -> None:
    """Add `prompts`: Stage 1 only."""

    @app.command(help="Run Stage 1 only: write a reviewable, editable context JSON.", epilog=PROMPTS_EXAMPLES)
    @user_errors
    @o.with_pipeline_flags
    def prompts(
        normal: Annotated[Path, typer.Option("--normal", help="folder of normal (good) images")],
        out: Annotated[Path, typer.Option("--out", help="context JSON to write")],
        include: o.IncludeOpt = None,
        exclude: o.ExcludeOpt = None,
        flags: dict | None = None,
    ) -> None:
        config = o.config_from_flag_dict(flags or {})
        normals = check_normal_folder(normal, config, (flags or {}).get("num_normal") is not None, None, include, exclude)
        if out.is_dir():
            raise SettingsError(f"--out {out} is a folder; give the context file to write, e.g. {out / 'context.json'}")
        check_output_file(out)
        context = _pipeline(config).fit(normals)
        show_warnings(context)
        context.save(out)
        show_kind(context)
        err_console.print(f"context written to {safe(out)} (profile {context.profile}); final prompt: "
                          f"{safe(', '.join(context.final_prompt) or '-')}")


def _register_segment(app: typer.Typer) -> None:
    """Add `segment`: Stage 2 from a saved context."""

    @app.command(
        context_settings={"allow_extra_args": True},
        help="Run Stage 2 from a saved context (no tagger or LLM is loaded).",
        epilog=SEGMENT_EXAMPLES,
    )
    @user_errors
    def segment(
        ctx: typer.Context,
        context_file: Annotated[Path, typer.Option("--context", help="context JSON written by `iapas prompts`")],
        images: Annotated[list[Path], typer.Option("--images", help="image files or folders to check")],
        out: Annotated[Path, typer.Option("--out", help="output folder")],
        device: o.DeviceOpt = None,
        threads: o.ThreadsOpt = None,
        include: o.IncludeOpt = None,
        exclude: o.ExcludeOpt = None,
        maps: o.MapsOpt = DEFAULT_MAPS,
        export: o.ExportOpt = None,
        verdict_threshold: o.VerdictThresholdOpt = None,
        fail_on_defect: o.FailOnDefectOpt = False,
        engine: EngineOpt = "local",
        ray_address: RayAddressOpt = None,
        ray_actors: RayActorsOpt = None,
    ) -> None:
        formats = o.parse_export(export)
        maps = check_maps(maps)
        chosen = engine_choice(engine, ray_address, ray_actors)
        context = with_verdict_threshold(Context.load(context_file), verdict_threshold)
        paths = collect_images(images, ctx.args, out, include, exclude)
        config = Pipeline.from_context(context, device=device or None, threads=threads or None).config
        pipeline = _pipeline(config, stage2_only=True, out=out)
        show_warnings(context)
        with output_folder(out):
            code = process_images(pipeline, context, paths, out, context_file, input_roots(images, ctx.args),
                                  formats, fail_on_defect, chosen, maps)
        raise typer.Exit(code)
