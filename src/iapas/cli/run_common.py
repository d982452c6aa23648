"""What `run`, `segment` and `evaluate` share: owning the output folder, the zero-shot profile rule, and the
per-image work of `run` / `segment`."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iapas.cli.common import err_console
from iapas.cli.console import printable, safe
from iapas.config import PipelineConfig
from iapas.context import Context
from iapas.engines import ImageJob
from iapas.errors import SettingsError
from iapas.io.scoremaps import DEFAULT_MAPS
from iapas.outputs.run_items import process_one
from iapas.outputs.writer import (
    RESERVED_DIRS,
    ForeignLockFile,
    OutputDirLocked,
    OutsideOutput,
    check_inside,
    lock_output_dir,
    mark_interrupted,
    remove_stale_temp_files,
)
from iapas.profiles.registry import batch_profiles


@contextmanager
def output_folder(out: Path, subdirs: tuple[str, ...] = ()) -> Iterator[None]:
    """Own OUT for the run: refuse a second live writer, then clear partial files a killed run left
    (in OUT and its `subdirs`).

    Args:
        out: the output folder.
        subdirs: the run's own sub-folders (never read as input).

    Returns:
        A context manager holding the folder's lock; on Ctrl-C it marks the summary interrupted.
    """
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


def zero_shot_config(config: PipelineConfig) -> PipelineConfig:
    """Zero-shot mode is a batch mode: choose the first profile that has one when no profile is given,
    refuse a profile without one.

    Args:
        config: the run's settings.

    Returns:
        The settings with the first batch profile (`offline`) when none was given.

    Raises:
        SettingsError: another profile was asked for.
    """
    if config.profile is None:
        return config.model_copy(update={"profile": batch_profiles()[0]})
    if config.profile not in batch_profiles():
        raise SettingsError(f"zero-shot mode (no normal images) needs --profile {' or '.join(batch_profiles())}, "
                            f"not {config.profile}")
    return config


@dataclass(frozen=True)
class WriteOutputs:
    """The per-image work of `run` and `segment`: predict one image and write its files under `out_dir`
    (picklable, so Ray actors run the same code).

    Attributes:
        out_dir: the run's output folder.
        digest: the settings digest the outputs are stamped with (resume).
        maps: the score maps' format (`io.scoremaps`).
    """

    out_dir: Path
    digest: str
    maps: str = DEFAULT_MAPS

    def __call__(self, pipeline: Any, context: Context, task: ImageJob) -> dict[str, Any]:
        """Process `task.path` into OUT/`task.name`*; return its summary item (raises InputError for a bad input)."""
        return process_one(pipeline, context, task.path, self.out_dir, task.name, self.digest, maps=self.maps)
