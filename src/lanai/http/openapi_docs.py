"""The /docs page: every operation of the OpenAPI document as plain HTML.

Self-contained on purpose (inline CSS, no scripts, no fonts or files from elsewhere): the box may have
no internet. Everything taken from the document is HTML-escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["docs_html"]

Doc = dict[str, Any]

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;color:#222}
code,pre{font-family:ui-monospace,monospace;font-size:13px}pre{background:#f4f4f4;padding:.6rem;overflow-x:auto}
section{border-top:1px solid #ddd;padding:.3rem 0}h3{margin:.4rem 0;font-size:16px}nav a{margin-right:.8rem}
.m{display:inline-block;min-width:3.2rem;border-radius:3px;color:#fff;font-size:12px;text-align:center}
.get{background:#2b7a3d}.post{background:#1f5fa8}.id{color:#777;font-weight:normal;font-size:13px}
table{border-collapse:collapse;margin:.3rem 0}td,th{border:1px solid #ddd;padding:.15rem .45rem;text-align:left}
ul{margin:.3rem 0}
"""


def docs_html(document: Doc, base_url: str) -> str:
    """A page listing every operation of ``document``, with curl examples against ``base_url``."""
    info = document["info"]
    base = base_url.rstrip("/")
    examples = (
        f"curl -F file=@photo.jpg '{base}/v1/models/MODEL/classify?top_k=3'\n"
        f"curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg' {base}/predict"
    )
    tags = [tag["name"] for tag in document["tags"]]
    body = [
        f"<h1>{escape(info['title'])} {escape(info['version'])}</h1><p>{escape(info['summary'])}</p>",
        f"<p>{escape(info['description'])}</p>",
        '<p>Generate a client from <a href="openapi.json">openapi.json</a> (OpenAPI 3.1). Classify a photo:</p>',
        f"<pre>{escape(examples, quote=False)}</pre>",
        "<nav>" + "".join(f'<a href="#{escape(t)}">{escape(t)}</a>' for t in tags) + "</nav>",
    ]
    operations = [(path, method, op) for path, item in document["paths"].items() for method, op in item.items()]
    for tag in document["tags"]:
        body.append(f'<h2 id="{escape(tag["name"])}">{escape(tag["name"])}</h2><p>{escape(tag["description"])}</p>')
        body.extend(_operation(document, *entry) for entry in operations if tag["name"] in entry[2]["tags"])
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(info["title"])} API</title>'
        f'<meta name="viewport" content="width=device-width"><style>{_CSS}</style></head>'
        f"<body>{''.join(body)}</body></html>"
    )


def _operation(document: Doc, path: str, method: str, op: Doc) -> str:
    op_id = escape(op["operationId"])
    parts = [
        f'<section id="{op_id}"><h3><span class="m {escape(method)}">{escape(method.upper())}</span> '
        f'<code>{escape(path)}</code> <span class="id">{op_id}</span></h3><p>{escape(op["summary"])}</p>'
    ]
    if "description" in op:
        parts.append(f"<p>{escape(op['description'])}</p>")
    params = [_resolve(document, p) for p in op.get("parameters", [])]
    if params:
        parts.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th></th><th></th></tr>")
        parts.extend(_parameter_row(p) for p in params)
        parts.append("</table>")
    if "requestBody" in op:
        body = _resolve(document, op["requestBody"])
        required = " (required)" if body.get("required") else " (optional)"
        parts.append(f"<p>Body{required}: {_content(body['content'])}</p>")
        if "description" in body:
            parts.append(f"<p>{escape(body['description'])}</p>")
    parts.append("<ul>")
    for status, response in op["responses"].items():
        response = _resolve(document, response)
        headers = "".join(f", header <code>{escape(h)}</code>" for h in response.get("headers", {}))
        parts.append(
            f"<li><b>{escape(status)}</b> {escape(response['description'])} "
            f"{_content(response.get('content', {}))}{headers}</li>"
        )
    parts.append("</ul></section>")
    return "".join(parts)


def _parameter_row(param: Doc) -> str:
    schema = param.get("schema", {})
    kind = _type_name(schema) + (f" (default {schema['default']})" if "default" in schema else "")
    return (
        f"<tr><td><code>{escape(param['name'])}</code></td><td>{escape(param['in'])}</td><td>{escape(kind)}</td>"
        f"<td>{'required' if param.get('required') else ''}</td><td>{escape(param.get('description', ''))}</td></tr>"
    )


def _content(content: Doc) -> str:
    return ", ".join(
        f"<code>{escape(media_type)}</code> {escape(_type_name(media.get('schema', {})))}"
        for media_type, media in content.items()
    )


def _type_name(schema: Doc) -> str:
    if "$ref" in schema:
        return str(schema["$ref"].rsplit("/", 1)[-1])
    if schema.get("type") == "array":
        return _type_name(schema.get("items", {})) + "[]"
    if "properties" in schema:
        fields = (f"{name}: {_type_name(sub)}" for name, sub in schema["properties"].items())
        return "{" + ", ".join(fields) + "}"
    return str(schema.get("format") or schema.get("type") or "any")


def _resolve(document: Doc, node: Doc) -> Doc:
    """``node`` with a local ``$ref`` replaced by its target (sibling keys of the reference win)."""
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node
