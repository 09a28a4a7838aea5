"""moto's DynamoDB as a plain WSGI app, for a production WSGI server (gunicorn, threads, keep-alive).

moto's own ``moto_server`` runs Werkzeug's development server, which closes the connection after every
request; under gunicorn's threaded worker connections are kept alive. State is per process: run ONE worker.

    gunicorn bench.moto_wsgi:application --workers 1 --threads 8 --worker-class gthread --bind 127.0.0.1:PORT
"""

from moto.server import DomainDispatcherApplication, create_backend_app

application = DomainDispatcherApplication(create_backend_app)
