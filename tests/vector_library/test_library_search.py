"""Search: free text, filters, sorts, paging, visibility and hostile query text."""

from __future__ import annotations

import pytest

from vector_library import InvalidInput, SearchQuery, VectorMetadata
from vector_library.search import fts5_match, query_tokens, tsquery
from vector_library.testing import CARS, FACES


def ids(page) -> list[int]:
    return [v.id for v in page.items]


@pytest.fixture
def corpus(library, publish, make_vector):
    """Six vectors over two models and three authors."""
    v = {
        "smile": publish("alice", "Big smile", description="Makes the mouth wider", tags=("smile", "mouth")),
        "frown": publish("bob", "Frown", description="Sad mouth corners", tags=("mouth", "sad")),
        "eyes": publish("alice", "Wide eyes", description="Opens the eyes", tags=("eyes",),
                        edited_classes=("eye",)),
        "hair": publish("carol", "Long hair", description="Grows hair. Café style, naïve", tags=("hair",),
                        edited_classes=("hair",)),
        "smirk": publish("carol", "Smirk", description="Half a smile", tags=("smile",)),
    }
    v["car"] = library.publish("bob", make_vector(spec=CARS, edited_classes=("wheel",)),
                               VectorMetadata(name="Smiling car", tags=("smile", "car")))
    return v


def test_text_matches_name_description_and_tags_as_prefixes(library, corpus):
    assert set(ids(library.search(SearchQuery(text="smile")))) == {corpus["smile"].id, corpus["smirk"].id,
                                                                  corpus["car"].id}
    assert ids(library.search(SearchQuery(text="wid eye"))) == [corpus["eyes"].id]  # all words, as prefixes
    assert ids(library.search(SearchQuery(text="CORNERS"))) == [corpus["frown"].id]
    assert ids(library.search(SearchQuery(text="sad"))) == [corpus["frown"].id]  # a tag
    assert library.search(SearchQuery(text="smile frown")).items == ()


def test_text_is_accent_insensitive_on_sqlite_and_exact_on_postgresql(library, corpus, database):
    assert ids(library.search(SearchQuery(text="café"))) == [corpus["hair"].id]
    if database.dialect == "sqlite":  # FTS5 unicode61 remove_diacritics
        assert ids(library.search(SearchQuery(text="naive"))) == [corpus["hair"].id]


def test_filters(library, corpus):
    faces = FACES.model_id
    got = set(ids(library.search(SearchQuery(text="smile", model_id=faces))))
    assert got == {corpus["smile"].id, corpus["smirk"].id}
    assert ids(library.search(SearchQuery(model_id=CARS.model_id))) == [corpus["car"].id]
    assert set(ids(library.search(SearchQuery(tag="mouth")))) == {corpus["smile"].id, corpus["frown"].id}
    assert ids(library.search(SearchQuery(edited_class="eye"))) == [corpus["eyes"].id]
    assert set(ids(library.search(SearchQuery(author="carol")))) == {corpus["hair"].id, corpus["smirk"].id}
    assert ids(library.search(SearchQuery(text="smile", author="carol", tag="smile", model_id=faces))) == \
        [corpus["smirk"].id]
    assert library.search(SearchQuery(author="nobody")).items == ()


def test_sorts(library, corpus):
    library.like("bob", corpus["eyes"].id)
    library.like("carol", corpus["eyes"].id)
    library.like("bob", corpus["hair"].id)
    for _ in range(3):
        library.record_download(corpus["frown"].id)
    library.record_download(corpus["smirk"].id)
    assert ids(library.search(SearchQuery(sort="likes")))[:2] == [corpus["eyes"].id, corpus["hair"].id]
    assert ids(library.search(SearchQuery(sort="downloads")))[:2] == [corpus["frown"].id, corpus["smirk"].id]
    recent = ids(library.search(SearchQuery(sort="recent")))
    assert recent == sorted(recent, reverse=True)  # published in id order
    assert ids(library.search(SearchQuery())) == recent  # relevance without text = recent
    assert ids(library.search(SearchQuery(text="smile", sort="likes", model_id=FACES.model_id)))[0] in \
        {corpus["smile"].id, corpus["smirk"].id}


def test_relevance_prefers_the_better_match(library, publish):
    weak = publish("alice", "Portrait", description="slight smile somewhere in a long description of hair")
    strong = publish("alice", "Smile smile", description="smile", tags=("smile",))
    assert ids(library.search(SearchQuery(text="smile"))) == [strong.id, weak.id]


def test_paging(library, publish):
    made = [publish("alice", f"vector {i}").id for i in range(7)]
    pages = [library.search(SearchQuery(text="vector", sort="recent", page=p, page_size=3)) for p in (1, 2, 3)]
    assert [ids(p) for p in pages] == [made[::-1][0:3], made[::-1][3:6], made[::-1][6:7]]
    assert [p.has_more for p in pages] == [True, True, False]
    assert library.search(SearchQuery(page=4, page_size=3)).items == ()


@pytest.mark.parametrize("query", [
    "'; DROP TABLE edit_vectors; --", '" OR 1=1 --', "smile*", "smile OR frown", "NEAR(smile frown)",
    "name:smile", "-smile", "^smile", "(smile", "smile AND", '"', "%", "_", "\\", "*", "::", "!:*",
    "smile & !frown | hair", "<script>alert(1)</script>", "\u202esmile", "\U0001F600 smile", "\x00smile",
    "笑顔", "a" * 200,
])
def test_hostile_query_text_is_only_ever_words(library, corpus, query):
    """Any query behaves exactly like the plain words in it: syntax characters do nothing."""
    try:
        page = library.search(SearchQuery(text=query))
    except InvalidInput as exc:  # control characters are refused, with a reason
        assert "control character" in str(exc)
        return
    words = query_tokens(query)
    plain = library.search(SearchQuery(text=" ".join(words)))
    assert ids(page) == ids(plain)
    if not words:
        assert len(page.items) == 6
    assert library.count_vectors() == 6


def test_sql_fragment_query_matches_only_literal_words(library, corpus, publish):
    evil = publish("alice", "drop table", description="a vector about tables")
    got = ids(library.search(SearchQuery(text="'; DROP TABLE edit_vectors; --")))
    assert got == []  # needs the word 'edit_vectors' split as 'edit' and 'vectors' too
    assert ids(library.search(SearchQuery(text="'; DROP TABLE --"))) == [evil.id]


def test_query_builders_quote_words():
    assert query_tokens('Smile" OR *frown* NEAR(a b) smile') == ["smile", "or", "frown", "near", "a", "b"]
    assert fts5_match(["smile", "or", "frown", "near"]) == '("smile"* OR "frown"*) AND "near"*'
    assert tsquery(["smile", "or", "frown", "near"]) == "(smile:* | frown:*) & near:*"
    assert fts5_match(["smile", "mouth"]) == '"smile"* AND "mouth"*' and tsquery(["smile", "mouth"]) == "smile:* & mouth:*"
    assert query_tokens("x_y-z") == ["x", "y", "z"]
    assert len(query_tokens(" ".join(f"w{i}" for i in range(30)))) == 8
    # "or" stands only between two words, "and" is dropped; joined again, the tokens read as the query does
    assert query_tokens("glasses AND") == ["glasses"] and query_tokens("and") == []
    assert query_tokens("or smile or or grin or") == ["smile", "or", "grin"]
    assert query_tokens("smile or smile frown") == ["smile", "frown"]  # the repeated word takes its "or" along
    for q in ("a or b or c d", "smile AND or", "x or or y and z"):
        assert query_tokens(" ".join(query_tokens(q))) == query_tokens(q)


def test_or_between_words_and_a_dropped_and(library, corpus):
    """A search box's connectives: OR between two words is either (the one that binds first), AND joins; both
    in any case. Before, each was a required word: "glasses AND" and "smile OR frown" found nothing."""
    smiles = {corpus["smile"].id, corpus["smirk"].id, corpus["car"].id}
    assert set(ids(library.search(SearchQuery(text="smile OR frown")))) == smiles | {corpus["frown"].id}
    assert set(ids(library.search(SearchQuery(text="smile or frown")))) == smiles | {corpus["frown"].id}
    assert set(ids(library.search(SearchQuery(text="smile AND")))) == smiles
    assert set(ids(library.search(SearchQuery(text="smile and mouth")))) == {corpus["smile"].id}
    # OR binds first: (frown or smirk) and sad
    assert ids(library.search(SearchQuery(text="frown OR smirk sad"))) == [corpus["frown"].id]
    assert set(ids(library.search(SearchQuery(text="hair OR eye", sort="recent")))) == {corpus["hair"].id,
                                                                                       corpus["eyes"].id}
    assert library.search(SearchQuery(text="smile frown")).items == ()  # without OR, every word still counts


@pytest.mark.parametrize("query, words", [
    (SearchQuery(text="x" * 201), "at most 200"),
    (SearchQuery(sort="name; DROP"), "accepted: relevance, recent, likes, downloads"),
    (SearchQuery(page=0), "page"),
    (SearchQuery(page_size=101), "page_size"),
    (SearchQuery(model_id="FACE"), "lowercase hex"),
    (SearchQuery(tag="a\x00"), "control character"),
])
def test_bad_search_parameters_are_refused(library, query, words):
    with pytest.raises(InvalidInput, match=words):
        library.search(query)


def test_list_vectors_is_search_without_text(library, corpus):
    page = library.list_vectors(model_id=FACES.model_id, author="alice")
    assert set(ids(page)) == {corpus["smile"].id, corpus["eyes"].id}


def test_the_substring_backend_reads_a_query_as_the_text_indexes_do(library, corpus, database):
    """A database with neither FTS5 nor tsvector falls back to substring matching: the same words, the same
    connectives, the same vectors (prefix and substring agree on this corpus)."""
    from vector_library.search import build_search

    for text in ("smile", "wid eye", "smile OR frown", "frown OR smirk sad", "smile and mouth", "glasses AND",
                 "smile frown", "sad"):  # fmt: skip
        q = SearchQuery(text=text, sort="recent")
        with database.reader() as s:
            got = [v.id for v in s.scalars(build_search(q, None, "like"))]
        assert sorted(got) == sorted(ids(library.search(q))), text
