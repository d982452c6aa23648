"""`iapas run` (Stage 1 + 2), `iapas prompts` (Stage 1 only), `iapas segment` (Stage 2 from a context)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import typer

from iapas.cli import options as o
from iapas.cli.engine_options import EngineOpt, RayActorsOpt, RayAddressOpt, engine_choice
from iapas.cli.common import EXIT_STATUS_HELP, check_output_file, err_console, progress_bar, user_errors
from iapas.config import PipelineConfig, settings_digest
from iapas.context import Context
from iapas.cli.console import printable, safe
from iapas.cli.inputs import list_checked, warn_few_normals
from iapas.engines import EngineChoice, ImageJob, make_engine
from iapas.errors import EXIT_BAD_SETTINGS, SettingsError
from iapas.io.fingerprint import files_fingerprint
from iapas.preflight import ModelsMissing, check_models
from iapas.io.progress import PlainProgress, stderr_is_terminal
from iapas.outputs.run_items import cached_item, exit_code, finalize_run, process_one
from iapas.outputs.writer import (
    RESERVED_DIRS,
    ForeignLockFile,
    OutputDirLocked,
    OutsideOutput,
    check_inside,
    mark_interrupted,
    RunSummary,
    display_path,
    is_done,
    lock_output_dir,
    output_names,
    remove_stale_temp_files,
)
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
    and impossible r before any model loads."""
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
    """All inputs (files as given, folders expanded), never the run's own output folder nor mask files."""
    return list_checked([*images, *map(Path, extra)], "--images", out, include or (), exclude or ())


@contextmanager
def output_folder(out: Path, subdirs: tuple[str, ...] = ()) -> Iterator[None]:
    """Own OUT for the run: refuse a second live writer, then clear partial files a killed run left
    (in OUT and its `subdirs`)."""
    try:
        with lock_output_dir(out):
            check_inside(out, [f"{d}/-" for d in (*RESERVED_DIRS, *subdirs)])  # the run's own folders
            stale = remove_stale_temp_files(out, subdirs)
            if stale:
                err_console.print(f"removed {len(stale)} partial file(s) left by an interrupted run in {safe(out)}")
            try:
                yield
            except KeyboardInterrupt:  # stopped before or after Stage 2 wrote its own summary
                mark_interrupted(out)
                raise
    except OutputDirLocked as exc:
        raise SettingsError(f"{exc}; wait for it to finish or choose another --out") from None
    except OutsideOutput as exc:
        raise SettingsError(f"--out {printable(out)}: {exc.strerror}") from None
    except ForeignLockFile as exc:
        raise SettingsError(f"--out {printable(out)}: {printable(exc.filename)} {exc.strerror}") from None
    except FileExistsError:
        raise SettingsError(f"--out {out} exists and is not a folder") from None


def fit_or_reuse(pipeline: Pipeline, normal: Path | list[Path], out: Path) -> Context:
    """Stage 1, reusing OUT/context.json when it was made from the same settings and the same normal
    images, by content (files overwritten under the same names redo Stage 1)."""
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
    """The zero-shot context of this batch (OUT/context.json is reused when it was made for the same batch)."""
    batch = [str(Path(p).expanduser().resolve()) for p in paths]
    stamp = Stamp(settings_digest(pipeline.config, pipeline.profile, purpose="zero-shot", batch=batch))
    return reuse_or_make(out / "context.json", stamp, lambda: pipeline.fit_zero_shot(paths))[0]


def kind_record(context: Context) -> dict | None:
    """The kind of the run for summary.json: the choice with its evidence, or the one given."""
    choice = getattr(context, "kind_choice", None)
    if isinstance(choice, dict):
        return choice
    return {"kind": context.config.kind, "rule": "given (--kind or the config file)"} if context.config.kind else None


def show_kind(context: Context) -> None:
    """Say which kind (object / texture) the run uses, and why when it was chosen from the images."""
    choice = getattr(context, "kind_choice", None)
    if isinstance(choice, dict) and choice.get("kind"):
        share = choice.get("position_share")
        err_console.print(f"kind: {choice['kind']} (chosen from {choice.get('images')} images without --kind: position "
                          f"explains {max(0.0, 100 * float(share)):.0f}% of the feature variance; {choice.get('rule', '')})"
                          if isinstance(share, (int, float)) else f"kind: {choice['kind']} ({choice.get('rule', '')})")
    elif context.config.kind:
        err_console.print(f"kind: {context.config.kind}")


def show_warnings(context: Context) -> None:
    """Print the context's warnings (odd normal images, in-sample calibration, ...) on the console."""
    for warning in context.warnings:
        err_console.print(f"[yellow]warning[/]: {safe(warning)}", soft_wrap=True)


def check_maps(maps: str) -> str:
    """`--maps` checked before any model loads."""
    chosen = maps.strip().lower()
    if chosen not in MAP_FORMATS:
        raise SettingsError(f"--maps {maps!r} is not known; allowed: {', '.join(MAP_FORMATS)}")
    return chosen


def process_images(pipeline: Pipeline, context: Context, paths: list[Path], out: Path, context_file: Path,
                   roots: list[Path] | None = None, export: tuple[str, ...] = (), fail_on_defect: bool = False,
                   engine: EngineChoice | None = None, maps: str = DEFAULT_MAPS) -> int:
    """Stage 2 over all paths: skip finished ones, record failures, keep going; return the exit code.

    `maps` is the score maps' format (io.scoremaps); an image finished in another format is redone.
    The images still to do go to the engine (`local`: this process; `ray`: a Ray actor pool), which runs
    `run_items.process_one` on each and yields one outcome per image in any order; summary.json is rewritten
    after every outcome (atomically), so a killed run leaves an accurate record; at the end (and on Ctrl-C /
    SIGTERM, with `interrupted: true`) `finalize_run` writes summary.json, results.csv, report.html and the
    exports.
    """
    digest = settings_digest(context.config, context.profile, context=context.model_dump_json())
    names = output_names(paths, roots)
    summary = RunSummary(out_dir=out, profile=context.profile, settings_digest=digest, context=str(context_file),
                         threshold=decision_threshold(context), mode=context.reference.mode,
                         threshold_rule=threshold_rule(context), kind=kind_record(context))
    for path in paths:
        summary.record(path, names[path], "pending")
    summary.save()
    start, done_now = time.perf_counter(), 0
    plain = None if stderr_is_terminal() else PlainProgress(f"{context.profile} profile", len(paths))
    try:
        with progress_bar() as bar:
            task = bar.add_task(f"{context.profile} profile", total=len(paths), rate="")
            todo: list[ImageJob] = []
            for path in paths:
                name = names[path]
                if is_done(out, name, digest, source=path, maps=maps):
                    summary.record(path, name, "ok", cached=True, **cached_item(out, name, context))
                    bar.update(task, advance=1)
                else:
                    todo.append(ImageJob(path, name))
            summary.save()
            i = len(paths) - len(todo)
            work = process_one if maps == DEFAULT_MAPS else partial(process_one, maps=maps)
            for outcome in make_engine(engine, work, pipeline, context, out, digest).map(todo):
                if outcome.fatal is not None:
                    raise outcome.fatal  # model or settings problems stop the run with their own message
                if outcome.status == "ok":
                    summary.record(outcome.path, outcome.name, "ok", **(outcome.extra or {}))
                    done_now += 1
                else:
                    reason = outcome.error or "failed"
                    err_console.print(f"[red]failed[/] {safe(display_path(outcome.path))}: {safe(reason)}", soft_wrap=True)
                    summary.record(outcome.path, outcome.name, "failed", error=reason)
                summary.save()
                i += 1
                rate = done_now / max(time.perf_counter() - start, 1e-9)
                bar.update(task, advance=1, rate=f"{rate:.1f} img/s")
                if plain is not None:
                    v = summary.verdicts()
                    plain.update(i, done_now, f"; {v['defect']} defect, {summary.counts().get('failed', 0)} failed")
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
    return exit_code(summary, fail_on_defect)


def settled_threshold(summary: RunSummary, context: Context) -> None:
    """The threshold the images were judged at: a zero-shot batch sets its own while it is scored."""
    seen = [i["threshold"] for i in summary.items.values() if i.get("status") == "ok" and i.get("threshold") is not None
            and not i.get("cached")]
    if seen:
        summary.threshold = float(seen[-1])
    if context.thresholds is not None and context.thresholds.verdict is not None:
        summary.threshold_rule = threshold_rule(context)  # zero-shot: set by the batch (context.json keeps none,
        # so a rerun's settings digest, and with it the reuse of finished images, stays the same)


def input_roots(images: list[Path], extra: list[str]) -> list[Path]:
    """The folders given as inputs: their sub-folders are mirrored under OUT."""
    return [p for p in (*images, *map(Path, extra)) if p.is_dir()]


def models_missing(out: Path, profile: str, exc: ModelsMissing) -> None:
    """Record in OUT/summary.json that the run stopped before any image because models are missing."""
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
    """Add run, prompts and segment."""

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
            from iapas.cli.evaluate import zero_shot_config

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
