"""`iapas run` (Stage 1 + 2), `iapas prompts` (Stage 1 only), `iapas segment` (Stage 2 from a context)."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from iapas.cli import options as o
from iapas.cli.engine_options import EngineOpt, RayActorsOpt, RayAddressOpt, engine_choice
from iapas.cli.common import EXIT_STATUS_HELP, err_console, progress_bar, user_errors
from iapas.config import PipelineConfig, settings_digest
from iapas.context import Context
from iapas.engines import EngineChoice, ImageJob, make_engine
from iapas.errors import EXIT_NOTHING_DONE, EXIT_SOME_FAILED, InputError, SettingsError
from iapas.io.images import SUPPORTED_TEXT, list_images, load_image
from iapas.models.preflight import check_models
from iapas.outputs.writer import (
    OutputDirLocked,
    RunSummary,
    display_path,
    is_done,
    lock_output_dir,
    output_names,
    remove_stale_temp_files,
    write_prediction,
)
from iapas.pipeline import Pipeline

RUN_EXAMPLES = f"""
Examples:

  iapas run --normal good/ --images to_check/ --out results/

  iapas run --normal good/ --images a.png b.png --out results/ --profile paper --kind texture

  iapas run --normal good/ --images lot7/ --out r/ --tagger none --object "magnetic tile" --llm none

  iapas run --normal good/ --images lot7/ --out r/ ; echo $?   # 0 ok, 3 some failed, 4 none, 2 bad settings

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


def check_normal_folder(normal: Path, config: PipelineConfig, r_given: bool) -> None:
    """Reject unusable normal folders and impossible r before any model loads."""
    if not normal.exists():
        raise SettingsError(f"--normal {normal} does not exist")
    found = [p for p in list_images([normal]) if not p.is_dir()]
    if not found:
        raise SettingsError(f"--normal {normal} holds no images ({SUPPORTED_TEXT})")
    r_given = r_given or "num_normal" in config.model_fields_set  # from a flag or the config file
    if r_given and config.num_normal > len(found):
        raise SettingsError(
            f"--num-normal {config.num_normal} is larger than the {len(found)} normal images in {normal}; "
            f"allowed: 1..{len(found)}"
        )


def collect_images(images: list[Path], extra: list[str], out: Path | None = None) -> list[Path]:
    """All inputs (files as given, folders expanded), never the run's own output folder."""
    paths = list_images([*images, *map(Path, extra)], exclude=[out] if out is not None else None)
    if not paths:
        raise SettingsError("no images given: --images takes image files and/or folders")
    return paths


@contextmanager
def output_folder(out: Path, subdirs: tuple[str, ...] = ()) -> Iterator[None]:
    """Own OUT for the run: refuse a second live writer, then clear partial files a killed run left
    (in OUT and its `subdirs`)."""
    try:
        with lock_output_dir(out):
            stale = remove_stale_temp_files(out, subdirs)
            if stale:
                err_console.print(f"removed {len(stale)} partial file(s) left by an interrupted run in {escape(str(out))}")
            yield
    except OutputDirLocked as exc:
        raise SettingsError(f"{exc}; wait for it to finish or choose another --out") from None
    except FileExistsError:
        raise SettingsError(f"--out {out} exists and is not a folder") from None


def fit_or_reuse(pipeline: Pipeline, normal: Path, out: Path) -> Context:
    """Stage 1, reusing OUT/context.json when it was made from the same settings and normal images."""
    ctx_path = out / "context.json"
    chosen = [str(p) for p in pipeline.select_normal(normal)]
    if ctx_path.is_file():
        try:
            old = Context.load(ctx_path)
            if old.config == pipeline.config and old.normal_images == chosen and old.profile == pipeline.profile:
                err_console.print(f"reusing Stage 1 context {escape(str(ctx_path))}")
                return old
        except SettingsError:
            pass
    context = pipeline.fit(normal)
    context.save(ctx_path)
    return context


def _cached_item(out: Path, name: str) -> dict[str, Any]:
    """What the summary repeats about an image finished by an earlier run."""
    try:
        meta = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
        return {"image_score": meta.get("image_score"), "notes": meta.get("notes", [])}
    except (OSError, ValueError):
        return {}


def _predict_and_write(pipeline: Pipeline, context: Context, path: Path, out: Path, name: str, digest: str) -> dict[str, Any]:
    loaded = load_image(path)
    pred = pipeline.predict_one(loaded, context)
    try:
        write_prediction(out, name, loaded.rgb, pred, digest, source=path, original_size=loaded.original_size)
    except OSError as exc:  # disk full, folder not writable: not the input's fault, but say so per image
        raise InputError(path, f"cannot write its outputs to {out} ({exc.strerror or exc})") from None
    return {"image_score": round(float(pred.image_score), 6), "notes": pred.notes}


def process_images(
    pipeline: Pipeline, context: Context, paths: list[Path], out: Path, context_file: Path,
    engine: EngineChoice | None = None,
) -> int:
    """Stage 2 over all paths: skip finished ones, record failures, keep going; return the exit code.

    The images still to do go to the engine (`local`: this process; `ray`: a Ray actor pool), which yields
    one outcome per image in any order. summary.json is rewritten after every outcome (atomically), so a
    killed run leaves an accurate record; on Ctrl-C / SIGTERM it is saved with `interrupted: true` and the
    KeyboardInterrupt goes on up.
    """
    digest = settings_digest(context.config, context.profile, context=context.model_dump_json())
    names = output_names(paths)
    summary = RunSummary(out_dir=out, profile=context.profile, settings_digest=digest, context=str(context_file))
    for path in paths:
        summary.record(path, names[path], "pending")
    summary.save()
    start, done_now = time.perf_counter(), 0
    try:
        with progress_bar() as bar:
            task = bar.add_task(f"{context.profile} profile", total=len(paths), rate="")
            todo: list[ImageJob] = []
            for path in paths:
                name = names[path]
                if is_done(out, name, digest, source=path):
                    summary.record(path, name, "ok", cached=True, **_cached_item(out, name))
                    bar.update(task, advance=1)
                else:
                    todo.append(ImageJob(path, name))
            summary.save()
            for outcome in make_engine(engine, _predict_and_write, pipeline, context, out, digest).map(todo):
                if outcome.fatal is not None:
                    raise outcome.fatal  # model or settings problems stop the run with their own message
                if outcome.status == "ok":
                    summary.record(outcome.path, outcome.name, "ok", **(outcome.extra or {}))
                    done_now += 1
                else:
                    reason = outcome.error or "failed"
                    err_console.print(f"[red]failed[/] {escape(display_path(outcome.path))}: {escape(reason)}", soft_wrap=True)
                    summary.record(outcome.path, outcome.name, "failed", error=reason)
                summary.save()
                rate = done_now / max(time.perf_counter() - start, 1e-9)
                bar.update(task, advance=1, rate=f"{rate:.1f} img/s")
    except KeyboardInterrupt:
        summary.interrupted = True
        summary.save()
        raise
    counts = summary.counts()
    n_ok, n_failed = counts.get("ok", 0), counts.get("failed", 0)
    n_cached = sum(1 for i in summary.items.values() if i.get("cached"))
    reused = f" ({n_cached} reused from an earlier run)" if n_cached else ""
    err_console.print(
        f"{n_ok} processed{reused}, {n_failed} failed; results in {escape(str(out))} (summary.json), "
        f"profile: {context.profile}",
        soft_wrap=True,
    )
    if n_failed and not n_ok:
        return EXIT_NOTHING_DONE
    return EXIT_SOME_FAILED if n_failed else 0


def _pipeline(config: PipelineConfig, stage2_only: bool = False) -> Pipeline:
    """The pipeline with its profile resolved and its model references checked, still without loading any."""
    pipeline = Pipeline(config)
    check_models(config, pipeline.profile, stage2_only=stage2_only)
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
        engine: EngineOpt = "local",
        ray_address: RayAddressOpt = None,
        ray_actors: RayActorsOpt = None,
        flags: dict | None = None,
    ) -> None:
        config = o.config_from_flag_dict(flags or {})
        check_normal_folder(normal, config, r_given=(flags or {}).get("num_normal") is not None)
        chosen = engine_choice(engine, ray_address, ray_actors)
        paths = collect_images(images, ctx.args, out)
        pipeline = _pipeline(config)
        with output_folder(out):
            context = fit_or_reuse(pipeline, normal, out)
            code = process_images(pipeline, context, paths, out, out / "context.json", chosen)
        raise typer.Exit(code)

    @app.command(help="Run Stage 1 only: write a reviewable, editable context JSON.", epilog=PROMPTS_EXAMPLES)
    @user_errors
    @o.with_pipeline_flags
    def prompts(
        normal: Annotated[Path, typer.Option("--normal", help="folder of normal (good) images")],
        out: Annotated[Path, typer.Option("--out", help="context JSON to write")],
        flags: dict | None = None,
    ) -> None:
        config = o.config_from_flag_dict(flags or {})
        check_normal_folder(normal, config, r_given=(flags or {}).get("num_normal") is not None)
        if out.is_dir():
            raise SettingsError(f"--out {out} is a folder; give the context file to write, e.g. {out / 'context.json'}")
        context = _pipeline(config).fit(normal)
        context.save(out)
        err_console.print(f"context written to {out} (profile {context.profile}); final prompt: {', '.join(context.final_prompt) or '-'}")

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
        engine: EngineOpt = "local",
        ray_address: RayAddressOpt = None,
        ray_actors: RayActorsOpt = None,
    ) -> None:
        chosen = engine_choice(engine, ray_address, ray_actors)
        context = Context.load(context_file)
        paths = collect_images(images, ctx.args, out)
        config = context.config.model_copy(update={"profile": context.profile, **({"device": device} if device else {})})
        pipeline = _pipeline(config, stage2_only=True)
        with output_folder(out):
            if chosen.name == "local":
                _ = pipeline.runner  # load the models once, before any image, so a model problem is one clear error
            code = process_images(pipeline, context, paths, out, context_file, chosen)
        raise typer.Exit(code)
