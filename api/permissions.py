"""Who may read through the API. Roles are groups (trials.roles); identifiers need a Django
permission on top of the role, and an explicit ``?identified=true`` on the request."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from trials.roles import EXPERIMENTER, STATISTICIAN, has_role

IDENTIFIERS_PERMISSION = "analysis.export_identifiers"


class ReadsTrialData(BasePermission):
    """Experimenters and statisticians read everything de-identified. Graders are refused:
    they grade blind to arm, and every data endpoint reveals arms."""

    message = (
        "Only experimenters and statisticians may read trial data (graders stay blind to the arms)."
    )

    def has_permission(self, request: Request, view: Any) -> bool:
        return has_role(request.user, EXPERIMENTER, STATISTICIAN)


def may_see_identifiers(request: Request) -> bool:
    return bool(request.user.has_perm(IDENTIFIERS_PERMISSION))
