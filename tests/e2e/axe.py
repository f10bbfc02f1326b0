"""axe-core in the browser tests: injects ``frontend/node_modules/axe-core/axe.min.js`` (an npm
devDependency, installed by ``make frontend``) into the page and fails on violations of the
impacts given (serious and critical by default).

    from tests.e2e.axe import assert_no_axe_violations
    assert_no_axe_violations(page, "consent")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from playwright.sync_api import Page

AXE = Path(settings.BASE_DIR) / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")
# WCAG 2.1 A and AA plus axe's best practices (landmarks, headings, scrollable regions).
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def axe_violations(page: Page, *, impacts: tuple[str, ...] = BLOCKING) -> list[dict[str, Any]]:
    """axe's violations on the page as it is now, of the given impacts."""
    if not AXE.exists():
        raise AssertionError(f"{AXE} is missing: run `make frontend` (npm ci) first")
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async (tags) => {
            const r = await axe.run(document, {runOnly: {type: "tag", values: tags},
                                                resultTypes: ["violations"]});
            return r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map((n) => ({target: n.target.join(" "),
                                                        summary: n.failureSummary}))}));
        }""",
        TAGS,
    )
    return [v for v in result if v["impact"] in impacts]


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"[{v['impact']}] {v['id']}: {v['help']}")
        for node in v["nodes"]:
            lines.append(f"    {node['target']}: {node['summary']}".replace("\n", " "))
    return "\n".join(lines)


def assert_no_axe_violations(
    page: Page, where: str, *, impacts: tuple[str, ...] = BLOCKING
) -> None:
    """Fails with axe's findings (rule, impact, the first elements) if there are any."""
    violations = axe_violations(page, impacts=impacts)
    assert not violations, f"axe-core on {where} ({page.url}):\n{describe(violations)}"
