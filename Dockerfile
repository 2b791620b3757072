# syntax=docker/dockerfile:1
# The Homeostat operator image: `homeostat run` in-cluster (see docs/install.md).
#
# Two stages: `build` makes a virtualenv from the pinned closure in constraints.txt and the
# project; `runtime` is a clean slim Python with only that virtualenv, run as a numeric non-root
# user, and works with a read-only root filesystem (it writes nothing; HOME and TMPDIR are /tmp,
# an emptyDir in deploy/deployment.yaml). tests/deploy/test_dockerfile.py checks these rules.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src

# The pinned dependencies first, in their own layer: rebuilt only when a pin changes. The build
# backend goes into this stage's own Python, never into the operator's virtualenv.
COPY constraints.txt deploy/build-constraints.txt ./
RUN python -I -m venv /opt/homeostat \
 && /opt/homeostat/bin/pip install --no-deps --constraint constraints.txt --requirement constraints.txt \
 && python -I -m pip install --no-deps --constraint build-constraints.txt --requirement build-constraints.txt

# Then the project: a wheel built with the pinned backend, installed without resolving anything,
# so a dependency missing from constraints.txt fails `pip check` instead of being fetched unpinned.
# `python -I`: with the current directory on sys.path, the tree's `operator/` folder would shadow
# the standard library's `operator` module.
COPY pyproject.toml README.md* ./
COPY src/ src/
COPY api/ api/
COPY operator/ operator/
COPY detectors/ detectors/
COPY playbooks/ playbooks/
COPY lab/ lab/
RUN python -I -m pip wheel --no-deps --no-build-isolation --constraint build-constraints.txt --wheel-dir /tmp/dist . \
 && /opt/homeostat/bin/pip install --no-deps --constraint constraints.txt /tmp/dist/homeostat-*.whl \
 && /opt/homeostat/bin/pip check \
 && /opt/homeostat/bin/python -I -m compileall -q -f --invalidation-mode unchecked-hash /opt/homeostat/lib \
 && /opt/homeostat/bin/python -I -m pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/homeostat/bin:$PATH \
    HOME=/tmp \
    TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1 \
    USER=homeostat
# Kopf names itself after getpass.getuser(): USER answers it even under an arbitrary uid (OpenShift),
# and a passwd entry for the numeric user serves libraries that ask pwd directly. No home, no shell.
RUN groupadd --system --gid 65532 homeostat \
 && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin homeostat
COPY --from=build /opt/homeostat /opt/homeostat
USER 65532:65532
WORKDIR /tmp

# 8080: Kopf's liveness endpoint (/healthz); 9464: Prometheus metrics (/metrics).
EXPOSE 8080 9464
# For `docker run`; Kubernetes ignores it and uses the Deployment's probes on the same endpoint.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-I", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

ENTRYPOINT ["homeostat", "run"]
CMD ["--all-namespaces", "--standalone"]
