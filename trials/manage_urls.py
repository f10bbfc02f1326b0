from django.urls import path

from quizzes import manage_views as quiz_views
from trials import manage_views

app_name = "manage"

urlpatterns = [
    path("", manage_views.trial_list, name="trial_list"),
    path("trials/<slug:slug>/v<int:version>/", manage_views.trial_detail, name="trial_detail"),
    path("trials/<slug:slug>/v<int:version>/quiz/", quiz_views.quiz_page, name="quiz"),
    path(
        "trials/<slug:slug>/v<int:version>/p/<str:code>/",
        manage_views.participant_replay_view,
        name="participant_replay",
    ),
    path(
        "trials/<slug:slug>/v<int:version>/p/<str:code>/conversation/",
        manage_views.participant_conversation_view,
        name="participant_conversation",
    ),
]
