from django.urls import path

from quizzes import views

app_name = "grading"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("<str:blind_id>/", views.grade, name="grade"),
]
