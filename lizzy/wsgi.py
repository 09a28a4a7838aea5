import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lizzy.settings.production")

application = get_wsgi_application()

# Everything loaded so far (Django, botocore's service models, the URLconf...) lives as long as the
# process: move it out of the collector's sight. A full collection then walks only what requests
# allocate: 84 ms -> 2.5 ms measured in a webhook worker (docs/BENCHMARKS.md, benchmark 3).
gc.freeze()
