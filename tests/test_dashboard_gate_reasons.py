"""Every reason the retrain gate can write reads in Japanese on the dashboard.

training/retrain.py writes the gate's reason to the registry history in English, and
``service.web.content.GATE_REASONS`` translates each wording for the Japanese page. The
usual refusal under the default VEA_EXPLORATION=none ("unsupported") had no translation
and was shown as "（原文）refused: for 90% of the contacts...". Here the reasons are read
from retrain's source (each ``GateResult``'s reason and each recorded gate event's), with
sample numbers in their fields, so a wording added there without a translation fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from service.web import content

RETRAIN = Path(__file__).resolve().parents[1] / "training" / "retrain.py"


def _filled(node: ast.JoinedStr) -> str:
    """An f-string with sample values: a percentage where the field is one (``:.0%``),
    else a number formatted by the field's spec."""
    parts = []
    for value in node.values:
        if isinstance(value, ast.Constant):
            parts.append(str(value.value))
            continue
        spec = "".join(
            str(p.value) for p in (value.format_spec.values if value.format_spec else ())
        )
        parts.append(format(0.9 if spec.endswith("%") else 123, spec))
    return "".join(parts)


def _texts(node: ast.expr, function: ast.FunctionDef) -> list[str]:
    """The texts an expression can be: a literal, an f-string, a choice from a dict
    (``{...}[key]``), a name assigned in ``function``, or a prefix joined to one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [_filled(node)]
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Dict):
        return [t for value in node.value.values for t in _texts(value, function)]
    if isinstance(node, ast.Attribute) and node.attr == "reason":
        return []  # a GateResult's reason passed on: read where it is made
    if isinstance(node, ast.Name):
        assigned = [
            n.value
            for n in ast.walk(function)
            if isinstance(n, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == node.id for t in n.targets)
        ]
        if assigned:
            return [t for value in assigned for t in _texts(value, function)]
    raise AssertionError(
        f"training/retrain.py line {node.lineno}: a gate reason this test cannot read "
        f"({ast.unparse(node)}): teach it, and translate the reason in GATE_REASONS"
    )


def retrain_gate_reasons() -> list[str]:
    """Every gate reason training/retrain.py can write, with sample numbers."""
    tree = ast.parse(RETRAIN.read_text(encoding="utf-8"))
    reasons = []
    for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        for node in ast.walk(function):
            # GateResult(promote, reason, ...) or GateResult(..., reason=...)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "GateResult":
                given = [k.value for k in node.keywords if k.arg == "reason"]
                given += node.args[1:2]
                for expr in given:
                    reasons += _texts(expr, function)
            # registry.record({"event": "gate", ..., "reason": ...})
            if isinstance(node, ast.Dict):
                fields = {
                    k.value: v
                    for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant)
                }
                event = fields.get("event")
                if isinstance(event, ast.Constant) and event.value == "gate" and "reason" in fields:
                    reasons += _texts(fields["reason"], function)
    return sorted(set(reasons))


def test_the_source_gives_every_known_reason():
    """The reader finds them all (a reader finding none would pass anything)."""
    reasons = retrain_gate_reasons()
    starts = ("challenger better", "refused: the 95%", "refused: for 90%", "refused: effective")
    for start in starts:
        assert any(r.startswith(start) for r in reasons), (start, reasons)
    assert "123 rows < --min-rows 123" in reasons
    assert "no champion: the first model is promoted" in reasons


@pytest.mark.parametrize("reason", retrain_gate_reasons())
def test_every_gate_reason_retrain_writes_reads_in_japanese(reason):
    shown = content.display_name("gate_reason", reason, "ja")
    assert not shown.startswith(content.UNTRANSLATED["ja"]), shown
    # The figures stay, translated around.
    for number in ("123", "90%"):
        if number in reason:
            assert number in shown, (reason, shown)
    assert not shown.isascii()


def test_the_unsupported_refusal_in_japanese():
    reason = (
        "refused: for 90% of the contacts the challenger chooses an activity the log never "
        "served there (turn on exploration, VEA_EXPLORATION): the improvement would rest on "
        "the reward model's guesses"
    )
    shown = content.display_name("gate_reason", reason, "ja")
    assert shown.startswith("却下: お問い合わせの 90% で") and "VEA_EXPLORATION" in shown
