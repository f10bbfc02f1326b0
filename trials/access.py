"""Who may see the staff pages: a decorator shared by the dashboard, the quiz page, the
report and the exports (each app's views import it from here, not from another view module)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import render

from trials.roles import EXPERIMENTER, STATISTICIAN, has_role

View = Callable[..., HttpResponseBase]


def staff_role_required(view: View) -> View:
    """Login, then the experimenter or statistician role: graders and everyone else get the
    dashboard's 403 page. Used by every staff page (dashboard, report, exports)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not has_role(request.user, EXPERIMENTER, STATISTICIAN):
            return render(request, "manage/forbidden.html", status=403)
        return view(request, *args, **kwargs)

    return wrapped
