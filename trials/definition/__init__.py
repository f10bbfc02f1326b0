"""Trial definitions as files: parse, validate and normalise a trial folder (no Django).

One module per part:

* :mod:`~trials.definition.checker`: the TOML checking toolkit (located problems, typed reads)
  that the trial files and the quiz file (``quizzes.quizfile``) both use;
* :mod:`~trials.definition.schema`: the tables of ``trial.toml``, ``task.toml`` and
  ``assistant.toml``;
* :mod:`~trials.definition.files`: reading a trial folder, writing it back, the protocol hash;
* :mod:`~trials.definition.rules`: the rules a running trial applies from its definition;
* :mod:`~trials.definition.stage_files`: the registry through which the quizzes app supplies
  the quiz file format, so that trials never imports quizzes.

The names callers use are re-exported here: ``from trials.definition import load_trial_dir``.
"""

from __future__ import annotations

from trials.definition.checker import (
    KEY_RE,
    Checker,
    Path_,
    Problem,
    check_key,
    format_path,
    locate,
    norm_choices,
    toml_line_index,
    toml_problem,
    unique,
)
from trials.definition.files import (
    MAX_FILE_BYTES,
    TRIAL_FILE,
    DefinitionInvalid,
    TrialDefinition,
    TrialFolder,
    canonical_json,
    load_trial_dir,
    protocol_hash,
    write_trial_dir,
)
from trials.definition.rules import (
    DEFAULT_DUPLICATE_SIGNALS,
    DUPLICATE_RULES,
    DUPLICATE_SIGNALS,
    eligibility_failures,
    question_choices,
    stratum_key,
)
from trials.definition.schema import (
    ARM_FIELDS,
    DEFAULT_MESSAGE_BUDGET,
    DEFAULT_TOKEN_BUDGET,
    ELIGIBILITY_OPS,
    EXTERNAL_ID_PARAM_RE,
    FINITE_TYPES,
    OUTCOMES,
    PARTICIPANT_DEFAULTS,
    PARTICIPANT_FIELDS,
    POPULATION_RULES,
    QUESTION_FIELDS,
    QUESTION_TYPES,
    RANDOMIZATION_FIELDS,
    SCHEMES,
    SHARED_PARAMS,
    SLUG_RE,
    STAGE_FIELDS,
    STAGE_TYPES,
    TOOLS,
    TOP_FIELDS,
    TrialTables,
    normalise_question,
)
from trials.definition.stage_files import (
    StageFileFormat,
    StageFileFormatMissing,
    register_stage_file,
    stage_file,
)

__all__ = [
    "ARM_FIELDS",
    "DEFAULT_DUPLICATE_SIGNALS",
    "DEFAULT_MESSAGE_BUDGET",
    "DEFAULT_TOKEN_BUDGET",
    "DUPLICATE_RULES",
    "DUPLICATE_SIGNALS",
    "ELIGIBILITY_OPS",
    "EXTERNAL_ID_PARAM_RE",
    "FINITE_TYPES",
    "KEY_RE",
    "MAX_FILE_BYTES",
    "OUTCOMES",
    "PARTICIPANT_DEFAULTS",
    "PARTICIPANT_FIELDS",
    "POPULATION_RULES",
    "QUESTION_FIELDS",
    "QUESTION_TYPES",
    "RANDOMIZATION_FIELDS",
    "SCHEMES",
    "SHARED_PARAMS",
    "SLUG_RE",
    "STAGE_FIELDS",
    "STAGE_TYPES",
    "TOOLS",
    "TOP_FIELDS",
    "TRIAL_FILE",
    "Checker",
    "DefinitionInvalid",
    "Path_",
    "Problem",
    "StageFileFormat",
    "StageFileFormatMissing",
    "TrialDefinition",
    "TrialFolder",
    "TrialTables",
    "canonical_json",
    "check_key",
    "eligibility_failures",
    "format_path",
    "load_trial_dir",
    "locate",
    "norm_choices",
    "normalise_question",
    "protocol_hash",
    "question_choices",
    "register_stage_file",
    "stage_file",
    "stratum_key",
    "toml_line_index",
    "toml_problem",
    "unique",
    "write_trial_dir",
]
