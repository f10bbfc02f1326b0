"""The ASGI application: the production server runs it under gunicorn with uvicorn workers
(README, "Production"). Run, Check and the assistant are async views, so a participant
waiting on a sandbox slot or an LLM stream holds no worker; every other view is synchronous
and runs in a thread of its own per request.

Static files are answered here, in front of Django, by ServeStatic (an asynchronous server of
the files ``collectstatic`` gathered, with the same caching headers WhiteNoise gives under
WSGI), so the middleware chain stays asynchronous from end to end."""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application
from servestatic.asgi import ServeStaticASGI

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skilltrial.settings")
os.environ["SKILLTRIAL_ASGI"] = "1"  # read by the settings: no WhiteNoise middleware

django_application = get_asgi_application()
application = ServeStaticASGI(
    django_application,
    root=settings.STATIC_ROOT,
    prefix=settings.STATIC_URL,
    max_age=60,
)
