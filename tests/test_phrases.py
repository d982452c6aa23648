"""One phrase rule for detector labels, tags and the object tag (issue 13: three copies had drifted)."""
from __future__ import annotations

from iapas.models import detector as detection
from iapas.stages import object_tag, size_filter
from iapas.phrases import normalize_phrase, phrase_words


def test_every_stage_compares_phrases_with_the_same_rule() -> None:
    assert normalize_phrase(" Magnetic  Tile. ") == "magnetic tile"
    assert detection.raw_label("Magnetic [SEP] tile.") == normalize_phrase("magnetic tile")
    assert size_filter.normalize_phrase is normalize_phrase and object_tag.normalize_phrase is normalize_phrase
    assert phrase_words("Metal-Nut nut") == {"metal", "nut"}
