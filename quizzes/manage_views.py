"""The experimenters' and statisticians' quiz page: item quality, reliability, grader
agreement, and (experimenters only) answer-key corrections with their audit trail."""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from quizzes import selectors, services
from quizzes.models import AnswerKeyChange
from trials.access import staff_role_required
from trials.models import Stage, Trial
from trials.roles import EXPERIMENTER, has_role


class KeyCorrectionForm(forms.Form):
    question_key = forms.CharField(max_length=80, label="Question key")
    new_key = forms.CharField(
        label='New key (JSON), e.g. {"answer": "b"} or {"answers": ["a", "c"]}',
        widget=forms.Textarea(attrs={"rows": 2, "class": "code"}),
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), label="Why (kept in the audit trail)"
    )

    def clean_new_key(self) -> dict[str, object]:
        try:
            value = json.loads(self.cleaned_data["new_key"])
        except ValueError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc}") from None
        if not isinstance(value, dict) or not value:
            raise forms.ValidationError('give a JSON object such as {"answer": "b"}')
        return value


@staff_role_required
def quiz_page(request: HttpRequest, slug: str, version: int) -> HttpResponse:
    trial = get_object_or_404(Trial, slug=slug, version=version)
    stages = list(trial.stages.filter(type=Stage.Type.QUIZ).order_by("order"))
    may_correct = has_role(request.user, EXPERIMENTER)
    form = KeyCorrectionForm(request.POST or None)
    if request.method == "POST":
        if not may_correct:
            return render(request, "manage/forbidden.html", status=403)
        if form.is_valid():
            try:
                change = services.answer_key_correct(
                    trial=trial,
                    question_key=form.cleaned_data["question_key"],
                    new_key=form.cleaned_data["new_key"],
                    reason=form.cleaned_data["reason"],
                    user=request.user,  # type: ignore[arg-type]
                )
            except services.GradingError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(
                    request,
                    f"Key of {change.question_key} corrected; {change.regraded} answers re-graded.",
                )
                return redirect("manage:quiz", slug=slug, version=version)
    qualities = [(stage, selectors.quiz_quality(trial, stage)) for stage in stages]
    return render(
        request,
        "manage/quiz.html",
        {
            "trial": trial,
            "qualities": qualities,
            "changes": AnswerKeyChange.objects.filter(trial=trial).select_related("changed_by"),
            "form": form,
            "may_correct": may_correct,
        },
        status=400 if request.method == "POST" else 200,
    )
