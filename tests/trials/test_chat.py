"""The assistant arm on the server: who may ask, streaming, budgets, the spend cap, failures
that never break the stage, and the record of every exchange."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tests.fakes.llm_server import Reply
from trials.definition import load_trial_dir
from trials.models import AssistantTurn, Event, Participant, Trial
from trials.services import trial_import, trial_launch

pytestmark = pytest.mark.django_db

SAMPLE = Path(settings.BASE_DIR) / "studies" / "trio-skill-formation"
TASK = "tasks/concurrent_greetings"


def entry(trial: Trial) -> str:
    return f"/t/{trial.slug}/"


def enroll(trial: Trial, answers: dict) -> tuple[Client, Participant]:
    client = Client(raise_request_exception=False)
    client.get(entry(trial))
    client.post(f"{entry(trial)}s/consent/", {"decision": "agree", "agree": "on"})
    client.post(f"{entry(trial)}s/screening/", answers)
    participant = Participant.objects.order_by("-created_at").first()
    return client, participant


def both_arms(trial: Trial, answers: dict) -> dict[str, tuple[Client, Participant]]:
    """Enroll in one stratum until each arm has a participant (a block has both)."""
    found: dict[str, tuple[Client, Participant]] = {}
    for _ in range(8):
        client, participant = enroll(trial, answers)
        found.setdefault(participant.allocation.arm.key, (client, participant))
        if len(found) == 2:
            return found
    raise AssertionError("both arms should appear within one block")


def to_main_tasks(client: Client, trial: Trial) -> None:
    assert client.post(f"{entry(trial)}s/warmup/", {}).status_code == 302


def ask(
    client: Client,
    trial: Trial,
    message: str,
    stage: str = "main_tasks",
    code: str = "import trio\n",
):
    return client.post(
        f"{entry(trial)}api/assistant/",
        json.dumps({"stage": stage, "task": TASK, "message": message, "code": code}),
        content_type="application/json",
    )


def sse(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return [
        json.loads(chunk[len("data: ") :])
        for chunk in body.split("\n\n")
        if chunk.startswith("data: ")
    ]


def variant(tmp_path: Path, assistant_table: str, extra_top: str = "", budget: str = "") -> Trial:
    folder = tmp_path / "trial"
    shutil.copytree(SAMPLE, folder)
    toml = folder / "trial.toml"
    text = toml.read_text()
    start = text.index("[arms.assistant]")
    end = text.index("[[arms]]", start)
    text = text[:start] + "[arms.assistant]\n" + assistant_table + "\n" + budget + "\n" + text[end:]
    toml.write_text(extra_top + text)
    return trial_launch(trial=trial_import(definition=load_trial_dir(folder)).trial)


def test_ai_arm_gets_a_streamed_reply_recorded_with_its_full_context(live_trial, eligible_answers):
    client, _ = both_arms(live_trial, eligible_answers)["ai"]
    to_main_tasks(client, live_trial)
    response = ask(
        client, live_trial, "How do I run both greeters at the same time?", code="# my code\n"
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    messages = sse(response)
    assert messages[0]["type"] == "start" and messages[-1]["type"] == "done"
    reply = "".join(m["text"] for m in messages if m["type"] == "delta")
    assert "nursery" in reply.lower()
    assert sum(m["type"] == "delta" for m in messages) > 1  # really streamed
    turn = AssistantTurn.objects.get()
    assert (turn.status, turn.reply, turn.provider) == ("completed", reply, "scripted")
    assert "# my code" in turn.context["system"]  # the arm sees the participant's code
    assert "two greeters at once" in turn.context["system"].lower()  # and the instructions
    kinds = list(Event.objects.filter(type__startswith="assistant").values_list("type", flat=True))
    assert kinds == ["assistant_request", "assistant_response"]
    response_event = Event.objects.get(type="assistant_response")
    assert response_event.payload["output_tokens"] > 0 and response_event.payload["reply"] == reply
    # The conversation comes back after a reload.
    page = client.get(f"{entry(live_trial)}s/main_tasks/")
    history = page.context["page_state"]["assistant"]["history"][TASK]
    assert [(h["role"], h["content"]) for h in history] == [
        ("user", "How do I run both greeters at the same time?"),
        ("assistant", reply),
    ]


def test_asking_for_code_gets_the_reference_solution_and_a_paste_of_it_is_linked(
    live_trial, eligible_answers
):
    client, _ = both_arms(live_trial, eligible_answers)["ai"]
    to_main_tasks(client, live_trial)
    reply = "".join(
        m.get("text", "") for m in sse(ask(client, live_trial, "Please write the code for me"))
    )
    solution = live_trial.files[f"{TASK}/solution.py"]
    assert solution.strip() in reply
    block = reply.split("```python\n", 1)[1].split("```", 1)[0]
    paste = {
        "id": "p1",
        "seq": 1,
        "type": "paste",
        "stage": "main_tasks",
        "payload": {
            "task": TASK,
            "length": len(block),
            "sha256": hashlib.sha256(block.encode()).hexdigest(),
        },
    }
    client.post(
        f"{entry(live_trial)}api/events/",
        json.dumps({"events": [paste]}),
        content_type="application/json",
    )
    stored = Event.objects.get(client_id="p1")
    assert stored.payload["from_assistant"] is True
    assert stored.payload["assistant_turn"] == AssistantTurn.objects.get().pk


def test_the_no_ai_arm_has_no_panel_and_no_working_endpoint(live_trial, eligible_answers):
    client, _ = both_arms(live_trial, eligible_answers)["no_ai"]
    to_main_tasks(client, live_trial)
    page = client.get(f"{entry(live_trial)}s/main_tasks/")
    assert "assistant" not in page.context["page_state"]
    assert b"api/assistant" not in page.content
    response = ask(client, live_trial, "help me")
    assert response.status_code == 403
    assert not AssistantTurn.objects.exists()
    assert Event.objects.get(type="assistant_refused").payload == {"reason": "not_allowed"}


def test_stages_without_the_assistant_refuse_it_even_in_the_ai_arm(live_trial, eligible_answers):
    client, _ = both_arms(live_trial, eligible_answers)["ai"]
    # The warm-up allows no tools.
    response = client.post(
        f"{entry(live_trial)}api/assistant/",
        json.dumps({"stage": "warmup", "task": "tasks/warmup", "message": "hi", "code": ""}),
        content_type="application/json",
    )
    assert response.status_code == 403
    # A later stage, or a stage that is over, cannot be used either.
    assert ask(client, live_trial, "hi").status_code == 409
    to_main_tasks(client, live_trial)
    client.post(f"{entry(live_trial)}s/main_tasks/", {})
    assert ask(client, live_trial, "hi").status_code == 409
    assert not AssistantTurn.objects.exists()


def test_message_budget_is_enforced(tmp_path, eligible_answers):
    trial = variant(tmp_path, 'provider = "scripted"', budget="[arms.budget]\nmessages = 2\n")
    client, _ = both_arms(trial, eligible_answers)["ai"]
    to_main_tasks(client, trial)
    for _ in range(2):
        assert sse(ask(client, trial, "what is a nursery?"))[-1]["type"] == "done"
    refused = ask(client, trial, "and another?")
    assert refused.status_code == 429
    assert "used all the messages" in refused.json()["message"]


def test_real_sdk_provider_through_the_loopback_server(
    tmp_path, eligible_answers, llm_server, monkeypatch
):
    llm_server.default = Reply(
        "Use a **nursery**: `async with trio.open_nursery() as n:`", input_tokens=120
    )
    table = (
        'provider = "anthropic"\nmodel = "claude-test"\n'
        f'base_url = "{llm_server.anthropic_base_url}"\n'
        'api_key_env = "SKILLTRIAL_TEST_ANTHROPIC_KEY"\ntimeout_seconds = 2\n'
        "input_price_per_million_tokens = 3.0\noutput_price_per_million_tokens = 15.0\n"
    )
    trial = variant(tmp_path, table)
    client, _ = both_arms(trial, eligible_answers)["ai"]
    to_main_tasks(client, trial)
    monkeypatch.setenv("SKILLTRIAL_TEST_ANTHROPIC_KEY", "sk-test-secret-123")
    messages = sse(ask(client, trial, "How do I start two things at once?"))
    reply = "".join(m.get("text", "") for m in messages)
    assert reply == "Use a **nursery**: `async with trio.open_nursery() as n:`"
    turn = AssistantTurn.objects.get()
    assert (turn.input_tokens, turn.model) == (120, "claude-test")
    assert turn.cost_usd == pytest.approx((120 * 3.0 + turn.output_tokens * 15.0) / 1e6)
    sent = llm_server.requests[-1].body
    assert sent["system"] == turn.context["system"]
    everything = json.dumps(list(Event.objects.values_list("payload", flat=True))) + str(
        turn.context
    )
    assert "sk-test-secret-123" not in everything


def test_a_provider_failure_shows_a_calm_message_and_keeps_the_stage(
    tmp_path, eligible_answers, llm_server
):
    llm_server.fail_next(500, times=10)
    table = (
        f'provider = "openai"\nmodel = "local-model"\nbase_url = "{llm_server.openai_base_url}"\n'
        'api_key_env = ""\ntimeout_seconds = 2\nmax_retries = 1\n'
    )
    trial = variant(tmp_path, table)
    client, participant = both_arms(trial, eligible_answers)["ai"]
    to_main_tasks(client, trial)
    messages = sse(ask(client, trial, "help"))
    assert messages[-1]["type"] == "error"
    assert "not available right now" in messages[-1]["message"]
    turn = AssistantTurn.objects.get()
    assert (turn.status, turn.error_kind) == ("failed", "server_error")
    assert Event.objects.filter(type="assistant_error").count() == 1
    participant.refresh_from_db()
    assert participant.current_stage.key == "main_tasks"
    assert client.get(f"{entry(trial)}s/main_tasks/").status_code == 200


def test_the_trial_spend_cap_stops_further_requests(tmp_path, eligible_answers):
    trial = variant(
        tmp_path,
        'provider = "scripted"\ninput_price_per_million_tokens = 1000000.0\n',
        extra_top="assistant_spend_cap_usd = 1.0\n",
    )
    client, _ = both_arms(trial, eligible_answers)["ai"]
    to_main_tasks(client, trial)
    first = ask(client, trial, "what is a nursery?")
    assert first.status_code == 200
    assert sse(first)[-1]["type"] == "done"  # the reply is streamed (and costed) to the end
    assert AssistantTurn.objects.get().cost_usd > 1.0
    refused = ask(client, trial, "and a cancel scope?")
    assert refused.status_code == 503
    assert Event.objects.filter(type="assistant_refused", payload__reason="spend_cap").exists()


def test_a_paste_after_an_assistant_copy_in_the_same_batch_is_linked(live_trial, eligible_answers):
    client, _ = both_arms(live_trial, eligible_answers)["ai"]
    to_main_tasks(client, live_trial)
    sse(ask(client, live_trial, "what is a nursery?"))
    turn = AssistantTurn.objects.get().pk
    digest = hashlib.sha256(b"open_nursery").hexdigest()
    batch = [
        {
            "id": "c1",
            "seq": 1,
            "type": "copy",
            "stage": "main_tasks",
            # The chat panel sends the copied text: the server finds it in the stored reply.
            "payload": {
                "task": TASK,
                "source": "assistant",
                "turn": turn,
                "sha256": digest,
                "text": "open_nursery",
            },
        },
        {
            "id": "p1",
            "seq": 2,
            "type": "paste",
            "stage": "main_tasks",
            "payload": {"task": TASK, "length": 12, "sha256": digest},
        },
    ]
    response = client.post(
        f"{entry(live_trial)}api/events/",
        json.dumps({"events": batch}),
        content_type="application/json",
    )
    assert response.status_code == 200
    assert Event.objects.get(client_id="p1").payload["assistant_turn"] == turn
    # After a reload the conversation carries each turn's id and outcome.
    page = client.get(f"{entry(live_trial)}s/main_tasks/")
    history = page.context["page_state"]["assistant"]["history"][TASK]
    assert {(h["turn"], h["status"]) for h in history} == {(turn, "completed")}
