# fm-session-service image: `docker build -t fm-session-service .`
# The builder stage turns the project and its locked dependencies into wheels; the final
# stage installs only those wheels (no compiler, no sources) and runs as a non-root user.

# Dependencies come from uv.lock, hash-checked: the image holds what `make test` tested.
FROM python:3.11-slim AS builder
WORKDIR /build
RUN pip install --no-cache-dir "uv==0.13.9"
COPY pyproject.toml uv.lock README.md ./
COPY src ./src
RUN uv export --frozen --no-dev --no-emit-project --format requirements-txt -o requirements.txt \
    && pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r requirements.txt \
    && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENVIRONMENT=production \
    HOST=0.0.0.0 \
    PORT=8001 \
    DATA_DIR=/data
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app \
    && mkdir -p /data && chown app:app /data
COPY --from=builder /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
USER app
WORKDIR /app
VOLUME ["/data"]
EXPOSE 8001
# Python's standard library, not curl: the slim image has no curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8001'), timeout=2)"]
# SIGTERM: stop accepting, finish in-flight requests within SHUTDOWN_GRACE_SECONDS, exit 0.
STOPSIGNAL SIGTERM
CMD ["fm-session-service", "serve"]
