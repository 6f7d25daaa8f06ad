"""Filters for the logging configuration in settings.LOGGING."""

import logging


class ClientErrorsWithoutTraceback(logging.Filter):
    """Keeps 4xx records of django.request to their one line. Django attaches the exception to
    a 403 (PermissionDenied) or 400 (django.utils.log.log_response): the client's mistake, whose
    traceback would only bury real errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
