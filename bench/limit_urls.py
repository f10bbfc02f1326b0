"""``POST /bench/allocate/``: a minimal Django view that does only the allocation (a new
eligible participant row, then ``allocation_assign``) — no pages, no stage engine, no events.
Served by the same server configuration as the product, it is the limit of what a full
enrollment could reach. Bench-only (bench/limit_settings.py)."""

from __future__ import annotations

import itertools

from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from trials.models import Participant
from trials.selectors import live_trial
from trials.services import allocation_assign

_numbers = itertools.count()
STRATA = ("1-3", "4-6", "7+")


@csrf_exempt
@require_POST
def allocate(request: HttpRequest) -> HttpResponse:
    trial = live_trial("trio-skill-formation")
    assert trial is not None
    n = next(_numbers)
    years = STRATA[n % 3]
    participant = Participant.objects.create(
        trial=trial,
        eligible=True,
        status=Participant.Status.ACTIVE,
        baseline={"coding_years": years},
        stratum=f"coding_years={years}",
    )
    allocation = allocation_assign(participant=participant)
    return HttpResponse(allocation.arm.key)


urlpatterns = [
    path("bench/allocate/", allocate),
    path("", include("skilltrial.urls")),
]
