"""The quiz pages of the staff dashboard; trials.manage_urls includes this module into its
``manage:`` namespace (registered as the quiz stage kind's ``staff_urls``)."""

from django.urls import path

from quizzes import manage_views

urlpatterns = [
    path("trials/<slug:slug>/v<int:version>/quiz/", manage_views.quiz_page, name="quiz"),
]
