"""What a question page shows: numbered questions in parts, how many are answered, and the
quiz's review screen. Reads only; the answers themselves are in ``trials.services.answers``."""

from __future__ import annotations

import re
from typing import Any

from django.forms import BoundField
from django.utils.datastructures import MultiValueDict
from django.utils.text import Truncator

from trials.forms import QuestionForm
from trials.services.answers import IDK_SUFFIX, SavedAnswers, answer_state

# Five questions a part: a part fits on a laptop screen or two on a phone, and the sample
# quiz's 15 questions make three parts.
PART_SIZE = 5
STATE_LABELS = {"answered": "Answered", "idk": "I don't know", "unanswered": "Not answered"}


def form_data(saved: dict[str, Any]) -> MultiValueDict[str, Any]:
    """Saved answers as the form would have posted them."""
    data: MultiValueDict[str, Any] = MultiValueDict()
    for key, value in saved.items():
        if isinstance(value, list):
            data.setlist(key, [str(v) for v in value])
        elif value is True:
            data[key] = "on"
        else:
            data[key] = str(value)
    return data


def _summary(markdown: str) -> str:
    """The question's first paragraph as plain text, shortened: enough to recognise it."""
    paragraph = markdown.strip().split("\n\n", 1)[0]
    plain = re.sub(r"`|\*\*|^#+ |^> ", "", paragraph, flags=re.MULTILINE)
    return Truncator(" ".join(plain.split())).chars(100)


def page_context(
    *,
    form: QuestionForm,
    questions: list[dict[str, Any]],
    saved: SavedAnswers,
    is_quiz: bool,
    review: bool,
) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for number, question in enumerate(questions, start=1):
        key = question["key"]
        idk_field: BoundField | None = None
        if key + IDK_SUFFIX in form.fields:
            idk_field = form[key + IDK_SUFFIX]
        state = answer_state(question, saved.answers)
        items.append(
            {
                "number": number,
                "key": key,
                "field": form[key],
                "idk": idk_field,
                "state": state,
                "state_label": STATE_LABELS[state],
                "summary": _summary(question["text"]),
            }
        )
    parts: list[dict[str, Any]] = []
    if is_quiz:
        for start in range(0, len(items), PART_SIZE):
            chunk = items[start : start + PART_SIZE]
            parts.append(
                {
                    "number": len(parts) + 1,
                    "first": chunk[0]["number"],
                    "last": chunk[-1]["number"],
                    "items": chunk,
                }
            )
    else:
        parts.append({"number": 1, "items": items})
    unanswered = [item for item in items if item["state"] == "unanswered"]
    return {
        "form": form,
        "is_quiz": is_quiz,
        "review": review,
        "parts": parts,
        "part_count": len(parts),
        "items": items,
        "question_count": len(items),
        "answered_count": len(items) - len(unanswered),
        "unanswered": unanswered,
        "idk_count": sum(1 for item in items if item["state"] == "idk"),
        "revision": saved.revision,
    }
