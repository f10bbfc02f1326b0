"""JSON endpoints the participant's browser calls during a stage: autosave, Run, Check and
telemetry. Who is calling comes from the signed cookie; whether they may (stage, task, time)
is decided here from the database, every time. Malformed input gets a 400 naming the field."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterator
from functools import wraps
from typing import Any

from asgiref.sync import sync_to_async
from celery.result import AsyncResult
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from skilltrial.waiting import in_waiting_thread, iterate_in_thread, release_connection
from trials import work
from trials.models import Participant, Trial
from trials.participant_session import participant_from_cookie
from trials.sandboxing import trial_files
from trials.selectors import live_trial
from trials.services import StageConflict, TrialError, assistant, coding, events
from trials.services.answers import AnswersChanged, answers_autosave

Handler = Callable[[HttpRequest, Trial, Participant, dict[str, Any]], HttpResponseBase]
AsyncHandler = Callable[
    [HttpRequest, Trial, Participant, dict[str, Any]], Awaitable[HttpResponseBase]
]


class BadRequest(Exception):
    pass


def _body(request: HttpRequest) -> dict[str, Any]:
    # sendBeacon cannot set headers, so it posts a form with the JSON in "payload".
    raw: str | bytes = request.POST.get("payload", "") if request.POST else request.body
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kind: type, *, required: bool = True) -> Any:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(f"field '{name}' must be {kind.__name__}")
    return value


def _caller(request: HttpRequest, slug: str) -> tuple[Trial, Participant] | JsonResponse:
    trial = live_trial(slug)
    if trial is None:
        return JsonResponse({"error": "not_open", "message": "This study is not open."}, status=404)
    participant = participant_from_cookie(request, trial)
    if participant is None:
        return JsonResponse(
            {"error": "no_participant", "message": "Please reopen the study link."}, status=403
        )
    return trial, participant


def _refusal(exc: Exception, trial: Trial, participant: Participant) -> JsonResponse | None:
    """The answer to an expected refusal, None for anything else (a real error)."""
    if isinstance(exc, BadRequest):
        return JsonResponse({"error": "bad_request", "message": str(exc)}, status=400)
    if isinstance(exc, coding.SaveConflict):
        return JsonResponse(
            {"error": "conflict", "version": exc.version, "code": exc.code}, status=409
        )
    if isinstance(exc, StageConflict):
        participant.refresh_from_db()
        return JsonResponse(
            {"error": "stage_over", "redirect": reverse("trials:entry", args=[trial.slug])},
            status=409,
        )
    if isinstance(exc, TrialError):
        return JsonResponse({"error": "refused", "message": str(exc)}, status=400)
    return None


def participant_endpoint(view: Handler) -> Callable[..., HttpResponseBase]:
    @require_POST
    @wraps(view)
    def wrapped(request: HttpRequest, slug: str) -> HttpResponseBase:
        found = _caller(request, slug)
        if isinstance(found, JsonResponse):
            return found
        trial, participant = found
        try:
            return view(request, trial, participant, _body(request))
        except (BadRequest, TrialError) as exc:
            response = _refusal(exc, trial, participant)
            if response is None:
                raise
            return response

    return wrapped


def waiting_endpoint(
    view: AsyncHandler,
) -> Callable[..., Coroutine[Any, Any, HttpResponseBase]]:
    """An endpoint that waits (a sandbox slot, a program, an LLM): an async view, so that under
    the ASGI server the wait holds no worker (skilltrial/waiting.py). Its database steps run
    with ``sync_to_async``; the same checks and refusals as ``participant_endpoint``."""

    @require_POST
    @wraps(view)
    async def wrapped(request: HttpRequest, slug: str) -> HttpResponseBase:
        found = await sync_to_async(_caller)(request, slug)
        if isinstance(found, JsonResponse):
            return found
        trial, participant = found
        try:
            return await view(request, trial, participant, _body(request))
        except (BadRequest, TrialError) as exc:
            response = await sync_to_async(_refusal)(exc, trial, participant)
            if response is None:
                raise
            return response

    return wrapped


@participant_endpoint
def save(
    request: HttpRequest, trial: Trial, participant: Participant, body: dict[str, Any]
) -> HttpResponse:
    stage, task = coding.coding_task(
        participant=participant,
        stage_key=_field(body, "stage", str),
        task_folder=_field(body, "task", str),
    )
    raw_time = body.get("client_time")
    client_time = parse_datetime(raw_time) if isinstance(raw_time, str) else None
    source = (
        body.get("source") if body.get("source") in ("autosave", "blur", "beacon") else "autosave"
    )
    snapshot = coding.code_save(
        participant=participant,
        stage=stage,
        task=task,
        code=_field(body, "code", str),
        base_version=_field(body, "base_version", int),
        source=str(source),
        client_time=client_time,
    )
    return JsonResponse({"version": snapshot.version})


def _begin_run(
    participant: Participant, body: dict[str, Any], kind: str, job: str
) -> tuple[coding.PendingRun, AsyncResult[Any] | None]:
    """Store the code and, with a broker, send the run at once (None in eager mode)."""
    stage, task = coding.coding_task(
        participant=participant,
        stage_key=_field(body, "stage", str),
        task_folder=_field(body, "task", str),
    )
    pending = coding.code_run_begin(
        participant=participant,
        stage=stage,
        task=task,
        code=_field(body, "code", str),
        kind=kind,
        job=job,
    )
    sent = None
    if work.eager():
        # The sandbox step runs in a waiting thread, which reads no database: the frozen
        # files it needs are fetched here, once per process.
        trial_files(participant.trial.protocol_hash)
    else:
        sent = work.send(pending)
    release_connection()  # the wait for the sandbox holds no database connection
    return pending, sent


def _run_answer(kind: str, answer: dict[str, Any]) -> JsonResponse:
    if answer["status"] == "busy":
        message = answer.get("message") or "The server is busy; please try again."
        return JsonResponse({"error": "busy", "message": message}, status=503)
    data: dict[str, Any] = {
        key: answer[key] for key in ("status", "message", "exit_code", "duration_ms", "version")
    }
    data["timed_out"] = answer["status"] == "timeout"
    if kind == "run":
        data.update(stdout=answer["stdout"], stderr=answer["stderr"], truncated=answer["truncated"])
    else:
        tests = answer["tests"]
        passed = sum(1 for t in tests if t["passed"])
        data.update(
            tests=tests,
            passed=passed,
            total=len(tests),
            all_passed=bool(tests) and passed == len(tests),
            first_pass=answer["first_pass"],
            # Errors that stopped the tests from running (syntax errors, time-outs) are shown;
            # what the tests printed is not.
            stderr=answer["stderr"] if not tests else "",
        )
    return JsonResponse(data)


def _run(kind: str) -> AsyncHandler:
    async def view(
        request: HttpRequest, trial: Trial, participant: Participant, body: dict[str, Any]
    ) -> HttpResponse:
        # One Run or Check per participant in flight, across app servers and runner workers.
        job = str(uuid.uuid4())
        if not await in_waiting_thread(work.take_turn, participant.pk, job):
            return _run_answer(kind, work.BUSY)
        try:
            pending, sent = await sync_to_async(_begin_run)(participant, body, kind, job)
        except BaseException:
            work.give_turn_back(participant.pk, job)
            raise
        if sent is not None:
            answer = await in_waiting_thread(work.wait, sent)
        else:
            try:
                ran = await in_waiting_thread(work.sandbox_here, pending)
            except BaseException:
                work.give_turn_back(participant.pk, job)
                raise
            answer = await sync_to_async(work.record_here)(ran, pending)
        return _run_answer(kind, answer)

    return view


run = waiting_endpoint(_run("run"))
check = waiting_endpoint(_run("check"))


@participant_endpoint
def queue(
    request: HttpRequest, trial: Trial, participant: Participant, body: dict[str, Any]
) -> HttpResponse:
    """Where this participant's waiting Run or Check stands in the machine's run queue."""
    return JsonResponse({"position": work.queue_position(participant)})


@participant_endpoint
def record_events(
    request: HttpRequest, trial: Trial, participant: Participant, body: dict[str, Any]
) -> HttpResponse:
    try:
        batch = events.parse_batch(body)
    except events.BatchInvalid as exc:
        raise BadRequest(str(exc)) from None
    result = events.events_record(participant=participant, events=batch)
    data: dict[str, Any] = {"stored": result.stored, "duplicates": result.duplicates}
    # A refused event is dropped for good: the answer is still 200, so the browser's queue
    # removes it with the rest of the batch instead of retrying it.
    if result.refused:
        data["refused"] = sum(result.refused.values())
    return JsonResponse(data)


@participant_endpoint
def answers(
    request: HttpRequest, trial: Trial, participant: Participant, body: dict[str, Any]
) -> HttpResponse:
    """Autosave of a question page. ``revision`` is the revision of the answers this tab last
    saw; if another tab has saved since, nothing is stored and the 409 carries the newer
    answers and their revision, for the page to show."""
    try:
        revision = answers_autosave(
            participant=participant,
            stage_key=_field(body, "stage", str),
            answers=_field(body, "answers", dict),
            base_revision=_field(body, "revision", str, required=False),
        )
    except AnswersChanged as exc:
        return JsonResponse(
            {
                "error": "answers_changed",
                "message": "These answers were changed in another tab or window.",
                "revision": exc.revision,
                "answers": exc.answers,
            },
            status=409,
        )
    return JsonResponse({"saved": True, "revision": revision})


def _sse(messages: Generator[dict[str, Any], None, None]) -> Iterator[bytes]:
    try:
        for message in messages:
            yield f"data: {json.dumps(message)}\n\n".encode()
    finally:
        # When the browser goes away (Stop), close the stream so it records the turn as
        # stopped now, not whenever the garbage collector gets to it.
        messages.close()


def _begin_question(
    participant: Participant, body: dict[str, Any]
) -> assistant.Exchange | JsonResponse:
    code = body.get("code", "")
    try:
        exchange = assistant.assistant_begin(
            participant=participant,
            stage_key=_field(body, "stage", str),
            task_folder=_field(body, "task", str),
            question=_field(body, "message", str),
            code=code if isinstance(code, str) else "",
        )
    except assistant.AssistantRefused as exc:
        return JsonResponse({"error": exc.reason, "message": str(exc)}, status=exc.status)
    release_connection()  # the stream records the turn on a connection of its own
    return exchange


async def _batched(messages: Callable[[], Iterator[bytes]]) -> AsyncIterator[bytes]:
    """The reply's messages as they come, at most ~30 sends a second (each send is one or
    more whole server-sent events, which the browser parses one by one)."""
    async for batch in iterate_in_thread(messages, gather_seconds=0.03):
        yield b"".join(batch)


@waiting_endpoint
async def ask_assistant(
    request: HttpRequest, trial: Trial, participant: Participant, body: dict[str, Any]
) -> HttpResponseBase:
    """Stream the assistant's reply as server-sent events. Refused (and logged) unless the
    participant's arm has the assistant and the current stage allows it. Under ASGI the reply
    is read from the model in a waiting thread and streamed by the event loop; under WSGI
    (the demo's runserver, the test client) the worker's thread streams it."""
    exchange = await sync_to_async(_begin_question)(participant, body)
    if isinstance(exchange, JsonResponse):
        return exchange

    def messages() -> Iterator[bytes]:
        return _sse(assistant.assistant_stream(participant=participant, exchange=exchange))

    content = _batched(messages) if isinstance(request, ASGIRequest) else messages()
    response = StreamingHttpResponse(content, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
