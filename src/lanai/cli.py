"""The ``lanai`` command. Each subcommand imports what it needs only once it runs, so help is instant."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from lanai.errors import LanaiError

__all__ = ["main"]


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the store's active models over HTTP and gRPC")
    p.add_argument("--config", type=Path, help="a lanai.toml (default: <home>/lanai.toml if present)")
    p.add_argument("--home", type=Path, help="the model store's directory (env LANAI_HOME)")
    p.add_argument("--host", help="address to listen on (default 0.0.0.0: the whole LAN)")
    p.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--grpc-port", type=int, help="Open Inference Protocol gRPC port (default 8001; 0: a free one)")
    p.add_argument("--agent-port", type=int, help="answer HAProxy's agent check on this TCP port (default: off)")
    p.add_argument("--no-grpc", action="store_false", dest="grpc", default=None, help="serve HTTP only")
    p.add_argument(
        "--no-discovery", action="store_false", dest="discovery", default=None, help="do not advertise over mDNS"
    )
    p.add_argument("--default-model", help="model used by /v1/infer and /predict")
    p.add_argument("--providers", help="execution providers in priority order, e.g. tensorrt,cuda,cpu")
    p.add_argument("--threads", type=int, dest="intra_op_threads", help="threads per model run (0: one per core)")
    p.add_argument("--max-body-bytes", type=int, help="larger request bodies get 413")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--access-log", action="store_true", default=None, help="log every request")
    p.add_argument(
        "--auth", choices=["lan", "required"], help="lan (default): inference needs no key; required: it does"
    )
    p.add_argument(
        "--no-admin-loopback",
        action="store_false",
        dest="admin_loopback",
        default=None,
        help="admin actions need a key from this machine too",
    )
    p.add_argument("--api-key", help="one shared admin key required on every request (lanai keys is better)")
    p.add_argument("--tls", action="store_true", default=None, help="HTTPS and gRPC over TLS (lanai certs init)")
    p.add_argument("--mtls", action="store_true", default=None, help="--tls, and clients need a certificate too")
    p.add_argument("--tls-cert", type=Path, dest="tls_certfile", help="serve HTTPS with this certificate")
    p.add_argument("--tls-key", type=Path, dest="tls_keyfile", help="private key of --tls-cert")
    p.set_defaults(run=_serve)


def _discover_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("discover", help="find lanai boxes on the LAN (mDNS/DNS-SD)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to listen for answers (default 2)")
    p.add_argument("--json", action="store_true", help="a JSON list, with each box's base_url")
    p.add_argument("--interface", action="append", metavar="ADDRESS", help="browse only on this interface's address")
    p.set_defaults(run=_discover)


def _models_parser(sub: argparse._SubParsersAction) -> None:
    from lanai.tasks import TASKS

    p = sub.add_parser("models", help="manage the model store")
    p.add_argument("--home", type=Path, help="the model store's directory (env LANAI_HOME)")
    msub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = msub.add_parser("add", help="import a model file as a new version")
    add.add_argument("file", type=Path)
    add.add_argument("--name", required=True)
    add.add_argument("--task", required=True, choices=list(TASKS))
    add.add_argument("--backend", help="onnx, llamacpp or litert (default: by suffix: .gguf, .tflite, else onnx)")
    add.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="backend option, e.g. n_ctx=4096, parallel=4, n_gpu_layers=99, providers=cuda,cpu",
    )
    add.add_argument("--labels", type=Path, help="text file, one label per line, in output order")
    add.add_argument("--tokenizer", type=Path, help="a text model's tokenizer.json (classify-text, embed)")
    add.add_argument(
        "--examples", type=Path, help="classify-text: a CSV of text,label rows to build a few-shot head from"
    )
    add.add_argument("--preprocess", help="e.g. resize=256,crop=224,mean=127,std=128,layout=NCHW")
    add.add_argument("--max-batch-size", type=int)
    add.add_argument("--max-queue-delay-us", type=int)
    add.add_argument("--max-queue-size", type=int, help="waiting requests before 503")
    add.add_argument("--instances", type=int, help="batches that may run at once")
    add.add_argument("--activate", action="store_true", help="make it the active version now")
    add.add_argument(
        "--stage",
        action="append",
        metavar="STAGE=FILE",
        help="a staged task's other model files, e.g. ocr: --stage cls=cls.onnx --stage rec=rec.onnx",
    )
    ppocr = msub.add_parser("add-ppocr", help="add the PP-OCR models that the rapidocr package ships, as one ocr model")
    ppocr.add_argument("--name", default="ocr")
    ppocr.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="rapidocr's wheel, or a folder with its models (default: the installed rapidocr package)",
    )
    ppocr.add_argument("--activate", action="store_true", help="make it the active version now")
    msub.add_parser("list", help="models, versions and which is active").add_argument("--json", action="store_true")
    show = msub.add_parser("show", help="a version's manifest")
    show.add_argument("name")
    show.add_argument("version", type=int, nargs="?")
    act = msub.add_parser("activate", help="make a version the active one")
    act.add_argument("name")
    act.add_argument("version", type=int)
    msub.add_parser("rollback", help="go back to the previously active version").add_argument("name")
    hist = msub.add_parser("history", help="what happened to a model: versions, pulls, activations, rollbacks")
    hist.add_argument("name")
    hist.add_argument("--json", action="store_true")
    rm = msub.add_parser("remove", help="remove a version, or the whole model")
    rm.add_argument("name")
    rm.add_argument("version", type=int, nargs="?")
    p.set_defaults(run=_models)


def _pipelines_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipelines", help="manage pipelines (several models behind one request)")
    p.add_argument("--home", type=Path, help="the model store's directory (env LANAI_HOME)")
    psub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = psub.add_parser("add", help="check a pipeline file and put it in the store")
    add.add_argument("file", type=Path)
    add.add_argument("--name", help="default: the file's name without .toml")
    psub.add_parser("list", help="pipelines, and files that could not be read")
    psub.add_parser("remove", help="remove a pipeline").add_argument("name")
    p.set_defaults(run=_pipelines)


def _keys_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="API keys with roles (infer or admin)")
    p.add_argument("--home", type=Path, help="the model store's directory (env LANAI_HOME)")
    ksub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = ksub.add_parser("create", help="make a key and print it (once)")
    create.add_argument("name")
    create.add_argument("--role", choices=["infer", "admin"], default="infer")
    create.add_argument("--models", help="the only models it may use, e.g. defects,ocr (default: all)")
    create.add_argument("--expires", help="how long it lives, e.g. 30d, 12h (default: until revoked)")
    create.add_argument("--rate", help="requests it may make, e.g. 20/s or 600/m (default: no limit)")
    create.add_argument("--concurrency", type=int, help="requests it may have running at once (default: no limit)")
    ksub.add_parser("list", help="the keys: role, scope, created, last used").add_argument(
        "--json", action="store_true"
    )
    ksub.add_parser("revoke", help="remove a key; a running server refuses it at once").add_argument("name")
    p.set_defaults(run=_keys)


def _certs_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("certs", help="the box's own certificate authority, for --tls and --mtls")
    p.add_argument("--home", type=Path, help="the model store's directory (env LANAI_HOME)")
    csub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    init = csub.add_parser("init", help="make the CA (once) and a server certificate for this box")
    init.add_argument("--name", action="append", help="a DNS name it answers to (default: hostname, .local)")
    init.add_argument("--address", action="append", help="an IP address it answers on (default: its own)")
    init.add_argument("--force", action="store_true", help="make a new CA too (every client certificate is lost)")
    renew = csub.add_parser("renew", help="a new server certificate from the same CA; a running server reloads it")
    renew.add_argument("--name", action="append", help="a DNS name it answers to (default: the current ones)")
    renew.add_argument("--address", action="append", help="an IP address it answers on (default: the current ones)")
    renew.add_argument("--days", type=int, default=397, help="how long the new certificate is valid (default 397)")
    client = csub.add_parser("client", help="issue a client certificate (PEM and PKCS#12 for Windows)")
    client.add_argument("name")
    client.add_argument("--role", choices=["infer", "admin"], default="infer")
    client.add_argument("--days", type=int, default=365)
    p.set_defaults(run=_certs)


def _pair_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pair",
        help="pair a device with a box by a one-time code",
        description="On the box: 'lanai pair' opens a pairing and shows a code. On the device: "
        "'lanai pair BOX CODE' pairs with it and saves the key and the box's certificate.",
    )
    p.add_argument("box", nargs="?", help="on the device: the box (URL, or host[:port])")
    p.add_argument("code", nargs="?", help="on the device: the code the box shows")
    p.add_argument("--name", help="on the device: this device's name on the box (default: the host name)")
    p.add_argument("--save-as", help="on the device: the name to keep the box under (default: its host name)")
    p.add_argument("--home", type=Path, help="on the box: the model store's directory (env LANAI_HOME)")
    p.add_argument("--role", choices=["infer", "admin"], default="infer", help="on the box: the device's role")
    p.add_argument("--models", help="on the box: the only models the device may use, e.g. defects,ocr")
    p.add_argument("--ttl", type=float, default=300.0, help="on the box: seconds the code is valid (default 300)")
    p.add_argument("--attempts", type=int, default=3, help="on the box: tries the code allows (default 3)")
    p.add_argument("--url", help="on the box: the running server (default: this machine, the configured port)")
    p.add_argument("--no-wait", action="store_true", help="on the box: show the code and return")
    p.set_defaults(run=_pair)


def _devices_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="the devices paired with this box")
    p.add_argument("--home", type=Path, help="the model store's directory (env LANAI_HOME)")
    dsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    dsub.add_parser("list", help="paired devices: role, certificate, paired, last used").add_argument(
        "--json", action="store_true"
    )
    dsub.add_parser("revoke", help="revoke a device's key and certificate, at once").add_argument("name")
    p.set_defaults(run=_devices)


def _bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="load-test a running lanai server")
    p.add_argument("url", nargs="?", default="http://127.0.0.1:8000", help="server base URL")
    p.add_argument("--model", help="model to classify with (default: the server's /v1/infer)")
    p.add_argument("--endpoint", help="path to POST to, overriding --model")
    p.add_argument("--image", type=Path, help="image file to send (default: a bundled test photo)")
    p.add_argument("--mode", choices=["multipart", "raw"], default="multipart")
    p.add_argument("-c", "--concurrency", type=int, default=16)
    p.add_argument("-d", "--duration", type=float, help="seconds to run (default 10)")
    p.add_argument("-n", "--requests", type=int, help="number of requests instead of a duration")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of unrecorded warm-up")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--api-key", help="send this key (Authorization: Bearer)")
    p.add_argument("--cacert", help="for https:// URLs: the authority to trust (e.g. <store>/tls/ca.pem)")
    p.add_argument("--cert", help="a client certificate, for servers that require one (--mtls)")
    p.add_argument("--key", help="the client certificate's key")
    g = p.add_argument_group("chat", "load-test streamed chat completions of a language model instead")
    g.add_argument("--chat", metavar="MODEL", help="the language model to chat with")
    g.add_argument("--prompt", default="Write a short story about a robot who learns to paint.")
    g.add_argument("--max-tokens", type=int, default=64)
    p.set_defaults(run=_bench)


def _fleet_parsers(sub: argparse._SubParsersAction) -> None:
    from lanai.fleet_cli import add_parsers

    add_parsers(sub)


def _doctor_parser(sub: argparse._SubParsersAction) -> None:
    from lanai.doctor_cli import add_parser

    add_parser(sub).set_defaults(run=_doctor)


def _optimize_parser(sub: argparse._SubParsersAction) -> None:
    try:
        from lanai.optimize.cli import add_parser
    except ImportError as exc:  # onnx is missing: say how to get it when the command is used
        missing = exc.name or "onnx"
        p = sub.add_parser("optimize", help="make a trained model smaller and faster (needs lanai[optimize])")
        p.set_defaults(run=lambda args: _missing_extra(missing))
        return
    add_parser(sub).set_defaults(run=_optimize)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lanai", description="A private, fast model server for your LAN.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve_parser(sub)
    _models_parser(sub)
    _pipelines_parser(sub)
    _keys_parser(sub)
    _certs_parser(sub)
    _pair_parser(sub)
    _devices_parser(sub)
    _discover_parser(sub)
    _bench_parser(sub)
    _doctor_parser(sub)
    _optimize_parser(sub)
    _fleet_parsers(sub)
    return parser


def _version() -> str:
    from lanai import __version__

    return __version__


def _serve(args: argparse.Namespace) -> int:
    from lanai.serve import serve

    cli = {k: getattr(args, k, None) for k in (
        "home", "host", "port", "grpc_port", "agent_port", "grpc", "auth", "admin_loopback", "default_model",
        "providers", "intra_op_threads", "max_body_bytes", "log_level", "access_log", "api_key", "tls", "mtls",
        "tls_certfile", "tls_keyfile", "discovery",
    )}  # fmt: skip
    return serve(config_file=args.config, cli=cli)


def _discover(args: argparse.Namespace) -> int:
    from lanai.discovery.cli import run_discover_command

    return run_discover_command(args)


def _models(args: argparse.Namespace) -> int:
    from lanai.models_cli import run_models_command

    return run_models_command(args)


def _pipelines(args: argparse.Namespace) -> int:
    from lanai.pipelines_cli import run_pipelines_command

    return run_pipelines_command(args)


def _keys(args: argparse.Namespace) -> int:
    from lanai.keys_cli import run_keys_command

    return run_keys_command(args)


def _certs(args: argparse.Namespace) -> int:
    from lanai.certs_cli import run_certs_command

    return run_certs_command(args)


def _pair(args: argparse.Namespace) -> int:
    from lanai.pair_cli import run_pair_command

    return run_pair_command(args)


def _devices(args: argparse.Namespace) -> int:
    from lanai.pair_cli import run_devices_command

    return run_devices_command(args)


def _bench(args: argparse.Namespace) -> int:
    from lanai.bench.cli import run_bench_command

    return run_bench_command(args)


def _doctor(args: argparse.Namespace) -> int:
    from lanai.doctor_cli import run_doctor_command

    return run_doctor_command(args)


def _optimize(args: argparse.Namespace) -> int:
    from lanai.optimize.cli import run_optimize_command

    return run_optimize_command(args)


def _missing_extra(module: str) -> int:
    print(f"error: lanai optimize needs {module}: pip install 'lanai[optimize]'", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (getattr(args, "log_level", None) or "info").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if level != "DEBUG":  # a line per HTTP call (pair, drain, models activate, a registry's pulls) is not news
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.run(args) or 0)
    except LanaiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the machine's refusal (a read-only or full disk, permissions), not a bug of ours
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}. Hint: check that disk: free space, mounted read-write, "
              "permissions.", file=sys.stderr)  # fmt: skip
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
