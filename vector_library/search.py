"""Search statements for the three text backends, chosen by what the schema has:

    fts5      SQLite with the FTS5 table of the migration (bm25 relevance, prefix tokens)
    tsvector  PostgreSQL's generated tsvector column + GIN index (ts_rank relevance)
    like      anything else: case-insensitive substring match, no relevance

User text never reaches a query language as syntax. It is cut into words of letters and digits
(everything else, quotes, stars, colons, NEAR, parentheses, separates words), each word becomes a
quoted prefix term (``"smil"*`` in FTS5, ``smil:*`` in tsquery), and the resulting string is passed
as a bound parameter. All words must match, except that the word ``or`` (any case) between two words
makes either one enough, as in a web search box: ``smile OR grin mouth`` is (smile or grin) and mouth.
The word ``and`` joins words and is dropped (``glasses AND smile`` is ``glasses smile``): as a required
prefix it would find only words that begin with "and".
"""

from __future__ import annotations

import re
from typing import Optional

from sqlalchemy import Select, column, exists, func, literal_column, or_, select, table, text
from sqlalchemy.orm import Session

from db.models import EditVector, User, VectorClass, VectorTag
from vector_library.records import SearchQuery

MAX_TOKENS = 8
_TOKEN_RE = re.compile(r"[^\W_]+")
_fts = table("edit_vectors_fts", column("rowid"), column("rank"))
_tsv = literal_column("edit_vectors.search_tsv")


def query_tokens(text_: str) -> list[str]:
    """Words of the query, lowercased, de-duplicated, at most MAX_TOKENS, with "or" kept where it stands between
    two words (and nowhere else) and "and" dropped: ``" ".join(query_tokens(q))`` reads as ``q`` does."""
    out: list[str] = []
    words = 0
    for tok in _TOKEN_RE.findall(text_.lower()):
        if tok == "and":
            continue
        if tok == "or":
            if out and out[-1] != "or":
                out.append(tok)
            continue
        if tok in out or words == MAX_TOKENS:
            if out and out[-1] == "or":  # "a or a b" is "a b", not "a or b"
                out.pop()
            continue
        out.append(tok)
        words += 1
    if out and out[-1] == "or":
        out.pop()
    return out


def query_groups(tokens: list[str]) -> list[list[str]]:
    """["smile", "or", "grin", "mouth"] -> [["smile", "grin"], ["mouth"]]: every group must match, one word of it
    is enough."""
    groups: list[list[str]] = []
    joined = False
    for tok in tokens:
        if tok == "or":
            joined = bool(groups)
        elif joined:
            groups[-1].append(tok)
            joined = False
        else:
            groups.append([tok])
    return groups


def fts5_match(tokens: list[str]) -> str:
    def group(g: list[str]) -> str:
        terms = " OR ".join(f'"{t}"*' for t in g)
        return f"({terms})" if len(g) > 1 else terms

    return " AND ".join(group(g) for g in query_groups(tokens))  # FTS5 reads no implicit AND beside a bracket


def tsquery(tokens: list[str]) -> str:
    def group(g: list[str]) -> str:
        terms = " | ".join(f"{t}:*" for t in g)
        return f"({terms})" if len(g) > 1 else terms

    return " & ".join(group(g) for g in query_groups(tokens))


def detect_backend(session: Session) -> str:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return "tsvector"
    if dialect == "sqlite":
        has_fts = session.scalar(text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'edit_vectors_fts'"))
        return "fts5" if has_fts else "like"
    return "like"


def build_search(query: SearchQuery, viewer_id: Optional[int], backend: str) -> Select:
    """SELECT of EditVector rows for one page (page_size + 1 rows, to tell whether more follow)."""
    ev = EditVector
    stmt = select(ev)
    if viewer_id is None:
        conds = [ev.visibility == "public"]
    else:
        conds = [or_(ev.visibility == "public", ev.author_id == viewer_id)]
    if query.model_id is not None:
        conds.append(ev.model_id == query.model_id)
    if query.author is not None:
        conds.append(ev.author_id == select(User.id).where(User.username == query.author).scalar_subquery())
    if query.tag is not None:
        conds.append(exists().where(VectorTag.vector_id == ev.id, VectorTag.tag == query.tag))
    if query.edited_class is not None:
        conds.append(exists().where(VectorClass.vector_id == ev.id, VectorClass.class_name == query.edited_class,
                                    VectorClass.subject.is_(True)))

    tokens = query_tokens(query.text)
    relevance = None
    if tokens and backend == "fts5":
        stmt = stmt.join(_fts, _fts.c.rowid == ev.id)
        conds.append(literal_column("edit_vectors_fts").op("MATCH")(fts5_match(tokens)))
        relevance = _fts.c.rank  # bm25: smaller is better
    elif tokens and backend == "tsvector":
        tsq = func.to_tsquery(literal_column("'simple'::regconfig"), tsquery(tokens))
        conds.append(_tsv.op("@@")(tsq))
        relevance = func.ts_rank(_tsv, tsq).desc()
    elif tokens:
        for group in query_groups(tokens):
            patterns = [f"%{tok}%" for tok in group]  # tokens hold only letters and digits: no LIKE wildcards
            conds.append(or_(*(c.ilike(p) for p in patterns for c in (ev.name, ev.description, ev.tags_text))))

    sort = query.sort
    if sort == "relevance" and relevance is not None:
        order = [relevance, ev.id.desc()]
    elif sort == "likes":
        order = [ev.like_count.desc(), ev.id.desc()]
    elif sort == "downloads":
        order = [ev.download_count.desc(), ev.id.desc()]
    else:  # recent, or relevance without text
        order = [ev.created_at.desc(), ev.id.desc()]
    offset = (query.page - 1) * query.page_size
    return stmt.where(*conds).order_by(*order).offset(offset).limit(query.page_size + 1)
