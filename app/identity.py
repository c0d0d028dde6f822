"""Who is acting: Hugging Face OAuth on a Space, a local users file elsewhere, or nobody.

Modes (chosen once per process by app.py, see :func:`Identity.resolve`):

* ``oauth``: a Space with ``hf_oauth: true``; the signed-in Hugging Face username acts.
* ``users``: ``EDITGAN_USERS_FILE`` lists accounts; Gradio's login page (``launch(auth=...)``) asks for
  them and ``request.username`` acts.
* ``single``: one trusted user on a loopback address (``python app.py`` on your own machine); every
  visitor acts as that user. Never chosen automatically for a non-loopback host.
* ``anonymous``: nobody signs in; visitors browse, search, download and apply, but cannot publish.

Users file: one ``username:password`` or ``username:sha256:<hex digest of the password>`` per line;
blank lines and lines starting with ``#`` are ignored.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from app.text import md_text
from vector_library.validation import username as check_username

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def read_users_file(path: str | Path) -> dict[str, str]:
    """username -> stored secret ("plain:<pw>" or "sha256:<hex>"); ValueError names the bad line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"users file {p}: cannot be read ({e.strerror})") from None
    users: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, secret = line.partition(":")
        if not sep or not secret:
            raise ValueError(f"users file {p}, line {n}: expected 'username:password' or 'username:sha256:<hex>'")
        try:
            check_username(name)
        except ValueError as e:
            raise ValueError(f"users file {p}, line {n}: {e}") from None
        if name in users:
            raise ValueError(f"users file {p}, line {n}: user {name!r} is listed twice")
        if secret.startswith("sha256:") and len(secret) == 7 + 64:
            users[name] = secret.lower()
        else:
            users[name] = "plain:" + secret
    if not users:
        raise ValueError(f"users file {p} lists no users")
    return users


def _password_ok(stored: str, given: str) -> bool:
    if stored.startswith("sha256:"):
        digest = "sha256:" + hashlib.sha256(given.encode("utf-8")).hexdigest()
        return hmac.compare_digest(stored, digest)
    return hmac.compare_digest(stored.encode("utf-8"), ("plain:" + given).encode("utf-8"))


@dataclass(frozen=True)
class Identity:
    mode: str  # "oauth" | "users" | "single" | "anonymous"
    local_user: Optional[str] = None
    users: dict = field(default_factory=dict, repr=False)

    @classmethod
    def resolve(cls, *, oauth: bool, users_file: Optional[Path], local_user: Optional[str], host: str) -> "Identity":
        if oauth:
            return cls("oauth")
        if users_file is not None:
            return cls("users", users=read_users_file(users_file))
        if local_user:
            check_username(local_user)
            return cls("single", local_user=local_user)
        if host in LOOPBACK:
            return cls("single", local_user="local")
        return cls("anonymous")

    def auth(self):
        """The ``auth=`` callable for ``launch`` in users mode, else None."""
        if self.mode != "users":
            return None
        users = self.users

        def check(username: str, password: str) -> bool:
            stored = users.get(username)
            return stored is not None and _password_ok(stored, password)

        return check

    def username(self, request=None, profile=None) -> Optional[str]:
        """The acting user for one request (None: anonymous)."""
        if self.mode == "oauth":
            if profile is None:
                return None
            return getattr(profile, "username", None) or profile.get("preferred_username")
        if self.mode == "users":
            return getattr(request, "username", None) if request is not None else None
        if self.mode == "single":
            return self.local_user
        return None

    def describe(self) -> str:
        return {
            "oauth": "Sign in with Hugging Face to publish, like and save compositions.",
            "users": "Signed-in accounts come from the users file; publishing needs an account.",
            "single": f"Single-user mode: you act as **{md_text(self.local_user)}** (local machine only).",
            "anonymous": "Anonymous mode: browse, search and apply vectors; publishing needs sign-in "
                         "(set EDITGAN_USERS_FILE, or run on a Space with hf_oauth).",
        }[self.mode]
