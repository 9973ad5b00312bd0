"""The user docs stay complete and whole: every config key is documented under its
section, and every relative link of README.md and docs/ leads to a file and heading
that exist."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from config.settings import ExtensionProfile, Settings

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted((REPO / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _sections(text: str) -> dict[str, str]:
    """The text under each heading whose title is a `[section]` (or "Top level")."""
    parts = re.split(r"^#{2,3} (.+)$", text, flags=re.MULTILINE)
    return {title.strip("`[] "): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def _documented_keys() -> list[tuple[str, str]]:
    keys = []
    for name, field in Settings.model_fields.items():
        model = ExtensionProfile if name == "extensions" else field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            keys.append(("Top level", name))
            continue
        section = "extensions.N" if name == "extensions" else name
        for key, sub in model.model_fields.items():
            inner = sub.annotation
            if isinstance(inner, type) and issubclass(inner, BaseModel) and name != "extensions":
                keys += [(f"{section}.{key}", k) for k in inner.model_fields]
            else:
                keys.append((section, key))
    return keys


@pytest.mark.parametrize(("section", "key"), _documented_keys())
def test_every_config_key_is_documented_under_its_section(section: str, key: str) -> None:
    sections = _sections((REPO / "docs" / "configuration.md").read_text(encoding="utf-8"))

    assert section in sections, section
    assert f"`{key}`" in sections[section], f"{section}.{key}"


def _slug(heading: str) -> str:
    """The anchor a Markdown renderer (GitHub's) gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    headings = re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {_slug(h) for h in headings}


@pytest.mark.parametrize("page", [REPO / "README.md", *DOCS], ids=lambda p: p.name)
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # an outside address, not the repository's
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        if not linked.exists() or (anchor and anchor not in _anchors(linked)):
            broken.append(target)

    assert broken == []


# Built from parts, so that this file does not match itself.
OUTSIDE = re.compile(r"\.\./" + "shared|" + r"\bSP" + r"EC\b")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".cfg", ".sql", ".conf", ".js", ".css", ".html", ".txt"}
NOT_OURS = {".git", ".venv", "var", "build", "__pycache__"}


def _repository_text_files() -> list[Path]:
    files = []
    for folder, dirs, names in os.walk(REPO):
        here = Path(folder)
        dirs[:] = [
            d
            for d in dirs
            if d not in NOT_OURS
            and not d.startswith((".testp", ".mypy", ".ruff", ".pytest", ".hypothesis"))
            and not d.endswith(".egg-info")
            and (here / d) != REPO / "bench" / "out"
        ]
        files += [
            here / name
            for name in names
            if Path(name).suffix in TEXT_SUFFIXES or name in {"Makefile", "run"}
        ]
    return files


def test_nothing_in_the_repository_points_outside_it_for_the_contract() -> None:
    pointing = [
        f"{path.relative_to(REPO)}:{n}"
        for path in _repository_text_files()
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]

    assert len(_repository_text_files()) > 100
    assert pointing == []
