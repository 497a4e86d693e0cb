"""The Spark image's S3A jars: the committed Maven descriptor (images/spark/jars/pom.xml) run with
the Dockerfile's own `mvn` goal against a throwaway file repository, so that what the build does
is executed here: exactly the three jars arrive, and a wrong or missing checksum stops it.

The jars' repository is a folder holding the three jars with their checksum files, put in place of
Maven Central by the descriptor's `jars.repository` property; everything else is the Dockerfile's
command, --strict-checksums included. The pinned maven-dependency-plugin still comes from Maven
Central: without it (no network, as on the build machines) the tests skip with that reason.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.k8s.manifests import REPO
from tests.k8s.test_images import dockerfile, spark_args

POM = REPO / "images" / "spark" / "jars" / "pom.xml"


def s3a_run() -> str:
    _, _, found = dockerfile("spark")
    (stage,) = [s for s in found if s.name == "s3a-jars"]
    (run,) = [i.arguments for i in stage.instructions if i.keyword == "RUN"]
    return run


def mvn_arguments(args: dict[str, str]) -> list[str]:
    """The Dockerfile's mvn command line with its ARGs filled in (up to the first `&&`)."""
    command = s3a_run().split("&&")[0]
    command = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], command)
    words = shlex.split(command)
    assert words[0] == "mvn", words
    return words[1:]


def test_the_build_verifies_checksums_and_takes_versions_from_the_dockerfile():
    words = mvn_arguments(spark_args())
    assert "--strict-checksums" in words
    text = POM.read_text()
    assert "<checksumPolicy>fail</checksumPolicy>" in text
    assert "${hadoop.version}" in text and "${aws.sdk.version}" in text
    assert "${spark.version}" in text and "${scala.binary.version}" in text
    assert not re.search(r"<version>\d", text.split("<dependencies>")[1]), "versions are ARGs"


def publish(repo: Path, group: str, artifact: str, version: str, content: bytes,
            checksums: dict[str, str | None]) -> None:
    folder = repo.joinpath(*group.split("."), artifact, version)
    folder.mkdir(parents=True)
    pom = (f'<project><modelVersion>4.0.0</modelVersion><groupId>{group}</groupId>'
           f'<artifactId>{artifact}</artifactId><version>{version}</version></project>').encode()
    for suffix, data in ((".jar", content), (".pom", pom)):
        path = folder / f"{artifact}-{version}{suffix}"
        path.write_bytes(data)
        for algorithm, override in checksums.items():
            digest = override if override is not None else hashlib.new(algorithm, data).hexdigest()
            if digest != "absent":
                (folder / f"{path.name}.{algorithm}").write_text(digest)


_UNRESOLVABLE: list[str] = []  # the skip reason, once one run has found it


@pytest.fixture
def maven(tmp_path):
    mvn = shutil.which("mvn")
    if mvn is None:
        pytest.skip("Maven (mvn) is not installed")
    if _UNRESOLVABLE:
        pytest.skip(_UNRESOLVABLE[0])
    words = mvn_arguments(spark_args())

    def run(checksums: dict[str, str | None]) -> tuple[subprocess.CompletedProcess, Path]:
        args = spark_args()
        fake = tmp_path / "repository"
        publish(fake, "org.apache.hadoop", "hadoop-aws", args["HADOOP_VERSION"], b"hadoop-aws",
                checksums)
        publish(fake, "software.amazon.awssdk", "bundle", args["AWS_SDK_VERSION"], b"bundle",
                checksums)
        publish(fake, "org.apache.spark", f"spark-hadoop-cloud_{args['SCALA_BINARY_VERSION']}",
                args["SPARK_VERSION"], b"spark-hadoop-cloud", checksums)
        work = tmp_path / "work"
        work.mkdir(exist_ok=True)
        shutil.copy(POM, work / "pom.xml")
        out = tmp_path / "jars"
        replacements = {"/tmp/s3a/pom.xml": str(work / "pom.xml"),
                        "/tmp/m2": str(tmp_path / "m2"), "/tmp/jars": str(out)}
        command = [mvn, f"-Djars.repository={fake.as_uri()}"]
        for word in words:
            for old, new in replacements.items():
                word = word.replace(old, new)
            command.append(word)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAVEN_")}
        result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                                cwd=work, env=env)
        if "Plugin org.apache.maven.plugins:maven-dependency-plugin" in result.stdout and \
                "could not be resolved" in result.stdout:
            _UNRESOLVABLE.append("the pinned maven-dependency-plugin cannot be resolved here "
                                 "(it comes from Maven Central, out of reach)")
            pytest.skip(_UNRESOLVABLE[0])
        return result, out
    return run


def test_the_descriptor_brings_exactly_the_three_jars(maven):
    result, out = maven({"sha512": None, "sha1": None})
    assert result.returncode == 0, result.stdout[-4000:]
    args = spark_args()
    assert sorted(p.name for p in out.iterdir()) == sorted([
        f"bundle-{args['AWS_SDK_VERSION']}.jar", f"hadoop-aws-{args['HADOOP_VERSION']}.jar",
        f"spark-hadoop-cloud_{args['SCALA_BINARY_VERSION']}-{args['SPARK_VERSION']}.jar"])


def test_a_wrong_checksum_stops_the_build(maven):
    result, out = maven({"sha512": "0" * 128, "sha1": "0" * 40})
    assert result.returncode != 0
    assert "checksum" in result.stdout.lower(), result.stdout[-4000:]
    assert not out.exists() or not any(out.iterdir())


def test_a_missing_checksum_stops_the_build(maven):
    result, _ = maven({"sha512": "absent", "sha1": "absent", "md5": "absent"})
    assert result.returncode != 0, result.stdout[-4000:]
