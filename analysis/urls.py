from django.urls import URLPattern, URLResolver, path

from analysis import views

app_name = "analysis"
urlpatterns: list[URLPattern | URLResolver] = [
    path("jobs/<uuid:job_id>/", views.job_page, name="job"),
    path("jobs/<uuid:job_id>/status/", views.job_status_view, name="job_status"),
    path("jobs/<uuid:job_id>/download/", views.job_download, name="job_download"),
    path("<slug:slug>/report/", views.report_view, name="report"),
    path("<slug:slug>/results.json", views.results_view, name="results"),
]
