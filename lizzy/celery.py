import gc
import logging
import os

from celery import Celery, Task
from celery.signals import worker_process_init
from django.db import close_old_connections, connections

from lizzy.scrub import exception_scrub

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lizzy.settings.local")
logger = logging.getLogger(__name__)


class ScrubbedTask(Task):
    """Every task: an exception leaves with secret values scrubbed from its text (lizzy.scrub).

    Celery stores a failed task's exception arguments and traceback in the result (shown in the admin)
    and logs them; both are built from the exception after this ran.
    """

    def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN204 - Celery's signature
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            exception_scrub(exc)
            raise


app = Celery("lizzy", task_cls=ScrubbedTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def heap_freeze(**_: object) -> None:
    """Move what a worker process holds once it is ready (Django, the apps, botocore's service models, the
    warmed clients) out of the garbage collector's sight (``gc.freeze``): a full collection then walks only
    what tasks made since, not the whole start-up heap again.

    Connected to ``worker_process_init`` after the clients' warm-up (a prefork pool's children) and to
    ``worker_ready`` (a solo pool's process, a prefork parent before it forks more children). Measured on the
    migration benchmark (4 workers, 20,000 rows): each worker's first full collection came 0.7-0.9 s into the
    run and took 300-520 ms, in all four at once, with no call in flight meanwhile (docs/MIGRATIONS.md,
    "Sixth round"). The start-up garbage is collected first, so that none of it is kept for good.
    """
    gc.collect()
    gc.freeze()


# --- database connections across tasks -------------------------------------------------------------------

# Celery's Django fixup closes every database connection before and after each task (``close()``, whatever
# ``CONN_MAX_AGE`` says) unless ``CELERY_DB_REUSE_MAX`` is set: every task then opens one, 40-110 ms for
# a pool process's first on a busy machine. With a reuse count set, the fixup closes them only every that
# many tasks, and ``db_connections_after_task`` does what Django does at the end of a request instead.
DB_REUSE_MAX_TASKS = 1000
WARM_UP_CONNECT_SECONDS = 2
app.conf.update(CELERY_DB_REUSE_MAX=DB_REUSE_MAX_TASKS)


def _eager(task: object) -> bool:
    # A task run eagerly runs inside its caller (a test's transaction, a view): its connections are the caller's.
    return bool(getattr(getattr(task, "request", None), "is_eager", False))


def _idle(connection: object) -> bool:
    """Whether a kept connection's server session is idle: a task that returned with a transaction still open
    (a raw ``BEGIN``) would hand it to the next task, whose autocommit writes would then never commit. Django
    cannot tell (it believes the connection is in autocommit, and its health check passes inside the
    transaction). Where the driver gives no cheap look at the session, no connection is kept (Celery's own
    default: one connection a task)."""
    raw = connection.connection
    if raw is None or connection.in_atomic_block:  # an atomic block left open cannot be closed here anyway
        return True
    if connection.vendor == "postgresql":
        from psycopg import pq

        return raw.info.transaction_status == pq.TransactionStatus.IDLE
    if connection.vendor == "sqlite":
        return not raw.in_transaction
    return False


def _connections_checked() -> None:
    for connection in connections.all(initialized_only=True):
        if not _idle(connection):
            connection.close()
    close_old_connections()


def db_connections_before_task(sender: object = None, **_: object) -> None:
    """As at a request's start: connections past ``CONN_MAX_AGE``, unusable after an error or left inside a
    transaction are closed, and the next use of a kept one checks its health first (``CONN_HEALTH_CHECKS``).
    An idle pool process keeps its connection until its next task (which drops it if it is too old)."""
    if not _eager(sender):
        _connections_checked()


def db_connections_after_task(sender: object = None, state: str | None = None, **_: object) -> None:
    """A task that did not succeed leaves its connections closed: an exception raised in the middle of a
    query (a time limit's, a signal's) can leave a connection Django still takes for usable (the reason
    Celery itself closes them, celery/celery#9824). A task that succeeded keeps them, as a request does."""
    if _eager(sender):
        return
    if state != "SUCCESS":
        connections.close_all()
        return
    _connections_checked()


def db_warm_up(**_: object) -> None:
    """A pool process opens its database connection when it starts, not in its first task. Connected at
    ``worker_init`` (``db_warm_up_connect``), after the fixup's own ``worker_process_init`` receiver, which
    closes the connections a child inherited.

    Bounded: a database that accepts the connection and never answers would otherwise hold the process
    before it ever says it is ready (no task runs, none times out). Without a ``connect_timeout`` of its own
    in ``DATABASES``' OPTIONS, the warm-up gives up after ``WARM_UP_CONNECT_SECONDS`` (under Celery's 4 s
    for a pool process to start), and the first task connects (and reports) as it would have."""
    connection = connections["default"]
    options = connection.settings_dict.setdefault("OPTIONS", {})
    bounded = connection.vendor in ("postgresql", "mysql") and "connect_timeout" not in options
    if bounded:
        options["connect_timeout"] = WARM_UP_CONNECT_SECONDS
    try:
        connection.ensure_connection()
    except Exception:  # noqa: BLE001 - the first task connects (and reports) as it would have
        logger.warning("the database connection could not be opened at the process's start", exc_info=True)
    finally:
        if bounded:
            options.pop("connect_timeout", None)


def db_warm_up_connect(**_: object) -> None:
    worker_process_init.connect(db_warm_up, weak=False, dispatch_uid="lizzy.db_warm_up")
