# Slim, non-root image that runs `seedance-gateway serve`.
# Mount a config at /etc/seedance-gateway/config.yaml and pass secrets as env vars or files
# (the config refers to them as ${ENV_VAR} / ${file:/run/secrets/name}).
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 --home-dir /var/lib/seedance-gateway --create-home gateway
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/* && rm -rf /wheels
USER 10001
WORKDIR /var/lib/seedance-gateway
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
ENTRYPOINT ["seedance-gateway"]
CMD ["serve", "--config", "/etc/seedance-gateway/config.yaml", "--host", "0.0.0.0", "--port", "8080"]
