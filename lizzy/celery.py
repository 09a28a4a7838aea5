import gc
import os

from celery import Celery, Task

from lizzy.scrub import exception_scrub

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lizzy.settings.local")


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
