"""The ASGI application: the production server runs it under gunicorn with uvicorn workers
(README, "Production"). Run, Check and the assistant are async views, so a participant
waiting on a sandbox slot or an LLM stream holds no worker; every other view is synchronous
and runs in a thread of its own per request."""

import os
import warnings

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skilltrial.settings")

# WhiteNoise serves static files with a synchronous file iterator, which Django's ASGI handler
# reads in a thread in one piece (our files are small, hashed and cached for a year) and
# warns about on every request. Our own streams (the assistant) are asynchronous under ASGI.
warnings.filterwarnings(
    "ignore",
    message="StreamingHttpResponse must consume synchronous iterators",
    category=Warning,
)

application = get_asgi_application()
