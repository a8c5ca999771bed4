"""A C# client generated from the /openapi.json that a real server serves, by openapi-generator (PyPI's
openapi-generator-cli, which runs the generator's jar on Java; its csharp generator with the httpclient
library), compiled with Mono's mcs against Debian's Json.NET and run with mono against that server:
health, a classify of a real photo, an Open Inference Protocol infer, a 404, and an API key sent by the
bearer scheme.

Two things stand between the generated code and Mono, both outside the document: Debian packages
Json.NET 6, whose contract resolver has no NamingStrategy yet (9.0 added it; the generated code sets a
camelCase one that changes nothing, as every generated property names its JSON key), and Polly, which
Debian does not package (the generated code names it for a retry policy that is unset by default). So
the test removes those NamingStrategy settings and compiles generated_csharp/PollyStandIn.cs. On .NET
with NuGet, the generated project builds as it is. NSwag and Kiota need .NET, which this machine lacks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.security.keys import KeyRing
from lanai.store import Store

from support import ServerThread, make_store

HERE = Path(__file__).resolve().parent / "generated_csharp"
OPTIONS = "library=httpclient,targetFramework=net48,packageName=Lanai.Client,hideGenerationTimestamp=true"
KNOWN_WARNINGS = (
    "OpenAPI 3.1 support is still in beta",
    # openapi-generator does not know mutualTLS yet (its issue 18551) and skips the scheme; a client sets
    # its certificate itself (Configuration.ClientCertificates in the generated code)
    "Unknown type `mutualTLS` found in the security definition",
    # logged for ParameterValue, a oneOf of a string, a number and a boolean; the client is unaffected
    "Failed to get the schema name: null",
    # a property named version becomes VarVersion in C#
    "Version (reserved word) cannot be used as model name",
)
_NAMING_STRATEGY = re.compile(
    r"NamingStrategy = new CamelCaseNamingStrategy\s*\{\s*OverrideSpecifiedNames = false\s*\}"
)


def _missing() -> list[str]:
    tools = {"java": "apt-get install default-jre-headless", "mcs": "apt-get install mono-devel",
             "mono": "apt-get install mono-devel", "pkg-config": "apt-get install pkg-config"}  # fmt: skip
    missing = [f"{tool} ({hint})" for tool, hint in tools.items() if shutil.which(tool) is None]
    try:
        import openapi_generator_cli  # noqa: F401
    except ImportError:
        missing.append("openapi-generator-cli (pip install -e '.[test]')")
    pc = (
        subprocess.run(["pkg-config", "--exists", "newtonsoft-json"], capture_output=True)
        if shutil.which("pkg-config")
        else None
    )
    if pc is None or pc.returncode != 0:
        missing.append("Json.NET for Mono (apt-get install libnewtonsoft-json-cil-dev)")
    return missing


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    missing = _missing()
    if missing:
        message = "missing: " + "; ".join(missing) + " (.ci/run installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]) -> Store:
    return make_store(tmp_path_factory.mktemp("generated-store"), model_files)


@pytest.fixture(scope="module")
def server(store: Store) -> Iterator[str]:
    settings = Settings(home=store.root, intra_op_threads=1)
    with ServerThread(DataPlane(store, settings), settings) as url:
        yield url


def generate(document: Path, out: Path) -> str:
    """The generator's output; fails on an error or a warning that is not a known one."""
    command = [sys.executable, "-c", "from openapi_generator_cli import cli; cli()", "generate", "-i", str(document),
               "-g", "csharp", "-o", str(out), "--additional-properties", OPTIONS]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    unknown = [
        line for line in log.splitlines()
        if re.search(r"\b(WARN|ERROR)\b", line) and not any(known in line for known in KNOWN_WARNINGS)
    ]  # fmt: skip
    assert not unknown, "\n".join(unknown)
    return log


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory, server: str) -> Path:
    root = tmp_path_factory.mktemp("generated-csharp")
    document = root / "openapi.json"
    document.write_bytes(httpx.get(f"{server}/openapi.json").raise_for_status().content)
    generate(document, root / "client")
    sources = sorted((root / "client" / "src" / "Lanai.Client").rglob("*.cs"))
    assert len(sources) > 50
    for source in sources:
        text = source.read_text(encoding="utf-8")
        if _NAMING_STRATEGY.search(text):
            source.write_text(_NAMING_STRATEGY.sub("", text), encoding="utf-8")
    exe = root / "Program.exe"
    references = ["-r:System.Net.Http.dll", "-r:System.Web.dll", "-r:System.Runtime.Serialization.dll",
                  "-r:System.ComponentModel.DataAnnotations.dll", "-pkg:newtonsoft-json"]  # fmt: skip
    built = subprocess.run(
        ["mcs", "-langversion:experimental", "-nowarn:1591", f"-out:{exe}", *references,
         *map(str, sources), str(HERE / "PollyStandIn.cs"), str(HERE / "Program.cs")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    return exe


def run(program: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mono", str(program), *map(str, args)], capture_output=True, text=True, timeout=180)


def image(tmp_path: Path, photos: dict[str, bytes]) -> Path:
    path = tmp_path / "cat.jpg"
    path.write_bytes(photos["chelsea"])
    return path


def test_the_generated_client_reads_health_classifies_and_infers(
    program: Path, server: str, tmp_path: Path, photos: dict[str, bytes]
) -> None:
    done = run(program, server, image(tmp_path, photos))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "live: True" in lines and "ready: True" in lines
    assert "health: Healthy, models " in done.stdout and "efficientnet-lite0" in done.stdout  # the admin's report
    assert "model: efficientnet-lite0 " in done.stdout
    labels = [line for line in lines if line.startswith("label: ")]
    assert len(labels) == 3 and "cat" in labels[0]
    assert float(labels[0].split("score: ")[1]) > 0.1
    (infer,) = [line for line in lines if line.startswith("infer ")]
    assert infer.startswith("infer tiny id csharp-1 output logits [1,5] FP32: ")
    assert len(infer.split(": ")[1].split()) == 5
    (refused,) = [line for line in lines if line.startswith("refused: ")]
    assert refused.startswith("refused: 404 ") and "no-such-model" in refused


def test_the_generated_client_sends_a_key_by_the_bearer_scheme(
    program: Path, store: Store, tmp_path: Path, photos: dict[str, bytes]
) -> None:
    key = KeyRing(store.root).create("generated-csharp", "infer")
    settings = Settings(home=store.root, intra_op_threads=1, auth="required", admin_loopback=False)
    with ServerThread(DataPlane(store, settings), settings) as url:
        refused = run(program, url, image(tmp_path, photos))
        assert refused.returncode == 1
        assert "HTTP 401" in refused.stderr and "this server needs an API key" in refused.stderr
        done = run(program, url, image(tmp_path, photos), key)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "health: Healthy" in done.stdout and ", models" not in done.stdout  # not an admin: the summary
        assert [line for line in done.stdout.splitlines() if line.startswith("label: ")]
