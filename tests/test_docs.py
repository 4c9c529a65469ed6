"""The project's documentation holds together: every doc a tracked file cites exists, every
"docs/X.md, topic" citation lands on a heading of X.md, and nothing refers outside the repository.

Citations are found in every file ``git ls-files`` lists, so a doc that goes missing, or a heading
that is renamed, fails here rather than leaving a help text pointing nowhere.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

DOC_REF = re.compile(r"docs/([A-Z][A-Z0-9_]*)\.md")
"""A cited doc: an upper-case name under docs/."""

CITATION = re.compile(r"docs/([A-Z][A-Z0-9_]*)\.md,(?=\s*([^\n]*))")
"""A doc and what follows its comma (on text whose wrapped lines were joined); a lookahead, so
that a second citation later on the same line is found too."""

TOPIC_END = re.compile(r"[)(.,;:\"`'\]]")
"""Where a topic ends: a bracket, full stop, comma, colon, semicolon or quote."""

FILE_LIST = re.compile(r"(?:docs/)?[A-Za-z_]+\.md\b")
"""``docs/A.md, README.md`` lists files; the words after the comma are not a topic."""

PROSE = ("as ",)
"""Phrases after a citation's comma that are prose, not a topic (``docs/EVALUATION.md, as
:func:`…```)."""

TOPICS = (
    "topics",
    "native json",
    "senml",
    "device files",
    "identity and rejects",
    "profiles",
    "coverage",
    "strict",
    "verdict",
    "streaming equals batch",
    "logger health",
    "custody and shipment details",
    "customs",
    "importing",
    "custody after close",
    "qa disposition",
)
"""The topics citations use. A citation must start with one of them (longest first) and its doc
must have a heading containing it; a new topic is added here and given a heading."""

SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()
"""This file: its examples of citations are not citations."""

OUTSIDE = "../" + "shared"
"""A path outside the repository that must never be referred to (spelled so this file does not
contain it)."""


def _tracked() -> list[str]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:  # pragma: no cover - not a checkout
        pytest.skip(f"not a git checkout: {exc}")
    return [name for name in out.decode().split("\0") if name]


@cache
def tracked_texts() -> dict[str, str]:
    """Every tracked file that is UTF-8 text, by its path relative to the repository root."""
    texts = {}
    for name in _tracked():
        path = ROOT / name
        if name == SELF or not path.is_file():  # a deleted file, or a directory link
            continue
        try:
            texts[name] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    return texts


def joined(text: str) -> str:
    """Wrapped lines joined with one space, dropping the indentation and the ``#`` of a comment
    that continues on the next line, so that a citation split over two lines reads whole."""
    return re.sub(r"[ \t]*\n[ \t]*(?:#[ \t]*)?", " ", text)


@dataclass(frozen=True)
class Citation:
    source: str
    doc: str
    phrase: str

    def __str__(self) -> str:
        return f"{self.source}: docs/{self.doc}.md, {self.phrase}"


def citations() -> list[Citation]:
    found = set()
    for source, text in tracked_texts().items():
        for match in CITATION.finditer(joined(text)):
            rest = match.group(2).lstrip()
            if FILE_LIST.match(rest) or rest.startswith(PROSE):
                continue
            phrase = TOPIC_END.split(rest, maxsplit=1)[0].strip()
            if phrase:
                found.add(Citation(source, match.group(1), phrase))
    return sorted(found, key=str)


@cache
def headings(doc: str) -> tuple[str, ...]:
    """The headings of ``docs/{doc}.md``, lower-case, outside fenced code blocks."""
    found = []
    fenced = False
    for line in (ROOT / "docs" / f"{doc}.md").read_text(encoding="utf-8").splitlines():
        if line.startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            found.append(line.lstrip("#").strip().lower())
    return tuple(found)


def topic_of(phrase: str) -> str | None:
    """The longest known topic the phrase starts with, as whole words."""
    text = phrase.lower()
    for topic in sorted(TOPICS, key=len, reverse=True):
        if text == topic or text.startswith(topic + " "):
            return topic
    return None


def cited_docs() -> list[str]:
    return sorted(
        {match.group(1) for text in tracked_texts().values() for match in DOC_REF.finditer(text)}
    )


@pytest.mark.parametrize("doc", cited_docs())
def test_every_cited_doc_exists(doc: str) -> None:
    citing = sorted(name for name, text in tracked_texts().items() if f"docs/{doc}.md" in text)
    assert (ROOT / "docs" / f"{doc}.md").is_file(), (
        f"docs/{doc}.md is cited by {', '.join(citing)} but does not exist"
    )


@pytest.mark.parametrize("citation", citations(), ids=str)
def test_every_citation_topic_is_a_heading_of_its_doc(citation: Citation) -> None:
    topic = topic_of(citation.phrase)
    assert topic is not None, (
        f"{citation}: the topic is none of {TOPICS}; add it to TOPICS in tests/test_docs.py and "
        f"give docs/{citation.doc}.md a heading containing it"
    )
    path = ROOT / "docs" / f"{citation.doc}.md"
    assert path.is_file(), f"{citation}: docs/{citation.doc}.md does not exist"
    assert any(topic in heading for heading in headings(citation.doc)), (
        f"{citation}: no heading of docs/{citation.doc}.md contains {topic!r} "
        f"(headings: {'; '.join(headings(citation.doc))})"
    )


def test_no_tracked_file_refers_outside_the_repository() -> None:
    offenders = sorted(
        name
        for name in _tracked()
        if name != "CHANGELOG.md"
        and (ROOT / name).is_file()
        and OUTSIDE.encode() in (ROOT / name).read_bytes()
    )
    assert offenders == [], f"these files refer to {OUTSIDE!r}: {', '.join(offenders)}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"""See (docs/PROTOCOL.md, native JSON).', [("PROTOCOL", "native JSON")]),
        (
            "# a rule (docs/EVALUATION.md, streaming equals\n    # batch): it holds",
            [("EVALUATION", "streaming equals batch")],
        ),
        ("(docs/PROTOCOL.md,\n    device files)", [("PROTOCOL", "device files")]),
        ("docs/PROTOCOL.md, SenML's own example", [("PROTOCOL", "SenML")]),
        ("(docs/DOSSIER.md, README.md)", []),
        ("(docs/PROTOCOL.md, docs/BROKER.md)", []),
        ("docs/EVALUATION.md, as :func:`x`", []),
    ],
)
def test_citations_are_read_across_wrapped_lines(
    text: str, expected: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "tracked_texts", lambda: {"x.py": text})
    assert [(c.doc, c.phrase) for c in citations()] == expected


def test_a_renamed_heading_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "PROTOCOL.md").write_text("# Protocol\n\n## Payloads\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    headings.cache_clear()
    try:
        with pytest.raises(AssertionError, match=r"no heading of docs/PROTOCOL\.md contains"):
            test_every_citation_topic_is_a_heading_of_its_doc(
                Citation("x.py", "PROTOCOL", "native JSON")
            )
    finally:
        headings.cache_clear()
