"""Forms generated from question definitions (baseline, surveys, quiz rendering)."""

from __future__ import annotations

from typing import Any

from django import forms

from trials.definition import question_choices

TEXT_LIMITS = {"short_text": 500, "long_text": 10_000}


def question_field(question: dict[str, Any]) -> forms.Field:
    qtype = question["type"]
    common: dict[str, Any] = {
        "label": question["text"],
        "required": question.get("required", True),
        "help_text": question.get("help", ""),
    }
    choices = [(c["value"], c["label"]) for c in question_choices(question)]
    if qtype == "multi_choice":
        return forms.MultipleChoiceField(
            choices=choices, widget=forms.CheckboxSelectMultiple, **common
        )
    if qtype in ("single_choice", "yes_no", "likert"):
        field = forms.ChoiceField(choices=choices, widget=forms.RadioSelect, **common)
        if qtype == "likert":
            low, high = question.get("scale", ["1", "7"])
            field.help_text = f"1 = {low}, 7 = {high}"
            field.widget.attrs["class"] = "likert"
        return field
    if qtype == "number":
        return forms.FloatField(
            min_value=question.get("min"), max_value=question.get("max"), **common
        )
    if qtype == "long_text":
        return forms.CharField(
            max_length=TEXT_LIMITS["long_text"],
            widget=forms.Textarea(attrs={"rows": 5}),
            **common,
        )
    return forms.CharField(max_length=TEXT_LIMITS["short_text"], **common)


class QuestionForm(forms.Form):
    """One field per question, named by the question key."""

    def __init__(self, questions: list[dict[str, Any]], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for question in questions:
            self.fields[question["key"]] = question_field(question)

    def answers(self) -> dict[str, Any]:
        return {key: value for key, value in self.cleaned_data.items() if value not in (None, "")}


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
