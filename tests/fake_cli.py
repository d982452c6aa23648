"""Entry point for subprocess tests: the real `iapas` CLI with MeanDiffProfile instead of model loading.

`SlowMeanDiff` is registered through the real registry under the built-in profile names (each copy keeps
what the built-in declares), so the CLI finds it by name as it finds any profile. FAKE_PROFILE_DELAY
(seconds per image) slows Stage 2 down so a test can kill the process midway.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fake_profile import BUILT_IN, MeanDiffProfile, stand_in  # noqa: E402
from iapas.profiles.registry import register_profile  # noqa: E402


class SlowMeanDiff(MeanDiffProfile):
    def predict(self, image, context):  # type: ignore[no-untyped-def]
        time.sleep(float(os.environ.get("FAKE_PROFILE_DELAY", "0")))
        return super().predict(image, context)


for _name in BUILT_IN:
    register_profile(_name)(stand_in(SlowMeanDiff, _name))

if __name__ == "__main__":
    from iapas.cli.app import main

    main()
