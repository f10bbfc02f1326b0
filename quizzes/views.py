"""Pages for graders: the blinded queue, grading one answer, adjudication. Nothing on these
pages (or reachable from them) names the participant, their arm or their stratum."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from quizzes import selectors, services
from quizzes.models import ItemResponse
from trials.rendering import render_markdown
from trials.roles import GRADER, has_role

View = Callable[..., HttpResponse]


def grader_required(view: View) -> View:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not has_role(request.user, GRADER):
            return render(request, "grading/forbidden.html", status=403)
        return view(request, *args, **kwargs)

    return wrapped


class GradeForm(forms.Form):
    points = forms.TypedChoiceField(coerce=float, widget=forms.RadioSelect, label="Points")
    comment = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Comment (optional)",
    )

    def __init__(self, levels: list[float], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["points"].choices = [(f"{level:g}", f"{level:g}") for level in levels]  # type: ignore[attr-defined]


@grader_required
def queue(request: HttpRequest) -> HttpResponse:
    to_grade = list(selectors.grading_queue(request.user)[:200])  # type: ignore[arg-type]
    to_adjudicate = list(selectors.adjudication_queue(request.user)[:200])  # type: ignore[arg-type]
    return render(
        request, "grading/queue.html", {"to_grade": to_grade, "to_adjudicate": to_adjudicate}
    )


@grader_required
def grade(request: HttpRequest, blind_id: str) -> HttpResponse:
    item = selectors.grading_item(blind_id)
    if item is None or item.question.type != "free_text":
        raise Http404("no such answer")
    adjudicating = item.status == ItemResponse.Status.NEEDS_ADJUDICATION
    open_to_me = (
        selectors.adjudication_queue(request.user)  # type: ignore[arg-type]
        if adjudicating
        else selectors.grading_queue(request.user)  # type: ignore[arg-type]
    ).filter(blind_id=blind_id)
    if not open_to_me.exists():
        messages.info(request, f"Answer {blind_id} needs no more grades from you.")
        return redirect("grading:queue")
    form = GradeForm(item.levels, request.POST or None)
    if request.method == "POST" and form.is_valid():
        response = ItemResponse.objects.get(blind_id=blind_id)
        try:
            if adjudicating:
                services.adjudicate(
                    response=response,
                    adjudicator=request.user,  # type: ignore[arg-type]
                    points=form.cleaned_data["points"],
                    comment=form.cleaned_data["comment"],
                )
            else:
                services.grade_submit(
                    response=response,
                    grader=request.user,  # type: ignore[arg-type]
                    points=form.cleaned_data["points"],
                    comment=form.cleaned_data["comment"],
                )
        except services.GradingError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Saved your grade for {blind_id}.")
            following = (
                adjudicating and selectors.adjudication_queue(request.user).first()  # type: ignore[arg-type]
            ) or selectors.grading_queue(request.user).first()  # type: ignore[arg-type]
            if following is not None:
                return redirect("grading:grade", blind_id=following.blind_id)
            return redirect("grading:queue")
    question = item.question
    return render(
        request,
        "grading/grade.html",
        {
            "item": item,
            "form": form,
            "adjudicating": adjudicating,
            "question_text": render_markdown(question.text),
            "rubric": question.rubric,
            "rubric_text": render_markdown(question.rubric.guidance) if question.rubric else "",
        },
        status=400 if request.method == "POST" else 200,
    )
