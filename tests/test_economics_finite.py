"""Every economics number is finite and in range, refused with a message naming the
field: a spec with `value_of_success: .nan` trained a model that became champion and
answered `none` with expected value 0 on every row, without a word. A stored bundle
whose manifest holds such a number (written by the release that let them through) is
refused by loading, listed BROKEN and never promoted."""

from __future__ import annotations

import json
import math

import pytest

from models.bundle import MANIFEST_DIGEST, BundleError, load_bundle
from models.economics import Economics
from models.registry import Registry
from training.fit import train_bundle
from training.simulate import simulate
from training.spec import Spec, SpecError

NOT_FINITE = [math.nan, math.inf, -math.inf, "nan", ".inf"]


@pytest.fixture(scope="module")
def bundle():
    log, _truth = simulate(rows=3000, seed=12)
    return train_bundle(log, learner="s", seed=12, num_threads=1, progress=False)


@pytest.mark.parametrize("raw", NOT_FINITE, ids=repr)
@pytest.mark.parametrize(
    "economics, field",
    [
        (lambda x: {"value_of_success": x}, "value_of_success"),
        (lambda x: {"cost_per_second": x}, "cost_per_second"),
        (
            lambda x: {"extra_handle_time_s": {"educate_usage": x}},
            "extra_handle_time_s.educate_usage",
        ),
    ],
    ids=["value_of_success", "cost_per_second", "extra_handle_time_s"],
)
def test_a_number_that_is_not_finite_is_refused_naming_its_field(economics, field, raw):
    with pytest.raises(ValueError, match=f"^{field} must be a"):
        Economics.from_dict(economics(raw))


@pytest.mark.parametrize(
    "data, message",
    [
        ({"value_of_success": 0}, "value_of_success must be a finite number > 0 (got 0.0)"),
        ({"cost_per_second": -0.01}, "cost_per_second must be a finite number >= 0 (got -0.01)"),
        (
            {"extra_handle_time_s": {"achieve_goals": -1}},
            "extra_handle_time_s.achieve_goals must be a finite number >= 0 (got -1.0)",
        ),
        ({"value_of_success": "a lot"}, "value_of_success must be a number (got 'a lot')"),
        ({"value_of_success": True}, "value_of_success must be a number (got True)"),
        ({"extra_handle_time_s": {"upsell": 5}}, "extra_handle_time_s: unknown activity 'upsell'"),
    ],
)
def test_numbers_out_of_range_are_refused_naming_their_field(data, message):
    with pytest.raises(ValueError) as caught:
        Economics.from_dict(data)
    assert str(caught.value) == message


def test_economics_built_directly_are_checked_too():
    """Not only from_dict: code that builds Economics itself gets the same refusal."""
    with pytest.raises(ValueError, match="value_of_success must be a finite number > 0"):
        Economics(value_of_success=math.nan)
    with pytest.raises(ValueError, match="extra_handle_time_s.validate_purchase"):
        Economics(extra_handle_time_s={"validate_purchase": math.inf})
    assert Economics(extra_handle_time_s={"validate_purchase": 600.0}).action_costs()[1] >= 0


def test_valid_economics_still_load():
    economics = Economics.from_dict(
        {
            "value_of_success": "35",
            "cost_per_second": 0,
            "extra_handle_time_s": {"achieve_goals": 0},
        }
    )
    assert economics.value_of_success == 35.0 and economics.cost_per_second == 0.0
    assert economics.extra_handle_time_s["achieve_goals"] == 0.0
    assert Economics.from_dict(None) == Economics()


@pytest.mark.parametrize("yaml_value", [".nan", ".inf", "-.inf", ".NaN"])
def test_a_spec_with_a_value_that_is_not_finite_is_refused(tmp_path, yaml_value):
    """The audit's spec: `value_of_success: .nan` is stopped before any training."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"economics:\n  value_of_success: {yaml_value}\n")
    with pytest.raises(SpecError, match="economics: value_of_success must be a finite number > 0"):
        Spec.from_file(spec)


@pytest.mark.parametrize(
    "economics, message",
    [
        ({"value_of_success": math.nan}, "value_of_success must be a finite number > 0 (got nan)"),
        (
            {"extra_handle_time_s": {"validate_purchase": math.inf}},
            "extra_handle_time_s.validate_purchase must be a finite number >= 0 (got inf)",
        ),
    ],
)
def test_a_stored_bundle_with_economics_that_are_not_finite_is_refused(
    bundle, tmp_path, economics, message
):
    """As the previous release stored it: NaN (non-standard JSON) in the manifest of a
    bundle without a manifest checksum. Refused by loading, listed BROKEN, not promoted."""
    registry = Registry(tmp_path / "reg")
    good = registry.add(bundle)
    bad = registry.add(bundle)
    manifest_file = registry.path_of(bad) / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    del manifest[MANIFEST_DIGEST]
    for key, value in economics.items():
        if isinstance(value, dict):
            manifest["economics"][key].update(value)
        else:
            manifest["economics"][key] = value
    manifest_file.chmod(0o644)
    manifest_file.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    assert "NaN" in manifest_file.read_text() or "Infinity" in manifest_file.read_text()

    expected = f"bundle {bad}: manifest.json: economics: {message}"
    with pytest.raises(BundleError, match="manifest.json: economics: "):
        load_bundle(registry.path_of(bad))
    with pytest.raises(BundleError) as caught:
        registry.load(bad)
    assert str(caught.value) == expected
    assert next(v for v in registry.versions() if v["version"] == bad)["broken"] == expected
    with pytest.raises(BundleError):
        registry.promote(bad)
    assert registry.champion() == good
