"""VEA_VALUE_CONFIG has one reader (service.config.read_value_config): the start-up check
and every value report read the file through it, so they cannot disagree on a field."""

from __future__ import annotations

import pytest

from service.config import Settings, ValueConfigError, read_value_config
from service.reports import value_settings


def test_a_report_reads_the_value_config_as_the_start_up_checks_it(tmp_path):
    """The file is read again by each report (an edit applies without a restart), with the
    start-up's checks: a list of measures written as one string was read letter by
    letter by the report (its own reader), though the start-up refuses it."""
    path = tmp_path / "value.yaml"
    path.write_text("success_measures: [ve_success, ves]\nvalue_of_retention: 150\n")
    settings = Settings.from_env({"VEA_VALUE_CONFIG": str(path)})
    used = value_settings(settings)
    assert used.declared_measures == ("ve_success", "ves") and used.value_of_retention == 150.0
    path.write_text("success_measures: ve_success,ves\n")
    with pytest.raises(ValueError) as refused:
        value_settings(settings)
    assert str(refused.value).startswith(f"VEA_VALUE_CONFIG: {path}: success_measures: ")
    with pytest.raises(ValueError) as at_start:
        Settings.from_env({"VEA_VALUE_CONFIG": str(path)})
    assert str(at_start.value) == str(refused.value)


def test_fields_left_out_keep_the_settings_and_an_empty_declared_at_is_refused(tmp_path):
    path = tmp_path / "value.yaml"
    path.write_text("cost_per_second: 0.05\n")
    settings = Settings.from_env(
        {"VEA_VALUE_CONFIG": str(path), "VEA_SUCCESS_MEASURES_DECLARED_AT": "2026-01-01"}
    )
    used = value_settings(settings)
    assert used.cost_per_second == 0.05 and used.value_of_retention == settings.value_of_retention
    assert used.declared_measures == ("ve_success", "retained_60d", "ves")
    assert used.declared_at == "2026-01-01" and used.reward.name == "ve_success"
    path.write_text("declared_at:\n")
    with pytest.raises(ValueError, match="declared_at: empty"):
        Settings.from_env({"VEA_VALUE_CONFIG": str(path)})


def test_the_api_answers_a_broken_value_config_with_its_field_not_a_500(make_app, tmp_path):
    """The file is read by each report: edited wrongly while the service runs, the report
    cannot be made; the answer names the file's field (the operator's to mend) in the
    error body, and mended, the next report reads it without a restart."""
    path = tmp_path / "value.yaml"
    path.write_text("value_of_retention: 150\n")
    app = make_app(value_config=str(path))
    client = app.test_client()
    manager = {"Authorization": keys_for(app, "manager")}
    assert client.get("/v1/reports/value", headers=manager).status_code == 200
    path.write_text("value_of_retention: lots\n")
    answer = client.get("/v1/reports/value", headers=manager)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    error = answer.get_json()["error"]
    assert error["code"] == "unavailable"
    assert f"VEA_VALUE_CONFIG: {path}: value_of_retention: not a number" in error["message"]
    path.write_text("value_of_retention: 120\n")
    again = client.get("/v1/reports/value", headers=manager)
    assert again.status_code == 200


@pytest.mark.parametrize(
    "content",
    [
        b"declared_at: 2026-02-30\n",  # YAML builds a date no calendar has
        b"value_of_retention: 150\n# caf\xe9\n",  # Latin-1, not UTF-8
    ],
)
def test_a_value_config_yaml_cannot_read_is_refused_naming_the_file(make_app, tmp_path, content):
    """The loader's own ValueError (a bad date, bytes that are not UTF-8) escaped the
    check: a bare 'day is out of range for month' at start-up, a 500 from the report."""
    path = tmp_path / "value.yaml"
    path.write_text("value_of_retention: 150\n")
    app = make_app(value_config=str(path))
    path.write_bytes(content)
    with pytest.raises(ValueConfigError, match=f"^VEA_VALUE_CONFIG: {path}: "):
        read_value_config(str(path))
    with pytest.raises(ValueError, match="^VEA_VALUE_CONFIG: "):
        Settings.from_env({"VEA_VALUE_CONFIG": str(path)})
    client = app.test_client()
    answer = client.get("/v1/reports/value", headers={"Authorization": keys_for(app, "manager")})
    assert answer.status_code == 503, answer.get_json()
    assert "VEA_VALUE_CONFIG: " in answer.get_json()["error"]["message"]


def keys_for(app, role: str) -> str:
    from service.auth import create_key

    return f"Bearer {create_key(app.extensions['vea'].engine, role)[1]}"
