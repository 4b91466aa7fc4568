# One image for every Nirvana service (api, worker, migrate); docker-compose.yml picks
# the command. torch comes from PyPI, whose Linux wheel carries CUDA for GPU workers.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so that editing the code does not reinstall torch.
COPY pyproject.toml alembic.ini ./
RUN mkdir -p nirvana && touch nirvana/__init__.py \
    && pip install '.[server,s3]' \
    && pip uninstall -y nirvana \
    && rm -rf nirvana build *.egg-info

COPY db ./db
COPY api ./api
COPY worker ./worker
COPY nirvana ./nirvana
COPY service ./service
COPY migrations ./migrations
# The library editable; the service runs from /app, which PYTHONPATH puts on the path
# (`nirvana migrate` finds alembic.ini and migrations/ next to db/).
RUN pip install --no-deps -e .
ENV PYTHONPATH=/app

RUN useradd --create-home --uid 1000 nirvana && mkdir -p /data/blobs && chown -R nirvana /data
USER nirvana
ENV NIRVANA_HOME=/data NIRVANA_BLOB_DIR=/data/blobs

ENTRYPOINT ["nirvana"]
CMD ["--help"]
