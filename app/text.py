"""A user's text shown in the page: as typed, never as markup. No gradio here, so every app module may use it."""

from __future__ import annotations

# Markdown and HTML punctuation that could turn a user's text into markup (links, images, emphasis, tables, raw
# tags, headings); ':' and '@' stop bare URLs and e-mail addresses from being linked automatically.
_MD_ESCAPES = {c: "\\" + c for c in "\\`*_{}[]()#+-.!|~"}
_MD_ESCAPES.update({"<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&#39;", ":": "&#58;",
                    "@": "&#64;", "\n": " ", "\r": " ", "\t": " "})  # fmt: skip
_MD_TABLE = str.maketrans(_MD_ESCAPES)


def md_text(value) -> str:
    """A user's text (name, description, tag, user name, note) for a Markdown component: shown as typed, never as
    markup. Newlines become spaces so that a line cannot start a heading, list or table."""
    return str(value if value is not None else "").translate(_MD_TABLE)
