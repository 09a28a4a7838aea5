import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lizzy.settings.local")

app = Celery("lizzy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
