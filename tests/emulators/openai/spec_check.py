"""Validate requests (and, optionally, our own answers) against OpenAI's official OpenAPI spec.

The spec is parsed once per process and cached as JSON under the temp dir (keyed by the YAML's mtime
and size), because YAML parsing takes most of a second and JSON loading a few milliseconds.

Two adjustments keep the validator honest without false positives on what the real SDK sends:
- `oneOf` becomes `anyOf`: the spec's unions are discriminated by `type`, but several branches
  overlap once the discriminator is ignored (a user message matches both `EasyInputMessage` and
  `InputMessage`), so strict `oneOf` would reject valid bodies.
- OpenAPI 3.0 leftovers (`nullable: true`) become `anyOf [schema, {type: null}]`.
The real API also rejects parameters it does not know ("Unknown parameter: 'input[0].name'."),
which JSON Schema alone does not say (the spec rarely sets `additionalProperties: false`);
`unknown_parameters()` walks the body beside the schema to find them.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ..specs import OPENAI_OPENAPI

SPEC_URI = "urn:openai-openapi"
API_PREFIX = "/v1"
_LOCK = threading.Lock()
_CHECKER: SpecChecker | None = None


@dataclass(frozen=True)
class Violation:
    """One way a request broke the spec: where (JSON pointer into the body) and what."""

    method: str
    path: str
    pointer: str
    message: str
    kind: str = "schema"  # schema | unknown_parameter | unknown_path | not_emulated | header | query
    param: str | None = None  # OpenAI-style dotted parameter name, e.g. "input[0].content"

    def __str__(self) -> str:
        where = f" at {self.pointer}" if self.pointer else ""
        return f"{self.method} {self.path}{where}: {self.message} [{self.kind}]"


@dataclass(frozen=True)
class Operation:
    template: str  # spec path, e.g. "/conversations/{conversation_id}/items"
    method: str
    spec: dict[str, Any]
    body_ref: str | None  # "#/components/schemas/…" of the JSON request body, if any


def spec_checker() -> SpecChecker:
    """The process-wide checker (built on first use)."""
    global _CHECKER
    with _LOCK:
        if _CHECKER is None:
            _CHECKER = SpecChecker(_load_spec(OPENAI_OPENAPI))
        return _CHECKER


def _load_spec(path: Path) -> dict[str, Any]:
    stat = path.stat()
    key = hashlib.sha256(f"{path}:{stat.st_mtime_ns}:{stat.st_size}".encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"openai-openapi-{key}.json"
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        pass
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open() as fh:
        spec = yaml.load(fh, Loader=loader)
    text = json.dumps(spec, default=str)  # dates in examples only
    tmp = cache.with_suffix(f".{threading.get_ident()}.tmp")
    tmp.write_text(text)
    tmp.replace(cache)
    return json.loads(text)


def _normalise(node: Any) -> Any:
    """oneOf → anyOf, nullable → anyOf[…, null], recursively (on a copy)."""
    if isinstance(node, list):
        return [_normalise(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _normalise(v) for k, v in node.items() if k not in ("discriminator", "nullable")}
    if "oneOf" in out:
        branches = out.pop("oneOf")
        out["anyOf"] = out["anyOf"] + branches if "anyOf" in out else branches
    if isinstance(out.get("allOf"), list):
        parts = [p for p in out["allOf"] if p != {}]
        if len(parts) != len(out["allOf"]):  # an `allOf: [{$ref}, {nullable: true}]` idiom
            out["allOf"] = parts
            return {"anyOf": [out, {"type": "null"}]}
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


class SpecChecker:
    """Knows every operation of the spec; validates bodies, query strings and outgoing objects."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        schemas = {name: _normalise(s) for name, s in spec["components"]["schemas"].items()}
        self._operations: list[tuple[re.Pattern[str], Operation]] = []
        for template, item in spec["paths"].items():
            if "?" in template:  # "?beta=true" duplicates of real paths
                continue
            for method, op in item.items():
                if method not in ("get", "post", "put", "patch", "delete"):
                    continue
                ref = self._body_ref(op, schemas, f"__{method}_{template}")
                self._operations.append(
                    (_template_regex(template), Operation(template, method.upper(), op, ref))
                )
        # Literal segments win over parameters: /responses/compact before /responses/{id}.
        self._operations.sort(key=lambda pair: (pair[1].template.count("{"), -len(pair[1].template)))
        self.schemas = schemas
        root = {"components": {"schemas": schemas}}
        resource = Resource(contents=root, specification=DRAFT202012)
        self._registry = Registry().with_resource(SPEC_URI, resource)
        self._validators: dict[str, Draft202012Validator] = {}
        self._branch_validators: dict[int, tuple[Any, Draft202012Validator]] = {}
        self._discriminated: dict[tuple[str, str], dict[str, str]] = {}

    @staticmethod
    def _body_ref(op: dict[str, Any], schemas: dict[str, Any], synthetic: str) -> str | None:
        schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return None
        if set(schema) == {"$ref"}:
            return schema["$ref"]
        name = re.sub(r"[^A-Za-z0-9_]", "_", synthetic)
        schemas[name] = _normalise(schema)
        return f"#/components/schemas/{name}"

    # -- lookups -------------------------------------------------------------------------------
    def operation(self, method: str, path: str) -> tuple[Operation | None, bool]:
        """(operation, path_known): the operation for METHOD /v1/…, and whether the path exists at all."""
        bare = path[len(API_PREFIX):] if path.startswith(API_PREFIX + "/") else None
        if bare is None:
            return None, False
        path_known = False
        for regex, op in self._operations:
            if regex.fullmatch(bare):
                path_known = True
                if op.method == method.upper():
                    return op, True
        return None, path_known

    def validator(self, ref: str) -> Draft202012Validator:
        found = self._validators.get(ref)
        if found is None:
            found = Draft202012Validator({"$ref": SPEC_URI + ref}, registry=self._registry)
            self._validators[ref] = found
        return found

    def schema_at(self, ref: str) -> dict[str, Any]:
        name = ref.rsplit("/", 1)[-1]
        return self.schemas[name]

    # -- checks --------------------------------------------------------------------------------
    def check_body(self, method: str, path: str, op: Operation, body: Any) -> list[Violation]:
        if op.body_ref is None:
            return []
        validator = self.validator(op.body_ref)
        found = [_violation(method, path, err) for err in _top_errors(validator, body)]
        if not found:
            root = {"$ref": op.body_ref}
            for pointer, param in self.unknown_parameters(root, body):
                found.append(Violation(method, path, pointer, f"Unknown parameter: '{param}'.",
                                       "unknown_parameter", param))
        return found

    def check_query(self, method: str, path: str, op: Operation, query: dict[str, str]) -> list[Violation]:
        found = []
        for param in op.spec.get("parameters", []):
            name = param.get("name", "")
            if param.get("in") != "query" or name not in query:
                continue
            schema = param.get("schema", {})
            value: Any = query[name]
            if schema.get("type") == "integer":
                try:
                    value = int(value)
                except ValueError:
                    found.append(Violation(method, path, "", f"query {name}={value!r} is not an integer",
                                           "query", name))
                    continue
            if "enum" in schema and value not in schema["enum"]:
                found.append(Violation(method, path, "", f"query {name}={value!r} not in {schema['enum']}",
                                       "query", name))
        return found

    def check_object(self, ref: str, payload: Any, where: str, discriminator: str | None = None) -> list[str]:
        """Validate something we send (a response body or stream event) against a spec schema.

        For a union of events, `discriminator` ("type" or "event") picks the branch to check, so the
        message says what is wrong with that event rather than "not valid under any of the schemas".
        """
        if discriminator is not None and isinstance(payload, dict):
            ref = self._branch_for(ref, discriminator, payload.get(discriminator)) or ref
        errors = _top_errors(self.validator(ref), payload)
        return [f"{where} {_pointer(err.absolute_path)}: {err.message[:300]}" for err in errors]

    def _branch_for(self, ref: str, key: str, value: Any) -> str | None:
        table = self._discriminated.get((ref, key))
        if table is None:
            table = {}
            for index, branch in enumerate(self._deref({"$ref": ref}).get("anyOf", [])):
                target = self._deref(branch)
                nested = target.get("anyOf")
                for sub_index, sub in enumerate(nested or [target]):
                    enum = self._deref(sub).get("properties", {}).get(key, {}).get("enum", [])
                    for name in enum:
                        if nested is None and "$ref" in branch:
                            table[name] = branch["$ref"]
                        else:
                            table[name] = self._synthetic(f"{ref}#{index}.{sub_index}", sub)
            self._discriminated[(ref, key)] = table
        return table.get(value)

    def _synthetic(self, key: str, schema: Any) -> str:
        name = "__branch_" + re.sub(r"[^A-Za-z0-9_]", "_", key)
        self.schemas[name] = schema
        return f"#/components/schemas/{name}"

    def unknown_parameters(self, schema: Any, value: Any, pointer: str = "",
                           param: str = "") -> list[tuple[str, str]]:
        """(JSON pointer, dotted name) of keys in `value` that no branch of `schema` accepting it declares."""
        if isinstance(value, dict):
            props, open_ended = self._declared(schema, value)
            found = []
            for key, item in value.items():
                child_ptr, child_param = f"{pointer}/{key}", (f"{param}.{key}" if param else key)
                if key in props:
                    found += self.unknown_parameters(props[key], item, child_ptr, child_param)
                elif not open_ended:
                    found.append((child_ptr, child_param))
            return found
        if isinstance(value, list):
            items = self._items(schema, value)
            found = []
            if items is not None:
                for index, item in enumerate(value):
                    found += self.unknown_parameters(items, item, f"{pointer}/{index}", f"{param}[{index}]")
            return found
        return []

    def _declared(self, schema: Any, value: Any, depth: int = 0) -> tuple[dict[str, Any], bool]:
        """Properties declared for an object `value` by `schema`, and whether other keys are allowed."""
        schema = self._deref(schema)
        if not isinstance(schema, dict) or depth > 30:
            return {}, True
        props = dict(schema.get("properties", {}))
        extra = schema.get("additionalProperties")
        open_ended = (extra is not None and extra is not False) or "patternProperties" in schema
        combined = "allOf" in schema or "anyOf" in schema
        if not props and not combined and extra is not False:
            open_ended = True  # `{}` or a bare `{type: object}`: anything goes
        for part in schema.get("allOf", []):
            sub, sub_open = self._declared(part, value, depth + 1)
            props.update({k: v for k, v in sub.items() if k not in props})
            open_ended = open_ended or sub_open
        if "anyOf" in schema:
            matching = [b for b in schema["anyOf"] if self._accepts(b, value)]
            if not matching:
                return props, True  # invalid anyway; the schema error says why
            for branch in matching:
                sub, sub_open = self._declared(branch, value, depth + 1)
                props.update({k: v for k, v in sub.items() if k not in props})
                open_ended = open_ended or sub_open
        return props, open_ended

    def _items(self, schema: Any, value: list[Any], depth: int = 0) -> Any:
        schema = self._deref(schema)
        if not isinstance(schema, dict) or depth > 30:
            return None
        if "items" in schema:
            return schema["items"]
        for part in schema.get("allOf", []):
            found = self._items(part, value, depth + 1)
            if found is not None:
                return found
        for branch in schema.get("anyOf", []):
            if self._accepts(branch, value):
                found = self._items(branch, value, depth + 1)
                if found is not None:
                    return found
        return None

    def _accepts(self, schema: Any, value: Any, depth: int = 0) -> bool:
        """Whether `value` is valid under `schema` — as `_matches`, without validating what cannot match:
        a branch whose enum for one of the object's properties (`type`, `role`…) leaves its value out is
        ruled out as validation would rule it out, and a schema that is only a union is valid where one of
        its branches is (so a union of 25 item types is not validated whole, each branch collecting its
        errors, for an item whose `type` names one of them)."""
        target = self._deref(schema)
        if not isinstance(target, dict) or depth > 30:
            return self._matches(schema, value)
        if isinstance(value, dict) and self._ruled_out(target, value):
            return False
        if "anyOf" in target and set(target) <= _UNION_ONLY:
            return any(self._accepts(branch, value, depth + 1) for branch in target["anyOf"])
        return self._matches(schema, value)

    def _ruled_out(self, schema: dict[str, Any], value: dict[str, Any]) -> bool:
        """A property of `value` (its `type`, a `role`…) holds a string the schema's enum or const for it
        does not allow: invalid, whatever else it holds."""
        declared = schema.get("properties")
        if not isinstance(declared, dict):
            return False
        for key, item in value.items():
            if isinstance(item, str) and key in declared:
                allowed = self._deref(declared[key])
                if isinstance(allowed, dict) and ("enum" in allowed or "const" in allowed) \
                        and item not in allowed.get("enum", [allowed.get("const")]):
                    return True
        return False

    def _matches(self, schema: Any, value: Any) -> bool:
        key = id(schema)
        entry = self._branch_validators.get(key)
        if entry is None:
            entry = (schema, Draft202012Validator(_rebase(schema), registry=self._registry))
            self._branch_validators[key] = entry  # keeps `schema` alive, so its id stays unique
        return entry[1].is_valid(value)

    def _deref(self, schema: Any) -> Any:
        for _ in range(20):
            if not (isinstance(schema, dict) and "$ref" in schema):
                break
            extra = {k: v for k, v in schema.items() if k != "$ref"}
            target = self.schema_at(schema["$ref"])
            schema = {**target, **extra} if extra else target
        return schema


# Keywords that leave a schema with an `anyOf` a pure union (annotations do not constrain a value).
_UNION_ONLY = frozenset({"anyOf", "title", "description", "discriminator", "x-oaiExpandable", "x-oaiMeta",
                         "x-stainless-naming", "deprecated", "example", "examples"})


def _rebase(schema: Any) -> Any:
    """Point local `#/components/...` refs at the registered spec resource."""
    if isinstance(schema, dict):
        return {k: (SPEC_URI + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else _rebase(v))
                for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rebase(x) for x in schema]
    return schema


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)))


def _top_errors(validator: Draft202012Validator, instance: Any) -> list[ValidationError]:
    errors = list(validator.iter_errors(instance))
    if not errors:
        return []
    best = best_match(errors)
    return [best] if best is not None else errors[:1]


def _pointer(path: Any) -> str:
    return "".join(f"/{p}" for p in path)


def dotted(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _violation(method: str, path: str, err: ValidationError) -> Violation:
    message = err.message if len(err.message) < 400 else err.message[:400] + "…"
    kind = "missing" if err.validator == "required" else "schema"
    param = dotted(err.absolute_path)
    if err.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", err.message)
        if missing:
            param = f"{param}.{missing[0]}" if param else missing[0]
    return Violation(method, path, _pointer(err.absolute_path), message, kind, param or None)

