#!/usr/bin/env python3
"""Validates JSON documents against a JSON Schema with Python's `jsonschema` (the
reference validator; moto's server depends on it, so install-deps.sh installs it).

usage: validate_json.py SCHEMA [--component NAME | --at POINTER] INSTANCE

SCHEMA is a JSON Schema file, or with --component an OpenAPI 3.1 document, whose
`components.schemas.NAME` is then the schema (with --at, the schema at that JSON pointer
in the document, such as an operation's response). INSTANCE holds one JSON document or several
(concatenated or one per line, as `probe --watch --json` prints them).

The check is stricter than the published schema, which lets readers ignore fields added
later: every object must have only the properties its schema names, so a field a command
prints but its schema omits fails here. Exit status 0 when every document is valid, 1
with each error's path otherwise, 2 when the schema itself is not valid JSON Schema.
"""

import json
import sys

import jsonschema

COMBINATORS = ("allOf", "oneOf", "anyOf")
SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
SCHEMA_VALUES = ("items", "additionalProperties", "not", "if", "then", "else", "contains",
                 "propertyNames", "unevaluatedItems")


def shared_defs(node, found=None, inside_object=False):
    """The names of definitions a `$ref` reaches from inside an object that has
    properties of its own (serde's newtype variant of an internally tagged enum: the tag
    beside a `$ref` to the struct). Those must stay open: the object closes over both."""
    if found is None:
        found = set()
    if isinstance(node, dict):
        has_props = "properties" in node
        ref = node.get("$ref")
        if isinstance(ref, str) and (has_props or inside_object):
            found.add(ref.rsplit("/", 1)[-1])
        for key, value in node.items():
            if key in COMBINATORS:
                for branch in value:
                    shared_defs(branch, found, inside_object or has_props)
            else:
                shared_defs(value, found)
    elif isinstance(node, list):
        for v in node:
            shared_defs(v, found)
    return found


def close_objects(node, shared, inside_object=False):
    """Adds `unevaluatedProperties: false` to the outermost schema of every object (the
    one that has the properties, or combines the branches that do). A branch of an object
    that has properties of its own is left open, and so is a definition in `shared`: the
    object closes over both."""
    if not isinstance(node, dict):
        return
    has_props = "properties" in node
    for key, value in node.items():
        if key in COMBINATORS:
            for branch in value:
                close_objects(branch, shared, inside_object or has_props)
        elif key in ("$defs", "definitions"):
            for name, sub in value.items():
                close_objects(sub, shared, name in shared)
        elif key in SCHEMA_MAPS:
            for sub in value.values():
                close_objects(sub, shared)
        elif key in SCHEMA_VALUES:
            close_objects(value, shared)
        elif key == "prefixItems":
            for sub in value:
                close_objects(sub, shared)
    combines_objects = any(
        isinstance(b, dict) and ("properties" in b or "$ref" in b)
        for key in COMBINATORS for b in node.get(key, [])
    )
    if (has_props or combines_objects) and not inside_object \
            and "additionalProperties" not in node and "unevaluatedProperties" not in node:
        node["unevaluatedProperties"] = False


def documents(text):
    decoder = json.JSONDecoder()
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            return
        doc, i = decoder.raw_decode(text, i)
        yield doc


def main(argv):
    args = argv[1:]
    component = None
    pointer = None
    for flag in ("--component", "--at"):
        if flag in args:
            at = args.index(flag)
            if flag == "--component":
                component = args[at + 1]
                pointer = "/components/schemas/" + component
            else:
                pointer = args[at + 1]
            del args[at:at + 2]
    schema_path, instance_path = args
    with open(schema_path) as f:
        schema = json.load(f)
    if pointer is not None:
        try:
            target = schema
            for part in pointer.lstrip("/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
        except (KeyError, TypeError):
            print(f"{schema_path} has nothing at {pointer}")
            return 2
        schemas = schema["components"]["schemas"]
        shared = shared_defs(schema)
        for name, sub in schemas.items():
            close_objects(sub, shared, name in shared)
        close_objects(target, shared)
        # The components' `$ref`s (#/components/schemas/X) resolve against this root.
        schema = {
            "$schema": schema.get("jsonSchemaDialect", "https://json-schema.org/draft/2020-12/schema"),
            "allOf": [target],
            "components": {"schemas": schemas},
        }
    else:
        close_objects(schema, shared_defs(schema))
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as e:
        print(f"{schema_path} is not a valid {cls.__name__} schema: {e.message} at {list(e.path)}")
        return 2
    validator = cls(schema)
    with open(instance_path) as f:
        text = f.read()
    count = 0
    failed = 0
    for n, doc in enumerate(documents(text)):
        count += 1
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
            failed += 1
            where = "/".join(str(p) for p in e.absolute_path) or "(the document)"
            print(f"document {n + 1}, at {where}: {e.message}")
    if count == 0:
        print(f"{instance_path} holds no JSON document")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
