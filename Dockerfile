# racemine worker image: the project, its locked dependencies, and git.
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir uv

WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY flows flows
COPY miners miners
COPY annotators annotators
COPY warehouse warehouse
RUN uv sync --frozen --no-dev

ENV PATH="/app/.venv/bin:$PATH" \
    RACEMINE_WAREHOUSE=/data/racemine.duckdb \
    RACEMINE_CACHE_DIR=/cache \
    PREFECT_SERVER_ANALYTICS_ENABLED=false
VOLUME ["/data", "/cache"]
ENTRYPOINT ["racemine"]
CMD ["--help"]
