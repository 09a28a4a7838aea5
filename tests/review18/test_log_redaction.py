"""Review of issue 18, finding 6: a phone number in any format the product accepts (``normalize_phone``, which is
phonenumbers') is masked in log text, raw or percent-encoded as an access log's request line carries it.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from lizzy.observability.logs import escape_controls, redact
from lizzy.phone import normalize_phone

NUMBER = "+12065550100"
# Separators phonenumbers accepts between digit groups: no-break and ideographic spaces, the Unicode dashes,
# full-width brackets and slashes.
FORMATS = [
    "(206) 555-0100",
    "+1 206 555 0100",
    "206.555.0100",
    "+1\u2011206\u2011555\u20110100",  # non-breaking hyphens
    "206\u2013555\u20130100",  # en dashes
    "206\u00a0555\u00a00100",  # no-break spaces
    "(206)\u3000555\u30000100",  # ideographic spaces
    "\uff08206\uff09555\uff0d0100",  # full-width brackets and hyphen
    "+1\u2212206\u2212555\u22120100",  # minus signs
    "\uff0b\uff11\uff12\uff10\uff16\uff15\uff15\uff15\uff10\uff11\uff10\uff10",  # full-width digits
]


@pytest.mark.parametrize("shown", FORMATS)
def test_every_accepted_format_is_masked_raw_and_percent_encoded(shown):
    assert normalize_phone(shown) == NUMBER  # the API takes it: it can be in a request's path
    for text in (shown, quote(shown, safe="")):
        for line, tail in (
            (f'127.0.0.1 - - "GET /api/v1/sessions/{text} HTTP/1.1" 200 512', ' HTTP/1.1" 200 512'),
            (f"GET /api/v1/sessions/{text} 200 512", " 200 512"),  # the request log: status right after
            (f"GET /api/v1/sessions/{text}/presence 403", "/presence 403"),
        ):
            masked = redact(line)
            digits = "".join(ch for ch in masked if ch.isdecimal())
            assert "2065550" not in digits.translate(str.maketrans("０１２３４５６７８９", "0123456789")), masked
            assert masked.endswith(tail), masked  # the status code and size untouched


def test_a_percent_encoded_line_break_forges_no_log_line():
    line = redact("GET /x%0A127.0.0.1 - - forged HTTP/1.1 200")
    assert "\n" not in escape_controls(line)
    assert "\n" not in escape_controls(redact("GET /x\n127.0.0.1 forged"))


def test_escapes_that_are_not_a_number_are_left_as_they_were():
    assert redact("GET /x?q=%FF%FE&next=%2Fhome%0A 200") == "GET /x?q=%FF%FE&next=/home%0A 200"
    assert redact("GET /a%20b 200") == "GET /a b 200"
