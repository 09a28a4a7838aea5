from django.apps import AppConfig


class MigrationAppConfig(AppConfig):
    name = "migration_app"
    verbose_name = "Migrations into DynamoDB"
