"""The sample's OCR text generator: deterministic, and each category reads like itself."""

from __future__ import annotations

import random
import re

import pytest

from strangler.sample import vocabulary
from strangler.sample.dirt import CONTROL_CHARS_REGEX, TARGETS, DirtKind, kinds_for
from strangler.sample.vocabulary import CATEGORY_NAMES, MAX_PAGE_WORDS, MIN_PAGE_WORDS


def _document(seed: int, category: str, pages: int = 3) -> tuple[str, list[str]]:
    rng = random.Random(seed)
    context = vocabulary.document_context(rng, category)
    title = vocabulary.document_title(rng, category, context)
    return title, [vocabulary.page_text(rng, category, n, context) for n in range(1, pages + 1)]


_SHARED = " ".join(
    vocabulary.FIRST_NAMES
    + vocabulary.LAST_NAMES
    + vocabulary.COMPANIES
    + vocabulary.CITIES
    + vocabulary.MONTHS
)


def _words(text: str) -> set[str]:
    """Words of four letters or more, without the names every category shares."""
    return set(re.findall(r"[a-z]{4,}", text.lower())) - set(
        re.findall(r"[a-z]{4,}", _SHARED.lower())
    )


@pytest.mark.parametrize("category", CATEGORY_NAMES)
def test_same_seed_same_text_and_other_seed_other_text(category: str) -> None:
    assert _document(3, category) == _document(3, category)
    assert _document(3, category) != _document(4, category)


def test_every_template_slot_has_a_filler() -> None:
    rng = random.Random(0)
    for name, category in vocabulary.CATEGORIES.items():
        context = vocabulary.document_context(rng, name)
        for template in (*category.titles, *category.headers, *category.sentences):
            rendered = vocabulary.render(rng, category, template, context)
            assert "{" not in rendered and "}" not in rendered, (name, template)


@pytest.mark.parametrize("category", CATEGORY_NAMES)
def test_pages_have_40_to_120_words_and_no_dirt(category: str) -> None:
    rng = random.Random(category)
    for _ in range(200):
        context = vocabulary.document_context(rng, category)
        page = vocabulary.page_text(rng, category, rng.randint(1, 4), context)
        assert MIN_PAGE_WORDS <= len(page.split()) <= MAX_PAGE_WORDS
        assert not re.search(CONTROL_CHARS_REGEX, page)


def test_pages_of_one_document_share_its_identity() -> None:
    rng = random.Random(9)
    context = vocabulary.document_context(rng, "invoice")
    first = vocabulary.page_text(rng, "invoice", 1, context)
    assert context["invoice_no"] in first
    assert context["invoice_no"] in vocabulary.document_title(rng, "invoice", context)


def test_categories_read_differently() -> None:
    """Two categories share few words beyond names, places and months (Jaccard < 0.15)."""
    corpus = {
        c: _words(" ".join(" ".join(_document(s, c, 4)[1]) for s in range(20)))
        for c in CATEGORY_NAMES
    }
    for a in CATEGORY_NAMES:
        for b in CATEGORY_NAMES:
            if a < b:
                overlap = len(corpus[a] & corpus[b]) / len(corpus[a] | corpus[b])
                assert overlap < 0.15, (a, b, overlap)


@pytest.mark.parametrize(
    ("phrase", "category"),
    [
        ("overdue", "invoice"),
        ("blood pressure", "medical_report"),
        ("bill of lading", "shipping_manifest"),
        ("governed by the laws", "contract"),
        ("deductible", "insurance_claim"),
        ("opening balance", "bank_statement"),
        ("taxable income", "tax_return"),
        ("years of professional experience", "resume"),
    ],
)
def test_distinctive_phrases_belong_to_one_category(phrase: str, category: str) -> None:
    hits = {
        c
        for c in CATEGORY_NAMES
        for s in range(40)
        if phrase in " ".join(_document(s, c, 4)[1]).lower()
    }
    assert hits == {category}


def test_every_dirt_kind_names_columns_and_a_description() -> None:
    for kind in DirtKind:
        assert kind.description and kind.columns
    assert {t for targets in TARGETS.values() for t in targets} == {
        "customers",
        "documents",
        "ocr_pages",
        "processing_jobs",
    }
    assert DirtKind.MALFORMED_JSON in kinds_for("documents")
    assert DirtKind.MALFORMED_JSON not in kinds_for("customers")


def test_control_chars_regex_catches_escaped_nul_but_not_newlines() -> None:
    assert re.search(CONTROL_CHARS_REGEX, "a\\u0000b")
    assert re.search(CONTROL_CHARS_REGEX, "a\x1b[0mb")
    assert not re.search(CONTROL_CHARS_REGEX, "line one\nline two\tend\r\n")
