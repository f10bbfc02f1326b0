"""Trials, arms, stages, participants, allocations and the records of each stage.

Business rules live in ``services.py``; these models hold data and the constraints the
database must enforce whatever the code does (one allocation per participant, gap-free
unique sequence numbers, one live version per slug, one record per participant and stage).
"""

from __future__ import annotations

import secrets
from typing import Any

from django.db import models
from django.db.models import Q


def new_participant_id() -> str:
    # 128 bits from the OS CSPRNG: unguessable, so it can live in a (signed) cookie or a link.
    return secrets.token_urlsafe(16)


def new_public_code() -> str:
    # A short pseudonymous code shown to people (dashboard, exports); not a secret.
    return "P" + secrets.token_hex(4).upper()


def new_completion_code() -> str:
    return secrets.token_hex(4).upper()


def new_session_token() -> str:
    # Binds a participant to one browser: the signed cookie carries it, and a resume in
    # another browser replaces it, so the first browser's cookie stops working.
    return secrets.token_urlsafe(16)


class Trial(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        LIVE = "live", "Live"
        CLOSED = "closed", "Closed"

    slug = models.SlugField(max_length=80)
    version = models.PositiveIntegerField(default=1)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    definition = models.JSONField(help_text="The normalised trial.toml")
    files = models.JSONField(default=dict, help_text="Referenced files: relative path -> text")
    definition_hash = models.CharField(max_length=64, help_text="SHA-256 of the current draft")
    protocol_hash = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 frozen at launch (preregistration)"
    )
    # Concealment: the seed is never rendered, logged or serialised for anyone.
    randomization_seed = models.CharField(max_length=128, blank=True, editable=False)
    randomization_scheme = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["slug", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["slug", "version"], name="trial_slug_version_unique"),
            models.UniqueConstraint(
                fields=["slug"], condition=Q(status="live"), name="trial_one_live_version"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.slug} v{self.version} ({self.status})"

    @property
    def is_frozen(self) -> bool:
        return self.status != self.Status.DRAFT

    @property
    def analysis_plan(self) -> dict[str, Any]:
        return dict(self.definition.get("analysis", {}))


class Arm(models.Model):
    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="arms")
    key = models.CharField(max_length=40)
    label = models.CharField(max_length=200)
    weight = models.PositiveIntegerField()
    tools = models.JSONField(default=list)
    settings = models.JSONField(default=dict, blank=True)  # the arm's [arms.assistant] table
    budget = models.JSONField(default=dict, blank=True)  # the arm's [arms.budget] table
    order = models.PositiveIntegerField()

    class Meta:
        ordering = ["trial", "order"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "key"], name="arm_key_unique"),
            models.CheckConstraint(condition=Q(weight__gt=0), name="arm_weight_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.trial.slug}:{self.key}"


class Stage(models.Model):
    class Type(models.TextChoices):
        CONSENT = "consent"
        SCREENING = "screening"
        INSTRUCTIONS = "instructions"
        TASK = "task"
        QUIZ = "quiz"
        SURVEY = "survey"
        DEBRIEF = "debrief"

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="stages")
    key = models.CharField(max_length=40)
    type = models.CharField(max_length=20, choices=Type.choices)
    title = models.CharField(max_length=200)
    order = models.PositiveIntegerField()
    time_limit_seconds = models.PositiveIntegerField(null=True, blank=True)
    tools = models.JSONField(default=list)
    config = models.JSONField(default=dict, help_text="The stage's table from trial.toml")

    class Meta:
        ordering = ["trial", "order"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "key"], name="stage_key_unique"),
            models.UniqueConstraint(fields=["trial", "order"], name="stage_order_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.trial.slug}:{self.key}"


class Participant(models.Model):
    class Status(models.TextChoices):
        CONSENTING = "consenting", "Reading consent"
        SCREENING = "screening", "Screening"
        DECLINED = "declined", "Declined consent"
        SCREENED_OUT = "screened_out", "Screened out"
        ACTIVE = "active", "In the trial"
        COMPLETED = "completed", "Completed"
        WITHDRAWN = "withdrawn", "Withdrawn"

    id = models.CharField(primary_key=True, max_length=32, default=new_participant_id)
    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="participants")
    public_code = models.CharField(max_length=16, default=new_public_code)
    prolific_pid = models.CharField(max_length=64, blank=True)
    external_id = models.CharField(
        max_length=64,
        blank=True,
        help_text="The value of the trial's external id parameter ([participants] external_id)",
    )
    study_id = models.CharField(max_length=64, blank=True)
    session_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CONSENTING)
    consented_at = models.DateTimeField(null=True, blank=True)
    baseline = models.JSONField(default=dict, blank=True)
    eligible = models.BooleanField(null=True)
    screen_out_reasons = models.JSONField(default=list, blank=True)
    stratum = models.CharField(max_length=200, blank=True)
    current_stage = models.ForeignKey(
        Stage, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    stage_started_at = models.DateTimeField(null=True, blank=True)
    stage_deadline = models.DateTimeField(null=True, blank=True)
    completion_code = models.CharField(max_length=16, blank=True)
    is_synthetic = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # One browser at a time (README, "One person, one allocation").
    session_token = models.CharField(max_length=32, blank=True, default=new_session_token)
    last_seen_at = models.DateTimeField(
        null=True, blank=True, help_text="Last request from the browser holding the session"
    )
    # Keyed hashes (HMAC with SECRET_KEY), never the raw values: for duplicate flags only.
    address_hash = models.CharField(max_length=64, blank=True)
    browser_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["trial", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["trial", "prolific_pid"],
                condition=~Q(prolific_pid=""),
                name="participant_prolific_pid_unique",
            ),
            # One person, one participant (and so one allocation) per trial version: two
            # simultaneous first visits with one id cannot both insert.
            models.UniqueConstraint(
                fields=["trial", "external_id"],
                condition=~Q(external_id=""),
                name="participant_external_id_unique",
            ),
            models.UniqueConstraint(
                fields=["trial", "public_code"], name="participant_public_code_unique"
            ),
        ]
        indexes = [models.Index(fields=["trial", "status"])]

    def __str__(self) -> str:
        return self.public_code


class AllocationSequence(models.Model):
    """The row that serialises allocation: one per trial and stratum ("" when unstratified,
    and the whole trial for minimization). Allocation locks it with SELECT ... FOR UPDATE."""

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="sequences")
    stratum = models.CharField(max_length=200, blank=True)
    next_index = models.PositiveIntegerField(default=0)
    margins = models.JSONField(
        null=True,
        blank=True,
        default=None,
        help_text="Minimization: counts[factor][level][arm] of those allocated so far, kept "
        "with the sequence so that an allocation reads one row, not every earlier one "
        "(null: counted from the allocations at the next one)",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trial", "stratum"], name="sequence_stratum_unique")
        ]

    def __str__(self) -> str:
        return f"{self.trial.slug}:{self.stratum or '(all)'}"


class AppendOnlyError(RuntimeError):
    pass


class Allocation(models.Model):
    """The allocation log: one row per participant, ever; never updated or deleted."""

    participant = models.OneToOneField(
        Participant, on_delete=models.PROTECT, related_name="allocation"
    )
    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="allocations")
    arm = models.ForeignKey(Arm, on_delete=models.PROTECT, related_name="allocations")
    stratum = models.CharField(max_length=200, blank=True)
    scheme = models.CharField(max_length=32)
    sequence_number = models.PositiveIntegerField(help_text="1-based, within trial and stratum")
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["trial", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["trial", "stratum", "sequence_number"], name="allocation_sequence_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.participant_id} -> {self.arm.key}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("allocations are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise AppendOnlyError("allocations are append-only")


class StageRecord(models.Model):
    """One participant's passage through one stage: when it began and ended, and how."""

    class EndReason(models.TextChoices):
        COMPLETED = "completed", "Completed"
        TIMED_OUT = "timed_out", "Timed out (censored)"
        SCREENED_OUT = "screened_out", "Screened out"
        DECLINED = "declined", "Declined"

    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="stage_records"
    )
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="records")
    started_at = models.DateTimeField()
    deadline = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=20, choices=EndReason.choices, blank=True)
    answers = models.JSONField(default=dict, blank=True)
    draft = models.JSONField(
        default=dict, blank=True, help_text="Autosaved answers; what counts if time runs out"
    )
    draft_saved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["participant", "started_at"]
        constraints = [
            models.UniqueConstraint(fields=["participant", "stage"], name="stage_record_unique")
        ]

    def __str__(self) -> str:
        return f"{self.participant_id}:{self.stage.key}"


class TaskState(models.Model):
    """One participant's state on one coding task: the latest saved version (the row that
    serialises saves from several tabs), the first time every hidden test passed, and when
    the task was submitted with its stage."""

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="tasks")
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    task = models.CharField(max_length=200, help_text="Task folder within the trial")
    latest_version = models.PositiveIntegerField(default=0)
    first_passed_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    runs = models.PositiveIntegerField(default=0)
    checks = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["participant", "task"], name="task_state_unique")
        ]

    def __str__(self) -> str:
        return f"{self.participant_id}:{self.task}"


class CodeSnapshot(models.Model):
    """Every saved version of a participant's code for a task; never overwritten."""

    class Source(models.TextChoices):
        AUTOSAVE = "autosave"
        BLUR = "blur"
        BEACON = "beacon"
        RUN = "run"
        CHECK = "check"
        SUBMIT = "submit"

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="snapshots")
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    task = models.CharField(max_length=200)
    version = models.PositiveIntegerField()
    code = models.TextField()
    source = models.CharField(max_length=10, choices=Source.choices)
    client_time = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["participant", "task", "version"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "task", "version"], name="snapshot_version_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.participant_id}:{self.task}@{self.version}"


class CodeRun(models.Model):
    """A Run or a Check of participant code in the sandbox, with what came back."""

    class Kind(models.TextChoices):
        RUN = "run"
        CHECK = "check"

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="runs")
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    task = models.CharField(max_length=200)
    kind = models.CharField(max_length=5, choices=Kind.choices)
    code_sha256 = models.CharField(max_length=64)
    snapshot_version = models.PositiveIntegerField(null=True, blank=True)
    stdout = models.TextField(blank=True)
    stderr = models.TextField(blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    output_truncated = models.BooleanField(default=False)
    status = models.CharField(max_length=10)
    exception_type = models.CharField(max_length=100, blank=True)
    sandbox = models.CharField(max_length=20, blank=True)
    tests_passed = models.PositiveIntegerField(null=True, blank=True)
    tests_total = models.PositiveIntegerField(null=True, blank=True)
    test_results = models.JSONField(default=list, blank=True)
    job = models.UUIDField(
        null=True,
        blank=True,
        unique=True,
        editable=False,
        help_text="The Run or Check this records: a retried recording stores it once",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["participant", "created_at"]
        indexes = [models.Index(fields=["participant", "task", "created_at"])]

    def __str__(self) -> str:
        return f"{self.participant_id}:{self.task}:{self.kind}"


class Event(models.Model):
    """Append-only telemetry. (participant, client_id) is unique, so a retried batch is
    stored once; server_time is stamped here, client_time is what the browser said."""

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="events")
    stage = models.ForeignKey(
        Stage, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    type = models.CharField(max_length=40)
    client_id = models.CharField(max_length=64)
    client_seq = models.BigIntegerField(null=True, blank=True)
    client_time = models.DateTimeField(null=True, blank=True)
    server_time = models.DateTimeField(auto_now_add=True)
    origin = models.CharField(
        max_length=10, default="client", help_text="client (browser) or server (logged by us)"
    )
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["participant", "server_time", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "client_id"], name="event_client_id_unique"
            )
        ]
        indexes = [
            models.Index(fields=["participant", "server_time"]),
            models.Index(fields=["type"]),
        ]

    def __str__(self) -> str:
        return f"{self.participant_id}:{self.type}"


class AssistantTurn(models.Model):
    """One exchange with the assistant: the question, the full context actually sent, the
    reply as streamed, and what it cost. Also logged as events for replay and exports."""

    class Status(models.TextChoices):
        STREAMING = "streaming"
        COMPLETED = "completed"
        FAILED = "failed"
        STOPPED = "stopped", "Stopped by the participant"

    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="assistant_turns"
    )
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    task = models.CharField(max_length=200)
    question = models.TextField()
    reply = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STREAMING)
    provider = models.CharField(max_length=20)
    model = models.CharField(max_length=200)
    context = models.JSONField(default=dict, help_text="system prompt and messages sent")
    code_sha256 = models.CharField(max_length=64, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    usage_estimated = models.BooleanField(default=False)
    cost_usd = models.FloatField(default=0)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    first_text_ms = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    stop_reason = models.CharField(max_length=40, blank=True)
    error_kind = models.CharField(max_length=20, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["participant", "created_at", "id"]
        indexes = [models.Index(fields=["participant", "task", "created_at"])]

    def __str__(self) -> str:
        return f"{self.participant_id}:{self.task}:{self.pk}"
