from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class LizzyConfig(AppConfig):
    default = True
    name = "lizzy"
    verbose_name = "Lizzy infrastructure"

    def ready(self) -> None:
        import atexit

        from celery.signals import (
            task_postrun,
            task_prerun,
            worker_init,
            worker_process_init,
            worker_process_shutdown,
            worker_ready,
        )
        from django.contrib import admin
        from django.db.models.signals import post_migrate

        from lizzy import (
            admin_panels,  # noqa: F401 - registers the dashboard's own panels
            cache_backend,  # noqa: F401 - registers the cache table (LizzyCache) for ensure_tables
        )
        from lizzy.celery import db_connections_after_task, db_connections_before_task, db_warm_up_connect, heap_freeze
        from lizzy.cost import capacity_flush_at_exit, capacity_flush_if_due
        from lizzy.dynamodb import add_capacity_listener, add_error_listener, clients_warm_up
        from lizzy.observability.alarms import dynamodb_error_listener
        from lizzy.roles import roles_ensure_after_migrate

        # Every admin module is imported by now (the admin app comes first in INSTALLED_APPS).
        admin.site.actions_require_permissions()
        add_error_listener(dynamodb_error_listener)
        post_migrate.connect(roles_ensure_after_migrate, dispatch_uid="lizzy.roles_ensure")
        # Workers flush their own consumed-capacity counters as they go (beat's task reaches only one).
        task_postrun.connect(lambda **_: capacity_flush_if_due(), weak=False, dispatch_uid="lizzy.capacity_flush")
        # ... and so does every process, from its DynamoDB calls and when it exits: the command line's
        # migrate_to_dynamodb and Celery's pool children count in the shared ledger too.
        add_capacity_listener(capacity_flush_if_due)
        worker_process_shutdown.connect(capacity_flush_at_exit, weak=False, dispatch_uid="lizzy.capacity_exit")
        # A pool process makes its DynamoDB clients when it starts, not in its first task (a unit's first writes).
        worker_process_init.connect(clients_warm_up, weak=False, dispatch_uid="lizzy.dynamodb_warm_up")
        # ... and then puts its start-up heap out of the collector's way (full collections 0.3-0.5 s in a task).
        worker_process_init.connect(heap_freeze, weak=False, dispatch_uid="lizzy.heap_freeze")
        worker_ready.connect(heap_freeze, weak=False, dispatch_uid="lizzy.heap_freeze_ready")
        # Database connections kept across tasks that succeed, as across requests (lizzy.celery), and opened
        # when a pool process starts.
        task_prerun.connect(db_connections_before_task, weak=False, dispatch_uid="lizzy.db_before_task")
        task_postrun.connect(db_connections_after_task, weak=False, dispatch_uid="lizzy.db_after_task")
        worker_init.connect(db_warm_up_connect, weak=False, dispatch_uid="lizzy.db_warm_up_connect")
        atexit.register(capacity_flush_at_exit)


class LizzyAdminConfig(admin_apps.AdminConfig):
    """Django's admin with the ops console's site (dashboard on the home page, live sessions, cost)."""

    default = False  # lizzy.apps' default config is LizzyConfig; this one is named in INSTALLED_APPS
    default_site = "lizzy.admin_site.LizzyAdminSite"
