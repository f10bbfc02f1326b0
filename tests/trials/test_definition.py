from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from trials.definition import (
    DefinitionInvalid,
    StageFileFormatMissing,
    eligibility_failures,
    load_trial_dir,
    stage_files,
    stratum_key,
    toml_line_index,
    write_trial_dir,
)

SAMPLE_ELIGIBLE = {
    "python_years": "4+",
    "python_frequency": "weekly",
    "tried_ai_assistant": "yes",
    "used_trio": "no",
}


def problems_of(root: Path) -> list[str]:
    with pytest.raises(DefinitionInvalid) as caught:
        load_trial_dir(root)
    return [str(p) for p in caught.value.problems]


def edit(trial_dir: Path, old: str, new: str, count: int = 1) -> None:
    path = trial_dir / "trial.toml"
    text = path.read_text()
    assert old in text, f"test setup: {old!r} not in trial.toml"
    path.write_text(text.replace(old, new, count))


def line_of(trial_dir: Path, needle: str, nth: int = 1) -> int:
    lines = (trial_dir / "trial.toml").read_text().splitlines()
    hits = [i + 1 for i, line in enumerate(lines) if needle in line]
    return hits[nth - 1]


def test_sample_trial_is_valid_and_has_the_reference_design(sample_definition):
    data = sample_definition.data
    assert [a["key"] for a in data["arms"]] == ["ai", "no_ai"]
    assert [a["weight"] for a in data["arms"]] == [1, 1]
    assert data["randomization"] == {
        "scheme": "stratified_blocks",
        "block_sizes": [2, 4, 6],
        "strata": ["coding_years"],
    }
    assert [s["type"] for s in data["stages"]] == [
        "consent",
        "screening",
        "task",
        "task",
        "quiz",
        "survey",
        "debrief",
    ]
    main = next(s for s in data["stages"] if s["key"] == "main_tasks")
    assert main["time_limit_minutes"] == 35
    assert main["tools"] == ["assistant"]
    assert data["analysis"]["primary"]["outcome"] == "quiz_score"
    assert "tasks/fetch_all/tests.py" in sample_definition.files


def test_hash_is_stable_and_sensitive_to_every_file(trial_dir, sample_definition):
    assert load_trial_dir(trial_dir).protocol_hash() == sample_definition.protocol_hash()
    hidden_tests = trial_dir / "tasks" / "fetch_all" / "tests.py"
    hidden_tests.write_text(hidden_tests.read_text() + "\n# changed\n")
    assert load_trial_dir(trial_dir).protocol_hash() != sample_definition.protocol_hash()


def test_export_then_import_gives_the_same_hash(sample_definition, tmp_path):
    write_trial_dir(sample_definition, tmp_path / "out")
    again = load_trial_dir(tmp_path / "out")
    assert again.data == sample_definition.data
    assert again.files == sample_definition.files
    assert again.protocol_hash() == sample_definition.protocol_hash()


def test_defaults_written_out_do_not_change_the_hash(trial_dir, sample_definition):
    # Writing a default explicitly is the same protocol as leaving it out.
    edit(trial_dir, 'key = "comments"', 'key = "comments"\nhelp = ""')
    edit(trial_dir, 'key = "effort"', 'key = "effort"\nrequired = true')
    assert load_trial_dir(trial_dir).protocol_hash() == sample_definition.protocol_hash()


def test_bad_toml_is_located_by_line(trial_dir):
    edit(trial_dir, 'title = "Learning a new Python library"', 'title = "unterminated')
    (problem,) = problems_of(trial_dir)
    assert problem.startswith(f"trial.toml:{line_of(trial_dir, 'unterminated')}:")
    assert "invalid TOML" in problem


def test_all_problems_are_reported_at_once_with_file_field_and_line(trial_dir):
    edit(trial_dir, 'scheme = "stratified_blocks"', 'scheme = "coin_toss"')
    edit(trial_dir, "weight = 1", "weight = 0")
    edit(trial_dir, 'key = "no_ai"', 'key = "ai"')
    edit(trial_dir, 'key = "used_asyncio"', 'key = "used_trio"')
    problems = problems_of(trial_dir)
    text = "\n".join(problems)
    assert f"trial.toml:{line_of(trial_dir, 'coin_toss')}: randomization.scheme: unknown" in text
    assert re.search(r"trial.toml:\d+: arms\[0\]\.weight: allocation weight must be positive", text)
    assert "arms[1].key: duplicate arm key 'ai'" in text
    assert "baseline[6].key: duplicate question key 'used_trio'" in text
    assert len(problems) >= 4


def test_missing_required_fields(trial_dir):
    edit(trial_dir, 'slug = "trio-skill-formation"\n', "")
    edit(trial_dir, 'reference_arm = "no_ai"\n', "")
    text = "\n".join(problems_of(trial_dir))
    assert "missing required field 'slug'" in text
    assert "analysis: missing required field 'reference_arm'" in text


def test_strata_must_name_known_finite_questions(trial_dir):
    edit(trial_dir, 'strata = ["coding_years"]', 'strata = ["shoe_size", "comments"]')
    text = "\n".join(problems_of(trial_dir))
    assert "randomization.strata[0]: no baseline question with key 'shoe_size'" in text
    assert "randomization.strata[1]: no baseline question with key 'comments'" in text


def test_block_sizes_must_fit_the_allocation_ratio(trial_dir):
    edit(trial_dir, "weight = 1", "weight = 2")  # 2:1, total weight 3
    text = "\n".join(problems_of(trial_dir))
    assert "block size 2 is not a multiple of the arms' total weight 3" in text


def test_minimization_settings_are_checked_field_by_field(trial_dir: Path) -> None:
    edit(
        trial_dir,
        'scheme = "stratified_blocks"\nblock_sizes = [2, 4, 6]\nstrata = ["coding_years"]',
        'scheme = "minimization"\n'
        'factors = ["coding_years", { question = "comments", weight = 0 }, 3]\n'
        'imbalance = "max"\np_preferred = 1.5',
    )
    problems = [p.split(": ", 1)[1] for p in problems_of(trial_dir)]
    assert problems == [
        "randomization.factors[1].question: no baseline question with key 'comments'",
        "randomization.factors[1].weight: must be positive",
        "randomization.factors[2]: must be a question key or {question = ..., weight = ...}",
        "randomization.imbalance: must be 'range' or 'variance'",
        "randomization.p_preferred: must be in (0, 1]",
    ]


def test_minimization_without_factors_and_stray_block_sizes_are_refused(trial_dir: Path) -> None:
    edit(trial_dir, 'scheme = "stratified_blocks"', 'scheme = "minimization"\nfactors = []')
    text = "\n".join(problems_of(trial_dir))
    assert "randomization.factors: minimization needs at least one factor" in text
    assert "randomization.block_sizes: not used by scheme 'minimization'" in text
    assert "randomization.strata: not used by scheme 'minimization'" in text


def test_analysis_outcomes_and_populations_are_checked(trial_dir: Path) -> None:
    edit(
        trial_dir,
        'primary = { outcome = "quiz_score", description = "Total quiz points" }',
        'primary = { outcome = "happiness", weight = 2 }',
    )
    edit(trial_dir, 'per_protocol = ["completed_quiz",', 'per_protocol = ["finished",')
    text = "\n".join(problems_of(trial_dir))
    assert "analysis.primary.weight: unknown field 'weight'" in text
    assert "analysis.primary.outcome: unknown outcome 'happiness'" in text
    assert "analysis.populations.per_protocol[0]: unknown rule 'finished'" in text


def test_a_quiz_stage_read_before_the_quiz_format_is_registered_fails_loudly(
    trial_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the quizzes app had not loaded: the quiz must not be skipped unchecked.
    monkeypatch.setattr(stage_files, "_formats", {})
    with pytest.raises(StageFileFormatMissing, match="no file format is registered for quiz"):
        load_trial_dir(trial_dir)


def test_the_definition_package_imports_neither_django_nor_quizzes() -> None:
    # In a fresh interpreter: this test process has loaded Django and every app already.
    code = (
        "import sys, trials.definition, trials.protocol_check; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'quizzes'}))"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_trial_needs_two_arms(trial_dir):
    text = (trial_dir / "trial.toml").read_text()
    start = text.index('[[arms]]\nkey = "no_ai"')
    end = text.index("# Baseline questions")
    (trial_dir / "trial.toml").write_text(text[:start] + text[end:])
    assert any("at least 2 arms (found 1)" in p for p in problems_of(trial_dir))


def test_missing_referenced_files_are_reported(trial_dir):
    (trial_dir / "consent.md").unlink()
    (trial_dir / "tasks" / "warmup" / "starter.py").unlink()
    text = "\n".join(problems_of(trial_dir))
    assert "stages[0].file: file 'consent.md' not found" in text
    assert "tasks/warmup/task.toml:" in text and "file 'starter.py' not found" in text


def test_file_paths_cannot_leave_the_trial_folder(trial_dir):
    edit(trial_dir, 'file = "consent.md"', 'file = "../../etc/passwd"')
    assert any("must be relative and inside the trial folder" in p for p in problems_of(trial_dir))


def test_unknown_fields_and_stage_order(trial_dir):
    edit(trial_dir, 'title = "Consent"', 'title = "Consent"\ncolour = "blue"')
    edit(trial_dir, 'type = "screening"', 'type = "instructions"\nfile = "consent.md"')
    text = "\n".join(problems_of(trial_dir))
    assert "stages[0].colour: unknown field 'colour'" in text
    assert "exactly one screening stage is needed" in text


def test_quiz_file_errors_are_located_in_the_quiz_file(trial_dir):
    quiz = trial_dir / "quiz.toml"
    quiz.write_text(quiz.read_text().replace('key = "start_soon_returns"', 'key = "nursery_exit"'))
    text = "\n".join(problems_of(trial_dir))
    assert re.search(r"quiz.toml:\d+: questions\[1\]\.key: duplicate question key", text)


def test_line_index_finds_keys_in_arrays_of_tables():
    source = '[[arms]]\nkey = "a"\n\n[[arms]]\nkey = "b"\nweight = 2\n[arms.assistant]\nx = 1\n'
    index = toml_line_index(source)
    assert index[("arms", 1, "weight")] == 6
    assert index[("arms", 1, "assistant", "x")] == 8
    assert index[("arms", 0, "key")] == 2


def test_eligibility_rules_give_their_reasons(sample_definition):
    rules = sample_definition.data["eligibility"]
    assert eligibility_failures(rules, SAMPLE_ELIGIBLE) == []
    reasons = eligibility_failures(
        rules, SAMPLE_ELIGIBLE | {"python_years": "lt1", "used_trio": "yes"}
    )
    assert reasons == ["Less than one year of Python", "Has used Trio before"]
    assert len(eligibility_failures(rules, {})) == len(rules)


def test_stratum_key_names_each_stratification_answer():
    assert stratum_key(["coding_years"], {"coding_years": "7+"}) == "coding_years=7+"
    assert stratum_key([], {"coding_years": "7+"}) == ""
