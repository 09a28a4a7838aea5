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
