# The probe image for probe.mode image: `python -m probe` prints one wi-probe/v1 JSON document (see
# probe/__init__.py). Nothing is published: build it and push it where your nodes pull from. The default,
# probe.mode configmap, needs no image of ours (the probe's source runs from a ConfigMap in a stock Python image).
#
#   docker build -t myregistry.azurecr.io/wi-probe:0.1.0 .            # with the azure-identity cross-check
#   docker build --build-arg WITH_SDK=0 -t myregistry.azurecr.io/wi-probe:0.1.0-slim .  # stdlib only
#
# Runs as uid/gid 65532 with a read-only root filesystem (Pod Security "restricted"): the code is compiled at
# build time and nothing is written at run time.
ARG PYTHON_VERSION=3.12
FROM python:${PYTHON_VERSION}-slim

ARG WITH_SDK=1
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/opt/wi-probe \
    HOME=/tmp \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN if [ "$WITH_SDK" = "1" ]; then pip install "azure-identity>=1.15"; fi

COPY probe/ /opt/wi-probe/probe/
RUN python -m compileall -q /opt/wi-probe/probe && chmod -R a+rX /opt/wi-probe

USER 65532:65532
WORKDIR /opt/wi-probe
LABEL org.opencontainers.image.title="wi-probe" \
      org.opencontainers.image.description="Entra Workload ID in-pod probe (wi-probe/v1)"
ENTRYPOINT ["python", "-m", "probe"]
