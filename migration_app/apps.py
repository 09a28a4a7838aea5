from django.apps import AppConfig


class MigrationAppConfig(AppConfig):
    name = "migration_app"
    verbose_name = "Migrations into DynamoDB"

    def ready(self) -> None:
        from lizzy.metrics import register_scrape_collector
        from lizzy.observability.alarms import register_alarm_source
        from migration_app.cdc.observability import CdcCollector, cdc_alarm_states

        register_scrape_collector(CdcCollector())
        register_alarm_source(cdc_alarm_states)
