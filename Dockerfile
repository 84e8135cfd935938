# Two images, neither needed for the default zero-build run (probe.mode configmap runs the probe's source from a
# ConfigMap in a stock Python image):
#
#   probe    the probe for probe.mode image: `python -m probe` prints one wi-probe/v1 JSON document (see
#            probe/__init__.py), with azure-identity's WorkloadIdentityCredential cross-check
#   harness  the suites and the harness, to run as a Job in the cluster (`python -m harness manifests render`):
#            its entrypoint is wi-harness, which takes the options of `pytest suites`; no kubectl inside
#
#   docker buildx build --platform linux/amd64,linux/arm64 --target probe -t REGISTRY/wi-probe:0.1.0 --push .
#   docker buildx build --platform linux/amd64,linux/arm64 --target harness -t REGISTRY/wi-harness:0.1.0 --push .
#   docker build --target probe --build-arg WITH_SDK=0 -t REGISTRY/wi-probe:0.1.0-slim .   # stdlib only
#
# Both run as uid/gid 65532 with a read-only root filesystem (Pod Security "restricted"): the code is compiled
# at build time and nothing is written at run time except under /tmp (an emptyDir in the manifests). Nothing
# here depends on the build platform: the base is a multi-arch image pinned by digest and the installs are
# pure Python wheels or sdists (cryptography and aiohttp ship wheels for amd64 and arm64).
ARG PYTHON_IMAGE=python:3.12-slim@sha256:78387bc3881b8273120a12ebe6c1ab22b018ccc2c9adf565ae1ac9b536e184ea

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ---------------------------------------------------------------- probe
FROM base AS probe
ARG WITH_SDK=1
ARG AZURE_IDENTITY_VERSION=1.25.1
ENV PYTHONPATH=/opt/wi-probe
RUN if [ "$WITH_SDK" = "1" ]; then pip install "azure-identity==${AZURE_IDENTITY_VERSION}"; fi
COPY probe/ /opt/wi-probe/probe/
RUN python -m compileall -q /opt/wi-probe/probe && chmod -R a+rX /opt/wi-probe
USER 65532:65532
WORKDIR /opt/wi-probe
LABEL org.opencontainers.image.title="wi-probe" \
      org.opencontainers.image.description="Entra Workload ID in-pod probe (wi-probe/v1)"
ENTRYPOINT ["python", "-m", "probe"]

# ---------------------------------------------------------------- harness
FROM base AS harness-wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY probe/ probe/
COPY harness/ harness/
COPY suites/ suites/
COPY manifests/ manifests/
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM base AS harness
COPY --from=harness-wheel /wheels/ /wheels/
# the wheel's own dependencies, from the index; then the code is compiled so nothing is written at run time
RUN pip install /wheels/*.whl \
    && rm -rf /wheels \
    && python -m compileall -q "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
USER 65532:65532
WORKDIR /tmp
LABEL org.opencontainers.image.title="wi-harness" \
      org.opencontainers.image.description="Entra Workload ID verification suites, to run as a Job (wi-harness)"
ENTRYPOINT ["wi-harness"]
