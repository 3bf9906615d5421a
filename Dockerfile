# kgmem API image. Needs an external Neo4j (NEO4J_URI) and, for more than one
# replica, a Chroma server (KGMEM_CHROMA_HOST): the image has no Java, so the
# managed local Neo4j that `kgmem serve` starts without NEO4J_URI cannot run here.
# See docker-compose.yml and docs/docker.md.

# -- Build: install everything into a venv that the runtime stage copies -------
FROM python:3.11-slim AS build

# A compiler for any dependency without a wheel for this platform (e.g. arm64);
# it stays in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/venv \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv "$VIRTUAL_ENV"
ENV PATH="$VIRTUAL_ENV/bin:$PATH"

# CPU-only torch first, so sentence-transformers does not pull the CUDA build (GBs).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch

WORKDIR /src

# Dependencies in their own layer, keyed on pyproject.toml only, so code edits
# do not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['offline-model']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# README.md* : pyproject names a readme; the glob keeps COPY from failing without one.
COPY README.md* ./
COPY graph ./graph
COPY memory ./memory
COPY agents ./agents
COPY api ./api
# offline-model bakes all-MiniLM-L6-v2 into site-packages: no model download at run time.
RUN pip install ".[offline-model]"

# -- Runtime ---------------------------------------------------------------------
FROM python:3.11-slim

RUN groupadd --gid 10001 kgmem \
    && useradd --uid 10001 --gid kgmem --create-home --home-dir /home/kgmem --shell /usr/sbin/nologin kgmem \
    && mkdir -p /data /app \
    && chown kgmem:kgmem /data /app

COPY --from=build /opt/venv /opt/venv

ENV PATH="/opt/venv/bin:$PATH" \
    KGMEM_HOME=/data \
    KGMEM_API_HOST=0.0.0.0 \
    KGMEM_API_PORT=8000 \
    HF_HUB_OFFLINE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
WORKDIR /app
# Declared after the chown so a fresh named volume starts owned by kgmem.
VOLUME /data
EXPOSE 8000

# Liveness only: /readyz would mark the container unhealthy whenever Neo4j blips.
# Python, because the slim image has no curl or wget.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('KGMEM_API_PORT', '8000'), timeout=4)"]

CMD ["kgmem", "serve"]
