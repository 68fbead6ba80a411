"""Logs exported by Japanese CRM/ACD systems: Japanese headers and category values mapped
by the spec, Excel's CP932 and UTF-8 with a byte order mark, CRLF line ends, local times
without an offset, full-width digits, thousands separators and words for missing cells.
Each either trains the model the clean log trains or is refused naming row and field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from core_fixtures import simulated

from training.cli import cli
from training.loading import DataError, load_log
from training.spec import Spec, SpecError

# canonical: the export's header
HEADERS = {
    "interaction_id": "問い合わせID",
    "customer_id": "顧客ID",
    "occurred_at": "問い合わせ日時",
    "channel": "チャネル",
    "issue_type": "問い合わせ種別",
    "segment": "顧客区分",
    "persona": "ペルソナ",
    "tenure_months": "購入後月数",
    "switching_effort": "乗換負担",
    "prior_contacts_30d": "過去30日問い合わせ数",
    "sentiment": "感情スコア",
    "language": "言語",
}
# canonical column: {vea's value: the export's}
WORDS = {
    "channel": {
        "voice": "電話",
        "chat": "チャット",
        "email": "メール",
        "messaging": "メッセージ",
        "self_service": "セルフ",
    },
    "issue_type": {
        "inquiry": "問合せ",
        "how_to": "使い方",
        "billing": "請求",
        "technical": "故障",
        "order_change": "注文変更",
        "complaint": "苦情",
        "cancellation": "解約",
    },
    "segment": {
        "consumer": "個人",
        "premium": "プレミアム",
        "small_business": "小規模法人",
        "enterprise": "法人",
    },
    "switching_effort": {"low": "低", "high": "高"},
}
ACTIVITY_WORDS = {
    "none": "なし",
    "validate_purchase": "購入の確認",
    "anticipate_needs": "先回り提案",
    "achieve_goals": "目標達成",
    "educate_usage": "使い方案内",
    "advise_new_uses": "新しい使い方",
}
SPEC = {
    "columns": HEADERS,
    "values": {name: {ja: ours for ours, ja in words.items()} for name, words in WORDS.items()},
    "activity": {"column": "提案", "values": {ja: ours for ours, ja in ACTIVITY_WORDS.items()}},
    "propensity": "提案確率",
    "success": {"column": "価値向上", "positive": "はい"},
    "missing": ["ー", "なし"],
    "timezone": "Asia/Tokyo",
    "encoding": "cp932",
}


@pytest.fixture(autouse=True)
def compile_cache(tmp_path_factory, monkeypatch):
    """Compiled forests go to a test directory, never into the working tree."""
    monkeypatch.setenv("VEA_COMPILE_CACHE", str(tmp_path_factory.getbasetemp() / "compiled"))


def japanese_export(log: pd.DataFrame) -> pd.DataFrame:
    """The log as a Japanese CRM writes it: its headers, its words, JST wall-clock times
    in the Japanese format (``2026/1/1 9:05``, no offset), はい/いいえ for the outcome."""
    out = pd.DataFrame({HEADERS[name]: log[name] for name in HEADERS})
    for name, words in WORDS.items():
        out[HEADERS[name]] = log[name].map(words)
    local = log["occurred_at"].dt.tz_convert("Asia/Tokyo")
    out[HEADERS["occurred_at"]] = [
        f"{t.year}/{t.month}/{t.day} {t.hour}:{t.minute:02d}:{t.second:02d}" for t in local
    ]
    out["提案"] = log["activity"].map(ACTIVITY_WORDS)
    out["提案確率"] = log["propensity"]
    out["価値向上"] = np.where(log["ve_success"] == 1, "はい", "いいえ")
    return out


def small_log(rows: int = 40) -> pd.DataFrame:
    return simulated(3000, 5)[0].head(rows).reset_index(drop=True)


def vea(*args, registry):
    return CliRunner().invoke(cli, [str(a) for a in args], env={"VEA_REGISTRY": str(registry)})


# ------------------------------------------------------------------ value mapping
def test_japanese_values_are_mapped_onto_vea_ids(tmp_path):
    log = small_log()
    path = tmp_path / "ja.csv"
    japanese_export(log).to_csv(path, index=False, encoding="utf-8")
    frame = load_log(path, Spec.from_dict(SPEC))
    for name in WORDS:
        assert frame[name].tolist() == log[name].tolist(), name
    assert frame["activity"].tolist() == log["activity"].tolist()  # なし is `none` there


def test_a_value_the_mapping_does_not_list_is_refused_naming_each(tmp_path):
    export = japanese_export(small_log())
    export.loc[4, "チャネル"] = "FAX"
    export.loc[9, "チャネル"] = "SNS"
    path = tmp_path / "ja.csv"
    export.to_csv(path, index=False)
    with pytest.raises(DataError) as caught:
        load_log(path, Spec.from_dict(SPEC))
    message = str(caught.value)
    assert "row 5, field チャネル (channel): value 'FAX' is not in values.channel" in message
    assert "'SNS'" in message  # all at once, not one per run


def test_a_value_mapped_to_null_is_missing(tmp_path):
    export = japanese_export(small_log())
    export.loc[2, "乗換負担"] = "不明"
    path = tmp_path / "ja.csv"
    export.to_csv(path, index=False)
    spec = yaml.safe_load(yaml.safe_dump(SPEC, allow_unicode=True))
    spec["values"]["switching_effort"]["不明"] = None
    frame = load_log(path, Spec.from_dict(spec))
    assert pd.isna(frame.loc[2, "switching_effort"])
    assert frame["switching_effort"].notna().sum() == len(frame) - 1


def test_mappings_the_api_could_never_serve_are_refused():
    bad_channel = dict(SPEC, values={"channel": {"電話": "phone"}})
    with pytest.raises(SpecError, match=r"values.channel .*'phone'.*'voice'"):
        Spec.from_dict(bad_channel)
    with pytest.raises(SpecError, match="activity.values"):
        Spec.from_dict(dict(SPEC, values={"activity": {"なし": "none"}}))
    with pytest.raises(SpecError, match="values.チャネル is not a canonical column"):
        Spec.from_dict(dict(SPEC, values={"チャネル": {"電話": "voice"}}))


# ------------------------------------------------------------ numbers as Excel writes them
def test_full_width_digits_thousands_separators_and_missing_words(tmp_path):
    log = small_log()
    export = japanese_export(log).astype({"購入後月数": object, "過去30日問い合わせ数": object})
    export.loc[0, "過去30日問い合わせ数"] = "１２"
    export.loc[1, "購入後月数"] = "1,200"
    export.loc[2, "購入後月数"] = "ー"
    export.loc[3, "乗換負担"] = "なし"
    export.loc[4, "感情スコア"] = np.nan  # a blank cell
    path = tmp_path / "ja.csv"
    export.to_csv(path, index=False)
    frame = load_log(path, Spec.from_dict(SPEC))
    assert frame.loc[0, "prior_contacts_30d"] == 12
    assert frame.loc[1, "tenure_months"] == 1200
    assert np.isnan(frame.loc[2, "tenure_months"])
    assert pd.isna(frame.loc[3, "switching_effort"])
    assert np.isnan(frame.loc[4, "sentiment"])
    assert (frame["activity"] == "none").sum() == (log["activity"] == "none").sum()

    export.loc[5, "購入後月数"] = "1,2"  # no thousands separator: refused, not 12
    export.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"row 6, field 購入後月数 \(tenure_months\): not a number"):
        load_log(path, Spec.from_dict(SPEC))
    without = {k: v for k, v in SPEC.items() if k != "missing"}  # ー and なし are words then
    with pytest.raises(
        DataError, match=r"row 4, field 乗換負担 \(switching_effort\): value 'なし'"
    ):
        load_log(path, Spec.from_dict(without))


# --------------------------------------------------------------------- time zones
def test_times_without_an_offset_are_local_to_the_spec_timezone(tmp_path):
    log = small_log(3)
    export = japanese_export(log)
    export[HEADERS["occurred_at"]] = ["2026/11/27 9:05", "2026-11-27T09:05:00+09:00", ""]
    path = tmp_path / "ja.csv"
    export.to_csv(path, index=False)
    frame = load_log(path, Spec.from_dict(SPEC))
    nine_past_midnight_utc = pd.Timestamp("2026-11-27 00:05", tz="UTC")
    assert frame["occurred_at"].iloc[:2].tolist() == [nine_past_midnight_utc] * 2
    assert pd.isna(frame["occurred_at"].iloc[2])
    # Without a timezone a time without an offset is UTC (design: the log is in UTC).
    utc = Spec.from_dict({k: v for k, v in SPEC.items() if k != "timezone"})
    assert load_log(path, utc)["occurred_at"].iloc[0] == pd.Timestamp("2026-11-27 09:05", tz="UTC")

    # Parquet: a naive column is local time there; an aware one is its own instant.
    naive = export.copy()
    naive[HEADERS["occurred_at"]] = pd.to_datetime(["2026-11-27 09:05"] * 3)
    naive.to_parquet(tmp_path / "naive.parquet")
    frame = load_log(tmp_path / "naive.parquet", Spec.from_dict(SPEC))
    assert frame["occurred_at"].tolist() == [nine_past_midnight_utc] * 3
    aware = naive.copy()
    aware[HEADERS["occurred_at"]] = naive[HEADERS["occurred_at"]].dt.tz_localize("Europe/Paris")
    aware.to_parquet(tmp_path / "aware.parquet")
    frame = load_log(tmp_path / "aware.parquet", Spec.from_dict(SPEC))
    assert frame["occurred_at"].iloc[0] == pd.Timestamp("2026-11-27 08:05", tz="UTC")


def test_a_timezone_that_is_no_zone_name_is_refused():
    with pytest.raises(SpecError, match="timezone 'JST' is not a time zone name.*Asia/Tokyo"):
        Spec.from_dict(dict(SPEC, timezone="JST"))


# ---------------------------------------------------------------------- encodings
def test_excel_csv_in_cp932_or_utf8_with_bom_and_crlf(tmp_path):
    log = small_log()
    export = japanese_export(log)
    export.loc[0, "ペルソナ"] = "①髙橋様"  # CP932 only: Shift_JIS has neither character
    export.to_csv(tmp_path / "cp932.csv", index=False, encoding="cp932", lineterminator="\r\n")
    export.to_csv(tmp_path / "bom.csv", index=False, encoding="utf-8-sig", lineterminator="\r\n")
    spec = Spec.from_dict(SPEC)
    from_cp932 = load_log(tmp_path / "cp932.csv", spec)
    from_bom = load_log(tmp_path / "bom.csv", spec)  # UTF-8 is read as UTF-8 whatever the spec
    pd.testing.assert_frame_equal(from_cp932, from_bom)
    assert from_cp932.loc[0, "persona"] == "①髙橋様"
    assert from_cp932["channel"].tolist() == log["channel"].tolist()

    without = Spec.from_dict({k: v for k, v in SPEC.items() if k != "encoding"})
    with pytest.raises(DataError, match=r"not UTF-8 text \(line 1.*`encoding: cp932`"):
        load_log(tmp_path / "cp932.csv", without)
    with pytest.raises(SpecError, match="encoding 'sjis-excel' is unknown"):
        Spec.from_dict(dict(SPEC, encoding="sjis-excel"))


def test_the_bundle_keeps_the_export_format():
    """A model trained with the spec reads the next export of the same system."""
    spec = Spec.from_dict(SPEC)
    again = Spec.from_dict(spec.to_dict())
    assert again.values == spec.values and again.missing == ["ー", "なし"]
    assert (again.timezone, again.encoding) == ("Asia/Tokyo", "cp932")


# ------------------------------------------------------- through the CLI, end to end
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The same log, clean and as a CP932 Japanese export, each trained."""
    root = tmp_path_factory.mktemp("japanese")
    log = simulated(3000, 5)[0]
    log.to_parquet(root / "clean.parquet")
    export = japanese_export(log)
    export["問い合わせID"] = "問" + log["interaction_id"]
    export.to_csv(root / "ja.csv", index=False, encoding="cp932", lineterminator="\r\n")
    (root / "ja.yaml").write_text(yaml.safe_dump(SPEC, allow_unicode=True), encoding="utf-8")
    versions = {}
    for name, extra in (("clean", []), ("ja", ["--spec", root / "ja.yaml"])):
        data = root / ("clean.parquet" if name == "clean" else "ja.csv")
        args = ["train", "--data", data, *extra, "--learner", "s", "--threads", 1]
        result = vea(*args, "--quiet", "--no-compile", registry=root / "reg")
        assert result.exit_code == 0, result.output
        versions[name] = result.stdout.split()[0]  # "VERSION" or "VERSION (champion)"
    return root, versions


def test_a_japanese_export_trains_the_model_the_clean_log_trains(trained):
    root, versions = trained
    for name, data in (("clean", "clean.parquet"), ("ja", "ja.csv")):
        args = ["score", "--model", versions[name], "--data", root / data]
        result = vea(*args, "--out", root / f"{name}.scored.csv", registry=root / "reg")
        assert result.exit_code == 0, result.output
    clean = pd.read_csv(root / "clean.scored.csv")
    ja = pd.read_csv(root / "ja.scored.csv")
    probabilities = [c for c in clean.columns if c.startswith("p_") or c == "openness"]
    pd.testing.assert_frame_equal(clean[probabilities], ja[probabilities])
    assert ja["suggested_activity"].tolist() == clean["suggested_activity"].tolist()


def test_scores_open_in_japanese_excel(trained):
    """Excel reads a CSV without a byte order mark in CP932: the Japanese ids of the
    export would turn to mojibake."""
    root, versions = trained
    out = root / "for_excel.csv"
    args = ["score", "--model", versions["ja"], "--data", root / "ja.csv", "--out", out]
    result = vea(*args, registry=root / "reg")
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.decode("utf-8-sig").splitlines()[1].startswith("問sim-")


def test_the_report_shows_the_export_in_japanese(trained):
    root, versions = trained
    report = root / "report.html"
    args = ["evaluate", "--model", versions["ja"], "--data", root / "ja.csv"]
    result = vea(*args, "--report", report, "--bootstrap", 50, registry=root / "reg")
    assert result.exit_code == 0, result.output
    html = report.read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in html
    assert "価値向上 = はい" in html  # the success as the spec says it


def test_training_says_which_values_live_decisions_never_send(tmp_path):
    log = simulated(3000, 5)[0]
    japanese_export(log).to_parquet(tmp_path / "ja.parquet")
    spec = {k: v for k, v in SPEC.items() if k != "values"}
    (tmp_path / "ja.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    args = ["train", "--data", tmp_path / "ja.parquet", "--spec", tmp_path / "ja.yaml"]
    result = vea(
        *args, "--learner", "s", "--threads", 1, "--quiet", "--no-compile", registry=tmp_path
    )
    assert result.exit_code == 0, result.output
    assert "note: channel holds 電話" in result.output
    assert "which the decision API never sends (it takes voice, chat" in result.output
    assert "values: {switching_effort: ...}" in result.output
