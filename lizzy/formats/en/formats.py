"""The console's one timestamp format: ``2026-12-01 14:05:09`` (UTC, TIME_ZONE), on every admin page.

Django's English default (``Dec. 1, 2026, 2:05 p.m.``) mixed with ISO strings on the same page; ops compare
these with log lines, which are ISO 8601. FORMAT_MODULE_PATH (settings) points here.
"""

DATETIME_FORMAT = "Y-m-d H:i:s"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
