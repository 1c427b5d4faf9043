"""docker-compose.yml, profile s3: job files in a bucket, no volume shared by API and worker."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from tests.unit.deploy.test_compose import COMPOSE, SERVICES, mounts

S3_SERVICES = ["minio", "minio-bucket", "api-s3", "worker-s3"]
APP = ["api-s3", "worker-s3"]


def env(service: str) -> dict[str, str]:
    return SERVICES[service]["environment"]


def test_s3_services_start_only_in_their_profile() -> None:
    for service in S3_SERVICES:
        assert SERVICES[service]["profiles"] == ["s3"], service
    for service, spec in SERVICES.items():
        if service not in S3_SERVICES:
            assert "s3" not in spec.get("profiles", []), service


def test_api_and_worker_share_no_volume() -> None:
    api, worker = set(mounts("api-s3").values()), set(mounts("worker-s3").values())
    assert not api & worker
    assert not api and not worker, "TEMP_DIR/OUTPUT_DIR are each container's own scratch"


def test_both_point_at_the_same_bucket_with_the_same_keys() -> None:
    api, worker = env("api-s3"), env("worker-s3")
    settings = ("STORAGE_URL", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID")
    for name in (*settings, "AWS_SECRET_ACCESS_KEY", "REDIS_URL"):
        assert api[name] == worker[name], name
    assert urlparse(api["STORAGE_URL"]).scheme == "s3"
    endpoint = urlparse(api["AWS_ENDPOINT_URL"])
    assert endpoint.hostname == "minio" and endpoint.port == 9000
    minio = env("minio")
    assert api["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert api["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]


def test_the_bucket_is_made_before_the_api_and_worker_start() -> None:
    bucket = urlparse(env("api-s3")["STORAGE_URL"]).netloc
    script = " ".join(SERVICES["minio-bucket"]["command"])
    assert f"mc mb --ignore-existing local/{bucket}" in script
    assert SERVICES["minio-bucket"]["depends_on"]["minio"]["condition"] == "service_healthy"
    for service in APP:
        depends = SERVICES[service]["depends_on"]
        assert depends["minio-bucket"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"


def test_minio_keeps_its_data_on_a_named_volume_and_checks_itself() -> None:
    assert mounts("minio")["/data"] in COMPOSE["volumes"]
    assert SERVICES["minio"]["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]


@pytest.mark.parametrize("service", APP)
def test_api_and_worker_images_probes_and_restarts_match_the_shared_folder_ones(
    service: str,
) -> None:
    twin = {"api-s3": "api", "worker-s3": "worker-cpu"}[service]
    assert SERVICES[service]["image"] == SERVICES[twin]["image"]
    assert SERVICES[service]["build"] == SERVICES[twin]["build"]
    assert SERVICES[service]["healthcheck"]["test"] == SERVICES[twin]["healthcheck"]["test"]
    assert SERVICES[service]["restart"] == "unless-stopped"


def test_api_s3_listens_beside_the_shared_folder_api() -> None:
    (published,) = SERVICES["api-s3"]["ports"]
    (other,) = SERVICES["api"]["ports"]
    assert published.endswith(":8081") and published.split(":")[0] != other.split(":")[0]


def test_worker_recycling_is_configurable() -> None:
    assert env("worker-s3")["WORKER_MAX_JOBS"] == "${WORKER_MAX_JOBS:-0}"
    assert env("worker-s3")["WORKER_MAX_RSS_MB"] == "${WORKER_MAX_RSS_MB:-0}"
