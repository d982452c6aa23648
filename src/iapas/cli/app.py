"""Entry point of the `iapas` command; each sub-module registers its commands on the Typer app."""
from __future__ import annotations

import sys

import typer

from iapas.errors import EXIT_BAD_SETTINGS, EXIT_NOTHING_DONE, EXIT_SOME_FAILED

EPILOG = (
    f"Exit status: 0 all inputs processed; {EXIT_SOME_FAILED} some inputs failed (summary.json says which); "
    f"{EXIT_NOTHING_DONE} nothing could be processed; {EXIT_BAD_SETTINGS} invalid settings or missing models; "
    "5 (run/segment with --fail-on-defect) an image is a defect; 130 interrupted."
)

app = typer.Typer(
    name="iapas",
    help="Zero-shot industrial anomaly segmentation with image-aware prompts (IAP-AS).",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _register_all() -> None:
    # Imported here so `iapas --help` stays quick and no model code loads at import time.
    from iapas.cli import calibrate, compare, demo, doctor, evaluate, run, serve
    from iapas.cli.options import hide_flag_types

    hide_flag_types()
    for module in (run, calibrate, evaluate, demo, doctor, compare, serve):
        module.register(app)


def main() -> None:
    from iapas.threads import passive_wait

    passive_wait()  # before torch loads: idle OpenMP workers sleep instead of spinning on a shared machine
    _register_all()
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted; finished results are kept, rerun the same command to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
