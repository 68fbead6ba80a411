"""Agent-facing wording: talk tracks (an operations-editable YAML file) and the pages'
own labels in Japanese and English."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import yaml

from models import fallback, reasons
from service.config import PACKAGE_DIR

LANGUAGES = ("en", "ja")
TALK_TRACKS = PACKAGE_DIR / "content" / "talk_tracks.yaml"

_lock = threading.Lock()
_cache: dict[Path, tuple[float, dict[str, Any]]] = {}


def talk_tracks(path: Path = TALK_TRACKS) -> dict[str, Any]:
    """The file's content, re-read when its modification time changes (operations edit
    it in place; no restart needed)."""
    mtime = path.stat().st_mtime
    with _lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    with _lock:
        _cache[path] = (mtime, data)
    return data


def _said_in(texts: dict[str, str] | None, language: str) -> str | None:
    return (texts or {}).get(language) or None


def talk_track(activity: str, issue_type: str | None, language: str) -> str | None:
    """The activity's track for the issue type, else its default, in ``language``; in
    English only when neither has that language. The language comes first: a Japanese
    agent reads the Japanese default rather than an English-only issue track."""
    tracks = (talk_tracks().get("tracks") or {}).get(activity) or {}
    for said in (language, "en"):
        for key in (issue_type or "", "default"):
            text = _said_in(tracks.get(key), said)
            if text:
                return text
    return None


def resolve_text(language: str) -> str:
    """What a quiet desk tells the agent to do: the file's ``resolve`` text, else the
    shared hint of ``none`` in the same language (never the other language's text)."""
    return _said_in(talk_tracks().get("resolve"), language) or fallback.hints()[language]["none"]


def pick_language(requested: str | None, cookie: str | None, accept: Any) -> str:
    """An explicit switch (query), then the remembered switch (cookie), then the
    browser's Accept-Language."""
    for candidate in (requested, cookie):
        if candidate in LANGUAGES:
            return candidate
    return accept.best_match(LANGUAGES, default="en") if accept else "en"


# One source with the routing reasons, which name activities the same way.
ACTIVITY_NAMES = reasons.ACTIVITY_NAMES

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "desk_title": "Agent desk",
        "dashboard_title": "Value dashboard",
        "summary": "Summary",
        "login_title": "Sign in",
        "api_key": "API key",
        "sign_in": "Sign in",
        "sign_out": "Sign out",
        "login_help": "Paste the API key you were given. It is checked once and never shown again.",
        "bad_key": "That key is not valid or has been revoked.",
        "openness": "Openness",
        "band_low": "low",
        "band_medium": "medium",
        "band_high": "high",
        "suggested": "Suggested activity",
        "talk_track": "Talk track",
        "why": "Why",
        "route": "Route",
        "fallbacks": "Fallbacks",
        "earlier": "Earlier contact",
        "earlier_line": "{channel} contact {when} · issue: {issue} · suggested: {activity}",
        "earlier_outcome": "Its outcome: {outcome}",
        "no_outcome": "none recorded",
        "offered": "Offered",
        "accepted": "Accepted",
        "declined": "Declined",
        "skipped": "Skipped",
        "what_happened": "What happened",
        "ves": "VES (customer, 1–7)",
        "ves_confidence": "More confident in the purchase",
        "ves_ability": "Helped get more value",
        "record": "Record",
        "recorded": "Recorded.",
        "choose_first": "Choose what happened first.",
        "resolve": "Resolve effortlessly",
        "record_outcome": "Record the outcome",
        "degraded": "Degraded answer (model or database unavailable): rules were used.",
        "holdout": "Control group: no value activity for this customer.",
        "shortcuts": "Keys: O offered · A accepted · D declined · S skipped · 1–7 VES · Enter record",
        # Turns off the letter and digit keys above (Enter stays): WCAG 2.1.4.
        "keys_off": "Turn off the letter and digit keys",
        "language": "Language",
        "bad_request": "This desk link is incomplete or malformed",
        "bad_request_help": "The desktop must open the desk with the interaction's details.",
        "missing": "missing: {names}",
        "not_found": "No such decision.",
        "forbidden": "Your key's role may not open this page.",
        "error": "Something went wrong",
        "busy": "The reports are busy computing other figures: try again in {seconds} s.",
        "period": "Period",
        "from": "From",
        "to": "To (incl.)",
        "apply": "Apply",
        "last_7": "Last 7 days",
        "last_30": "Last 30 days",
        "last_90": "Last 90 days",
        "all_time": "All time",
        "custom_dates": "Custom dates",
        "not_available": "Not available yet",
        "download_csv": "CSV",
        # A chart's description for screen readers: where its figures are as text.
        "chart_table": "The same figures are in the table “{title}” below.",
        "trend": "VES and success over time",
        "uplift": "Uplift over the holdout (95% CI)",
        "results_by": "Results by {what}",
        "pools": "Pools and agent proficiency",
        "drift": "Drift",
        "calibration": "Calibration by openness band",
        "model": "Model in service",
        "gates": "Retrain gate decisions (off-policy evaluation)",
        "pool_config": "Pools",
        "all_agents": "all agents",
        "decisions": "Decisions",
        "with_outcome": "With outcome",
        "pending": "Pending",
        "ves_label": "VES",
        "success": "Success rate",
        "roi": "ROI per contact",
        "roi_total": "ROI total",
        "not_enough_data": "Not enough data for an interval yet: at least {n} customers in "
        "each group are needed (now {treated} treated, {holdout} holdout).",
        "no_data": "No data in this period.",
        "no_proficiency": "No proficiency measured yet (it does not depend on the period): "
        "run a pool rebuild.",
        "treated_vs_holdout": "Treated vs holdout: satisfaction, effort, handle time, upgrades "
        "(95% CI)",
        "treated_only": "Treated contacts only (the control group is in the tables by "
        "experiment group).",
        "organic": "Value agents find on their own",
        "organic_note": "Activities agents offered that vea did not suggest for the contact, "
        "by segment / issue type. ✓ marks a candidate to let vea suggest (and measure): at "
        "least {n} attempts with a result, a success rate whose 95% interval lies above "
        "{baseline} (the success rate of all attempts), and vea suggests it in under half of "
        "these contacts. Observational: agents choose whom to try.",
        "few_answers": "† fewer than {n} answers behind the value: it moves a lot by chance, "
        "so do not rank agents or activities on it.",
        "no_holdout": "No control-group contacts with an outcome in this period yet, so no "
        "uplift to show.",
        # Holdout contacts but no treated ones (an arm needs two contacts with an outcome).
        "no_treated": "No treated contacts with an outcome in this period yet (only "
        "control-group ones), so no uplift to show.",
        "no_holdout_configured": "No control group is configured, so the value of the "
        "suggestions cannot be measured. Ask your administrator to set one up.",
        "no_holdout_hint": "For administrators: set VEA_HOLDOUT_SHARE (e.g. 0.1) and restart "
        "the service.",
        "roi_table": "Net value of value selling (treated minus holdout, 95% CI)",
        "roi_note": "Net value in your currency: {value_of_retention} per customer retained "
        "60 days after their first contact, plus the revenue of their upgrades in those 60 "
        "days (the value sent with each upgrade), minus {cost_per_second} per second of "
        "handle time. Programme costs are not included.",
        "holdout_offers": "{contacts} of {total} control-group contacts ({share}) received a "
        "value offer anyway: the control group is contaminated, so the uplift understates the "
        "effect. Agents should not make value offers to control-group customers.",
        "srm_mismatch": "Sample ratio mismatch: {holdout} of {total} customers are in the "
        "holdout ({observed}; expected {expected}; p = {p}). The assignment or the logging "
        "is broken, so the uplift and ROI cannot be trusted. Check that every desk stores its "
        "holdout decisions and whether VEA_HOLDOUT_SHARE or VEA_EXPERIMENT changed during the "
        "period.",
        "srm_both": "{both} customers were seen in both arms: the share or the experiment "
        "changed during the period.",
        "srm_ok": "Sample ratio check: {holdout} of {total} customers in the holdout "
        "({observed}; expected {expected}; p = {p}): no mismatch.",
        "srm_too_few": "Sample ratio check: too few customers to test ({total}).",
        # Not the mismatch text: nothing is broken, the period just spans two splits.
        "srm_share_changed": "The holdout share changed during the period (on {dates}): "
        "the uplift and ROI mix two splits, so report each side of the change separately.",
        "roi_unvalued_treated": "{treated} upgrades of treated customers were sent without a "
        "value and count 0: the treated group's upgrade revenue is a lower bound, so the "
        "difference (upgrade revenue and net value) is a lower bound too. Send the value "
        "with every upgrade.",
        "roi_unvalued_holdout": "{holdout} upgrades of control-group customers were sent "
        "without a value and count 0: the control group's upgrade revenue is a lower bound, "
        "so the difference (upgrade revenue and net value) may be overstated: an upper "
        "bound. Send the value with every upgrade.",
        "roi_unvalued_both": "{treated} upgrades of treated customers and {holdout} of "
        "control-group customers were sent without a value and count 0: each group's "
        "upgrade revenue and net value are lower bounds, and the difference may be off in "
        "either direction. Send the value with every upgrade.",
        # The field by its label, and what the page shows instead, as the Japanese says.
        "period_bad_date": "Period: “{field}” must be a date written YYYY-MM-DD (showing the "
        "default period).",
        "period_date_range": "Period: “{field}” must be a date between 1970 and 2199 (showing "
        "the default period).",
        "period_order": "Period: the “From” date must be before the “To” date (showing the "
        "default period).",
        "period_bad_preset": "Period: choose 7, 30 or 90 days or all time (showing the default "
        "period).",
    },
    "ja": {
        "desk_title": "エージェントデスク",
        "dashboard_title": "価値ダッシュボード",
        "summary": "概要",
        "login_title": "サインイン",
        "api_key": "APIキー",
        "sign_in": "サインイン",
        "sign_out": "サインアウト",
        "login_help": "配布されたAPIキーを貼り付けてください。キーはサインイン時に一度だけ確認され、"
        "再表示されることはありません。",
        "bad_key": "キーが無効か、失効しています。",
        "openness": "受容度",
        "band_low": "低",
        "band_medium": "中",
        "band_high": "高",
        # 推奨: what vea suggests, as the dashboard says it (提案 is what the agent offers).
        "suggested": "推奨活動",
        "talk_track": "トーク例",
        "why": "理由",
        "route": "ルーティング",
        "fallbacks": "代替先",
        "earlier": "前回のお問い合わせ",
        "earlier_line": "{channel}（{when}）・種別: {issue}・推奨: {activity}",
        "earlier_outcome": "前回の結果: {outcome}",
        "no_outcome": "未記録",
        "offered": "提案",
        "accepted": "受け入れ",
        "declined": "辞退",
        "skipped": "見送り",
        "what_happened": "結果",
        "ves": "VES（お客様評価 1〜7）",
        "ves_confidence": "購入への確信が高まった",
        "ves_ability": "より多くの価値を得られた",
        "record": "記録する",
        "recorded": "記録しました。",
        "choose_first": "先に結果を選んでください。",
        "resolve": "手間なく解決",
        "record_outcome": "結果を記録",
        # Not the IT term 縮退モード: an agent reads what it means for the hint.
        "degraded": "簡易判定: モデルまたはデータベースが利用できないため、ルールで判定しています。",
        "holdout": "対照群: このお客様には価値向上の提案を行いません。",
        "shortcuts": "キー: O 提案 · A 受け入れ · D 辞退 · S 見送り · 1〜7 VES · Enter 記録",
        "keys_off": "英字・数字キーでの操作をオフにする",
        "language": "言語",
        "bad_request": "デスクのリンクが不完全か、形式が正しくありません",
        "bad_request_help": "デスクトップからお問い合わせの情報付きで開いてください。",
        "missing": "不足: {names}",
        "not_found": "該当する判定がありません。",
        "forbidden": "このキーのロールではこのページを開けません。",
        "error": "エラーが発生しました",
        "busy": "レポートは他の集計を処理中です。{seconds}秒後にもう一度お試しください。",
        "period": "期間",
        "from": "開始",
        "to": "終了（当日を含む）",
        "apply": "適用",
        "last_7": "過去7日",
        "last_30": "過去30日",
        "last_90": "過去90日",
        "all_time": "全期間",
        "custom_dates": "日付を指定",
        "not_available": "まだ利用できません",
        "download_csv": "CSV",
        "chart_table": "同じ数値は下の表「{title}」にあります。",
        "trend": "VESと成功率の推移",
        "uplift": "対照群に対する効果（95%信頼区間）",
        "results_by": "{what}別の結果",
        "pools": "プールとエージェントの習熟度",
        "drift": "ドリフト",
        "calibration": "受容度帯ごとの較正",
        "model": "稼働中のモデル",
        "gates": "再学習ゲートの判定（オフポリシー評価）",
        "pool_config": "プール",
        "all_agents": "全員",
        "decisions": "判定数",
        "with_outcome": "結果あり",
        "pending": "未記録",
        "ves_label": "VES",
        "success": "成功率",
        "roi": "1件あたりROI",
        "roi_total": "ROI合計",
        "not_enough_data": "信頼区間を出すにはまだデータが足りません: 各群 {n} 人以上の顧客が"
        "必要です（現在 介入群 {treated} 人、対照群 {holdout} 人）。",
        "no_data": "この期間のデータはありません。",
        "no_proficiency": "習熟度はまだ測定されていません（期間によりません）。プールの再構築を"
        "実行してください。",
        "treated_vs_holdout": "介入群と対照群の比較: 満足度・顧客努力・対応時間・アップグレード"
        "（95%信頼区間）",
        "treated_only": "介入群のお問い合わせのみ（対照群は実験群別の表にあります）。",
        "organic": "エージェントが自発的に生んだ価値",
        "organic_note": "vea が推奨していない活動をエージェントが提案したお問い合わせ（セグメント / "
        "問い合わせ種別ごと）。✓ は vea に推奨させて効果を測る候補です: 結果のある提案が {n} 件"
        "以上、成功率の95%信頼区間が全提案の成功率 {baseline} を上回り、vea の推奨がこの区分の"
        "半分未満。観察データです（エージェントが提案する相手を選んでいます）。",
        "few_answers": "† 回答が {n} 件未満の値です。偶然で大きく変わるため、エージェントや活動の"
        "順位付けには使わないでください。",
        "no_holdout": "この期間には結果のある対照群のお問い合わせがまだないため、効果を表示"
        "できません。",
        "no_treated": "この期間には結果のある介入群のお問い合わせがまだない（対照群のみ）ため、"
        "効果を表示できません。",
        "no_holdout_configured": "対照群が設定されていないため、提案の効果を測定できません。"
        "管理者に設定を依頼してください。",
        "no_holdout_hint": "管理者向け: VEA_HOLDOUT_SHARE（例: 0.1）を設定してサービスを再起動します。",
        "roi_table": "価値向上の純価値（介入群 − 対照群、95%信頼区間）",
        "roi_note": "純価値（通貨単位）: 初回のお問い合わせから60日後も継続した顧客1人につき "
        "{value_of_retention} に、その60日間のアップグレードの売上（アップグレードごとに送られた"
        "金額）を加え、対応時間1秒につき {cost_per_second} を差し引いた値です。"
        "施策の費用は含みません。",
        "holdout_offers": "対照群のお問い合わせ {total} 件のうち {contacts} 件（{share}）で価値向上の"
        "提案が行われました。対照群が汚染されているため、効果は実際より小さく表示されます。"
        "対照群のお客様には提案しないようエージェントに周知してください。",
        "srm_mismatch": "サンプル比率の不一致：対照群のお客様は {total} 人中 {holdout} 人"
        "（{observed}、想定 {expected}、p = {p}）です。割り当てまたは記録に問題があるため、"
        "効果とROIは信頼できません。すべての端末が対照群の判定を保存しているか、期間中に "
        "VEA_HOLDOUT_SHARE または VEA_EXPERIMENT が変更されていないか確認してください。",
        "srm_both": "{both} 人のお客様が両方の群に記録されています。期間中に割合または実験名が"
        "変更されました。",
        "srm_ok": "サンプル比率の確認：対照群のお客様は {total} 人中 {holdout} 人"
        "（{observed}、想定 {expected}、p = {p}）で、不一致はありません。",
        "srm_too_few": "サンプル比率の確認：お客様が少なすぎるため検定していません（{total} 人）。",
        "srm_share_changed": "期間中に対照群の割合が変更されました（{dates}）。効果とROIには"
        "2つの割り当てが混在しているため、変更の前後を別々の期間として集計してください。",
        "roi_unvalued_treated": "介入群のお客様のアップグレード {treated} 件が金額なしで送られ、"
        "0として数えられています。介入群のアップグレード売上は下限値のため、差（アップグレード"
        "売上と純価値）も下限値です。アップグレードには必ず金額を付けて送ってください。",
        "roi_unvalued_holdout": "対照群のお客様のアップグレード {holdout} 件が金額なしで送られ、"
        "0として数えられています。対照群のアップグレード売上は下限値のため、差（アップグレード"
        "売上と純価値）は過大な可能性があり、上限値です。アップグレードには必ず金額を付けて"
        "送ってください。",
        "roi_unvalued_both": "介入群のお客様のアップグレード {treated} 件と対照群の {holdout} 件が"
        "金額なしで送られ、0として数えられています。各群のアップグレード売上と純価値は下限値で、"
        "差はどちらの方向にもずれている可能性があります。アップグレードには必ず金額を付けて"
        "送ってください。",
        # Python's own parse message is English: the page says what to type instead.
        "period_bad_date": "期間: 「{field}」の日付は YYYY-MM-DD の形式で指定してください"
        "（既定の期間を表示しています）。",
        "period_date_range": "期間: 「{field}」は1970年から2199年までの日付にしてください"
        "（既定の期間を表示しています）。",
        "period_order": "期間: 開始日は終了日より前にしてください（既定の期間を表示しています）。",
        "period_bad_preset": "期間: 7日・30日・90日・全期間から選んでください"
        "（既定の期間を表示しています）。",
    },
}

# ---------------------------------------------- the desk's input problems, in Japanese
# The desk link's parameters as an agent reads them. The 400 page names the parameter
# beside its label: the agent reads the label, whoever fixes the desktop's link the name.
DESK_FIELDS = {
    "ja": {
        "interaction_id": "お問い合わせID",
        "customer_id": "顧客ID",
        "channel": "チャネル",
        "issue_type": "問い合わせ種別",
        "segment": "セグメント",
        "persona": "ペルソナ",
        "tenure_months": "購入後の月数",
        "switching_effort": "乗り換えの手間",
        "prior_contacts_30d": "過去30日の問い合わせ件数",
        "sentiment": "感情スコア",
        "occurred_at": "お問い合わせ日時",
        "customer_language": "お客様の言語",
        "language": "言語",
        "agent_id": "エージェントID",
        "decision_id": "判定ID",
    },
}
# What a validation message says, by kind (service.web.desk reads marshmallow's standard
# English messages and the service's own into these kinds). The English page shows the
# messages as they are. ``{min_op}``/``{max_op}`` are RANGE_OPS.
VALIDATION_TEXTS = {
    "ja": {
        "required": "指定が必要です",
        "null": "空にはできません",
        "invalid": "値が正しくありません",
        "not_string": "文字列ではありません",
        "not_integer": "整数ではありません",
        "not_number": "数値ではありません",
        "not_boolean": "true か false を指定してください",
        "too_large": "数値が大きすぎます",
        "special": "NaN や無限大は指定できません",
        "not_datetime": "日時として読み取れません（例: 2026-04-01T10:30:00+09:00）",
        "not_aware": "タイムゾーン付きの日時にしてください（例: 2026-04-01T10:30:00+09:00）",
        "one_of": "{choices} のいずれかを指定してください",
        "length_min": "{min} 文字以上にしてください",
        "length_max": "{max} 文字以下にしてください",
        "length_between": "{min}〜{max} 文字にしてください",
        "length_equal": "{equal} 文字にしてください",
        "range_min": "{min} {min_op}値にしてください",
        "range_max": "{max} {max_op}値にしてください",
        "range_between": "{min} {min_op}、{max} {max_op}値にしてください",
        "unknown_field": "この項目は使えません",
        "bad_type": "形式が正しくありません",
        # The service's own messages (service.schemas, models.schema).
        "date_range": "1970年から2199年までの日時にしてください",
        "future": "未来の日時は指定できません",
        "control": "制御文字（NUL、改行コードなど）は使えません",
        "language_tag": "ja、en、ja-JP のような言語タグを指定してください",
        # A message none of the above reads: shown as written, behind a lead-in.
        "other": "値を確認してください（原文）: {message}",
    },
}
# Before 値 ("0 以上の値"); a range's lower bound joins its upper one ("0 より大きく、").
RANGE_OPS = {
    "ja": {
        "gte": "以上の",
        "gt": "より大きい",
        "lte": "以下の",
        "lt": "未満の",
        "gte_and": "以上",
        "gt_and": "より大きく",
    },
}


def field_label(name: str, language: str) -> str:
    """A desk parameter as its input problems name it: ``チャネル（channel）`` in Japanese,
    the parameter itself in English (the desktop's link spells it so)."""
    label = DESK_FIELDS.get(language, {}).get(name)
    return f"{label}（{name}）" if label else name


GROUP_NAMES = {
    "en": {
        "activity": "activity",
        "segment": "segment",
        "issue_type": "issue type",
        "channel": "channel",
        "pool_id": "pool",
        "agent_id": "agent",
        "experiment_arm": "experiment group",
    },
    "ja": {
        "activity": "活動",
        "segment": "セグメント",
        "issue_type": "問い合わせ種別",
        "channel": "チャネル",
        "pool_id": "プール",
        "agent_id": "エージェント",
        "experiment_arm": "実験群",
    },
}

# Table headers of the dashboard (the CSV keeps the raw column names).
COLUMN_LABELS = {
    "en": {
        "group": "group",
        "n": "n",
        "ves": "VES",
        "ves_confidence": "VES confidence",
        "ves_ability": "VES value",
        "success_rate": "success",
        "suggested": "suggestions",
        "offered": "offers",
        "offer_rate": "offered when suggested",
        "accepted": "accepted offers",
        "acceptance": "accepted when offered",
        "handle_time_s": "handle time (s)",
        "csat": "CSAT",
        "nps": "NPS",
        "ces": "effort (CES)",
        "retained_60d": "retained 60d",
        "ves_n": "VES answers",
        "success_n": "success answers",
        "csat_n": "CSAT answers",
        "nps_n": "NPS answers",
        "ces_n": "CES answers",
        "retained_60d_n": "retention known",
        "acceptance_n": "offers answered",
        "measure": "measure",
        "treated": "treated",
        "holdout": "holdout",
        "value": "difference",
        "ci_low": "95% CI low",
        "ci_high": "95% CI high",
        "n_treated": "contacts treated",
        "n_holdout": "contacts holdout",
        "units_treated": "customers treated",
        "units_holdout": "customers holdout",
        "enough_data": "enough data",
        "value_of_retention": "value per retained customer",
        "cost_per_second": "cost per second",
        "upgrades_without_value_treated": "upgrades without a value, treated",
        "upgrades_without_value_holdout": "upgrades without a value, holdout",
        "declared": "declared",
        "pre_declared": "declared before",
        "agent_id": "agent",
        "activity": "activity",
        "contacts": "attempts with VES answers",
        "observed": "observed",
        "expected": "expected",
        "estimate": "proficiency",
        "low": "90% low",
        "high": "90% high",
        "qualified": "qualified",
        "feature": "feature",
        "psi": "PSI",
        "level": "level",
        "drifted": "drifted",
        "band": "band",
        "predicted": "predicted",
        "gap": "gap",
        "version": "version",
        "champion": "champion",
        "created_at": "created",
        "learner": "learner",
        "training_rows": "training rows",
        "date": "date",
        "at": "at",
        "decision": "decision",
        "challenger": "challenger",
        "rows": "rows",
        "challenger_value": "challenger value",
        "champion_value": "champion value",
        "reward": "reward",
        "reason": "reason",
        "id": "pool",
        "activities": "activities",
        "membership": "membership",
        "members": "members",
        "capacity": "capacity",
        "situation": "situation",
        "organic_attempts": "offered without suggestion",
        "organic_success_rate": "success",
        "success_low": "95% low",
        "success_high": "95% high",
        "suggested_share": "vea suggests it",
        "candidate": "candidate",
    },
    "ja": {
        "group": "区分",
        "n": "件数",
        "ves": "VES",
        "ves_confidence": "VES 確信",
        "ves_ability": "VES 価値",
        "success_rate": "成功率",
        "suggested": "推奨件数",
        "offered": "提案件数",
        "offer_rate": "推奨時の提案率",
        "accepted": "受け入れ件数",
        "acceptance": "提案時の受け入れ率",
        "handle_time_s": "対応時間（秒）",
        "csat": "CSAT",
        "nps": "NPS",
        "ces": "顧客努力（CES）",
        "retained_60d": "60日継続率",
        "ves_n": "VES 回答数",
        "success_n": "成功 回答数",
        "csat_n": "CSAT 回答数",
        "nps_n": "NPS 回答数",
        "ces_n": "CES 回答数",
        "retained_60d_n": "継続 判明数",
        "acceptance_n": "提案への回答数",
        "measure": "指標",
        "treated": "介入群",
        "holdout": "対照群",
        "value": "効果",
        "ci_low": "95%CI 下限",
        "ci_high": "95%CI 上限",
        "n_treated": "介入群 件数",
        "n_holdout": "対照群 件数",
        "units_treated": "介入群 顧客数",
        "units_holdout": "対照群 顧客数",
        "enough_data": "データ十分",
        "value_of_retention": "継続顧客1人の価値",
        "cost_per_second": "1秒あたりの費用",
        "upgrades_without_value_treated": "金額なしのアップグレード 介入群",
        "upgrades_without_value_holdout": "金額なしのアップグレード 対照群",
        "declared": "事前宣言",
        "pre_declared": "期間前に宣言",
        "agent_id": "エージェント",
        "activity": "活動",
        "contacts": "VES回答のある提案件数",
        "observed": "実績",
        "expected": "期待",
        "estimate": "習熟度",
        "low": "90% 下限",
        "high": "90% 上限",
        "qualified": "適格",
        "feature": "特徴量",
        "psi": "PSI",
        "level": "水準",
        "drifted": "ドリフト",
        "band": "帯",
        "predicted": "予測",
        "gap": "差",
        "version": "バージョン",
        "champion": "稼働中",
        "created_at": "作成",
        "learner": "学習器",
        "training_rows": "学習行数",
        "date": "日付",
        "at": "日時",
        "decision": "判定",
        "challenger": "挑戦モデル",
        "rows": "行数",
        "challenger_value": "挑戦モデルの価値",
        "champion_value": "稼働モデルの価値",
        "reward": "報酬",
        "reason": "理由",
        "id": "プール",
        "activities": "活動",
        "membership": "所属方式",
        "members": "人数",
        "capacity": "容量",
        "situation": "区分",
        "organic_attempts": "推奨なしの提案",
        "organic_success_rate": "成功率",
        "success_low": "95% 下限",
        "success_high": "95% 上限",
        "suggested_share": "vea の推奨率",
        "candidate": "候補",
        # A model metric (training/fit.py): the rows the openness model learned from.
        "openness_rows": "受容度モデルの学習行数",
    },
}

# ------------------------------------------------------- ids shown by name
# The retrain gate's decisions, as training/retrain.py writes them to the registry history.
GATE_DECISIONS = {
    "en": {
        "promote": "promoted",
        "refuse": "refused",
        "skipped": "not run",
        "stale": "passed, not promoted (the champion changed meanwhile)",
    },
    "ja": {
        "promote": "昇格",
        "refuse": "却下",
        "skipped": "未実施",
        "stale": "合格・未昇格（実行中にチャンピオンが変更）",
    },
}
# The uplift table's measures (models.value_report.UPLIFT_MEASURES), drift levels
# (models.drift.level) and the group of contacts a field was empty for.
MEASURE_NAMES = {
    "en": {
        "ve_success": "Value success rate",
        "retained_60d": "Retained 60 days",
        "ves": "VES (1-7)",
        "reward": "Model's target measure",
        "csat": "CSAT (1-5)",
        "nps": "NPS",
        "ces": "Customer effort (CES 1-7)",
        "handle_time_s": "Handle time (s)",
        "upgraded": "Upgrade rate",
        "per_customer": "Net value per customer",
        "per_contact": "Net value per treated contact",
        "total": "Net value, all treated customers",
        "upgrade_revenue": "Upgrade revenue per customer (60 days)",
    },
    "ja": {
        "ve_success": "価値向上の成功率",
        "retained_60d": "60日後の継続率",
        "ves": "VES（1-7）",
        "reward": "モデルの目標指標",
        "csat": "CSAT（1-5）",
        "nps": "NPS",
        "ces": "顧客努力（CES 1-7）",
        "handle_time_s": "対応時間（秒）",
        "upgraded": "アップグレード率",
        "per_customer": "顧客1人あたりの純価値",
        "per_contact": "介入群のお問い合わせ1件あたりの純価値",
        "total": "介入群の顧客全体の純価値",
        "upgrade_revenue": "顧客1人あたりのアップグレード売上（60日間）",
    },
}
# How a pool's agents are chosen (service.pools.membership_of).
MEMBERSHIPS = {
    "en": {
        "static": "listed agents",
        "proficiency": "proven agents (pool rebuild)",
        "all_agents": "every agent (last fallback)",
    },
    "ja": {
        "static": "指定したエージェント",
        "proficiency": "実績のあるエージェント（プール再構築）",
        "all_agents": "全エージェント（最後の受け皿）",
    },
}
# The experiment's arms (by experiment group).
ARM_NAMES = {
    "en": {"treatment": "treated", "holdout": "holdout (control group)"},
    "ja": {"treatment": "介入群", "holdout": "対照群"},
}
# Every level models.drift.level() gives, in both languages: `no_data` (a feature without
# live values in the period) was shown as the raw id.
DRIFT_LEVELS = {
    "en": {"stable": "stable", "watch": "watch", "act": "act", "no_data": "no data"},
    "ja": {"stable": "安定", "watch": "要注意", "act": "要対応", "no_data": "データなし"},
}
GROUP_VALUES = {"ja": {"(unknown)": "（不明）"}}

# The retrain gate's reasons: training/retrain.py writes one of these English sentences
# (numbers filled in) to the registry history, so the Japanese page translates them and
# keeps the numbers. Each pattern matches the whole reason; a reason retrain can write
# without a pattern here fails tests/test_dashboard_gate_reasons.py.
GATE_REASONS = {
    "ja": (
        (
            re.compile(r"challenger better: the 95% interval of the DR improvement is above zero"),
            "挑戦モデルが優位: DR推定による改善の95%区間がゼロを上回っています",
        ),
        (
            re.compile(r"refused: the 95% interval of the DR improvement does not lie above zero"),
            "却下: DR推定による改善の95%区間がゼロを上回っていません",
        ),
        (
            # The refusal to expect under the default VEA_EXPLORATION=none.
            re.compile(
                r"refused: for (?P<share>\S+) of the contacts the challenger chooses an "
                r"activity the log never served there \(turn on exploration, "
                r"VEA_EXPLORATION\): the improvement would rest on the reward model's guesses"
            ),
            "却下: お問い合わせの {share} で、挑戦モデルはログでその状況に一度も提供されて"
            "いない活動を選んでいます（探索を有効にしてください: VEA_EXPLORATION）。"
            "改善の推定が報酬モデルの推測に頼ることになります",
        ),
        (
            re.compile(r"no champion: the first model is promoted"),
            "稼働中のモデルがないため、最初のモデルを昇格しました",
        ),
        (
            re.compile(
                r"refused: effective sample size (?P<ess>\S+) < (?P<min_ess>\S+): the logs "
                r"barely cover the challenger's choices \(explore more or wait for more data\)"
            ),
            "却下: 有効サンプルサイズ {ess} < {min_ess}。ログが挑戦モデルの選択をほとんど"
            "カバーしていません（探索を増やすか、データが貯まるのを待ってください）",
        ),
        (
            re.compile(r"(?P<rows>\d+) rows < --min-rows (?P<min_rows>\d+)"),
            "{rows} 行 < --min-rows {min_rows}: 行数が足りないため再学習していません",
        ),
    ),
}
# A reason none of the patterns knows (an older or a newer wording) is shown as written,
# behind a prefix that says it is the untranslated original.
UNTRANSLATED = {"ja": "（原文）"}


def band_names(language: str) -> dict[str, str]:
    """The openness bands by name: the desk's badge labels (one place for both pages)."""
    return {band: LABELS[language][f"band_{band}"] for band in ("low", "medium", "high")}


def gate_reason(text: str, language: str) -> str:
    for pattern, template in GATE_REASONS.get(language, ()):
        match = pattern.fullmatch(text)
        if match:
            return template.format(**match.groupdict())
    return UNTRANSLATED[language] + text if language in UNTRANSLATED else text


def display_name(kind: str, value: str, language: str) -> str:
    """How the dashboard shows an id of ``kind`` (activity, activities, band,
    gate_decision, gate_reason, measure, drift_level, group, arm, membership, category,
    feature) in the
    page's language: managers read names, not ids (the API and the CSV downloads keep the
    ids). An id without a name is shown as it is."""
    if kind == "activities":  # the pools table joins a pool's activities with spaces
        return reasons.listed(
            (display_name("activity", a, language) for a in value.split()), language
        )
    if kind == "gate_reason":
        return gate_reason(value, language)
    if kind == "category":  # a segment, issue type or channel: 個人, how-to, チャット
        if value in GROUP_VALUES.get(language, {}):
            return GROUP_VALUES[language][value]
        return reasons.category_name(value, language)
    if kind == "feature":  # a model feature, as the reasons name it: 購入後の月数
        return reasons.FEATURE_NAMES[reasons.language_of(language)].get(value, value)
    names = {
        "activity": ACTIVITY_NAMES,
        "band": {lang: band_names(lang) for lang in LANGUAGES},
        "gate_decision": GATE_DECISIONS,
        "measure": MEASURE_NAMES,
        "drift_level": DRIFT_LEVELS,
        "group": GROUP_VALUES,
        "arm": ARM_NAMES,
        "membership": MEMBERSHIPS,
    }[kind].get(language, {})
    return names.get(value, value)
