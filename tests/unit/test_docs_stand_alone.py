"""The repository stands on its own: no document, docstring or comment points outside it.

A cloner has only the repository, so links and paths must resolve inside it, and code cites
`docs/` or the primary literature, not issue numbers or reference material they cannot see.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".fsh", ".sh", ".example", ".txt", ".cfg", ".ini"}
OUTSIDE = [
    (
        re.compile(r"\.\./shared|FHIR-CONTRACT\.md|STYLE\.md|response-criteria\.md"),
        "the team's reference material, not in the repository",
    ),
    (re.compile(r"\b[Ii]ssues? #?\d+\b"), "an issue number a cloner cannot see"),
    (re.compile(r"\breference W\d+"), "a worked case by its old name: cite docs/rules/worked-cases.md"),
]
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [
        ROOT / name
        for name in listed
        if (Path(name).suffix in TEXT_SUFFIXES or Path(name).name in {"Dockerfile", "run"})
        and (ROOT / name).is_file()
        and not name.startswith("fhir_profiles/package/")  # generated from fhir_profiles/input
    ]


def test_nothing_points_outside_the_repository() -> None:
    found = []
    this_file = Path(__file__).resolve()
    for path in tracked_text_files():
        if path == this_file:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for pattern, why in OUTSIDE:
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {why}: {line.strip()[:100]}")
    assert found == [], "\n".join(found)


@pytest.mark.parametrize(
    "doc",
    sorted(
        p.relative_to(ROOT).as_posix()
        for p in ROOT.glob("**/*.md")
        if ".venv" not in p.parts and "var" not in p.parts and "node_modules" not in p.parts
    ),
)
def test_every_relative_markdown_link_resolves_inside_the_repository(doc: str) -> None:
    path = ROOT / doc
    for target in MARKDOWN_LINK.findall(path.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        resolved = (path.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), f"{doc} links outside the repository: {target}"
        assert resolved.exists(), f"{doc} links to a missing file: {target}"
