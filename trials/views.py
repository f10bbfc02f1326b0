"""Participant pages. Each view parses the request, calls one service, renders.

Who the participant is comes from a signed cookie; where they are, what they may use and when
their time is up all come from the database on every request.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote, unquote, urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from trials import identity, question_pages, services
from trials.forms import ConsentForm, QuestionForm
from trials.models import Participant, Stage, TaskState, Trial
from trials.participant_session import (
    COOKIE_SALT,
    cookie_session,
    participant_from_cookie,
    remember_participant,
    waiting_cookie_name,
)
from trials.rendering import render_markdown
from trials.selectors import live_trial, participant_tools
from trials.services import answers, assistant, coding
from trials.tasks import Task, load_task


def _stage_url(trial: Trial, stage: Stage) -> str:
    return reverse("trials:stage", args=[trial.slug, stage.key])


def _not_open(request: HttpRequest, slug: str) -> HttpResponse:
    return render(request, "trials/not_open.html", {"slug": slug}, status=404)


@require_http_methods(["GET", "HEAD"])
def entry(request: HttpRequest, slug: str) -> HttpResponse:
    """/t/<slug>/: create or resume a participant and send them to their current stage.

    A browser that holds a participant's session goes on where they are. Otherwise the link's
    external id decides: a new one creates a participant; a known one never allocates again,
    and this browser gets the resume page, not the session (README, "One person, one
    allocation")."""
    trial = live_trial(slug)
    if trial is None:
        return _not_open(request, slug)
    session = cookie_session(request, trial)
    if session.participant is not None:
        services.participant_touch(participant=session.participant)
        return remember_participant(
            _redirect_to_current(trial, session.participant), trial, session.participant
        )
    if session.superseded is not None:
        return _resume_page(request, trial, session.superseded, superseded=True)
    if not request.GET:
        waiting = identity.participant_with_external_id(trial, _waiting_for(request, trial))
        if waiting is not None:
            return _resume_page(request, trial, waiting)
    visitor = identity.visitor_of(request)
    try:
        arrival = services.participant_arrive(
            trial=trial, external_ids=request.GET.dict(), visitor=visitor
        )
    except services.EntryRefused as exc:
        return render(
            request, "trials/entry_refused.html", {"trial": trial, "message": str(exc)}, status=400
        )
    if arrival.created:
        return remember_participant(
            _redirect_to_current(trial, arrival.participant), trial, arrival.participant
        )
    services.participant_note_second_browser(participant=arrival.participant, visitor=visitor)
    return _resume_page(request, trial, arrival.participant)


def _resume_page(
    request: HttpRequest,
    trial: Trial,
    participant: Participant,
    *,
    superseded: bool = False,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    """The page a browser without the participant's session sees: the resume code form, and
    when the trial allows it, a takeover once the other browser has been idle long enough.
    It shows nothing of the participant's stage, arm or codes."""
    wait = services.takeover_wait(participant)
    context = {
        "trial": trial,
        "external_id": participant.external_id,
        "superseded": superseded,
        "ended": participant.current_stage is None,
        "error": error,
        "idle_minutes": identity.ParticipantRules.of(trial).resume_idle_minutes,
        "takeover_allowed": wait is not None,
        "takeover_now": wait is not None and wait <= timedelta(0),
        "takeover_in_minutes": math.ceil(wait.total_seconds() / 60) if wait else 0,
        "code_length": identity.RESUME_CODE_LENGTH,
    }
    response = render(request, "trials/resume.html", context, status=status)
    response["Cache-Control"] = "no-store"
    if participant.external_id and not superseded:
        response.set_signed_cookie(
            waiting_cookie_name(trial),
            # Quoted: an id may hold any character, a cookie only ASCII.
            quote(participant.external_id, safe=""),
            salt=COOKIE_SALT,
            max_age=60 * 60 * 24,
            httponly=True,
            samesite="Lax",
        )
    return response


def _waiting_for(request: HttpRequest, trial: Trial) -> str:
    value = request.get_signed_cookie(
        waiting_cookie_name(trial), default="", salt=COOKIE_SALT, max_age=60 * 60 * 24
    )
    return unquote(str(value or ""))


RESUME_STATUS = {"wrong_code": 400, "locked": 429, "active": 409, "code_required": 409}


@require_http_methods(["POST"])
def resume(request: HttpRequest, slug: str) -> HttpResponse:
    """POST /t/<slug>/resume/: the resume code (or a takeover after the other browser has
    been idle) moves the participant's session to this browser."""
    trial = live_trial(slug)
    if trial is None:
        return _not_open(request, slug)
    external = request.POST.get("external_id", "").strip()
    participant = identity.participant_with_external_id(trial, external)
    if participant is None:
        return render(
            request,
            "trials/entry_refused.html",
            {
                "trial": trial,
                "message": "There is no session to continue for this participant ID. Please "
                "open the study link from the recruitment site again.",
            },
            status=400,
        )
    held = cookie_session(request, trial).participant
    if held is not None and held.pk == participant.pk:
        return _redirect_to_current(trial, held)  # already this browser's session
    visitor = identity.visitor_of(request)
    try:
        if request.POST.get("action") == "take_over":
            participant = services.participant_take_over(participant=participant, visitor=visitor)
        else:
            participant = services.participant_resume(
                participant=participant, code=request.POST.get("code", ""), visitor=visitor
            )
    except services.ResumeRefused as exc:
        response = _resume_page(
            request, trial, participant, error=str(exc), status=RESUME_STATUS[exc.reason]
        )
        if exc.retry_after:
            response["Retry-After"] = str(exc.retry_after)
        return response
    response = remember_participant(_redirect_to_current(trial, participant), trial, participant)
    response.delete_cookie(waiting_cookie_name(trial), samesite="Lax")
    return response


def _redirect_to_current(trial: Trial, participant: Participant) -> HttpResponseRedirect:
    if participant.current_stage is None:
        return redirect("trials:finished", slug=trial.slug)
    return redirect(_stage_url(trial, participant.current_stage))


@require_http_methods(["GET", "HEAD"])
def finished(request: HttpRequest, slug: str) -> HttpResponse:
    trial = live_trial(slug)
    if trial is None:
        return _not_open(request, slug)
    participant = participant_from_cookie(request, trial)
    if participant is None:
        return redirect("trials:entry", slug=slug)
    if participant.current_stage is not None:
        return _redirect_to_current(trial, participant)
    return render(request, "trials/finished.html", {"trial": trial, "participant": participant})


@require_http_methods(["GET", "HEAD", "POST"])
def stage(request: HttpRequest, slug: str, stage_key: str) -> HttpResponse:
    trial = live_trial(slug)
    if trial is None:
        return _not_open(request, slug)
    participant = participant_from_cookie(request, trial)
    if participant is None:
        return redirect("trials:entry", slug=slug)
    # A page load after the deadline shows the next stage at once (no grace: the page only
    # reloads after its time is up, its last saves have already been sent).
    participant = services.participant_sync_clock(
        participant=participant,
        grace=timedelta(0) if request.method != "POST" else services.DEADLINE_GRACE,
    )
    current = participant.current_stage
    if current is None or current.key != stage_key:
        # A later stage's URL, a replayed form or a second tab: go where the server says.
        _say_answers_unused(request, trial, stage_key)
        return _redirect_to_current(trial, participant)
    handler = STAGE_HANDLERS[current.type]
    try:
        return handler(request, trial, participant, current)
    except services.StageConflict:
        participant.refresh_from_db()
        _say_answers_unused(request, trial, stage_key)
        return _redirect_to_current(trial, participant)


def _say_answers_unused(request: HttpRequest, trial: Trial, stage_key: str) -> None:
    # A question page submitted after its step was finished (in another tab or window) is
    # not silently dropped: the next page says so.
    if (
        request.method == "POST"
        and trial.stages.filter(key=stage_key, type__in=QUESTION_STAGES).exists()
    ):
        messages.info(
            request,
            "That step had already been finished in another tab or window, so the answers "
            "sent from that page were not used. You are now at the next step.",
        )


def _page(
    request: HttpRequest,
    template: str,
    trial: Trial,
    participant: Participant,
    stage: Stage,
    context: dict[str, Any],
    status: int = 200,
) -> HttpResponse:
    stages = list(trial.stages.order_by("order"))
    position = stages.index(stage)
    # Someone whose previous stage's time ran out (on the page, or while they were away) is
    # told so on the stage they were moved to, not silently dropped into it.
    records = participant.stage_records
    timed_out = (
        records.filter(
            stage=stages[position - 1], end_reason=records.model.EndReason.TIMED_OUT
        ).first()
        if position > 0
        else None
    )
    remaining = None
    if participant.stage_deadline is not None:
        remaining = max(0, math.ceil((participant.stage_deadline - timezone.now()).total_seconds()))
    base = {
        "trial": trial,
        "participant": participant,
        "stage": stage,
        "stage_number": position + 1,
        "timed_out_stage": timed_out.stage if timed_out else None,
        "timed_out_at": timed_out.deadline if timed_out else None,
        "stage_count": len(stages),
        "remaining_seconds": remaining,
        "tools": sorted(participant_tools(participant)),
        # Only a person with an external id can come back in another browser with the code.
        "resume_code": (
            identity.display_code(identity.resume_code(participant))
            if participant.external_id
            else ""
        ),
    }
    return render(request, template, base | context, status=status)


def _consent(
    request: HttpRequest, trial: Trial, participant: Participant, stage: Stage
) -> HttpResponse:
    form = ConsentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        participant = services.participant_consent(
            participant=participant,
            stage_key=stage.key,
            agreed=form.cleaned_data["decision"] == "agree",
        )
        return _redirect_to_current(trial, participant)
    text = render_markdown(trial.files.get(stage.config.get("file", ""), ""))
    status = 400 if request.method == "POST" else 200
    return _page(
        request,
        "trials/consent.html",
        trial,
        participant,
        stage,
        {"form": form, "text": text},
        status,
    )


def _questions(
    request: HttpRequest, trial: Trial, participant: Participant, stage: Stage
) -> HttpResponse:
    """Screening, survey and quiz pages: a form of the stage's questions, autosaved. A quiz is
    finished in two steps: "Review answers" saves and shows the review screen, "Submit answers"
    there submits the saved answers. A form whose answers were changed in another tab since it
    was shown is refused (409) and shows the newer ones."""
    questions = services.stage_questions(participant, stage)
    saved = answers.stage_answers(participant=participant, stage=stage, questions=questions)
    is_quiz = stage.type == Stage.Type.QUIZ
    step = request.POST.get("step", "") if request.method == "POST" else ""
    # A form from the page always says which revision it shows; other clients may not.
    base_revision = request.POST.get("revision") if request.method == "POST" else None
    stale = base_revision is not None and base_revision != saved.revision
    form = QuestionForm(questions, initial=saved.answers)
    review = is_quiz and request.method != "POST" and request.GET.get("review") == "1"
    if stale:
        review = step == "submit"
    elif is_quiz and step == "submit":
        form = QuestionForm(questions, question_pages.form_data(saved.answers))
        form.is_valid()  # the saved answers, cleaned as a submitted form would be
        participant = services.participant_complete_stage(
            participant=participant, stage_key=stage.key, answers=form.answers()
        )
        return _redirect_to_current(trial, participant)
    elif request.method == "POST":
        form = QuestionForm(questions, request.POST)
        if form.is_valid() and is_quiz and step == "review":
            try:
                answers.answers_save_draft(
                    participant=participant,
                    stage=stage,
                    questions=questions,
                    answers=form.answers(),
                    base_revision=base_revision,
                )
            except answers.AnswersChanged:
                stale = True
                saved = answers.stage_answers(
                    participant=participant, stage=stage, questions=questions
                )
                form = QuestionForm(questions, initial=saved.answers)
            else:
                return redirect(f"{_stage_url(trial, stage)}?review=1")
        elif form.is_valid() and stage.type == Stage.Type.SCREENING:
            participant = services.participant_screen(
                participant=participant, stage_key=stage.key, answers=form.answers()
            )
            return _redirect_to_current(trial, participant)
        elif form.is_valid():
            participant = services.participant_complete_stage(
                participant=participant, stage_key=stage.key, answers=form.answers()
            )
            return _redirect_to_current(trial, participant)
    status = 409 if stale else 400 if request.method == "POST" else 200
    context = question_pages.page_context(
        form=form, questions=questions, saved=saved, is_quiz=is_quiz, review=review
    )
    context |= {"stale": stale, "autosave_url": reverse("trials:api_answers", args=[trial.slug])}
    return _page(request, "trials/questions.html", trial, participant, stage, context, status)


def _instructions(
    request: HttpRequest, trial: Trial, participant: Participant, stage: Stage
) -> HttpResponse:
    if request.method == "POST":
        participant = services.participant_complete_stage(
            participant=participant, stage_key=stage.key, answers={}
        )
        return _redirect_to_current(trial, participant)
    text = render_markdown(trial.files.get(stage.config.get("file", ""), ""))
    return _page(request, "trials/instructions.html", trial, participant, stage, {"text": text})


def _task(
    request: HttpRequest, trial: Trial, participant: Participant, stage: Stage
) -> HttpResponse:
    # Only what a participant may see: title, instructions, their code. Never the hidden
    # tests or the reference solution.
    tasks = [load_task(trial.files, folder) for folder in stage.config.get("tasks", [])]
    if request.method != "POST" and is_phone(request) and not trial.definition.get("allow_phones"):
        return _page(
            request,
            "trials/use_computer.html",
            trial,
            participant,
            stage,
            {"resume_link": _resume_link(request, trial, participant)},
        )
    if request.method == "POST":
        participant = coding.task_stage_finish(
            participant=participant, stage=stage, code=_submitted_code(request, tasks)
        )
        return _redirect_to_current(trial, participant)
    views = _task_views(participant, tasks)
    api: dict[str, str] = {
        name: reverse(f"trials:api_{name}", args=[trial.slug])
        for name in ("save", "run", "check", "queue", "events")
    }
    api["submit"] = request.path
    remaining = (
        max(0, math.ceil((participant.stage_deadline - timezone.now()).total_seconds()))
        if participant.stage_deadline
        else None
    )
    tools = sorted(participant_tools(participant))
    page_state: dict[str, Any] = {
        "stage": stage.key,
        "tasks": views,
        "api": api,
        "remaining_seconds": remaining,
        "tools": tools,
        "participant_ref": participant.public_code,
        "max_code_chars": coding.MAX_CODE_CHARS,
    }
    if "assistant" in tools:
        # Only the assistant arm, only in stages that allow it, gets the chat's endpoint
        # and conversation; the other arm's page carries nothing of it.
        page_state["assistant"] = {
            "url": reverse("trials:api_assistant", args=[trial.slug]),
            "history": {task.folder: assistant.history(participant, task.folder) for task in tasks},
        }
    return _page(
        request,
        "trials/task.html",
        trial,
        participant,
        stage,
        {"tasks": views, "api": api, "page_state": page_state},
    )


def _submitted_code(request: HttpRequest, tasks: list[Task]) -> dict[str, str]:
    return {
        # NUL cannot be stored in PostgreSQL text; it is never meaningful in code.
        # Browsers submit textareas with CRLF; the editor and autosave use LF.
        task.folder: request.POST.get(f"code_{i}", "")[: coding.MAX_CODE_CHARS]
        .replace("\r\n", "\n")
        .replace("\x00", "")
        for i, task in enumerate(tasks)
        if f"code_{i}" in request.POST
    }


def _task_views(participant: Participant, tasks: list[Task]) -> list[dict[str, Any]]:
    # What the page shows of each task: its text and the participant's latest code.
    completed = set(
        TaskState.objects.filter(
            participant=participant, first_passed_at__isnull=False
        ).values_list("task", flat=True)
    )
    views = []
    for i, task in enumerate(tasks):
        text, version = coding.latest_code(participant, task)
        views.append(
            {
                "index": i,
                "folder": task.folder,
                "title": task.title,
                "instructions": render_markdown(task.instructions),
                "code": text,
                "version": version,
                "completed": task.folder in completed,
            }
        )
    return views


def is_phone(request: HttpRequest) -> bool:
    """A phone by its own account: the client hint Chromium sends, or "Mobi" in the user agent
    (every phone browser's; tablets leave it out and get the task)."""
    return request.headers.get("Sec-CH-UA-Mobile") == "?1" or "Mobi" in request.headers.get(
        "User-Agent", ""
    )


def _resume_link(request: HttpRequest, trial: Trial, participant: Participant) -> str:
    """The entry link that brings this person back on a computer: with their external id it
    leads to the resume step (and their resume code); without one, the link alone."""
    url = request.build_absolute_uri(reverse("trials:entry", args=[trial.slug]))
    parameter = identity.ParticipantRules.of(trial).external_id
    if parameter and participant.external_id:
        url += "?" + urlencode({parameter: participant.external_id})
    return url


def _debrief(
    request: HttpRequest, trial: Trial, participant: Participant, stage: Stage
) -> HttpResponse:
    text = render_markdown(trial.files.get(stage.config.get("file", ""), ""))
    redirect_url = trial.definition.get("completion_redirect_url", "")
    if redirect_url:
        redirect_url = redirect_url.replace("{code}", participant.completion_code)
    return _page(
        request,
        "trials/debrief.html",
        trial,
        participant,
        stage,
        {"text": text, "redirect_url": redirect_url},
    )


StageHandler = Callable[[HttpRequest, Trial, Participant, Stage], HttpResponse]

QUESTION_STAGES = (Stage.Type.SCREENING, Stage.Type.QUIZ, Stage.Type.SURVEY)
STAGE_HANDLERS: dict[str, StageHandler] = {
    Stage.Type.CONSENT: _consent,
    Stage.Type.SCREENING: _questions,
    Stage.Type.INSTRUCTIONS: _instructions,
    Stage.Type.TASK: _task,
    Stage.Type.QUIZ: _questions,
    Stage.Type.SURVEY: _questions,
    Stage.Type.DEBRIEF: _debrief,
}
