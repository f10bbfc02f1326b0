from django.urls import URLPattern, URLResolver, path

from analysis import views

app_name = "analysis"
urlpatterns: list[URLPattern | URLResolver] = [
    path("<slug:slug>/report/", views.report_view, name="report"),
    path("<slug:slug>/results.json", views.results_view, name="results"),
]
