"""`iapas run` (Stage 1 + 2), `iapas prompts` (Stage 1 only), `iapas segment` (Stage 2 from a context)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from iapas.cli import options as o
from iapas.cli.common import err_console, progress_bar, user_errors
from iapas.config import PipelineConfig, settings_digest
from iapas.context import Context
from iapas.errors import EXIT_NOTHING_DONE, EXIT_SOME_FAILED, InputError, SettingsError
from iapas.io.images import list_images, load_image
from iapas.outputs.writer import RunSummary, is_done, output_names, write_prediction
from iapas.pipeline import Pipeline

RUN_EXAMPLES = """
Examples:

  iapas run --normal good/ --images to_check/ --out results/

  iapas run --normal good/ --images a.png b.png --out results/ --profile paper --kind texture

  iapas run --normal good/ --images lot7/ --out r/ --tagger none --object "magnetic tile" --llm none
"""


def check_normal_folder(normal: Path, config: PipelineConfig, r_given: bool) -> None:
    """Reject unusable normal folders and impossible r before any model loads."""
    if not normal.exists():
        raise SettingsError(f"--normal {normal} does not exist")
    found = list_images([normal])
    if not found:
        raise SettingsError(f"--normal {normal} holds no images (.png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp)")
    if r_given and config.num_normal > len(found):
        raise SettingsError(
            f"--num-normal {config.num_normal} is larger than the {len(found)} normal images in {normal}; "
            f"allowed: 1..{len(found)}"
        )


def collect_images(images: list[Path], extra: list[str]) -> list[Path]:
    paths = list_images([*images, *map(Path, extra)])
    if not paths:
        raise SettingsError("no images given: --images takes image files and/or folders")
    return paths


def fit_or_reuse(pipeline: Pipeline, normal: Path, out: Path) -> Context:
    """Stage 1, reusing OUT/context.json when it was made from the same settings and normal images."""
    ctx_path = out / "context.json"
    chosen = [str(p) for p in pipeline.select_normal(normal)]
    if ctx_path.is_file():
        try:
            old = Context.load(ctx_path)
            if old.config == pipeline.config and old.normal_images == chosen and old.profile == pipeline.profile:
                err_console.print(f"reusing Stage 1 context {ctx_path}")
                return old
        except SettingsError:
            pass
    context = pipeline.fit(normal)
    context.save(ctx_path)
    return context


def process_images(pipeline: Pipeline, context: Context, paths: list[Path], out: Path, context_file: Path) -> int:
    """Stage 2 over all paths: skip finished ones, record failures, keep going; return the exit code."""
    digest = settings_digest(context.config, context.profile, context=context.model_dump_json())
    names = output_names(paths)
    summary = RunSummary(out_dir=out, profile=context.profile, settings_digest=digest, context=str(context_file))
    start, done_now = time.perf_counter(), 0
    with progress_bar() as bar:
        task = bar.add_task(f"{context.profile} profile", total=len(paths), rate="")
        for path in paths:
            name = names[path]
            if is_done(out, name, digest):
                summary.record(path, name, "ok", cached=True)
            else:
                try:
                    loaded = load_image(path)
                    pred = pipeline.predict_one(loaded, context)
                    write_prediction(out, name, loaded.rgb, pred, digest)
                    summary.record(path, name, "ok", image_score=round(float(pred.image_score), 6), notes=pred.notes)
                    done_now += 1
                except InputError as exc:
                    err_console.print(f"[red]failed[/] {exc.path}: {exc.reason}", soft_wrap=True)
                    summary.record(path, name, "failed", error=exc.reason)
            summary.save()
            rate = done_now / max(time.perf_counter() - start, 1e-9)
            bar.update(task, advance=1, rate=f"{rate:.1f} img/s")
    counts = summary.counts()
    n_ok, n_failed = counts.get("ok", 0), counts.get("failed", 0)
    err_console.print(f"{n_ok} processed, {n_failed} failed; results in {out} (summary.json), profile: {context.profile}")
    if n_failed and not n_ok:
        return EXIT_NOTHING_DONE
    return EXIT_SOME_FAILED if n_failed else 0


def _pipeline(config: PipelineConfig) -> Pipeline:
    pipeline = Pipeline(config)
    if config.profile is None:
        err_console.print(f"profile: {pipeline.profile} (auto: {'hub weights found' if pipeline.profile == 'paper' else 'no hub weights present'})")
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
        normal: Annotated[Path, typer.Option("--normal", help="folder of normal (good) images")],
        images: Annotated[list[Path], typer.Option("--images", help="image files or folders to check (several after one --images)")],
        out: Annotated[Path, typer.Option("--out", help="output folder")],
        flags: dict | None = None,
    ) -> None:
        config = o.config_from_flag_dict(flags or {})
        check_normal_folder(normal, config, r_given=(flags or {}).get("num_normal") is not None)
        paths = collect_images(images, ctx.args)
        pipeline = _pipeline(config)
        context = fit_or_reuse(pipeline, normal, out)
        raise typer.Exit(process_images(pipeline, context, paths, out, out / "context.json"))

    @app.command(help="Run Stage 1 only: write a reviewable, editable context JSON.", epilog="Example:\n\n  iapas prompts --normal good/ --out context.json")
    @user_errors
    @o.with_pipeline_flags
    def prompts(
        normal: Annotated[Path, typer.Option("--normal", help="folder of normal (good) images")],
        out: Annotated[Path, typer.Option("--out", help="context JSON to write")],
        flags: dict | None = None,
    ) -> None:
        config = o.config_from_flag_dict(flags or {})
        check_normal_folder(normal, config, r_given=(flags or {}).get("num_normal") is not None)
        context = _pipeline(config).fit(normal)
        context.save(out)
        err_console.print(f"context written to {out} (profile {context.profile}); final prompt: {', '.join(context.final_prompt) or '-'}")

    @app.command(
        context_settings={"allow_extra_args": True},
        help="Run Stage 2 from a saved context (no tagger or LLM is loaded).",
        epilog="Example:\n\n  iapas segment --context context.json --images lot7/ --out results/",
    )
    @user_errors
    def segment(
        ctx: typer.Context,
        context_file: Annotated[Path, typer.Option("--context", help="context JSON written by `iapas prompts`")],
        images: Annotated[list[Path], typer.Option("--images", help="image files or folders to check")],
        out: Annotated[Path, typer.Option("--out", help="output folder")],
        device: o.DeviceOpt = None,
    ) -> None:
        context = Context.load(context_file)
        paths = collect_images(images, ctx.args)
        config = context.config.model_copy(update={"profile": context.profile, **({"device": device} if device else {})})
        pipeline = Pipeline(config)
        raise typer.Exit(process_images(pipeline, context, paths, out, context_file))
