from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/manage/", permanent=False)),
    path("t/", include("trials.urls")),
    path("manage/", include("trials.manage_urls")),
    path("grade/", include("quizzes.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
]
