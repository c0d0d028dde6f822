"""Search statements for the three text backends, chosen by what the schema has:

    fts5      SQLite with the FTS5 table of the migration (bm25 relevance, prefix tokens)
    tsvector  PostgreSQL's generated tsvector column + GIN index (ts_rank relevance)
    like      anything else: case-insensitive substring match, no relevance

User text never reaches a query language as syntax. It is cut into words of letters and digits
(everything else, quotes, stars, colons, NEAR, parentheses, separates words), each word becomes a
quoted prefix term (``"smil"*`` in FTS5, ``smil:*`` in tsquery), and the resulting string is passed
as a bound parameter. All words must match.
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
    """Words of the query, lowercased, de-duplicated, at most MAX_TOKENS."""
    out: list[str] = []
    for tok in _TOKEN_RE.findall(text_.lower()):
        if tok not in out:
            out.append(tok)
    return out[:MAX_TOKENS]


def fts5_match(tokens: list[str]) -> str:
    return " ".join(f'"{t}"*' for t in tokens)


def tsquery(tokens: list[str]) -> str:
    return " & ".join(f"{t}:*" for t in tokens)


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
        conds.append(exists().where(VectorClass.vector_id == ev.id, VectorClass.class_name == query.edited_class))

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
        for tok in tokens:
            pattern = f"%{tok}%"  # tokens hold only letters and digits: no LIKE wildcards to escape
            conds.append(or_(ev.name.ilike(pattern), ev.description.ilike(pattern), ev.tags_text.ilike(pattern)))

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
