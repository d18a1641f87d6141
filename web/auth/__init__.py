"""Login, logout, the signed-in user, and role checks for routes.

Passwords are checked by the engine (Argon2, lockout after repeated failures); this module
keeps the session. `roles_required` guards a route; everything else about who may do what
on a case or task is the engine's to decide.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from engine.accounts import LoginRefused
from engine.models import User

bp = Blueprint("auth", __name__, template_folder="../templates")
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in to continue."
login_manager.session_protection = "strong"


class SignedInUser(UserMixin):
    """The engine's User as Flask-Login needs it (a plain snapshot, no live session)."""

    def __init__(self, user: User):
        self.user = user
        self.id = str(user.id)
        self.username = user.username
        self.display_name = user.display_name
        self.person_id = user.person_id
        self.roles = frozenset(user.role_names)
        self.is_staff = user.is_staff

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))


def engine():
    return current_app.extensions["certrail"]


@login_manager.user_loader
def load_user(user_id: str) -> SignedInUser | None:
    if not user_id.isdigit():
        return None
    with engine().sessions() as session:
        user = (
            session.scalars(
                select(User).options(joinedload(User.roles)).where(User.id == int(user_id))
            )
            .unique()
            .first()
        )
    if user is None or not user.active:
        return None
    return SignedInUser(user)


def current_engine_user() -> User:
    """The signed-in user's engine record (for engine calls that take a User)."""
    return current_user.user


def roles_required(*roles: str) -> Callable:
    def decorator(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def wrapper(*args: Any, **kwargs: Any):
            if not current_user.has_role(*roles):
                abort(403, description=f"this page needs one of the roles: {', '.join(roles)}")
            return view(*args, **kwargs)

        return wrapper

    return decorator


def staff_required(view: Callable) -> Callable:
    @wraps(view)
    @login_required
    def wrapper(*args: Any, **kwargs: Any):
        if not current_user.is_staff:
            abort(403, description="this page is for staff")
        return view(*args, **kwargs)

    return wrapper


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def start_session(user) -> None:
    """Sign `user` in on a fresh session: nothing from before the login (above all a CSRF
    token someone may have planted with a session cookie) carries over (session fixation)."""
    session.clear()
    login_user(SignedInUser(user))


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        return render_template("auth/login.html", next=request.args.get("next", ""))
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    if not username or not password:
        flash("Enter your username and password.", "error")
        return render_template(
            "auth/login.html", username=username, next=request.form.get("next", "")
        ), 400
    try:
        user = engine().login(username, password)
    except LoginRefused as refused:
        flash(f"Login refused: {refused.message}.", "error")
        return render_template(
            "auth/login.html", username=username, next=request.form.get("next", "")
        ), 401
    start_session(user)
    return redirect(_safe_next(request.form.get("next")) or url_for("home"))


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
