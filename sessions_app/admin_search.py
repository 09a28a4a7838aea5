"""Changelist searches that take a phone number (or an e-mail) and keep it out of every URL.

Django's changelist search is a GET form: ``?q=+12065550100`` lands in access logs and browser history, and
every link of the result page repeats it (filters, sort headers, ``_changelist_filters`` on each row). Here the
search box POSTs (CSRF-protected) to the changelist, which seals the term (``search_ref``: AES-SIV, like session
links) and redirects to ``?q=<sealed>``; the ModelAdmin unseals it to search and to fill the search box, and the
page's links carry only the seal. A ``?q=`` typed in clear (an old bookmark) is replaced by its seal at once.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ERROR_FLAG, PAGE_VAR, SEARCH_VAR, ChangeList
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from lizzy.phone import search_from_ref, search_ref

SEARCH_POST_FIELDS = frozenset({SEARCH_VAR, "csrfmiddlewaretoken"})  # the search form's, nothing else


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303  # the POSTed search becomes a GET of the sealed URL


def search_term(value: str) -> str:
    """The term ``value`` stands for: unsealed when it is a seal, as given otherwise (autocomplete's ``term``)."""
    unsealed = search_from_ref(value)
    return value if unsealed is None else unsealed


class SealedSearchChangeList(ChangeList):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.search_term = search_term(self.query) if self.query else ""
        # Where the search form posts: this page with its filters and ordering, without the old search or page.
        self.search_action = self.get_query_string(remove=[SEARCH_VAR, PAGE_VAR, ERROR_FLAG])


class SealedSearchAdmin(admin.ModelAdmin):
    """A ModelAdmin whose changelist search never puts the searched term in a URL (see the module docstring).

    The search form is ``admin/sessions_app/sealed_search_form.html``, included by the model's
    ``admin/sessions_app/<model>/search_form.html``.
    """

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return SealedSearchChangeList

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term_or_seal: str) -> tuple[Any, bool]:
        return super().get_search_results(request, queryset, search_term(search_term_or_seal))

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "POST" and SEARCH_VAR in request.POST and set(request.POST) <= SEARCH_POST_FIELDS:
            return self._sealed_search_redirect(request, request.POST[SEARCH_VAR], HttpResponseSeeOther)
        typed = request.GET.get(SEARCH_VAR, "")
        if typed and search_from_ref(typed) is None:
            return self._sealed_search_redirect(request, typed, HttpResponseRedirect)
        return super().changelist_view(request, extra_context)

    @staticmethod
    def _sealed_search_redirect(request: HttpRequest, term: str, response: type[HttpResponseRedirect]) -> HttpResponse:
        params = request.GET.copy()
        for name in (SEARCH_VAR, PAGE_VAR, ERROR_FLAG):
            params.pop(name, None)
        if term.strip():
            params[SEARCH_VAR] = search_ref(term.strip())
        query = params.urlencode()
        return response(request.path + (f"?{query}" if query else ""))
