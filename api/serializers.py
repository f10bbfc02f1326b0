"""Output serializers: what each endpoint returns, field by field (the OpenAPI schema is built
from these). Participants appear by their pseudonymous public code; the internal id, external
ids and completion code only in ``ParticipantIdentifiedSerializer``. A quiz response's
blind_id (what graders see) is never serialised."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from quizzes.models import ItemResponse
from trials.models import Participant, Stage, Trial


class ArmSerializer(serializers.Serializer[Any]):
    key = serializers.CharField(read_only=True)
    # A field named like a Field attribute (label, source): DRF's metaclass moves declared
    # fields off the class, so only the type checker sees a clash.
    label = serializers.CharField(read_only=True)  # type: ignore[assignment]
    weight = serializers.IntegerField(read_only=True)
    tools = serializers.ListField(child=serializers.CharField(), read_only=True)
    allocated = serializers.IntegerField(source="n_allocated", read_only=True)


class StageSerializer(serializers.Serializer[Any]):
    key = serializers.CharField(read_only=True)
    type = serializers.ChoiceField(choices=Stage.Type.choices, read_only=True)
    title = serializers.CharField(read_only=True)
    order = serializers.IntegerField(read_only=True)
    time_limit_seconds = serializers.IntegerField(read_only=True, allow_null=True)
    tools = serializers.ListField(child=serializers.CharField(), read_only=True)
    tasks = serializers.SerializerMethodField(help_text="Task folders of a task stage")

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_tasks(self, stage: Stage) -> list[str]:
        return [str(task) for task in stage.config.get("tasks", [])]


class TrialCountsSerializer(serializers.Serializer[Any]):
    participants = serializers.IntegerField(source="n_participants", read_only=True)
    consented = serializers.IntegerField(source="n_consented", read_only=True)
    allocated = serializers.IntegerField(source="n_allocated", read_only=True)
    completed = serializers.IntegerField(source="n_completed", read_only=True)


class TrialSerializer(serializers.Serializer[Any]):
    slug = serializers.CharField(read_only=True)
    version = serializers.IntegerField(read_only=True)
    title = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=Trial.Status.choices, read_only=True)
    protocol_hash = serializers.CharField(
        read_only=True, help_text="SHA-256 of the protocol frozen at launch ('' for a draft)"
    )
    randomization_scheme = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    launched_at = serializers.DateTimeField(read_only=True, allow_null=True)
    closed_at = serializers.DateTimeField(read_only=True, allow_null=True)
    arms = ArmSerializer(many=True, read_only=True)
    stages = StageSerializer(many=True, read_only=True)
    analysis_plan = serializers.DictField(
        read_only=True, help_text="The preregistered [analysis] table of trial.toml"
    )
    counts = TrialCountsSerializer(source="*", read_only=True)


class ParticipantSerializer(serializers.Serializer[Any]):
    participant = serializers.CharField(
        source="public_code", read_only=True, help_text="Pseudonymous code, stable in a trial"
    )
    trial = serializers.CharField(source="trial.slug", read_only=True)
    trial_version = serializers.IntegerField(source="trial.version", read_only=True)
    # Joined by select_related("allocation__arm"); DRF gives null when there is no allocation.
    arm = serializers.CharField(
        source="allocation.arm.key",
        read_only=True,
        allow_null=True,
        help_text="Arm key; null until allocated",
    )
    stratum = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=Participant.Status.choices, read_only=True)
    is_synthetic = serializers.BooleanField(read_only=True)
    eligible = serializers.BooleanField(read_only=True, allow_null=True)
    screen_out_reasons = serializers.ListField(child=serializers.CharField(), read_only=True)
    baseline = serializers.DictField(read_only=True, help_text="Baseline answers by question")
    current_stage = serializers.CharField(
        source="current_stage.key", read_only=True, allow_null=True, default=None
    )
    furthest_stage = serializers.CharField(
        source="furthest_stage_key",
        read_only=True,
        allow_null=True,
        help_text="The latest stage in trial order this participant entered",
    )
    created_at = serializers.DateTimeField(read_only=True)
    consented_at = serializers.DateTimeField(read_only=True, allow_null=True)
    allocated_at = serializers.DateTimeField(
        source="allocation.created_at", read_only=True, allow_null=True
    )
    completed_at = serializers.DateTimeField(read_only=True, allow_null=True)


_ONLY_IDENTIFIED = "Only with ?identified=true and the permission analysis.export_identifiers."


@extend_schema_serializer(component_name="Participant")
class ParticipantIdentifiedSerializer(ParticipantSerializer):
    """A participant; the identifier fields appear only in identified responses."""

    # Not read-only, so the schema lists them as optional: absent unless identified.
    participant_id = serializers.CharField(
        source="pk", required=False, help_text=f"Internal id. {_ONLY_IDENTIFIED}"
    )
    prolific_pid = serializers.CharField(required=False, help_text=_ONLY_IDENTIFIED)
    study_id = serializers.CharField(required=False, help_text=_ONLY_IDENTIFIED)
    session_id = serializers.CharField(required=False, help_text=_ONLY_IDENTIFIED)
    completion_code = serializers.CharField(required=False, help_text=_ONLY_IDENTIFIED)


class AllocationSerializer(serializers.Serializer[Any]):
    allocation_id = serializers.IntegerField(source="pk", read_only=True)
    participant = serializers.CharField(source="participant.public_code", read_only=True)
    trial = serializers.CharField(source="trial.slug", read_only=True)
    trial_version = serializers.IntegerField(source="trial.version", read_only=True)
    arm = serializers.CharField(source="arm.key", read_only=True)
    stratum = serializers.CharField(read_only=True)
    scheme = serializers.CharField(read_only=True)
    sequence_number = serializers.IntegerField(
        read_only=True, help_text="1-based, within trial and stratum"
    )
    allocated_at = serializers.DateTimeField(source="created_at", read_only=True)
    details = serializers.JSONField(
        read_only=True, help_text="Algorithm version; minimization scores"
    )


class _ParticipantRowSerializer(serializers.Serializer[Any]):
    participant = serializers.CharField(source="participant.public_code", read_only=True)
    trial = serializers.CharField(source="participant.trial.slug", read_only=True)
    trial_version = serializers.IntegerField(source="participant.trial.version", read_only=True)
    arm = serializers.CharField(
        source="participant.allocation.arm.key",
        read_only=True,
        allow_null=True,
        help_text="The participant's arm; null if not allocated",
    )


class EventSerializer(_ParticipantRowSerializer):
    event_id = serializers.IntegerField(source="pk", read_only=True)
    stage = serializers.CharField(source="stage.key", read_only=True, allow_null=True, default=None)
    type = serializers.CharField(read_only=True)
    origin = serializers.CharField(
        read_only=True, help_text="client (the browser) or server (logged by the platform)"
    )
    client_seq = serializers.IntegerField(read_only=True, allow_null=True)
    client_time = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="As the browser's clock said"
    )
    server_time = serializers.DateTimeField(read_only=True)
    payload = serializers.JSONField(read_only=True)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        return {"event_id": fields.pop("event_id"), **fields}  # the key of a long table first


class ItemSerializer(_ParticipantRowSerializer):
    stage = serializers.CharField(source="stage.key", read_only=True)
    question = serializers.CharField(source="question_key", read_only=True)
    position = serializers.IntegerField(
        read_only=True, help_text="0-based place in this participant's question order"
    )
    categories = serializers.ListField(child=serializers.CharField(), read_only=True)
    status = serializers.ChoiceField(choices=ItemResponse.Status.choices, read_only=True)
    points = serializers.FloatField(read_only=True)
    max_points = serializers.FloatField(read_only=True)
    correct = serializers.BooleanField(read_only=True, allow_null=True)
    is_attention_check = serializers.BooleanField(read_only=True)
    response = serializers.JSONField(read_only=True, allow_null=True)
    graded_at = serializers.DateTimeField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)


class DatasetPageSerializer(serializers.Serializer[Any]):
    trial = serializers.CharField()
    version = serializers.IntegerField()
    dataset = serializers.CharField()
    identified = serializers.BooleanField()
    columns = serializers.ListField(child=serializers.CharField())
    count = serializers.IntegerField(help_text="Rows in the whole data set")
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = serializers.ListField(
        child=serializers.DictField(),
        help_text="One object per row; keys are `columns` (see the codebook)",
    )


class ColumnSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    type = serializers.ChoiceField(
        choices=[(t, t) for t in ("string", "integer", "number", "boolean", "datetime", "json")]
    )
    description = serializers.CharField()
    source = serializers.CharField()  # type: ignore[assignment]
    unit = serializers.CharField()
    allowed = serializers.ListField(child=serializers.CharField())
    identifier = serializers.BooleanField()


class CodebookSerializer(serializers.Serializer[Any]):
    trial = serializers.CharField()
    version = serializers.IntegerField()
    identified = serializers.BooleanField()
    datasets = serializers.DictField(
        child=ColumnSerializer(many=True), help_text="Data set name -> its columns, in order"
    )


class EffectSizeSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(help_text="cohens_d, hedges_g, odds_ratio, ...")
    value = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)


class ResultSerializer(serializers.Serializer[Any]):
    """One statistical result (the README's results format)."""

    outcome = serializers.CharField()
    method = serializers.CharField(
        help_text="welch_t, student_t, mann_whitney, permutation, bootstrap, tost, ancova, "
        "interaction, gee_logistic, anova, kruskal, km_median, logrank, cox, rmst"
    )
    groups = serializers.ListField(
        child=serializers.CharField(), help_text="(arm, reference) for a comparison"
    )
    n = serializers.IntegerField(help_text="Observations actually used")
    estimate = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    statistic = serializers.FloatField(allow_null=True)
    df = serializers.FloatField(allow_null=True)
    effect_size = EffectSizeSerializer(allow_null=True)
    adjusted_p = serializers.FloatField(allow_null=True)
    covariates = serializers.ListField(child=serializers.CharField())
    notes = serializers.CharField(allow_blank=True)
    population = serializers.CharField(help_text="itt or per_protocol")
    role = serializers.CharField(help_text="primary, secondary or exploratory")
    preregistered = serializers.BooleanField()
    adjustment = serializers.CharField(allow_null=True)
    adjusted_p_bh = serializers.FloatField(allow_null=True)


class DeviationSerializer(serializers.Serializer[Any]):
    code = serializers.CharField()
    message = serializers.CharField()


class ProblemSerializer(serializers.Serializer[Any]):
    outcome = serializers.CharField()
    method = serializers.CharField()
    population = serializers.CharField()
    message = serializers.CharField()


class ResultsSerializer(serializers.Serializer[Any]):
    results = ResultSerializer(many=True)
    descriptives = serializers.ListField(
        child=serializers.DictField(), help_text="Per arm and outcome: n, mean, sd, median..."
    )
    meta = serializers.DictField(
        help_text="Trial, protocol hash, data snapshot, seed, arms, software versions"
    )
    populations = serializers.DictField()
    consort = serializers.DictField(allow_null=True)
    deviations = DeviationSerializer(many=True)
    problems = ProblemSerializer(many=True, help_text="Methods that could not be computed")
    planning = serializers.DictField()


class ErrorSerializer(serializers.Serializer[Any]):
    detail = serializers.CharField()
