"""Rules a running trial applies from its normalised definition: the answer options of a
question, the eligibility screen, the stratum of a participant, which signals mark a likely
duplicate. No Django import: services, data sets and the synthetic data generator share them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Which signals can mark two enrolments as one person, and what analysis does with them
# (README, "One person, one allocation"); [analysis] in trial.toml picks among these.
DUPLICATE_RULES = ("keep", "exclude")
DUPLICATE_SIGNALS = ("external_id", "browser", "address")
DEFAULT_DUPLICATE_SIGNALS = ["external_id", "browser"]


def question_choices(question: dict[str, Any]) -> list[dict[str, str]]:
    """The answer options of a question, including those implied by its type."""
    if question["type"] == "yes_no":
        return [{"value": "yes", "label": "Yes"}, {"value": "no", "label": "No"}]
    if question["type"] == "likert":
        return [{"value": str(i), "label": str(i)} for i in range(1, 8)]
    return list(question.get("choices", []))


def stratum_key(strata: list[str], answers: dict[str, Any]) -> str:
    """The stratum a participant's baseline answers put them in, e.g. 'coding_years=4-6'."""
    if not strata:
        return ""
    return "|".join(f"{key}={answers.get(key, '')}" for key in strata)


def eligibility_failures(rules: list[dict[str, Any]], answers: dict[str, Any]) -> list[str]:
    """Reasons (in rule order) why these baseline answers screen a person out."""
    checks: dict[str, Callable[[Any, Any], bool]] = {
        "in": lambda answer, value: answer in value,
        "not_in": lambda answer, value: answer not in value,
        "equals": lambda answer, value: answer == value,
        "min": lambda answer, value: answer is not None and float(answer) >= value,
        "max": lambda answer, value: answer is not None and float(answer) <= value,
    }
    reasons = []
    for rule in rules:
        answer = answers.get(rule["question"])
        try:
            ok = checks[rule["op"]](answer, rule["value"])
        except (TypeError, ValueError):
            ok = False
        if not ok:
            reasons.append(rule["reason"])
    return reasons
