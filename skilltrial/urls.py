from pathlib import Path

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.urls import include, path
from django.views.generic import RedirectView

from trials.roles import EXPERIMENTER, GRADER, STATISTICIAN, has_role


class RoleLoginView(LoginView):
    """After login, graders go to their queue; everyone else to the dashboard."""

    def get_default_redirect_url(self) -> str:
        user = self.request.user
        if has_role(user, GRADER) and not has_role(user, EXPERIMENTER, STATISTICIAN):
            return resolve_url("grading:queue")
        return super().get_default_redirect_url()


FAVICON = Path(settings.BASE_DIR) / "skilltrial" / "static" / "skilltrial" / "favicon.svg"


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page says; answer with the SVG icon."""
    response = HttpResponse(FAVICON.read_bytes(), content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response


urlpatterns = [
    path("favicon.ico", favicon),
    path("", RedirectView.as_view(url="/manage/", permanent=False)),
    path("t/", include("trials.urls")),
    path("manage/", include("trials.manage_urls")),
    path("grade/", include("quizzes.urls")),
    path("analysis/", include("analysis.urls")),
    path("exports/", include("analysis.export_urls")),
    path("api/", include("api.urls")),
    path("admin/", admin.site.urls),
    path("accounts/login/", RoleLoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
]
