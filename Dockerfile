# syntax=docker/dockerfile:1
# Build: install the dependencies, at the versions in requirements.lock, into a virtual environment.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY bot bot
COPY migrations migrations
RUN python -m venv /venv && /venv/bin/pip install -c requirements.lock . && /venv/bin/pip uninstall -y sms-desk

# Run: the source tree (with locales/) on top of that environment, as a non-root user.
FROM python:3.11-slim
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DATABASE_URL=sqlite+aiosqlite:////app/data/bot.db
RUN useradd --create-home --uid 10001 bot && mkdir -p /app/data && chown bot:bot /app/data
COPY --from=build /venv /venv
WORKDIR /app
COPY bot bot
COPY migrations migrations
COPY locales locales
USER bot
VOLUME ["/app/data"]
CMD ["python", "-m", "bot"]
