"""The checks every section shares (seg/config/checks.py)."""

from __future__ import annotations

import pytest

from seg.config import ConfigError
from seg.config.checks import auto_or, did_you_mean, one_of


def test_did_you_mean_is_one_hint_or_nothing():
    assert did_you_mean("cbma", ("se", "cbam", "scse")) == " Did you mean 'cbam'?"
    assert did_you_mean("xyz", ("se", "cbam", "scse")) == ""
    assert did_you_mean("chanels", ["channels"], prefix="model.") == " Did you mean 'model.channels'?"
    assert did_you_mean("zz", ["zscore"], cutoff=0.2) == " Did you mean 'zscore'?"


def test_one_of_lists_the_choices_and_the_nearest():
    one_of("model.norm", "batch", ("instance", "batch"))
    with pytest.raises(
        ConfigError,
        match=r"^model.norm must be one of instance, batch, got 'bach'. "
        r"Did you mean 'batch'\?$",
    ):
        one_of("model.norm", "bach", ("instance", "batch"))


@pytest.mark.parametrize(
    "value, message",
    [
        ("atuo", r"^x must be 'auto' or int, got 'atuo'.$"),
        (True, r"^x must be 'auto' or int, got True.$"),
        (0, r"^x must be 'auto' or >= 1, got 0.$"),
    ],
)
def test_auto_or_takes_auto_or_the_kind(value, message):
    auto_or("x", "auto", int, minimum=1)
    auto_or("x", 2, int, minimum=1)
    with pytest.raises(ConfigError, match=message):
        auto_or("x", value, int, minimum=1)
