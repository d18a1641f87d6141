"""The WSGI application for production servers: `gunicorn web.wsgi:app`.

The database comes from DATABASE_URL, the session secret from CERTRAIL_SECRET_KEY (the same
in every worker process, or sessions would not survive a request landing on another worker).
"""

from web import create_app

app = create_app()
