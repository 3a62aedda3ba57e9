"""The web console under /console on the admin listener: server-rendered pages (Jinja2) over the admin API's
own operations, called in-process with the signed-in admin's principal, so what a page shows or changes is
exactly what the API would (the same validation, the same domain scoping). The API's operations are also
mounted under /console/api/... behind the session, for the page scripts (uploads with progress, audio)."""

from ivr_service.console.views import setup_console

__all__ = ["setup_console"]
