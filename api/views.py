"""The statisticians' REST API: read-only. Each view parses its query parameters (a 400 names
any bad one), calls one selector or analysis function, and serialises."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

from django.http import Http404, HttpRequest, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import generics
from rest_framework.exceptions import PermissionDenied
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse as api_reverse
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from analysis import analyze, datasets, exports
from analysis.cache import cached_analysis
from analysis.models import DataExport
from api import docs, filters, queries
from api.pagination import FramePagination, ParticipantCursorPagination
from api.permissions import IDENTIFIERS_PERMISSION, ReadsTrialData, may_see_identifiers
from api.serializers import (
    AllocationSerializer,
    CodebookSerializer,
    DatasetPageSerializer,
    ErrorSerializer,
    EventSerializer,
    ItemSerializer,
    ParticipantIdentifiedSerializer,
    ParticipantSerializer,
    ResultsSerializer,
    TrialSerializer,
)
from trials.selectors import trial_for_slug

if TYPE_CHECKING:
    import pandas as pd
    from django.db.models import QuerySet

    from trials.models import Trial

IDENTIFIED_HEADER = "X-Skilltrial-Identified"
DATASET_NAMES = ("participants", "items", "events", "allocations")

_VALIDATION_ERROR = OpenApiResponse(
    response={
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
    },
    description="A query parameter is malformed or names nothing that exists; each key is "
    "the parameter, with what is wrong with it.",
)
_ERRORS: dict[int, Any] = {
    400: _VALIDATION_ERROR,
    401: OpenApiResponse(ErrorSerializer, description="No or an invalid token/session."),
    403: OpenApiResponse(
        ErrorSerializer,
        description="Not an experimenter or statistician (graders are refused), or "
        "identified=true without the permission analysis.export_identifiers.",
    ),
}
_NOT_FOUND = {404: OpenApiResponse(ErrorSerializer, description="No such trial or version.")}
_IDENTIFIED_HEADER_DOC = OpenApiParameter(
    IDENTIFIED_HEADER,
    type=str,
    location=OpenApiParameter.HEADER,
    response=[200],
    enum=["true", "false"],
    description="true when the response contains identifiers",
)
_SAMPLE_SLUG = "trio-skill-formation"  # the trial shipped in studies/
_SLUG = OpenApiParameter(
    "slug",
    type=str,
    location=OpenApiParameter.PATH,
    pattern=queries.SLUG_PATTERN,
    description="Trial slug",
    examples=[OpenApiExample("The sample trial", value=_SAMPLE_SLUG)],
)
# Example values of the shared filters, as the sample trial names them.
_FILTER_EXAMPLES = {
    "trial": _SAMPLE_SLUG,
    "arm": "ai",
    "stage": "main_tasks",
    "type": "paste",
    "since": "2025-01-01T00:00:00Z",
}


def _filter_examples(query: type[Serializer[Any]]) -> list[OpenApiExample]:
    fields = query().fields
    return [
        OpenApiExample("sample", value=value, parameter_only=(name, "query"))
        for name, value in _FILTER_EXAMPLES.items()
        if name in fields
    ]


class DataAPIView(APIView):
    """Everything here reads trial data: experimenters and statisticians only; every
    response says whether it carries identifiers."""

    permission_classes = [IsAuthenticated, ReadsTrialData]
    identified = False

    def use_identifiers(self, asked: bool) -> bool:
        if asked:
            if not may_see_identifiers(self.request):
                raise PermissionDenied(
                    f"identified=true needs the permission {IDENTIFIERS_PERMISSION}"
                )
            self.identified = True
        return self.identified

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        response[IDENTIFIED_HEADER] = "true" if self.identified else "false"
        return response


if TYPE_CHECKING:
    _ListAPIView = generics.ListAPIView[Any]
else:  # DRF's views are generic only in the type stubs
    _ListAPIView = generics.ListAPIView


class DataListView(DataAPIView, _ListAPIView):
    query_class: type[Serializer[Any]]
    _params: dict[str, Any]

    @property
    def params(self) -> dict[str, Any]:
        if not hasattr(self, "_params"):
            self._params = queries.parse_query(self.query_class, self.request.query_params)
        return self._params


_View = TypeVar("_View", bound=Callable[..., Any])


def _list_schema(
    serializer: Any, query: type[Serializer[Any]], description: str
) -> Callable[[_View], _View]:
    return extend_schema(
        description=description,
        parameters=[query, _IDENTIFIED_HEADER_DOC],
        examples=_filter_examples(query),
        responses={200: serializer, **_ERRORS, 404: _NOT_FOUND[404]},
    )


@extend_schema(tags=["trials"])
class TrialListView(DataListView):
    serializer_class = TrialSerializer
    query_class = queries.TrialListQuery

    @_list_schema(
        TrialSerializer,
        queries.TrialListQuery,
        "Every trial version with its arms, stages, analysis plan and participant counts.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Trial]:
        return filters.trials_list(self.params)


def _trial_or_404(slug: str, version: int | None) -> Trial:
    trial = trial_for_slug(slug, version)
    if trial is None:
        raise Http404(f"no trial '{slug}'" + (f" version {version}" if version else ""))
    return trial


@extend_schema(tags=["trials"])
class TrialDetailView(DataAPIView):
    @extend_schema(
        parameters=[_SLUG, queries.VersionQuery, _IDENTIFIED_HEADER_DOC],
        responses={200: TrialSerializer, **_ERRORS, **_NOT_FOUND},
        description="One trial: the version asked for, else the live one, else the newest "
        "launched, else the newest draft.",
    )
    def get(self, request: Request, slug: str) -> Response:
        params = queries.parse_query(queries.VersionQuery, request.query_params)
        trial = _trial_or_404(slug, params.get("version"))
        trial = filters.trials_with_details().get(pk=trial.pk)
        return Response(TrialSerializer(trial).data)


@extend_schema(tags=["rows"])
class ParticipantListView(DataListView):
    query_class = queries.ParticipantQuery
    pagination_class = ParticipantCursorPagination

    @_list_schema(
        ParticipantIdentifiedSerializer,
        queries.ParticipantQuery,
        "Participants, de-identified: the pseudonymous code, arm, stratum, status, stages. "
        "Ordered by enrolment.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.use_identifiers(self.params["identified"])
        return super().get(request, *args, **kwargs)

    def get_serializer_class(self) -> type[ParticipantSerializer]:
        return ParticipantIdentifiedSerializer if self.identified else ParticipantSerializer

    def get_queryset(self) -> QuerySet[Any]:
        return filters.participants_list(self.params)


@extend_schema(tags=["rows"])
class AllocationListView(DataListView):
    serializer_class = AllocationSerializer
    query_class = queries.AllocationQuery

    @_list_schema(
        AllocationSerializer, queries.AllocationQuery, "The allocation log, in allocation order."
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Any]:
        return filters.allocations_list(self.params)


@extend_schema(tags=["rows"])
class EventListView(DataListView):
    serializer_class = EventSerializer
    query_class = queries.EventQuery

    @_list_schema(
        EventSerializer,
        queries.EventQuery,
        "Telemetry in long format, one row per event, in the order the server stored them. "
        "`since`/`until` filter on server_time. New event types appear without API changes.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Any]:
        return filters.events_list(self.params)


@extend_schema(tags=["rows"])
class ItemListView(DataListView):
    serializer_class = ItemSerializer
    query_class = queries.ItemQuery

    @_list_schema(
        ItemSerializer,
        queries.ItemQuery,
        "Quiz responses, one row per participant and question, with the current grade.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Any]:
        return filters.items_list(self.params)


# --- data sets, codebook, exports, results (analysis package) ------------------------------


class DownloadNegotiation(DefaultContentNegotiation):
    """On download endpoints ``?format=`` names the file format (csv, parquet, ...), not a
    DRF renderer, so renderers are chosen from the Accept header alone."""

    class _Settings:
        URL_FORMAT_OVERRIDE = None

    settings = _Settings()  # type: ignore[assignment]  # only URL_FORMAT_OVERRIDE is read


def _dataset_records(trial: Trial, name: str, frame: pd.DataFrame, identified: bool) -> list[Any]:
    """Rows as JSON objects, formatted by the JSON Lines exporter so that every value reads
    the same as in an export (UTC times with Z, JSON columns nested, no NaN)."""

    columns = datasets.dataset_columns(trial, name, identified=identified)
    text = b"".join(exports.jsonl_chunks(columns, [frame])).decode()
    return [json.loads(line) for line in text.splitlines()]


@extend_schema(tags=["analysis"])
class DatasetView(DataAPIView):
    content_negotiation_class = DownloadNegotiation

    @extend_schema(
        parameters=[
            _SLUG,
            OpenApiParameter(
                "name", type=str, location=OpenApiParameter.PATH, enum=list(DATASET_NAMES)
            ),
            queries.DatasetQuery,
            _IDENTIFIED_HEADER_DOC,
        ],
        responses={
            (200, "application/json"): DatasetPageSerializer,
            (200, "text/csv"): OpenApiTypes.STR,
            **_ERRORS,
            404: OpenApiResponse(ErrorSerializer, description="No such trial or data set."),
        },
        description="A tidy data set (participants, items, events, allocations): a page of "
        "JSON records (limit/offset), or with format=csv the whole set streamed. Columns are "
        "described by the codebook.",
    )
    def get(self, request: Request, slug: str, name: str) -> HttpResponseBase:
        params = queries.parse_query(queries.DatasetQuery, request.query_params)
        if name not in DATASET_NAMES:
            raise Http404(f"no data set '{name}' (there are: {', '.join(DATASET_NAMES)})")
        trial = _trial_or_404(slug, params.get("version"))
        identified = self.use_identifiers(params["identified"])

        if params["format"] == "csv":
            response = StreamingHttpResponse(
                exports.csv_chunks(
                    datasets.dataset_columns(trial, name, identified=identified),
                    datasets.iter_dataset_chunks(trial, name, identified=identified),
                ),
                content_type="text/csv; charset=utf-8",
            )
            filename = f"{trial.slug}-v{trial.version}-{name}.csv"
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
            return response
        frame = datasets.dataset_frame(trial, name, identified=identified)
        pages = FramePagination(request, limit=params.get("limit"), offset=params["offset"])
        records = _dataset_records(trial, name, pages.page(frame), identified)
        return Response(
            {
                "trial": trial.slug,
                "version": trial.version,
                "dataset": name,
                "identified": identified,
                "columns": [str(c) for c in frame.columns],
                **pages.links(),
                "results": records,
            }
        )


@extend_schema(tags=["analysis"])
class CodebookView(DataAPIView):
    @extend_schema(
        parameters=[_SLUG, queries.CodebookQuery, _IDENTIFIED_HEADER_DOC],
        responses={200: CodebookSerializer, **_ERRORS, **_NOT_FOUND},
        description="Every column of every data set: name, type, unit, allowed values, "
        "description and source. The same names in every export format.",
    )
    def get(self, request: Request, slug: str) -> Response:
        params = queries.parse_query(queries.CodebookQuery, request.query_params)
        trial = _trial_or_404(slug, params.get("version"))
        identified = self.use_identifiers(params["identified"])

        return Response(
            {
                "trial": trial.slug,
                "version": trial.version,
                "identified": identified,
                "datasets": {
                    name: [
                        {**asdict(column), "allowed": list(column.allowed)}
                        for column in datasets.dataset_columns(trial, name, identified=identified)
                    ]
                    for name in datasets.DATASETS
                },
            }
        )


@extend_schema(tags=["analysis"])
class ExportView(DataAPIView):
    content_negotiation_class = DownloadNegotiation

    @extend_schema(
        parameters=[_SLUG, queries.ExportQuery, _IDENTIFIED_HEADER_DOC],
        responses={
            (200, "application/zip"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="A zip bundle: the data sets in the chosen format, the codebook "
                "(CSV and Markdown) and a manifest with row counts and checksums.",
            ),
            **_ERRORS,
            **_NOT_FOUND,
        },
        description="The export bundle of a trial, streamed.",
    )
    def get(self, request: Request, slug: str) -> HttpResponseBase:
        params = queries.parse_query(queries.ExportQuery, request.query_params)
        trial = _trial_or_404(slug, params.get("version"))
        identified = self.use_identifiers(params["identified"])

        fmt = params["format"]
        response = StreamingHttpResponse(
            exports.bundle_stream(
                trial,
                fmt,
                identified=identified,
                user=request.user,
                channel=DataExport.Channel.API,
            ),
            content_type="application/zip",
        )
        filename = exports.bundle_filename(trial, fmt, identified=identified)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


@extend_schema(tags=["analysis"])
class ResultsView(DataAPIView):
    @extend_schema(
        parameters=[_SLUG, queries.VersionQuery, _IDENTIFIED_HEADER_DOC],
        responses={
            200: ResultsSerializer,
            **_ERRORS,
            **_NOT_FOUND,
            409: OpenApiResponse(
                ErrorSerializer,
                description="The data cannot be analysed yet (e.g. an arm has no participants).",
            ),
        },
        description="The analysis plan run on the trial's current data, as `manage.py analyze "
        "--json` writes it (computed once per state of the data and then reused; "
        "`meta.snapshot.taken_at` is when): a top-level `results` list (outcome, method, "
        "groups, n, estimate, ci_low, ci_high, p_value, statistic, df, effect_size, "
        "adjusted_p, covariates, population, role, preregistered), descriptives, "
        "populations, CONSORT counts, "
        "deviations from the plan and methods that could not run. Undefined statistics are "
        "null.",
    )
    def get(self, request: Request, slug: str) -> Response:
        params = queries.parse_query(queries.VersionQuery, request.query_params)
        trial = _trial_or_404(slug, params.get("version"))

        try:
            _, results = cached_analysis(trial, seed=0)  # recomputed only when the data change
        except analyze.AnalysisError as exc:
            return Response({"detail": str(exc)}, status=409)
        return Response(results.to_json())


def api_not_found(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"detail": "Not found."}, status=404)


# --- the API root and its documentation ----------------------------------------------------


@extend_schema(exclude=True)
class ApiRootView(APIView):
    """The statisticians' REST API. See /api/docs/ for every endpoint and parameter."""

    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        names = ["trials", "participants", "allocations", "events", "items", "schema", "docs"]
        return Response({name: api_reverse(f"api:{name}", request=request) for name in names})


@extend_schema(exclude=True)
class ApiDocsView(APIView):
    """A reference page rendered on the server from the OpenAPI schema: works offline, with
    no JavaScript and nothing from a CDN."""

    permission_classes = [AllowAny]

    def get(self, request: Request) -> HttpResponseBase:
        # drf-spectacular's generator has no annotations.
        generator = SchemaGenerator()  # type: ignore[no-untyped-call]
        schema = generator.get_schema(request=None, public=True)  # type: ignore[no-untyped-call]
        return render(
            request._request,
            "api/docs.html",
            {
                "info": schema["info"],
                "operations": docs.operations(schema),
                "components": docs.components(schema),
                "schema_url": reverse("api:schema"),
            },
        )
