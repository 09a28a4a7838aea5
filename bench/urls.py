"""The product's URLs plus ``POST /bench/noop``: a DRF view that answers an empty TwiML document.

It shares the webhook's server, middleware, authentication (none) and parser, so webhook minus no-op
is the engine + store; it exists only in this URLconf, never in ``lizzy.urls``.
"""

from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView

from lizzy.urls import urlpatterns as product_urlpatterns


class NoopApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [FormParser]

    def post(self, request: Request) -> HttpResponse:
        return HttpResponse(
            '<?xml version="1.0" encoding="UTF-8"?><Response />', content_type="text/xml; charset=utf-8"
        )


urlpatterns = [*product_urlpatterns, path("bench/noop", csrf_exempt(NoopApi.as_view()))]
