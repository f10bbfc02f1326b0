"""The tables of a trial definition: ``trial.toml`` (and its survey and baseline questions),
each task folder's ``task.toml`` and ``assistant.toml``, checked and normalised.

:class:`TrialTables` reads every table with a :class:`~trials.definition.checker.Checker`,
records a located problem for everything wrong and fills in every default, so that the
protocol hash says exactly what a trial ran under. Files are read through the trial folder
(:mod:`trials.definition.files`); a quiz stage's file through the format the quizzes app
registers (:mod:`trials.definition.stage_files`). No Django import.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any, Protocol

from trials.assistant.scripted import material_problems
from trials.assistant.settings import AssistantSettings, validate_table
from trials.definition.checker import (
    Checker,
    Path_,
    Problem,
    check_key,
    norm_choices,
    toml_problem,
    unique,
)
from trials.definition.rules import (
    DEFAULT_DUPLICATE_SIGNALS,
    DUPLICATE_RULES,
    DUPLICATE_SIGNALS,
    question_choices,
)
from trials.definition.stage_files import stage_file

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

SCHEMES = ("simple", "blocks", "stratified_blocks", "minimization")
TOOLS = ("assistant",)
STAGE_TYPES = ("consent", "screening", "instructions", "task", "quiz", "survey", "debrief")
QUESTION_TYPES = (
    "single_choice",
    "multi_choice",
    "likert",
    "number",
    "short_text",
    "long_text",
    "yes_no",
)
FINITE_TYPES = ("single_choice", "likert", "yes_no")
ELIGIBILITY_OPS = ("in", "not_in", "equals", "min", "max")
OUTCOMES = (
    "quiz_score",
    "quiz_percent",
    "completion_time",
    "task_completed",
    "category_scores",
    "warmup_time",
    "errors",
    "survey",
)
POPULATION_RULES = (
    "completed_quiz",
    "passed_attention_check",
    "completed_tasks",
    "no_noncompliance_flag",
)

# [participants]: who counts as one person, how a session moves to another browser, and the
# window in which the same address or browser marks a likely duplicate (README, "One person,
# one allocation"). Every default is written into the normalised definition, so the protocol
# hash says which rule a trial ran under.
PARTICIPANT_FIELDS = (
    "external_id",
    "require_external_id",
    "external_id_pattern",
    "resume_idle_minutes",
    "duplicate_window_hours",
)
PARTICIPANT_DEFAULTS: dict[str, Any] = {
    "external_id": "PROLIFIC_PID",
    "require_external_id": False,
    "external_id_pattern": "",
    "resume_idle_minutes": 20,
    "duplicate_window_hours": 24.0,
}
EXTERNAL_ID_PARAM_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
# Query parameters that are the same for everyone in a study: they cannot tell people apart.
SHARED_PARAMS = ("STUDY_ID",)

QUESTION_FIELDS = ("key", "text", "type", "choices", "required", "min", "max", "help", "scale")


def normalise_question(check: Checker, path: Path_, raw: dict[str, Any]) -> dict[str, Any]:
    """A survey or baseline question: key, text, type and type-specific settings."""
    check.unknown_keys(raw, path, QUESTION_FIELDS)
    key = check.get(raw, path, "key", str, required=True, default="")
    if key:
        check_key(check, path + ("key",), key, "question key")
    text = check.get(raw, path, "text", str, required=True, default="")
    qtype = check.get(raw, path, "type", str, required=True, default="")
    if qtype and qtype not in QUESTION_TYPES:
        check.error(
            path + ("type",),
            f"unknown question type {qtype!r} (allowed: {', '.join(QUESTION_TYPES)})",
        )
    question: dict[str, Any] = {
        "key": key,
        "text": text,
        "type": qtype,
        "required": check.get(raw, path, "required", bool, default=True),
    }
    help_text = check.get(raw, path, "help", str, default="")
    if help_text:
        question["help"] = help_text
    if qtype in ("single_choice", "multi_choice"):
        question["choices"] = norm_choices(check, path + ("choices",), raw.get("choices"))
    elif "choices" in raw and qtype == "likert":
        check.error(path + ("choices",), "a likert question takes 'scale', not 'choices'")
    if qtype == "likert":
        scale = check.get(raw, path, "scale", list, default=["1", "7"])
        if len(scale) != 2 or not all(isinstance(s, str) for s in scale):
            check.error(path + ("scale",), 'must be two labels: ["low end", "high end"]')
            scale = ["1", "7"]
        question["scale"] = scale
    if qtype == "number":
        for bound in ("min", "max"):
            value = check.get(raw, path, bound, (int, float))
            if value is not None:
                question[bound] = value
        if "min" in question and "max" in question and question["min"] > question["max"]:
            check.error(path + ("min",), "min is greater than max")
    return question


def _levels(question: dict[str, Any]) -> list[str]:
    return [c["value"] for c in question_choices(question)]


def _outcome(check: Checker, opath: Path_, item: Any) -> dict[str, Any]:
    """A primary or secondary outcome: a name, or a table with a name and its details."""
    if isinstance(item, str):
        item = {"outcome": item}
    if not isinstance(item, dict):
        check.error(opath, "must be an outcome name or a table {outcome = ...}")
        return {}
    check.unknown_keys(item, opath, ("outcome", "description", "stage", "margin"))
    name = check.get(item, opath, "outcome", str, required=True, default="")
    if name and name not in OUTCOMES:
        check.error(
            opath + ("outcome",),
            f"unknown outcome {name!r} (allowed: {', '.join(OUTCOMES)})",
        )
    return {k: v for k, v in item.items() if v is not None}


def _finite_question(
    check: Checker, by_key: dict[str, dict[str, Any]], qpath: Path_, qkey: Any
) -> None:
    """Strata and minimization factors need a baseline question with finitely many answers."""
    if not isinstance(qkey, str):
        check.error(qpath, "must be a baseline question key (a string)")
    elif qkey not in by_key:
        check.error(qpath, f"no baseline question with key {qkey!r}")
    elif by_key[qkey]["type"] not in FINITE_TYPES:
        check.error(
            qpath,
            f"question {qkey!r} is of type {by_key[qkey]['type']!r}; strata and "
            f"factors need one of {', '.join(FINITE_TYPES)}",
        )


# --- top level ----------------------------------------------------------------------------


TOP_FIELDS = (
    "slug",
    "title",
    "version",
    "description",
    "completion_redirect_url",
    "assistant_spend_cap_usd",
    "allow_phones",
    "randomization",
    "arms",
    "baseline",
    "eligibility",
    "stages",
    "participants",
    "analysis",
)
ARM_FIELDS = ("key", "label", "weight", "tools", "assistant", "budget")
DEFAULT_MESSAGE_BUDGET = 60
DEFAULT_TOKEN_BUDGET = 200_000
STAGE_FIELDS = (
    "key",
    "type",
    "title",
    "time_limit_minutes",
    "tools",
    "file",
    "tasks",
    "quiz",
    "questions",
    "double_grading",
)
RANDOMIZATION_FIELDS = ("scheme", "block_sizes", "strata", "factors", "imbalance", "p_preferred")


class FolderReader(Protocol):
    """What the checks read files through (:class:`trials.definition.files.TrialFolder`)."""

    problems: list[Problem]
    files: dict[str, str]

    def read_text(self, rel: str, check: Checker, path: Path_) -> str | None: ...

    def read_folder(self, rel: str, check: Checker, path: Path_) -> list[str]: ...


class TrialTables:
    """The checks of every table of one trial folder; problems go to the folder's list."""

    def __init__(self, folder: FolderReader) -> None:
        self.folder = folder

    def trial(self, check: Checker, raw: dict[str, Any]) -> dict[str, Any]:
        check.unknown_keys(raw, (), TOP_FIELDS)
        slug = check.get(raw, (), "slug", str, required=True, default="")
        if slug and not SLUG_RE.match(slug):
            check.error(("slug",), f"slug {slug!r} must be lowercase letters, digits and hyphens")
        version = check.get(raw, (), "version", int, default=1)
        if version < 1:
            check.error(("version",), f"must be a positive integer (got {version})")
        data: dict[str, Any] = {
            "slug": slug,
            "title": check.get(raw, (), "title", str, required=True, default=""),
            "version": version,
            "description": check.get(raw, (), "description", str, default=""),
        }
        redirect = check.get(raw, (), "completion_redirect_url", str, default="")
        if redirect:
            if not redirect.startswith(("https://", "http://")):
                check.error(("completion_redirect_url",), "must be an http(s) URL")
            data["completion_redirect_url"] = redirect
        cap = check.get(raw, (), "assistant_spend_cap_usd", float)
        if cap is not None:
            if cap <= 0:
                check.error(("assistant_spend_cap_usd",), "must be a positive amount")
            data["assistant_spend_cap_usd"] = float(cap)
        # Stored only when true, so definitions without it keep their protocol hash.
        if check.get(raw, (), "allow_phones", bool, default=False):
            data["allow_phones"] = True
        data["arms"] = self.arms(check, raw)
        data["baseline"] = self.baseline(check, raw)
        data["eligibility"] = self.eligibility(check, raw, data["baseline"])
        data["randomization"] = self.randomization(check, raw, data["arms"], data["baseline"])
        data["stages"] = self.stages(check, raw)
        data["participants"] = self.participants(check, raw)
        data["analysis"] = self.analysis(check, raw, data["arms"])
        return data

    def participants(self, check: Checker, raw: dict[str, Any]) -> dict[str, Any]:
        path: Path_ = ("participants",)
        table = check.get(raw, (), "participants", dict, default={})
        check.unknown_keys(table, path, PARTICIPANT_FIELDS)
        d = PARTICIPANT_DEFAULTS
        param = check.get(table, path, "external_id", str, default=d["external_id"])
        if param and not EXTERNAL_ID_PARAM_RE.match(param):
            check.error(
                path + ("external_id",),
                f"{param!r} is not a query parameter name (letters, digits and underscores, "
                'starting with a letter, e.g. "PROLIFIC_PID"; "" for none)',
            )
        elif param in SHARED_PARAMS:
            check.error(
                path + ("external_id",),
                f"{param} is the same for everyone in a study and cannot tell people apart "
                '(use "PROLIFIC_PID")',
            )
        required = check.get(
            table, path, "require_external_id", bool, default=d["require_external_id"]
        )
        if required and not param:
            check.error(
                path + ("require_external_id",),
                "an external id is required but 'external_id' names no query parameter",
            )
        pattern = check.get(
            table, path, "external_id_pattern", str, default=d["external_id_pattern"]
        )
        if pattern:
            if not param:
                check.error(
                    path + ("external_id_pattern",),
                    "a pattern needs 'external_id' to name the query parameter it checks",
                )
            if len(pattern) > 200:
                check.error(path + ("external_id_pattern",), "at most 200 characters")
            else:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    check.error(path + ("external_id_pattern",), f"not a regular expression: {exc}")
        idle = check.get(table, path, "resume_idle_minutes", int, default=d["resume_idle_minutes"])
        if not 0 <= idle <= 7 * 24 * 60:
            check.error(
                path + ("resume_idle_minutes",),
                "must be whole minutes from 0 (a new browser needs the resume code, always) "
                "to 10080 (a week)",
            )
        window = check.get(
            table, path, "duplicate_window_hours", float, default=d["duplicate_window_hours"]
        )
        if not 0 < window <= 24 * 365:
            check.error(
                path + ("duplicate_window_hours",), "must be more than 0 and at most 8760 (a year)"
            )
        return {
            "external_id": param,
            "require_external_id": required,
            "external_id_pattern": pattern,
            "resume_idle_minutes": idle,
            "duplicate_window_hours": float(window),
        }

    def arms(self, check: Checker, raw: dict[str, Any]) -> list[dict[str, Any]]:
        arms: list[dict[str, Any]] = []
        items = check.table_list(raw, (), "arms")
        if len(items) < 2:
            check.error(("arms",), f"a trial needs at least 2 arms (found {len(items)})")
        for i, item in enumerate(items):
            path: Path_ = ("arms", i)
            check.unknown_keys(item, path, ARM_FIELDS)
            key = check.get(item, path, "key", str, required=True, default="")
            if key:
                check_key(check, path + ("key",), key, "arm key")
            weight = check.get(item, path, "weight", int, default=1)
            if weight <= 0:
                check.error(
                    path + ("weight",), f"allocation weight must be positive (got {weight})"
                )
            tools = check.get(item, path, "tools", list, default=[])
            for j, tool in enumerate(tools):
                if tool not in TOOLS:
                    check.error(
                        path + ("tools", j), f"unknown tool {tool!r} (allowed: {', '.join(TOOLS)})"
                    )
            arm: dict[str, Any] = {
                "key": key,
                "label": check.get(item, path, "label", str, default=key),
                "weight": weight,
                "tools": sorted({t for t in tools if isinstance(t, str)}),
            }
            assistant = check.get(item, path, "assistant", dict)
            if assistant is not None and "assistant" not in arm["tools"]:
                check.error(
                    path + ("assistant",),
                    "assistant settings given but 'assistant' is not in this arm's tools",
                )
            if "assistant" in arm["tools"]:
                arm["assistant"] = self.assistant(check, path + ("assistant",), assistant or {})
                arm["budget"] = self.budget(check, path, item)
            elif "budget" in item:
                check.error(
                    path + ("budget",), "a budget only applies to an arm with the assistant"
                )
            arms.append(arm)
        unique(check, [(("arms", i, "key"), a["key"]) for i, a in enumerate(arms)], "arm key")
        return arms

    def assistant(self, check: Checker, path: Path_, table: dict[str, Any]) -> dict[str, Any]:
        """The arm's assistant settings, validated and with every default filled in, so the
        protocol hash says exactly what the treatment was."""
        problems = validate_table(table)
        for problem in problems:
            check.error(path + tuple(problem.path), problem.message)
        if problems:
            return dict(table)
        return AssistantSettings.from_table(table).to_table()

    def budget(self, check: Checker, path: Path_, item: dict[str, Any]) -> dict[str, Any]:
        table = check.get(item, path, "budget", dict, default={})
        bpath = path + ("budget",)
        check.unknown_keys(table, bpath, ("messages", "tokens"))
        budget = {
            "messages": check.get(table, bpath, "messages", int, default=DEFAULT_MESSAGE_BUDGET),
            "tokens": check.get(table, bpath, "tokens", int, default=DEFAULT_TOKEN_BUDGET),
        }
        for key, value in budget.items():
            if value <= 0:
                check.error(bpath + (key,), "must be a positive whole number")
        return budget

    def baseline(self, check: Checker, raw: dict[str, Any]) -> list[dict[str, Any]]:
        questions = [
            normalise_question(check, ("baseline", i), item)
            for i, item in enumerate(check.table_list(raw, (), "baseline"))
        ]
        unique(
            check,
            [(("baseline", i, "key"), q["key"]) for i, q in enumerate(questions)],
            "question key",
        )
        return questions

    def eligibility(
        self, check: Checker, raw: dict[str, Any], baseline: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        by_key = {q["key"]: q for q in baseline}
        rules: list[dict[str, Any]] = []
        for i, item in enumerate(check.table_list(raw, (), "eligibility")):
            path: Path_ = ("eligibility", i)
            check.unknown_keys(item, path, ("question", "op", "value", "reason"))
            qkey = check.get(item, path, "question", str, required=True, default="")
            op = check.get(item, path, "op", str, required=True, default="")
            reason = check.get(item, path, "reason", str, required=True, default="")
            value = item.get("value")
            if "value" not in item:
                check.error(path, "missing required field 'value'")
            question = by_key.get(qkey)
            if qkey and question is None:
                check.error(path + ("question",), f"no baseline question with key {qkey!r}")
            if op and op not in ELIGIBILITY_OPS:
                check.error(
                    path + ("op",), f"unknown op {op!r} (allowed: {', '.join(ELIGIBILITY_OPS)})"
                )
            if op in ("min", "max"):
                if not isinstance(value, int | float) or isinstance(value, bool):
                    check.error(path + ("value",), f"op '{op}' needs a number")
                elif question is not None and question["type"] != "number":
                    check.error(path + ("op",), f"op '{op}' needs a number question")
            elif op in ("in", "not_in"):
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    check.error(path + ("value",), f"op '{op}' needs an array of choice values")
                elif question is not None:
                    levels = _levels(question)
                    for v in value:
                        if levels and v not in levels:
                            check.error(
                                path + ("value",),
                                f"{v!r} is not a choice of question {qkey!r} "
                                f"(choices: {', '.join(levels)})",
                            )
            elif (
                op == "equals"
                and question is not None
                and _levels(question)
                and value not in _levels(question)
            ):
                check.error(path + ("value",), f"{value!r} is not a choice of {qkey!r}")
            rules.append({"question": qkey, "op": op, "value": value, "reason": reason})
        return rules

    def randomization(
        self,
        check: Checker,
        raw: dict[str, Any],
        arms: list[dict[str, Any]],
        baseline: list[dict[str, Any]],
    ) -> dict[str, Any]:
        path: Path_ = ("randomization",)
        table = check.get(raw, (), "randomization", dict, required=True, default={})
        check.unknown_keys(table, path, RANDOMIZATION_FIELDS)
        scheme = check.get(table, path, "scheme", str, required=True, default="")
        if scheme and scheme not in SCHEMES:
            check.error(
                path + ("scheme",),
                f"unknown randomization scheme {scheme!r} (allowed: {', '.join(SCHEMES)})",
            )
        out: dict[str, Any] = {"scheme": scheme}
        by_key = {q["key"]: q for q in baseline}
        total_weight = sum(a["weight"] for a in arms if a["weight"] > 0) or 1
        if scheme in ("blocks", "stratified_blocks"):
            out["block_sizes"] = self.block_sizes(check, table, path, total_weight)
        elif "block_sizes" in table:
            check.error(path + ("block_sizes",), f"not used by scheme {scheme!r}")
        if scheme == "stratified_blocks":
            strata = check.get(table, path, "strata", list, required=True, default=[])
            if not strata:
                check.error(path + ("strata",), "stratified blocks need at least one stratum")
            for j, qkey in enumerate(strata):
                _finite_question(check, by_key, path + ("strata", j), qkey)
            out["strata"] = [s for s in strata if isinstance(s, str)]
        elif "strata" in table:
            check.error(path + ("strata",), f"not used by scheme {scheme!r}")
        if scheme == "minimization":
            out.update(self.minimization(check, table, path, by_key))
        else:
            for key in ("factors", "imbalance", "p_preferred"):
                if key in table:
                    check.error(path + (key,), "only used by scheme 'minimization'")
        return out

    def block_sizes(
        self, check: Checker, table: dict[str, Any], path: Path_, total_weight: int
    ) -> list[int]:
        sizes = check.get(table, path, "block_sizes", list, required=True, default=[])
        if not sizes:
            check.error(path + ("block_sizes",), "needs at least one block size")
        for j, size in enumerate(sizes):
            if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
                check.error(path + ("block_sizes", j), "must be a positive integer")
            elif size % total_weight:
                check.error(
                    path + ("block_sizes", j),
                    f"block size {size} is not a multiple of the arms' total weight {total_weight}",
                )
        return sorted({s for s in sizes if isinstance(s, int)})

    def minimization(
        self,
        check: Checker,
        table: dict[str, Any],
        path: Path_,
        by_key: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        """The factors, imbalance measure and preferred-arm probability of minimization."""
        factors = check.get(table, path, "factors", list, required=True, default=[])
        norm_factors = []
        for j, factor in enumerate(factors):
            fpath = path + ("factors", j)
            if isinstance(factor, str):
                factor = {"question": factor}
            if not isinstance(factor, dict):
                check.error(fpath, "must be a question key or {question = ..., weight = ...}")
                continue
            check.unknown_keys(factor, fpath, ("question", "weight"))
            _finite_question(check, by_key, fpath + ("question",), factor.get("question"))
            fweight = check.get(factor, fpath, "weight", (int, float), default=1.0)
            if fweight <= 0:
                check.error(fpath + ("weight",), "must be positive")
            norm_factors.append({"question": factor.get("question"), "weight": float(fweight)})
        if not factors:
            check.error(path + ("factors",), "minimization needs at least one factor")
        imbalance = check.get(table, path, "imbalance", str, default="range")
        if imbalance not in ("range", "variance"):
            check.error(path + ("imbalance",), "must be 'range' or 'variance'")
        p_pref = check.get(table, path, "p_preferred", (int, float), default=0.8)
        if not 0 < p_pref <= 1:
            check.error(path + ("p_preferred",), "must be in (0, 1]")
        return {"factors": norm_factors, "imbalance": imbalance, "p_preferred": float(p_pref)}

    def stages(self, check: Checker, raw: dict[str, Any]) -> list[dict[str, Any]]:
        stages: list[dict[str, Any]] = []
        items = check.table_list(raw, (), "stages")
        if not items:
            check.error(("stages",), "a trial needs stages ([[stages]])")
        for i, item in enumerate(items):
            path: Path_ = ("stages", i)
            check.unknown_keys(item, path, STAGE_FIELDS)
            key = check.get(item, path, "key", str, required=True, default="")
            if key:
                check_key(check, path + ("key",), key, "stage key")
            stype = check.get(item, path, "type", str, required=True, default="")
            if stype and stype not in STAGE_TYPES:
                check.error(
                    path + ("type",),
                    f"unknown stage type {stype!r} (allowed: {', '.join(STAGE_TYPES)})",
                )
            stage: dict[str, Any] = {
                "key": key,
                "type": stype,
                "title": check.get(item, path, "title", str, default=key.replace("_", " ").title()),
            }
            limit = check.get(item, path, "time_limit_minutes", (int, float))
            if limit is not None:
                if limit <= 0:
                    check.error(path + ("time_limit_minutes",), "must be positive")
                elif stype in ("consent", "screening", "debrief"):
                    check.error(path + ("time_limit_minutes",), f"a {stype} stage is not timed")
                stage["time_limit_minutes"] = limit
            tools = check.get(item, path, "tools", list, default=[])
            for j, tool in enumerate(tools):
                if tool not in TOOLS:
                    check.error(
                        path + ("tools", j), f"unknown tool {tool!r} (allowed: {', '.join(TOOLS)})"
                    )
            if tools and stype not in ("task", "instructions"):
                check.error(path + ("tools",), f"a {stype} stage cannot offer tools")
            stage["tools"] = sorted({t for t in tools if isinstance(t, str)})
            self.stage_content(check, path, item, stage)
            stages.append(stage)
        unique(check, [(("stages", i, "key"), s["key"]) for i, s in enumerate(stages)], "stage key")
        self.stage_order(check, stages)
        return stages

    def stage_content(
        self, check: Checker, path: Path_, item: dict[str, Any], stage: dict[str, Any]
    ) -> None:
        stype = stage["type"]
        needs_file = stype in ("consent", "instructions", "debrief")
        file_rel = check.get(item, path, "file", str, required=needs_file, default="")
        if file_rel:
            if not needs_file:
                check.error(path + ("file",), f"a {stype} stage does not take a 'file'")
            else:
                self.folder.read_text(file_rel, check, path + ("file",))
                stage["file"] = file_rel
        tasks = check.get(item, path, "tasks", list, required=stype == "task", default=[])
        if tasks and stype != "task":
            check.error(path + ("tasks",), f"a {stype} stage does not take 'tasks'")
        elif stype == "task":
            if not tasks:
                check.error(path + ("tasks",), "a task stage needs at least one task folder")
            for j, task in enumerate(tasks):
                if not isinstance(task, str):
                    check.error(path + ("tasks", j), "must be a folder path")
                    continue
                self.task(check, path + ("tasks", j), task)
            stage["tasks"] = [t for t in tasks if isinstance(t, str)]
        quiz = check.get(item, path, "quiz", str, required=stype == "quiz", default="")
        if quiz and stype != "quiz":
            check.error(path + ("quiz",), f"a {stype} stage does not take 'quiz'")
        elif quiz:
            self.quiz(check, path + ("quiz",), quiz)
            stage["quiz"] = quiz
        share = check.get(item, path, "double_grading", float)
        if share is not None:
            if stype != "quiz":
                check.error(path + ("double_grading",), "only a quiz stage is double graded")
            elif not 0 <= share <= 1:
                check.error(path + ("double_grading",), "must be a share between 0 and 1")
            else:
                stage["double_grading"] = float(share)
        questions = check.table_list(item, path, "questions")
        if questions and stype != "survey":
            check.error(path + ("questions",), f"a {stype} stage does not take 'questions'")
        elif stype == "survey":
            if not questions:
                check.error(path + ("questions",), "a survey stage needs questions")
            norm = [
                normalise_question(check, path + ("questions", j), q)
                for j, q in enumerate(questions)
            ]
            unique(
                check,
                [(path + ("questions", j, "key"), q["key"]) for j, q in enumerate(norm)],
                "question key",
            )
            stage["questions"] = norm

    def stage_order(self, check: Checker, stages: list[dict[str, Any]]) -> None:
        types = [s["type"] for s in stages]
        if not stages:
            return
        if types[0] != "consent":
            check.error(("stages", 0, "type"), "the first stage must be the consent stage")
        if types.count("consent") > 1:
            check.error(("stages",), "only one consent stage is allowed")
        if types.count("screening") != 1:
            check.error(
                ("stages",),
                "exactly one screening stage is needed: allocation happens when it is passed",
            )
        if types[-1] != "debrief":
            check.error(("stages", len(stages) - 1, "type"), "the last stage must be a debrief")
        if types.count("debrief") > 1:
            check.error(("stages",), "only one debrief stage is allowed")
        if "screening" in types:
            screening = types.index("screening")
            for i, stype in enumerate(types[:screening]):
                if stype not in ("consent", "instructions"):
                    check.error(
                        ("stages", i, "type"),
                        f"a {stype} stage cannot come before screening (no arm is allocated yet)",
                    )

    def task(self, check: Checker, path: Path_, folder: str) -> None:
        names = self.folder.read_folder(folder, check, path)
        if not names:
            return
        task_toml = f"{folder.rstrip('/')}/task.toml"
        if task_toml not in self.folder.files:
            check.error(path, f"task folder {folder!r} has no task.toml")
            return
        source = self.folder.files[task_toml]
        task_check = Checker(task_toml, source, self.folder.problems)
        try:
            raw = tomllib.loads(source)
        except tomllib.TOMLDecodeError as exc:
            self.folder.problems.append(toml_problem(task_toml, exc))
            return
        task_check.unknown_keys(
            raw, (), ("title", "instructions", "starter", "solution", "tests", "entry", "show")
        )
        task_check.get(raw, (), "title", str, required=True)
        for key in ("instructions", "starter", "solution", "tests"):
            rel = task_check.get(raw, (), key, str, required=key in ("instructions", "starter"))
            if rel and f"{folder.rstrip('/')}/{rel}" not in self.folder.files:
                task_check.error((key,), f"file {rel!r} not found in task folder {folder!r}")
        material = f"{folder.rstrip('/')}/assistant.toml"
        if material in self.folder.files:
            material_check = Checker(material, self.folder.files[material], self.folder.problems)
            for problem in material_problems(self.folder.files[material]):
                material_check.error(tuple(problem.path), problem.message)

    def quiz(self, check: Checker, path: Path_, rel: str) -> None:
        # The quiz format belongs to the quizzes app, which registers it (stage_files); looked
        # up before reading, so that a missing format fails even when the file is missing too.
        quiz_format = stage_file("quiz")
        source = self.folder.read_text(rel, check, path)
        if source is None:
            return
        self.folder.problems.extend(quiz_format.load(source, rel))

    def analysis(
        self, check: Checker, raw: dict[str, Any], arms: list[dict[str, Any]]
    ) -> dict[str, Any]:
        path: Path_ = ("analysis",)
        table = check.get(raw, (), "analysis", dict, required=True, default={})
        check.unknown_keys(
            table,
            path,
            (
                "reference_arm",
                "alpha",
                "primary",
                "secondary",
                "covariates",
                "populations",
                "duplicates",
                "duplicate_signals",
            ),
        )
        arm_keys = [a["key"] for a in arms]
        reference = check.get(table, path, "reference_arm", str, required=True, default="")
        if reference and reference not in arm_keys:
            check.error(
                path + ("reference_arm",),
                f"no arm with key {reference!r} (arms: {', '.join(arm_keys)})",
            )
        alpha = check.get(table, path, "alpha", float, default=0.05)
        if not 0 < alpha < 1:
            check.error(path + ("alpha",), "must be between 0 and 1")
        primary = _outcome(check, path + ("primary",), table.get("primary"))
        secondary = [
            _outcome(check, path + ("secondary", i), item)
            for i, item in enumerate(check.get(table, path, "secondary", list, default=[]))
        ]
        covariates = check.get(table, path, "covariates", list, default=[])
        for i, cov in enumerate(covariates):
            if not isinstance(cov, str):
                check.error(path + ("covariates", i), "must be a string")
        per_protocol = self.per_protocol(check, table, path)
        duplicates, signals = self.duplicates(check, table, path)
        return {
            "reference_arm": reference,
            "alpha": float(alpha),
            "primary": primary,
            "secondary": secondary,
            "covariates": [c for c in covariates if isinstance(c, str)],
            "populations": {"per_protocol": per_protocol},
            "duplicates": duplicates,
            "duplicate_signals": [s for s in DUPLICATE_SIGNALS if s in signals],
        }

    def per_protocol(self, check: Checker, table: dict[str, Any], path: Path_) -> list[Any]:
        populations = check.get(table, path, "populations", dict, default={})
        check.unknown_keys(populations, path + ("populations",), ("per_protocol",))
        per_protocol: list[Any] = check.get(
            populations, path + ("populations",), "per_protocol", list, default=[]
        )
        for i, rule in enumerate(per_protocol):
            if rule not in POPULATION_RULES:
                check.error(
                    path + ("populations", "per_protocol", i),
                    f"unknown rule {rule!r} (allowed: {', '.join(POPULATION_RULES)})",
                )
        return per_protocol

    def duplicates(
        self, check: Checker, table: dict[str, Any], path: Path_
    ) -> tuple[str, list[Any]]:
        """What analysis does with likely duplicates, and the signals that mark one."""
        duplicates: str = check.get(table, path, "duplicates", str, default="keep")
        if duplicates not in DUPLICATE_RULES:
            check.error(
                path + ("duplicates",),
                f"unknown rule {duplicates!r} (allowed: {', '.join(DUPLICATE_RULES)})",
            )
        signals: list[Any] = check.get(
            table, path, "duplicate_signals", list, default=list(DEFAULT_DUPLICATE_SIGNALS)
        )
        for i, signal in enumerate(signals):
            if signal not in DUPLICATE_SIGNALS:
                check.error(
                    path + ("duplicate_signals", i),
                    f"unknown signal {signal!r} (allowed: {', '.join(DUPLICATE_SIGNALS)})",
                )
        if duplicates == "exclude" and not signals:
            check.error(
                path + ("duplicate_signals",),
                "excluding duplicates needs at least one signal that marks one",
            )
        return duplicates, signals
