"""Failed admin sign-ins throttled so that a stranger cannot lock staff out.

Three counters, all in the ``shared`` cache (Redis, or Django's database without it: every gunicorn worker
and every machine counts together):

- **per account, for unknown clients**: after ``LIZZY_LOGIN_FAILURE_LIMIT`` failures the account refuses
  sign-ins from clients it does not know for ``LIZZY_LOGIN_LOCKOUT_SECONDS``, doubling each time the limit is
  reached again within a day (backoff), at most a day;
- **per client address** (the real one: ``LIZZY_TRUSTED_PROXY_HOPS`` says how many proxies' entries of
  ``X-Forwarded-For`` to trust): four times the limit, for any account, from unknown clients;
- **per known device**: a browser that signed in to the account before carries a signed device cookie
  (OWASP's "device cookies"); it is not subject to the two counters above, only to its own (the same limit).

The throttle fails closed: when the cache cannot be read or written (an outage, an ``incr`` whose
``ValueError`` says the counter could not be updated), the sign-in is refused with
``ERR_THROTTLE_UNAVAILABLE`` instead of a 500 or an unthrottled password check. Every attempt first
``add``s its counters, a write, so a backend that turns read errors into misses (``DynamoDBCache``) still
shows a whole outage; with such a backend, reads failing while conditional writes of new keys succeed could
still miss a lock, which is why ``SHARED_CACHE`` is Redis or Django's database (their reads raise).

So an attacker hammering a user name locks out only clients that never signed in as that user; the staff
member on their own browser still gets in, and an office behind one address is not locked out by one
guesser. ``python manage.py login_unlock USERNAME [--address IP]`` clears the counters early.

django-axes does more (lockout records, admin pages), but it replaces the authentication backend and
needs ``request`` in every ``authenticate()`` call; the admin form is the product's only password sign-in.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core import signing
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse

from lizzy import metrics

logger = logging.getLogger(__name__)

FAILURE_KEY = "lizzy:login-failures:{scope}:{value}"
LOCK_KEY = "lizzy:login-lock:{value}"
STRIKES_KEY = "lizzy:login-strikes:{value}"
IP_LIMIT_FACTOR = 4  # one office behind one address may hold several staff members
STRIKES_SECONDS = 24 * 3600  # backoff memory: a lockout reached again within a day lasts twice as long
MAX_LOCKOUT_SECONDS = 24 * 3600
DEVICE_COOKIE = "lizzy_signin_device"
DEVICE_SALT = "lizzy.admin_login.device"
DEVICE_MAX_AGE = 90 * 24 * 3600
ERR_LOCKED_OUT = "Too many failed sign-in attempts. Try again in %(minutes)s minute(s)."  # ValidationError params
ERR_THROTTLE_UNAVAILABLE = (
    "Sign-in is unavailable for a moment: failed attempts cannot be counted right now. Try again shortly."
)


class ThrottleUnavailable(Exception):
    """The shared cache failed: the sign-in is refused rather than checked without a throttle."""


def _cache():  # noqa: ANN202 - a Django cache
    return caches[settings.SHARED_CACHE]


def _hashed(value: str) -> str:
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:24]


def client_address(request: HttpRequest | None) -> str | None:
    """The client's address: ``REMOTE_ADDR``, or with N trusted proxies the Nth entry from the right of
    ``X-Forwarded-For`` (entries further left were written by the client and prove nothing)."""
    if request is None:
        return None
    hops = settings.LIZZY_TRUSTED_PROXY_HOPS
    remote = request.META.get("REMOTE_ADDR") or None
    if hops <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < hops:
        return remote  # the request did not come through every proxy: its own address is the truth
    return forwarded[-hops]


def _device(request: HttpRequest | None, username: str) -> str | None:
    """The id of this browser's device cookie when it was issued for ``username``; None otherwise."""
    if request is None:
        return None
    raw = request.COOKIES.get(DEVICE_COOKIE)
    if not raw:
        return None
    try:
        value = signing.loads(raw, salt=DEVICE_SALT, max_age=DEVICE_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(value, dict) or value.get("u") != _hashed(username):
        return None
    return str(value.get("d", ""))[:64] or None


def _counters(request: HttpRequest | None, username: str) -> list[tuple[str, int]]:
    limit = settings.LIZZY_LOGIN_FAILURE_LIMIT
    device = _device(request, username)
    if device:
        return [(FAILURE_KEY.format(scope="device", value=device), limit)]
    counters = [(FAILURE_KEY.format(scope="user", value=_hashed(username)), limit)]
    address = client_address(request)
    if address:
        counters.append((FAILURE_KEY.format(scope="ip", value=_hashed(address)), limit * IP_LIMIT_FACTOR))
    return counters


def login_locked_out(*, request: HttpRequest | None, username: str) -> int:
    """Seconds this sign-in must still wait (0: it may try); ``ThrottleUnavailable`` when the cache fails."""
    try:
        return _locked_out(request, username)
    except Exception as exc:  # any cache backend's error: fail closed
        raise ThrottleUnavailable(str(exc)) from exc


def _locked_out(request: HttpRequest | None, username: str) -> int:
    cache = _cache()
    for key, _limit in _counters(request, username):
        # A write first: it raises when the cache is down, even where reads fail as misses.
        cache.add(key, 0, timeout=settings.LIZZY_LOGIN_LOCKOUT_SECONDS)
    if not _device(request, username):
        until = cache.get(LOCK_KEY.format(value=_hashed(username))) or 0
        if until > time.time():
            return int(until - time.time()) + 1
    for key, limit in _counters(request, username):
        if key.split(":")[2] == "user":
            continue  # the account's count works through its lock (backoff) above
        if (cache.get(key) or 0) >= limit:
            return settings.LIZZY_LOGIN_LOCKOUT_SECONDS
    return 0


def login_failure_record(*, request: HttpRequest | None, username: str) -> None:
    """Count a failed sign-in; ``ThrottleUnavailable`` when the cache fails (the caller refuses the sign-in)."""
    metrics.ADMIN_LOGIN_FAILURES.inc()
    try:
        _record(request, username)
    except Exception as exc:  # any cache backend's error, incr's ValueError included
        raise ThrottleUnavailable(str(exc)) from exc


def _incr(cache, key: str, timeout: int) -> int:  # noqa: ANN001 - a Django cache
    try:
        return cache.incr(key)
    except ValueError:
        # The counter expired since it was added (or the cache lost it): start it again, once.
        cache.add(key, 0, timeout=timeout)
        return cache.incr(key)


def _record(request: HttpRequest | None, username: str) -> None:
    cache = _cache()
    lockout = settings.LIZZY_LOGIN_LOCKOUT_SECONDS
    for key, limit in _counters(request, username):
        cache.add(key, 0, timeout=lockout)
        count = _incr(cache, key, lockout)
        if key.split(":")[2] == "user" and count >= limit:
            hashed = _hashed(username)
            cache.add(STRIKES_KEY.format(value=hashed), 0, timeout=STRIKES_SECONDS)
            strikes = _incr(cache, STRIKES_KEY.format(value=hashed), STRIKES_SECONDS)
            seconds = min(lockout * 2 ** (strikes - 1), MAX_LOCKOUT_SECONDS)
            cache.set(LOCK_KEY.format(value=hashed), time.time() + seconds, timeout=int(seconds) + 1)
            cache.delete(key)  # the next lockout needs another full set of failures
            logger.warning("admin sign-in locked for user %s (%d s, strike %d)", hashed, seconds, strikes)
    logger.warning("admin sign-in failed for user %s", _hashed(username))


def login_failures_clear(*, request: HttpRequest | None, username: str) -> None:
    """After a successful sign-in: this account's (or this device's) failures are forgotten."""
    for key, _limit in _counters(request, username):
        if key.split(":")[2] != "ip":
            try:
                _cache().delete(key)
            except Exception:  # the sign-in passed the throttle: a counter left behind only expires later
                logger.warning("admin sign-in counter could not be cleared", exc_info=True)


def login_unlock(*, username: str, address: str | None = None) -> int:
    """Clear an account's counters, lock and backoff (and an address's counter); the number of keys removed."""
    cache = _cache()
    hashed = _hashed(username)
    keys = [FAILURE_KEY.format(scope="user", value=hashed), LOCK_KEY.format(value=hashed)]
    keys.append(STRIKES_KEY.format(value=hashed))
    if address:
        keys.append(FAILURE_KEY.format(scope="ip", value=_hashed(address)))
    removed = sum(1 for key in keys if cache.get(key) is not None)
    cache.delete_many(keys)
    return removed


def device_cookie_set(*, request: HttpRequest, response: HttpResponse) -> None:
    """After a successful sign-in, remember this browser as a known device of the account."""
    username = getattr(request, "_lizzy_signed_in_as", None)
    if not username:
        return
    value = signing.dumps({"u": _hashed(username), "d": secrets.token_hex(16)}, salt=DEVICE_SALT)
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=DEVICE_MAX_AGE,
        httponly=True,
        secure=settings.SESSION_COOKIE_SECURE,
        samesite="Lax",
    )


class LockoutAdminAuthenticationForm(AdminAuthenticationForm):
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "locked_out": ERR_LOCKED_OUT,
        "throttle_unavailable": ERR_THROTTLE_UNAVAILABLE,
    }

    def _throttle_unavailable(self, exc: ThrottleUnavailable, *, counted: bool = False) -> forms.ValidationError:
        if not counted:
            metrics.ADMIN_LOGIN_FAILURES.inc()
        logger.error("admin sign-in refused: the sign-in throttle's cache failed (%s)", type(exc.__cause__).__name__)
        return forms.ValidationError(self.error_messages["throttle_unavailable"], code="throttle_unavailable")

    def clean(self) -> dict:
        username = self.cleaned_data.get("username") or ""
        try:
            wait = login_locked_out(request=self.request, username=username) if username else 0
        except ThrottleUnavailable as exc:
            raise self._throttle_unavailable(exc) from exc
        if wait:
            metrics.ADMIN_LOGIN_FAILURES.inc()
            raise forms.ValidationError(
                self.error_messages["locked_out"], code="locked_out", params={"minutes": max(1, round(wait / 60))}
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            if username:
                try:
                    login_failure_record(request=self.request, username=username)
                except ThrottleUnavailable as exc:
                    raise self._throttle_unavailable(exc, counted=True) from exc
            raise
        login_failures_clear(request=self.request, username=username)
        if self.request is not None:
            self.request._lizzy_signed_in_as = username
        return cleaned
