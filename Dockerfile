# chat-loadgen: the tool, the locustfile and its dialogues, run as a non-root user.
#
#   docker build -t chat-loadgen:0.1.0 .
#   docker run --rm -p 8089:8089 chat-loadgen:0.1.0                     # web UI, embedded reference server
#   docker run --rm chat-loadgen:0.1.0 locust -f scenarios/multiturn.py --headless -u 50 -r 10 -t 60s
#   docker run --rm -p 8000:8000 chat-loadgen:0.1.0 loadgen serve --rest-port 8000 --bind 0.0.0.0
#
# deploy/compose.yaml and deploy/k8s/ run it as a master and workers (README: "Running distributed from files").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN groupadd --gid 10001 loadgen \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin loadgen

# the package, installed from the project's own files (every dependency pinned there has a wheel)
WORKDIR /src
COPY pyproject.toml README.md ./
COPY loadgen/ loadgen/
RUN pip install . && rm -rf /src

# the locustfile and the default dialogues; run folders go to /app/reports (a volume in the deployments)
WORKDIR /app
COPY scenarios/ scenarios/
RUN mkdir reports && chown 10001:10001 reports

USER 10001:10001
# 8089 Locust's web UI, 5557 the master's port for workers, 8000 `loadgen serve`'s REST front
EXPOSE 8089 5557 8000
CMD ["locust", "-f", "scenarios/multiturn.py"]
