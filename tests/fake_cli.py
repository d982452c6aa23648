"""Entry point for subprocess tests: the real `iapas` CLI with MeanDiffProfile instead of model loading.

FAKE_PROFILE_DELAY (seconds per image) slows Stage 2 down so a test can kill the process midway.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import iapas.pipeline  # noqa: E402
from fake_profile import MeanDiffProfile  # noqa: E402


class SlowMeanDiff(MeanDiffProfile):
    def predict(self, image, context):  # type: ignore[no-untyped-def]
        time.sleep(float(os.environ.get("FAKE_PROFILE_DELAY", "0")))
        return super().predict(image, context)


iapas.pipeline.make_runner = lambda profile, config: SlowMeanDiff(config, profile)

if __name__ == "__main__":
    from iapas.cli.app import main

    main()
