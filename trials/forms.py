"""Forms generated from question definitions (baseline, surveys, quiz rendering)."""

from __future__ import annotations

from typing import Any

from django import forms

from trials.definition import question_choices
from trials.rendering import render_inline_markdown, render_markdown

TEXT_LIMITS = {"short_text": 500, "long_text": 10_000}


def question_field(question: dict[str, Any]) -> forms.Field:
    qtype = question["type"]
    common: dict[str, Any] = {
        "label": question["text"],
        "required": question.get("required", True),
        "help_text": question.get("help", ""),
    }
    choices: list[tuple[str, str]] = [
        (c["value"], render_inline_markdown(c["label"]) if "idk" in question else c["label"])
        for c in question_choices(question)
    ]
    if qtype == "multi_choice":
        return forms.MultipleChoiceField(
            choices=choices, widget=forms.CheckboxSelectMultiple, **common
        )
    if qtype in ("single_choice", "yes_no", "likert"):
        choice_field = forms.ChoiceField(choices=choices, widget=forms.RadioSelect, **common)
        if qtype == "likert":
            low, high = question.get("scale", ["1", "7"])
            choice_field.help_text = f"1 = {low}, 7 = {high}"
            choice_field.widget.attrs["class"] = "likert"
        return choice_field
    if qtype == "number":
        return forms.FloatField(
            min_value=question.get("min"), max_value=question.get("max"), **common
        )
    if qtype == "numeric":
        field = forms.CharField(max_length=50, **common)
        if question.get("unit"):
            field.help_text = f"In {question['unit']}."
        return field
    if qtype in ("predict_output", "code_writing"):
        return forms.CharField(
            max_length=TEXT_LIMITS["long_text"],
            strip=False,
            widget=forms.Textarea(attrs={"rows": 6, "class": "code", "spellcheck": "false"}),
            **common,
        )
    if qtype in ("long_text", "free_text"):
        return forms.CharField(
            max_length=TEXT_LIMITS["long_text"],
            widget=forms.Textarea(attrs={"rows": 5}),
            **common,
        )
    return forms.CharField(max_length=TEXT_LIMITS["short_text"], **common)


class QuestionForm(forms.Form):
    """One field per question, named by the question key. A quiz question offering "I don't
    know" on a typed answer gets a second field ``<key>__idk``."""

    def __init__(self, questions: list[dict[str, Any]], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for question in questions:
            if "idk" in question:  # quiz questions may be left blank
                question = {**question, "required": False}
            field = question_field(question)
            if "idk" in question:  # a quiz question: Markdown text and an optional code block
                field.markdown = render_markdown(question["text"])  # type: ignore[attr-defined]
                field.code_block = question.get("code", "")  # type: ignore[attr-defined]
            self.fields[question["key"]] = field
            if question.get("idk") and "choices" not in question:
                self.fields[f"{question['key']}__idk"] = forms.BooleanField(
                    required=False, label="I don't know"
                )

    def answers(self) -> dict[str, Any]:
        return {
            key: value
            for key, value in self.cleaned_data.items()
            if value not in (None, "", False, [])
        }


class ConsentForm(forms.Form):
    agree = forms.BooleanField(
        required=False, label="I have read the information above and agree to take part."
    )
    decision = forms.ChoiceField(choices=[("agree", "Agree"), ("decline", "Decline")])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("decision") == "agree" and not cleaned.get("agree"):
            self.add_error("agree", "Please tick the box to confirm that you agree.")
        return cleaned
