"""The quiz file: its format, its validation, what a participant may see of it, and the
checks of it that run code. One module per part: ``model`` (the quiz as data), ``reader``
(:func:`load_quiz`), ``participant`` (what a participant sees), ``sandbox`` (the protocol
checks); the names callers use are re-exported here, and :func:`register_with_trials` sits
above the parts it wires together (the sandbox checks build on the reader, so neither part
could hold it without an import cycle).

A quiz is a TOML file in the trial folder (``quiz.toml``), referenced by a quiz stage. It is
read with :func:`load_quiz`, which returns a typed :class:`Quiz` together with *every* problem
found, each located by file, field path (``questions[3].answer``) and line, in the same way
as the rest of the trial definition (:mod:`trials.definition.checker`). No Django import.

Format::

    title = "What did you learn?"        # required
    shuffle_questions = false            # per-participant order (seeded); attention checks stay
    shuffle_options = false              # per-participant option order of choice questions

    [[questions]]
    key = "nursery_exit"                 # required, lowercase identifier, unique
    type = "single_choice"               # see QUESTION_TYPES
    text = "Markdown shown to the participant"
    code = "optional code block shown with the question"
    choices = [{ value = "a", label = "..." }, ...]   # single_choice / multi_choice
    answer = "a"                         # the key (see below for each type)
    points = 1.5                         # positive, a multiple of 0.5
    categories = ["conceptual"]          # one or more of CATEGORIES
    concepts = ["nurseries"]             # free tags
    idk = true                           # offer "I don't know" (scores 0, recorded as such)
    attention_check = false              # flagged and not scored: no points, no categories

Answer keys by type:

* ``single_choice``: ``answer`` (a choice value); optional ``shuffle_options`` override.
* ``multi_choice`` (select all that apply): ``answers`` (choice values) and ``partial_credit``
  = ``all_or_nothing`` (default) | ``per_option`` | ``right_minus_wrong``.
* ``numeric``: ``answer`` (a number), ``tolerance`` (absolute, default 0), optional ``unit``.
* ``short_answer``: ``accepted`` (strings) and/or ``patterns`` (regular expressions, matched in
  full), ``case_sensitive`` (default false), ``normalise_whitespace`` (default true).
* ``predict_output``: ``expected`` (what the code prints; compared line by line after
  normalising line endings, trailing spaces and blank lines at either end).
* ``code_writing``: ``tests`` (hidden test code run in the sandbox), ``code_credit`` =
  ``all_or_nothing`` (default) | ``proportional``; ``code`` is the starter code.
* ``free_text``: ``rubric`` — a string of guidance for graders, or a table
  ``{ guidance = "...", levels = [{ points = 2, description = "..." }, ...] }``. The maximum
  is the question's ``points``; if levels are given, graders award one of the levels.
"""

from __future__ import annotations

from quizzes.quizfile.model import (
    ALL_FIELDS,
    CATEGORIES,
    CHOICE_TYPES,
    CODE_CREDIT,
    COMMON_FIELDS,
    IDK_LABEL,
    IDK_VALUE,
    OBJECTIVE_TYPES,
    PARTIAL_CREDIT,
    QUESTION_TYPES,
    QUIZ_FIELDS,
    TYPE_FIELDS,
    Choice,
    CodeCredit,
    PartialCredit,
    Question,
    QuestionType,
    Quiz,
    QuizInvalid,
    Rubric,
    RubricLevel,
    normalise_output,
)
from quizzes.quizfile.participant import (
    order_for_participant,
    participant_choices,
    participant_questions,
    participant_view,
)
from quizzes.quizfile.reader import load_quiz, quiz_file_problems, quiz_from_source
from quizzes.quizfile.sandbox import quiz_protocol_jobs
from trials.definition import register_stage_file

__all__ = [
    "ALL_FIELDS",
    "CATEGORIES",
    "CHOICE_TYPES",
    "CODE_CREDIT",
    "COMMON_FIELDS",
    "IDK_LABEL",
    "IDK_VALUE",
    "OBJECTIVE_TYPES",
    "PARTIAL_CREDIT",
    "QUESTION_TYPES",
    "QUIZ_FIELDS",
    "TYPE_FIELDS",
    "Choice",
    "CodeCredit",
    "PartialCredit",
    "Question",
    "QuestionType",
    "Quiz",
    "QuizInvalid",
    "Rubric",
    "RubricLevel",
    "load_quiz",
    "normalise_output",
    "order_for_participant",
    "participant_choices",
    "participant_questions",
    "participant_view",
    "quiz_file_problems",
    "quiz_from_source",
    "quiz_protocol_jobs",
    "register_with_trials",
]


def register_with_trials() -> None:
    """Plug the quiz file format into trials' definition-time registries (called once from
    ``QuizzesConfig.ready``): the definition loader checks a quiz stage's file with it, and the
    protocol check runs its code."""
    register_stage_file("quiz", load=quiz_file_problems, protocol_jobs=quiz_protocol_jobs)
