"""What the higher apps plug into profiles (pipeline stages, door filters, profile panels,
privacy handlers) is registered in their AppConfig.ready(), in the order the data needs."""

from __future__ import annotations

import pytest

from profiles import panels, privacy
from profiles.collector import door
from profiles.pipeline import stages


def test_pipeline_stages_run_in_order() -> None:
    assert [s.name for s in stages.stages()] == [
        "suppression",  # consent: events of suppressed people out first
        "identity",
        "consent",  # consent: decisions recorded against the resolved profiles
        "computed_traits",
        "segments",  # segments: reads the consent state and the computed traits
        "activation",  # activation: forwarded events, synced members whose traits changed
        "counters",  # hot rows every batch shares
        "decisions",  # activation: decision records of the batch's profiles, caps, exposures
        "segments-counts",  # segments: member counts, the last write (shortest row lock)
    ]


def test_the_apps_plug_in_their_parts() -> None:
    assert len(door.filters()) == 1  # consent's suppression list
    assert [p.key for p in panels.panels()] == ["segments", "model_scores", "consents"]
    # export in app order, deletion in reverse (higher apps' rows point at profiles)
    assert [h.app for h in privacy.handlers()] == [
        "profiles",
        "consent",
        "segments",
        "activation",
    ]


def test_a_panel_slot_must_exist() -> None:
    bad = panels.ProfilePanel(key="x", order=1, api=lambda p: None, templates={"top": "x.html"})
    with pytest.raises(ValueError, match=r"unknown slots \['top'\]"):
        panels.register(bad)
    assert "x" not in [p.key for p in panels.panels()]
