# NEXUS ingestion: one image for web, worker, beat and flower (docker-compose.yml picks the
# command). Production settings: DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS and DATABASE_URL
# come from the environment at run time; none is baked in.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_ENV=production \
    DJANGO_STATIC_ROOT=/app/staticfiles \
    NEXUS_VAR_DIR=/tmp/nexus

WORKDIR /app

# Requirements first: the dependency layer is reused until requirements.txt changes.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# Static files are collected at build time so whitenoise serves them from the image. The
# production settings refuse to load without a secret, hosts and a database: these are
# build-only placeholders that never reach the running container.
RUN DJANGO_SECRET_KEY=build-time-placeholder-not-a-secret \
    DJANGO_ALLOWED_HOSTS=localhost \
    DATABASE_URL=sqlite:////tmp/build.sqlite3 \
    python manage.py collectstatic --noinput \
    && rm -f /tmp/build.sqlite3

# Run as an unprivileged user; the code is read-only to it.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin nexus
USER nexus

EXPOSE 8000 5555
CMD ["gunicorn", "nexus_project.wsgi:application", "-c", "gunicorn.conf.py"]
