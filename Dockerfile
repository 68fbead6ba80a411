# vea service image: gunicorn (2 sync workers) on port 8000, SQLite by default,
# PostgreSQL when VEA_DATABASE_URL says so (see docker-compose.yml).
#
#   docker build -t vea .
#   # once, on a new volume: the database, a first model from simulated data, a key
#   docker run --rm -v vea-data:/var/lib/vea --entrypoint vea vea db upgrade
#   docker run --rm -v vea-data:/var/lib/vea --entrypoint sh vea -c \
#     'vea simulate --rows 20000 --seed 1 --out /tmp/sim.csv &&
#      vea train --data /tmp/sim.csv --registry /var/lib/vea/registry'
#   docker run --rm -v vea-data:/var/lib/vea --entrypoint vea vea keys create --role admin
#   # then the service
#   docker run -p 127.0.0.1:8000:8000 -v vea-data:/var/lib/vea vea
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_NUM_THREADS=1 \
    VEA_BIND=0.0.0.0:8000 \
    VEA_WORKERS=2 \
    VEA_DATABASE_URL=sqlite:////var/lib/vea/vea.db \
    VEA_REGISTRY=/var/lib/vea/registry \
    VEA_COMPILE_CACHE=/var/lib/vea/cache/compiled \
    PROMETHEUS_MULTIPROC_DIR=/tmp/vea-prometheus
# Everything the service writes lives under /var/lib/vea (the volume): the working
# directory /app is root's and read-only to the service, so no default may point under
# it (the compiled-forest cache defaulted to var/cache/compiled there).

# LightGBM's wheel needs the OpenMP runtime; `vea db backup` on PostgreSQL runs
# pg_dump (the client tools of the server's major version or newer: this base's
# postgresql-client is 15 or later, for docker-compose.yml's postgres:15).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 postgresql-client \
    && rm -rf /var/lib/apt/lists/*

# A fixed numeric uid, so orchestrators can check runAsNonRoot and volumes can be
# prepared for it (chown 10001).
RUN groupadd --system --gid 10001 vea \
    && useradd --system --uid 10001 --gid vea --create-home --home-dir /home/vea \
        --shell /usr/sbin/nologin vea \
    && mkdir -p /var/lib/vea /tmp/vea-prometheus \
    && chown vea:vea /var/lib/vea /tmp/vea-prometheus

WORKDIR /app
# Dependencies first (cached while only the code changes).
COPY pyproject.toml README.md ./
RUN mkdir -p models training service \
    && touch models/__init__.py training/__init__.py service/__init__.py \
    && pip install . \
    && pip uninstall -y vea \
    && rm -rf models training service build *.egg-info
COPY models ./models
COPY training ./training
COPY service ./service
RUN pip install --no-deps . && rm -rf build *.egg-info

USER 10001:10001
VOLUME ["/var/lib/vea"]
EXPOSE 8000
# No curl in a slim image: Python (service/healthcheck.py, standard library only) asks
# /healthz where VEA_BIND says gunicorn listens, a port or a unix socket (a changed
# VEA_BIND would otherwise mark a healthy container unhealthy).
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD python -m service.healthcheck || exit 1

# The master applies pending migrations (VEA_AUTO_MIGRATE=1) before the workers start.
ENTRYPOINT ["gunicorn", "-c", "python:service.gunicorn_conf"]
