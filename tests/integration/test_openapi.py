"""docs/contracts/openapi.yaml against the real patron-api.

1. The document itself: OpenAPI 3.0 structure (version, paths, operations,
   path parameters, responses, $refs, security schemes, schema keywords),
   and every schema, turned into JSON Schema, valid by jsonschema's
   meta-schema check. Debian has no OpenAPI validator; these checks are ours.
2. Every route patron-api's sources name is in the document.
3. A real stack — redis-server, patron-devkafka, patron-ingest,
   patron-trigger (a cross-sell campaign, so that statistics and recommended
   items exist) and patron-api with a token — gets a few customers' events;
   then every route is called, on its success and on its error paths, and
   each answer's status must be documented for its operation and its body
   must match the documented schema. Objects are checked strictly: a field
   the answer has and the document lacks fails, as does one the document
   requires and the answer lacks. Then Redis is killed and the 503 paths are
   checked the same way.
4. Operations marked `x-patron-status: new` are called too: validated when
   the server answers them, skipped while it answers "no such route".
5. Every other operation must have been seen answering with a 2xx.
6. The checks must be able to fail: a copy of the document with a field
   renamed, and one with a status removed, must each be rejected by the
   recorded answers.

PATRON_OPENAPI_DOC=path validates another document (to see it fail).
"""
import copy
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import SRC, Stack, wait_for  # noqa: E402
from harness import proto_modules as harness_proto_modules  # noqa: E402

import jsonschema  # noqa: E402  Debian's python3-jsonschema
import yaml  # noqa: E402  Debian's python3-yaml

DOC = os.environ.get("PATRON_OPENAPI_DOC") or os.path.join(SRC, "docs", "contracts", "openapi.yaml")
TOKEN = "openapi-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TOPICS = {"patron.events": 2, "patron.catalog": 1, "patron.profile-updates": 2, "patron.dlq": 1,
          "patron.campaign.sms": 1, "patron.campaign.push": 1, "patron.campaign.email": 1}
CAMPAIGNS = """
defaults:
  control_group_percent: 50
campaigns:
  - id: cross-sell
    when: { event: purchase }
    channel: email
    template: you_may_also_like
    recommendations: 2
    variants:
      - { id: A, weight: 1 }
      - { id: B, weight: 1 }
"""
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The Schema Object of OpenAPI 3.0: JSON Schema's subset plus its own keywords.
SCHEMA_KEYWORDS = {
    "title", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems",
    "maxProperties", "minProperties", "required", "enum", "type", "allOf", "oneOf", "anyOf",
    "not", "items", "properties", "additionalProperties", "description", "format", "default",
    "nullable", "discriminator", "readOnly", "writeOnly", "xml", "externalDocs", "example",
    "deprecated", "$ref"}
OPENAPI_ONLY = {"nullable", "discriminator", "readOnly", "writeOnly", "xml", "externalDocs",
                "example", "deprecated"}
TYPES = {"string", "number", "integer", "boolean", "array", "object"}


# ---- the document -----------------------------------------------------------

def resolve(doc, node):
    """Follows local $refs ("#/components/..."); raises KeyError on a dangling one."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise KeyError(f"non-local $ref {ref}")
        node = doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        seen += 1
        if seen > 32:
            raise KeyError(f"$ref cycle at {ref}")
    return node


def to_json_schema(doc, schema, strict=True):
    """An OpenAPI 3.0 Schema Object as a JSON Schema (draft 4): $refs inlined,
    `nullable` as a "null" type, OpenAPI's own keywords dropped. strict: an
    object with `properties` and no `additionalProperties` admits no other
    field (not inside allOf, whose branches each see only their part)."""
    s = resolve(doc, schema)
    if not isinstance(s, dict):
        return s
    out = {}
    for k, v in s.items():
        if k in OPENAPI_ONLY or k.startswith("x-"):
            continue
        if k == "properties":
            out[k] = {name: to_json_schema(doc, sub, strict) for name, sub in v.items()}
        elif k in ("items", "not"):
            out[k] = to_json_schema(doc, v, strict)
        elif k == "additionalProperties" and isinstance(v, dict):
            out[k] = to_json_schema(doc, v, strict)
        elif k == "allOf":
            out[k] = [to_json_schema(doc, sub, False) for sub in v]
        elif k in ("oneOf", "anyOf"):
            out[k] = [to_json_schema(doc, sub, strict) for sub in v]
        else:
            out[k] = copy.deepcopy(v)
    if s.get("nullable") is True:
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]
    if strict and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def schema_findings(doc, schema, where):
    """OpenAPI 3.0 Schema Object rules jsonschema's meta-schema does not know."""
    f = []
    try:
        s = resolve(doc, schema)
    except KeyError as e:
        return [f"{where}: {e}"]
    if not isinstance(s, dict):
        return [f"{where}: a schema must be an object"]
    if "$ref" in schema and len(schema) > 1:
        f.append(f"{where}: siblings of $ref are ignored in OpenAPI 3.0")
    for k in s:
        if k not in SCHEMA_KEYWORDS and not k.startswith("x-"):
            f.append(f"{where}: '{k}' is not a keyword of an OpenAPI 3.0 schema")
    if "type" in s and (not isinstance(s["type"], str) or s["type"] not in TYPES):
        f.append(f"{where}: type {s['type']!r} (OpenAPI 3.0 has one type; null is `nullable`)")
    if s.get("type") == "array" and "items" not in s:
        f.append(f"{where}: an array needs items")
    if "nullable" in s and not isinstance(s["nullable"], bool):
        f.append(f"{where}: nullable must be a boolean")
    for name in s.get("required", []):
        if name not in s.get("properties", {}) and "allOf" not in s:
            f.append(f"{where}: requires '{name}', which it does not define")
    for name, sub in s.get("properties", {}).items():
        f += schema_findings(doc, sub, f"{where}.{name}")
    for k in ("items", "not"):
        if k in s:
            f += schema_findings(doc, s[k], f"{where}.{k}")
    if isinstance(s.get("additionalProperties"), dict):
        f += schema_findings(doc, s["additionalProperties"], f"{where}.additionalProperties")
    for k in ("allOf", "oneOf", "anyOf"):
        for i, sub in enumerate(s.get(k, [])):
            f += schema_findings(doc, sub, f"{where}.{k}[{i}]")
    return f


def media_findings(doc, content, where):
    f = []
    for media, m in (content or {}).items():
        if "schema" not in m:
            f.append(f"{where} {media}: no schema")
            continue
        f += schema_findings(doc, m["schema"], f"{where} {media}")
        try:
            jsonschema.Draft4Validator.check_schema(to_json_schema(doc, m["schema"]))
        except (jsonschema.SchemaError, KeyError) as e:
            f.append(f"{where} {media}: not a valid schema: {e}")
    return f


def document_findings(doc):
    """What makes `doc` not a valid OpenAPI 3.0 document, as far as checked here."""
    f = []
    if not re.fullmatch(r"3\.0\.\d+", str(doc.get("openapi", ""))):
        f.append(f"openapi: {doc.get('openapi')!r} is not 3.0.x")
    info = doc.get("info") or {}
    if not isinstance(info.get("title"), str) or not isinstance(info.get("version"), str):
        f.append("info needs a title and a version, both strings")
    schemes = (doc.get("components") or {}).get("securitySchemes") or {}
    for name, sch in schemes.items():
        if sch.get("type") not in ("apiKey", "http", "oauth2", "openIdConnect"):
            f.append(f"securitySchemes.{name}: unknown type {sch.get('type')!r}")
    op_ids = set()
    paths = doc.get("paths")
    if not isinstance(paths, dict) or not paths:
        return f + ["paths: none"]
    for path, item in paths.items():
        if not path.startswith("/"):
            f.append(f"{path}: a path starts with /")
        for key in item:
            if key not in METHODS and key not in ("parameters", "summary", "description", "servers") \
                    and not key.startswith("x-"):
                f.append(f"{path}: '{key}' is not a field of a Path Item")
        templated = set(re.findall(r"\{([^}/]+)\}", path))
        for method in (m for m in METHODS if m in item):
            op, where = item[method], f"{method.upper()} {path}"
            oid = op.get("operationId")
            if oid in op_ids:
                f.append(f"{where}: operationId {oid} is not unique")
            op_ids.add(oid)
            params = []
            for p in item.get("parameters", []) + op.get("parameters", []):
                try:
                    params.append(resolve(doc, p))
                except KeyError as e:
                    f.append(f"{where}: {e}")
            in_path = set()
            for p in params:
                if p.get("in") not in ("query", "header", "path", "cookie") or not p.get("name"):
                    f.append(f"{where}: a parameter needs a name and `in`")
                if "schema" not in p and "content" not in p:
                    f.append(f"{where}: parameter {p.get('name')} has no schema")
                else:
                    f += schema_findings(doc, p.get("schema", {}), f"{where} parameter {p.get('name')}")
                if p.get("in") == "path":
                    in_path.add(p.get("name"))
                    if p.get("required") is not True:
                        f.append(f"{where}: path parameter {p.get('name')} must be required")
            if in_path != templated:
                f.append(f"{where}: path parameters {sorted(in_path)} != template {sorted(templated)}")
            for req in op.get("security", []):
                for name in req:
                    if name not in schemes:
                        f.append(f"{where}: security scheme {name} is not defined")
            responses = op.get("responses")
            if not isinstance(responses, dict) or not responses:
                f.append(f"{where}: no responses")
                continue
            for code, r in responses.items():
                if code != "default" and not re.fullmatch(r"[1-5](\d\d|XX)", str(code)):
                    f.append(f"{where}: response key {code!r}")
                try:
                    r = resolve(doc, r)
                except KeyError as e:
                    f.append(f"{where} {code}: {e}")
                    continue
                if not isinstance(r.get("description"), str):
                    f.append(f"{where} {code}: a response needs a description")
                f += media_findings(doc, r.get("content"), f"{where} {code}")
    for name, s in ((doc.get("components") or {}).get("schemas") or {}).items():
        f += schema_findings(doc, s, f"components.schemas.{name}")
    return f


def operation(doc, method, path):
    """(template, operation) serving `method path`; (template, None) when the
    path is documented for other methods only; (None, None) when it is not."""
    method = "get" if method == "HEAD" else method.lower()
    found = None
    for template, item in doc["paths"].items():
        rx = "^" + re.sub(r"\\\{[^}/]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(rx, path):
            if method in item:
                return template, item[method]
            found = found or template
    return found, None


def answer_findings(doc, call):
    """Why a recorded answer does not match the document; [] when it does."""
    method, path, status, ctype, raw = call["method"], call["path"], call["status"], call["ctype"], call["raw"]
    where = f"{method} {path} -> {status}"
    if call.get("schema"):  # an undocumented path: checked against one schema only
        return [f"{where}: {e.message} at {list(e.absolute_path)}"
                for e in jsonschema.Draft4Validator(to_json_schema(doc, call["schema"])).iter_errors(json.loads(raw))]
    template, op = operation(doc, method, call["route"])
    if op is None and template is not None:
        # a method the path does not have: 405 and the error body
        if status != 405:
            return [f"{where}: {method} is not documented for {template}, so 405 is due"]
        return answer_findings(doc, dict(call, schema=doc["components"]["schemas"]["Error"]))
    if op is None:
        return [f"{where}: no operation in the document"]
    responses = op["responses"]
    r = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") or responses.get("default")
    if r is None:
        return [f"{where}: status {status} is not documented for {method} {template}"]
    r = resolve(doc, r)
    content = r.get("content") or {}
    media = ctype.split(";")[0].strip()
    if not content:
        return []
    if media not in content:
        return [f"{where}: Content-Type {media} is not among {sorted(content)}"]
    if method == "HEAD":
        return []
    if media != "application/json":
        return []
    try:
        body = json.loads(raw)
    except ValueError as e:
        return [f"{where}: not JSON: {e}"]
    v = jsonschema.Draft4Validator(to_json_schema(doc, content[media]["schema"]))
    return [f"{where}: {e.message} at {list(e.absolute_path)}" for e in v.iter_errors(body)]


def api_route_findings(doc):
    """Routes named in services/api/*.c and the service shell that the document lacks."""
    texts = []
    for d, names in ((os.path.join(SRC, "services", "api"), None),
                     (os.path.join(SRC, "services", "core", "io"), ("service.c",))):
        for n in sorted(os.listdir(d)):
            if n.endswith(".c") and (names is None or n in names):
                with open(os.path.join(d, n)) as fh:
                    texts.append(fh.read())
    text = "\n".join(texts)
    paths = list(doc["paths"])
    f = []
    for lit in sorted(set(re.findall(r'"(/(?:v1/|healthz|readyz|metrics)[a-z/_-]*)"', text))):
        if not any(p.startswith(lit) for p in paths):
            f.append(f"the code serves {lit}, the document has no path starting so")
    for suffix in sorted(set(re.findall(r'strcmp\((?:rest|slash), "(/[a-z_-]+)"\)', text))):
        if not any(p.endswith(suffix) for p in paths):
            f.append(f"the code serves .../{suffix.strip('/')}, the document has no such path")
    return f


# ---- the stack ----------------------------------------------------------------

def proto_modules(build_dir):
    """The event and catalog contracts compiled for Python (the harness's)."""
    event_pb2 = harness_proto_modules(build_dir)
    from patron.v1 import catalog_pb2
    return event_pb2, catalog_pb2


def request(port, method, path, headers=None, body=None):
    """(status, Content-Type, raw body) of one request; redirects are not followed."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.getheader("Content-Type", ""), r.read()
    finally:
        c.close()


def json_of(port, path, headers=None):
    status, _, raw = request(port, "GET", path, headers)
    return status, (json.loads(raw) if raw[:1] in (b"{", b"[") else raw)


def produce_events(brokers, pb, cpb):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": brokers})
    titles = {"i1": ("Mug", "home"), "i2": ("Teapot", "home"), "i3": ("Candle", "home"),
              "i4": ("Scarf", "fashion"), "i5": ("Gloves", "fashion")}
    for item, (title, cat) in titles.items():
        u = cpb.ItemUpdate(item_id=item, category=cat, price_cents=1500, in_stock=True, title=title)
        p.produce("patron.catalog", key=item.encode(), value=u.SerializeToString())
    t0 = int(time.time() * 1000) - 120_000
    baskets = [["i1", "i2"], ["i1", "i3"], ["i2", "i3"], ["i4", "i5"], ["i1", "i4"], ["i2", "i5"],
               ["i3", "i6"], ["i1", "i5"]]
    n = 0

    def send(ev):
        nonlocal n
        n += 1
        ev.event_id = f"oa-{n}"
        p.produce("patron.events", key=(ev.customer_id or ev.anonymous_id).encode(),
                  value=ev.SerializeToString())

    for i, basket in enumerate(baskets):
        c = f"c{i}"
        e = pb.Event(customer_id=c, occurred_at_ms=t0 + i)
        e.consent.channel = pb.EMAIL
        e.consent.granted = True
        send(e)
        e = pb.Event(customer_id=c, occurred_at_ms=t0 + 100 + i)
        e.customer.time_zone = "Europe/London"
        e.customer.locale = "en-GB"
        e.customer.birthday = "05-14"
        e.customer.country = "United Kingdom"
        send(e)
        e = pb.Event(customer_id=c, occurred_at_ms=t0 + 1000 + i)
        e.view.item_id = basket[0]
        e.view.category = titles.get(basket[0], ("", "misc"))[1]
        send(e)
        e = pb.Event(customer_id=c, occurred_at_ms=t0 + 2000 + i)
        e.purchase.order_id = f"o{i}"
        for item in basket:
            e.purchase.items.add(item_id=item, category=titles.get(item, ("", "misc"))[1], quantity=1,
                                 unit_price_cents=1500)
        send(e)
    for i in range(0, len(baskets), 2):  # a second purchase converts the first message
        e = pb.Event(customer_id=f"c{i}", occurred_at_ms=t0 + 60_000 + i)
        e.purchase.items.add(item_id="i5", category="fashion", quantity=2,
                             unit_price_cents=2500)
        send(e)
    e = pb.Event(customer_id="c1", occurred_at_ms=t0 + 61_000)
    e.refund.amount_cents = 500
    send(e)
    e = pb.Event(customer_id="c1", occurred_at_ms=t0 + 62_000)
    e.review.item_id = "i1"
    e.review.rating = 5
    send(e)
    # a browser: no purchase, no consent, no birthday (nulls in its profile)
    e = pb.Event(customer_id="browser", occurred_at_ms=t0 + 3000)
    e.view.item_id = "i2"
    e.view.category = "home"
    send(e)
    e = pb.Event(customer_id="browser", occurred_at_ms=t0 + 3100)
    e.cart_add.item.item_id = "i3"
    e.cart_add.item.quantity = 2
    e.cart_add.item.unit_price_cents = 1500
    send(e)
    # visitors: one still anonymous, one identified by c3 (its profile then c3's)
    for v in ("visitor-1", "visitor-2"):
        e = pb.Event(anonymous_id=v, occurred_at_ms=t0 + 3200)
        e.view.item_id, e.view.category = "i4", "fashion"
        send(e)
    e = pb.Event(customer_id="c3", occurred_at_ms=t0 + 3300)
    e.identify.anonymous_id = "visitor-2"
    send(e)
    assert p.flush(15) == 0


# ---- the test -------------------------------------------------------------------

def main():
    with open(DOC) as fh:
        doc = yaml.safe_load(fh)
    bad = document_findings(doc)
    assert not bad, "the document is not valid OpenAPI 3.0:\n  " + "\n  ".join(bad)
    bad = api_route_findings(doc)
    assert not bad, "routes missing from the document:\n  " + "\n  ".join(bad)
    new_ops = {(m.upper(), p) for p, item in doc["paths"].items() for m in METHODS
               if m in item and item[m].get("x-patron-status") == "new"}

    with Stack("openapi") as st:
        pb, cpb = proto_modules(st.dir)
        st.start_redis()
        brokers = st.start_kafka(TOPICS)
        campaigns = os.path.join(st.dir, "campaigns.yaml")
        with open(campaigns, "w") as fh:
            fh.write(CAMPAIGNS)
        st.start_service("patron-ingest")
        trigger = st.start_service("patron-trigger", PATRON_CAMPAIGNS=campaigns)
        # snapshots (and the models' fits) every second, so that the clusters exist
        api = st.start_service("patron-api", PATRON_API_TOKEN=TOKEN, PATRON_DASHBOARD_REFRESH_MS="1000")
        port = api.http_port
        produce_events(brokers, pb, cpb)

        def settled():
            s, stats = json_of(port, "/v1/campaigns/stats", AUTH)
            s2, rec = json_of(port, "/v1/dashboard/recommended", AUTH)
            s3, prof = json_of(port, "/v1/customers/c6/profile", AUTH)
            s4, prof2 = json_of(port, "/v1/customers/browser/profile", AUTH)
            decided = sum(r["sent"] + r["suppressed"]["control_group"] for r in stats["campaigns"]) \
                if s == 200 else 0
            converted = sum(r["conversions"] + r["control"]["conversions"] for r in stats["campaigns"]) \
                if s == 200 else 0
            s5, model = json_of(port, "/v1/model", AUTH)
            s6, c3 = json_of(port, "/v1/customers/c3/profile", AUTH)
            s7, _ = json_of(port, "/v1/visitors/visitor-1/profile", AUTH)
            return decided >= 8 and converted >= 1 and s2 == 200 and rec["items"] and s3 == 200 \
                and s4 == 200 and prof2["cart"] and s5 == 200 and model["clusters"] \
                and model["clusters"]["customers"] == model["snapshot"]["customers"] \
                and s6 == 200 and c3["merged_visitors"] and s7 == 200
        wait_for("events applied, campaigns decided and converted", settled, timeout=90, interval=0.5)

        calls = []

        def call(method, path, headers=AUTH, want=None, schema=None, body=None):
            status, ctype, raw = request(port, method, path, headers, body)
            route = path.split("?", 1)[0]
            c = {"method": method, "path": path, "route": route, "status": status, "ctype": ctype,
                 "raw": raw, "schema": schema}
            if want is not None:
                assert status == want, f"{method} {path}: {status} {raw[:300]!r}, want {want}"
            calls.append(c)
            return c

        long_id = "x" * 65
        # success paths
        call("GET", "/v1/customers/c0/recommendations", want=200)
        call("GET", "/v1/customers/c0/recommendations?limit=3&category=home", want=200)
        call("GET", "/v1/customers/stranger/recommendations?limit=2", want=200)
        call("GET", "/v1/items/i1/similar?limit=5", want=200)
        call("GET", "/v1/items/nothing-like-it/similar", want=200)
        for c in ("c0", "c1", "c3", "c6", "browser"):
            call("GET", f"/v1/customers/{c}/profile", AUTH, want=200)
        for v in ("visitor-1", "visitor-2"):  # a visitor, and one identified: its customer's
            call("GET", f"/v1/visitors/{v}/profile", AUTH, want=200)
            call("GET", f"/v1/visitors/{v}/recommendations?limit=3", want=200)
        call("GET", "/v1/visitors/stranger/recommendations?category=home", want=200)
        call("GET", "/v1/campaigns/stats", want=200)
        call("GET", "/v1/campaigns/daily", want=200)
        call("GET", "/v1/campaigns/daily?days=7&campaign=cross-sell", want=200)
        call("GET", "/v1/dashboard/customers", want=200)
        call("GET", "/v1/dashboard/history", want=200)
        call("GET", "/v1/dashboard/history?days=3", want=200)
        call("GET", "/v1/dashboard/recommended?limit=5", want=200)
        call("GET", "/v1/dashboard/recommended", want=200)
        call("GET", "/v1/segments/clusters", want=200)
        call("GET", "/v1/model", want=200)
        call("GET", "/", want=200)
        call("GET", "/dashboard/app.js", want=200)
        call("GET", "/dashboard/style.css", want=200)
        call("HEAD", "/dashboard/index.html", want=200)
        call("GET", "/healthz", want=200)
        call("GET", "/readyz", want=200)
        metrics = call("GET", "/metrics", want=200)
        for line in metrics["raw"].decode().splitlines():
            assert line.startswith("# ") or re.fullmatch(
                r"[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eEInfaN]+", line), f"/metrics: {line!r}"
        # error paths
        for q in ("limit=0", "limit=101", "limit=ten", "category="):
            call("GET", f"/v1/customers/c0/recommendations?{q}", want=400)
        call("GET", f"/v1/customers/{long_id}/recommendations", want=400)
        call("POST", "/v1/customers/c0/recommendations", want=405)
        call("GET", "/v1/items/i1/similar?limit=1000", want=400)
        call("DELETE", "/v1/items/i1/similar", want=405)
        # with PATRON_API_TOKEN set, every route but the probes needs it
        call("GET", "/v1/customers/c0/profile", {}, want=401)
        call("GET", "/v1/customers/c0/profile", {"Authorization": "Bearer wrong"}, want=401)
        call("GET", "/v1/customers/c0/recommendations", {}, want=401)
        call("GET", "/v1/items/i1/similar", {"Authorization": "Bearer wrong"}, want=401)
        call("GET", "/v1/campaigns/stats", {}, want=401)
        call("GET", "/v1/dashboard/customers", {}, want=401)
        call("GET", "/v1/dashboard/recommended", {}, want=401)
        call("GET", "/dashboard/app.js", {}, want=401)
        login_page = call("GET", "/", {}, want=401)
        assert b'name="token"' in login_page["raw"], login_page["raw"][:300]
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        call("POST", "/dashboard/login", form, want=401, body=b"token=wrong")
        call("POST", "/dashboard/login", form, want=303, body=f"token={TOKEN}".encode())
        call("GET", "/dashboard/login", {}, want=405)
        for path in ("/healthz", "/readyz", "/metrics"):
            call("GET", path, {}, want=200)
        call("GET", "/v1/customers/nobody/profile", AUTH, want=404)
        call("GET", "/v1/visitors/nobody/profile", AUTH, want=404)
        call("GET", f"/v1/visitors/{long_id}/profile", AUTH, want=400)
        call("GET", f"/v1/visitors/{long_id}/recommendations", want=400)
        call("GET", "/v1/visitors/visitor-1/recommendations?limit=0", want=400)
        call("POST", "/v1/visitors/visitor-1/profile", AUTH, want=405)
        call("DELETE", "/v1/visitors/visitor-1/recommendations", want=405)
        call("GET", "/v1/visitors/visitor-1/profile", {}, want=401)
        call("GET", "/v1/visitors/visitor-1/recommendations", {}, want=401)
        call("GET", f"/v1/customers/{long_id}/profile", AUTH, want=400)
        call("POST", "/v1/customers/c0/profile", AUTH, want=405)
        call("GET", "/v1/customers/c0", AUTH, want=405)
        call("DELETE", "/v1/customers/c0", {}, want=401)
        call("DELETE", f"/v1/customers/{long_id}", AUTH, want=400)
        call("POST", "/v1/campaigns/stats", want=405)
        call("GET", "/v1/campaigns/daily?days=0", want=400)
        call("GET", "/v1/campaigns/daily?campaign=Nope", want=400)
        call("POST", "/v1/campaigns/daily", want=405)
        call("GET", "/v1/dashboard/history?days=401", want=400)
        call("DELETE", "/v1/dashboard/history", want=405)
        call("POST", "/v1/dashboard/customers", want=405)
        call("GET", "/v1/dashboard/recommended?limit=0", want=400)
        call("DELETE", "/v1/dashboard/recommended", want=405)
        call("POST", "/v1/segments/clusters", want=405)
        call("PUT", "/v1/model", want=405)
        call("GET", "/dashboard/missing.js", want=404)
        call("POST", "/", want=405)
        call("GET", "/v1/no/such/route", want=404, schema=doc["components"]["schemas"]["Error"])
        # erasure: accepted, then the profile is gone
        call("DELETE", "/v1/customers/c7", AUTH, want=202)
        wait_for("c7 erased", lambda: request(port, "GET", "/v1/customers/c7/profile", AUTH)[0] == 404,
                 timeout=30)
        call("GET", "/v1/customers/c7/profile", AUTH, want=404)

        # the operations new in this release: validated when served
        skipped = []
        for method, template in sorted(new_ops):
            path = template.replace("{anonymous_id}", "visitor-1")
            c = call(method, path, AUTH)
            if c["status"] == 404 and b"no such route" in c["raw"]:
                calls.remove(c)
                skipped.append(f"{method} {template}")

        # Redis gone: readiness and every Redis-backed route say 503
        st.redis.send_signal(signal.SIGKILL)
        st.redis.wait()
        wait_for("api not ready", lambda: request(port, "GET", "/readyz")[0] == 503, timeout=30)
        call("GET", "/readyz", want=503)
        call("GET", "/v1/customers/c0/profile", AUTH, want=503)
        call("GET", "/v1/visitors/visitor-1/profile", AUTH, want=503)
        call("GET", "/v1/visitors/stranger/recommendations", want=503)
        call("GET", "/v1/customers/stranger/recommendations", want=503)
        call("GET", "/v1/campaigns/stats", want=503)
        call("GET", "/v1/campaigns/daily", want=503)
        call("GET", "/v1/dashboard/history", want=503)
        call("GET", "/v1/dashboard/recommended", want=503)
        call("GET", "/v1/dashboard/customers")  # the last snapshot, or 503
        call("GET", "/v1/items/i1/similar")  # cached, or 503
        assert trigger.poll() is None, "patron-trigger died"

        # every answer as documented
        bad = [f for c in calls for f in answer_findings(doc, c)]
        assert not bad, f"{len(bad)} answers differ from the document:\n  " + "\n  ".join(bad[:40])

        # every operation in use today succeeded at least once (a 2xx, or the login's 303)
        seen = {(c["method"].replace("HEAD", "GET"), operation(doc, c["method"], c["route"])[0])
                for c in calls if 200 <= c["status"] < 400}
        missing = [f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in METHODS
                   if m in item and (m.upper(), p) not in new_ops and (m.upper(), p) not in seen]
        assert not missing, f"operations never answered with success: {missing}"

        # the checks can fail: a renamed field, a status removed
        broken = copy.deepcopy(doc)
        prof = broken["components"]["schemas"]["Profile"]
        prof["properties"]["order_count"] = prof["properties"].pop("orders")
        prof["required"] = ["order_count" if r == "orders" else r for r in prof["required"]]
        row = broken["components"]["schemas"]["CampaignRow"]
        row["properties"]["sends"] = row["properties"].pop("sent")
        row["required"] = ["sends" if r == "sent" else r for r in row["required"]]
        got = [f for c in calls for f in answer_findings(broken, c)]
        assert any("order_count" in f for f in got), f"a renamed profile field went unnoticed: {got[:5]}"
        assert any("'orders'" in f for f in got), f"an undocumented profile field went unnoticed: {got[:5]}"
        assert any("sends" in f for f in got), f"a renamed statistics field went unnoticed: {got[:5]}"
        broken = copy.deepcopy(doc)
        del broken["paths"]["/v1/customers/{customer_id}/profile"]["get"]["responses"]["401"]
        got = [f for c in calls for f in answer_findings(broken, c)]
        assert any("status 401 is not documented" in f for f in got), got[:5]
        broken = copy.deepcopy(doc)
        broken["paths"]["/v1/customers/{customer_id}/profile"]["get"]["parameters"] = []
        broken["components"]["schemas"]["Profile"]["properties"]["tier"] = {"type": ["string", "null"]}
        got = document_findings(broken)
        assert any("path parameters" in f for f in got) and any("one type" in f for f in got), got

        n_ops = len({(c["method"], operation(doc, c["method"], c["route"])[0]) for c in calls})
        print(f"ok: {len(calls)} answers over {n_ops} operations match {os.path.relpath(DOC, SRC)}"
              + (f"; not served yet: {', '.join(skipped)}" if skipped else ""))


if __name__ == "__main__":
    main()
