"""Print a CloudFormation template of every table, GSI and TTL setting, plus the least-privilege IAM policy."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand

from migration_app.services.infrastructure import infrastructure_template


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--mapping", action="append", default=[], help="Also include a mapping file's tables.")

    def handle(self, *args, **options):
        mappings = [json.loads(Path(path).read_text()) for path in options["mapping"]]
        self.stdout.write(json.dumps(infrastructure_template(extra_mappings=mappings), indent=2))
