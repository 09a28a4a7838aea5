"""Secret values out of text that reaches people: admin messages, Celery task results, API errors, logs.

A source database error may quote whatever the query read, ``/proc/self/environ`` included; a
connection error may quote its URL. ``secrets_scrub`` replaces, in any text:

- the values of the product's secret settings (``SECRET_KEY`` and its fallbacks, ``TWILIO_AUTH_TOKEN``,
  ``LIZZY_METRICS_TOKEN``, ``LIZZY_MAPPING_HMAC_KEY``, database passwords, passwords inside the Redis and
  broker URLs);
- the values of environment variables whose names look secret (``*SECRET*``, ``*TOKEN*``, ``*PASSWORD*``,
  ``*_KEY``, ``*CREDENTIAL*``, ...), and any password inside an environment value that is a URL;
- ``NAME=value`` pairs of every environment variable (what a dump of the environment looks like), and
  any NUL-separated run of ``NAME=value`` pairs (another process's environment: a source database server's
  ``/proc/self/environ`` read by a query names variables this process does not have);
- the password of any ``scheme://user:password@host`` URL.

The set of values is rebuilt every ``REFRESH_SECONDS`` (the environment may change), when a setting is
overridden (Django's ``setting_changed``), and by ``secrets_forget()``.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.test.signals import setting_changed

REPLACEMENT = "[redacted]"
MIN_SECRET_CHARS = 6  # shorter values ("1", "true", "us-east-1") would blank out ordinary words
REFRESH_SECONDS = 30.0
SECRET_ENV_NAME = re.compile(r"SECRET|TOKEN|PASSW|CREDENTIAL|PRIVATE|_KEY(?:_|$)|^KEY$|AUTH|_DSN$|SIGNING", re.I)
SECRET_SETTINGS = ("SECRET_KEY", "TWILIO_AUTH_TOKEN", "LIZZY_METRICS_TOKEN", "LIZZY_MAPPING_HMAC_KEY")
URL_SETTINGS = ("REDIS_URL", "CELERY_BROKER_URL", "LIZZY_SESSION_REDIS_URL")
URL_CREDENTIALS = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s'\"]*:)(?P<password>[^@/\s'\"]+)(?P<tail>@)", re.I)

ENVIRON_DUMP = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=[^\x00]*(?:\x00+[A-Za-z_][A-Za-z0-9_]*=[^\x00]*)+\x00*")
ASSIGNED_NAME = re.compile(r"(?<![A-Za-z0-9_])([A-Za-z_][A-Za-z0-9_]*)=")

_lock = threading.Lock()
_state: dict[str, Any] = {"key": None, "at": 0.0, "values": None, "literals": (), "names": frozenset()}


def _url_password(url: Any) -> str | None:
    if not isinstance(url, str) or "://" not in url:
        return None
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def _settings_values() -> tuple[str, ...]:
    values: list[str] = []
    for name in SECRET_SETTINGS:
        value = getattr(settings, name, None)
        if isinstance(value, str):
            values.append(value)
    values.extend(value for value in getattr(settings, "SECRET_KEY_FALLBACKS", []) or [] if isinstance(value, str))
    for database in getattr(settings, "DATABASES", {}).values():
        if isinstance(database.get("PASSWORD"), str):
            values.append(database["PASSWORD"])
    for name in URL_SETTINGS:
        values.append(_url_password(getattr(settings, name, None)) or "")
    return tuple(value for value in values if len(value) >= MIN_SECRET_CHARS)


def _environment_values() -> tuple[set[str], list[str]]:
    values: set[str] = set()
    for name, value in os.environ.items():
        if SECRET_ENV_NAME.search(name) and len(value) >= MIN_SECRET_CHARS:
            values.add(value)
        password = _url_password(value)
        if password and len(password) >= MIN_SECRET_CHARS:
            values.add(password)
    return values, sorted((name for name in os.environ if len(name) >= 2), key=len, reverse=True)


def _compiled() -> tuple[tuple[str, ...], frozenset[str], re.Pattern[str] | None]:
    now = time.monotonic()
    state = _state
    if state["values"] is None or now - state["at"] > REFRESH_SECONDS:
        key = _settings_values()
        with _lock:
            env_values, env_names = _environment_values()
            literals = sorted({*key, *env_values}, key=len, reverse=True)
            values = re.compile("|".join(map(re.escape, literals))) if literals else None
            names = (
                re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(map(re.escape, env_names)) + r")=[^\x00\n\r]*")
                if env_names
                else None
            )
            state.update(key=key, at=now, values=values, env_names=names, literals=tuple(literals))
            state["names"] = frozenset(env_names)
    return state["literals"], state["names"], state["env_names"]


def secrets_forget(**kwargs: Any) -> None:
    """Rebuild the set of secret values on the next call (after changing the environment or a setting)."""
    _state["values"] = None


setting_changed.connect(secrets_forget, dispatch_uid="lizzy.scrub.secrets_forget")  # override_settings in tests


def secrets_scrub(text: str) -> str:
    """``text`` with every secret value, environment assignment and URL password replaced."""
    if not text or not isinstance(text, str):
        return text
    # Fast paths: a substring test per secret value and a scan for "NAME=" are cheap; most text has neither,
    # and log lines pass here one by one.
    literals, names, assignments = _compiled()
    if "\x00" in text:
        text = ENVIRON_DUMP.sub(REPLACEMENT, text)
    for literal in literals:  # longest first, so a value containing another is replaced whole
        if literal in text:
            text = text.replace(literal, REPLACEMENT)
    if "=" in text and assignments is not None and any(m.group(1) in names for m in ASSIGNED_NAME.finditer(text)):
        text = assignments.sub(lambda match: f"{match.group(1)}={REPLACEMENT}", text)
    if "://" in text:
        text = URL_CREDENTIALS.sub(lambda match: f"{match.group('head')}{REPLACEMENT}{match.group('tail')}", text)
    return text


def exception_scrub(exc: BaseException) -> BaseException:
    """Scrub an exception's arguments (and ``message``) in place, with its causes and contexts; returns it.

    Celery stores ``exc.args`` and the formatted traceback (chained exceptions included) in the task
    result, and logs them: both are built from what is scrubbed here.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    pending: list[BaseException] = []
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        with contextlib.suppress(AttributeError, TypeError):  # an exception type with read-only args
            current.args = tuple(secrets_scrub(arg) if isinstance(arg, str) else arg for arg in current.args)
        if isinstance(getattr(current, "message", None), str):
            with contextlib.suppress(AttributeError):
                current.message = secrets_scrub(current.message)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)
        current = pending.pop() if pending else None
    return exc


SECRET_QUERY_PARAMETER = re.compile(r"(?P<name>[?&][^=&#]*(?:pass|secret|token|key)[^=&#]*=)(?P<value>[^&#]*)", re.I)


def url_display(url: str) -> str:
    """A URL fit to show: its password and secret-looking query parameters masked, other secrets scrubbed."""
    shown = URL_CREDENTIALS.sub(lambda match: f"{match.group('head')}{REPLACEMENT}{match.group('tail')}", url or "")
    shown = SECRET_QUERY_PARAMETER.sub(lambda match: f"{match.group('name')}{REPLACEMENT}", shown)
    return secrets_scrub(shown)
