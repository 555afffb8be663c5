#!/usr/bin/env python3
"""Validates mdatp events against the OCSF 1.5.0 schema's own definitions.

    validate.py SCHEMA_JSON FILE...

SCHEMA_JSON is the schema export `ocsf/schemas/v1_5_0.json` of the PyPI
package pydantic-ocsf (pinned in scripts/ocsf-schema.sh): the schema's
source definitions (classes, objects, dictionary, types, enums). FILEs
are JSON arrays (golden fixtures) or JSON Lines (events a test run
wrote). For every event: the class is found by class_uid; every
attribute must be one the class (or object) defines, with the
dictionary's type (scalars, objects, arrays, enum values of *_id
fields, port ranges); every required attribute must be present.
`unmapped` is the schema's free-form object (our extension fields).

The export leaves out the profile files that classes `$include`; the
host profile's attributes (`actor`, `device`) are added to every class
here, as the host profile does in the schema. Exits 1 on any problem,
printing each with its event and attribute path.
"""
import ipaddress
import json
import sys

# profiles/host.json of OCSF 1.5.0 (not in the export): every class
# that includes the host profile gains these, optional.
HOST_PROFILE = {"actor": {"requirement": "optional"}, "device": {"requirement": "recommended"}}


class Schema:
    def __init__(self, path):
        s = json.load(open(path))
        assert s["version"] == "1.5.0", s["version"]
        self.events = s["events"]
        self.objects = s["objects"]
        self.dict = s["dictionary"]["attributes"]
        self.types = s["dictionary"]["types"]["attributes"]
        self.categories = s["categories_meta"]["attributes"]
        self.by_uid = {}
        for name, ev in self.events.items():
            cat = self.category_of(name)
            if "uid" in ev and cat is not None:
                self.by_uid[self.categories[cat]["uid"] * 1000 + ev["uid"]] = name
        self.by_uid[0] = "base_event"

    def category_of(self, name):
        while name:
            if name in self.categories:
                return name
            name = self.events[name].get("extends")
        return None

    def _chain_attrs(self, table, name):
        chain = []
        while name:
            chain.append(table[name])
            name = table[name].get("extends")
        attrs = {}
        for node in reversed(chain):
            for k, v in node.get("attributes", {}).items():
                if k == "$include":
                    if any("host.json" in p for p in v):
                        for hk, hv in HOST_PROFILE.items():
                            attrs.setdefault(hk, dict(hv))
                    continue
                attrs[k] = {**attrs.get(k, {}), **v}
        return attrs

    def class_attrs(self, name):
        return self._chain_attrs(self.events, name)

    def object_attrs(self, name):
        return self._chain_attrs(self.objects, name)

    def attr_def(self, name, override):
        """The dictionary's definition with the class's or object's
        override on top; enums add up (the dictionary's 0 Unknown and
        99 Other stay valid where a class lists its own values)."""
        base = dict(self.dict.get(name, {}))
        enum = {**base.get("enum", {}), **override.get("enum", {})}
        base.update(override)
        if enum:
            base["enum"] = enum
        return base


# Markers the golden fixtures put where a value depends on the boot.
TIME_MARKER = "<time>"
# Checked against the class itself (the dictionary's enum is the base
# event's).
IDENTITY = ("class_uid", "category_uid", "type_uid")


def scalar_ok(base, value, rng):
    if base in ("integer_t", "long_t", "timestamp_t"):
        if not isinstance(value, int) or isinstance(value, bool):
            return "not an integer"
        if rng and not (rng[0] <= value <= rng[1]):
            return f"{value} outside {rng}"
        return None
    if base == "float_t":
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "not a number"
    if base == "boolean_t":
        return None if isinstance(value, bool) else "not a boolean"
    if base == "json_t":
        return None
    if not isinstance(value, str):
        return "not a string"
    if base == "ip_t":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return f"{value!r} is not an IP address"
    return None


def check(schema, attrs, obj, path, problems):
    if not isinstance(obj, dict):
        problems.append(f"{path}: not an object")
        return
    for k, v in obj.items():
        if k not in attrs:
            problems.append(f"{path}.{k}: not an attribute of this class/object")
            continue
        check_value(schema, k, schema.attr_def(k, attrs[k]), v, f"{path}.{k}", problems)
    for k, a in attrs.items():
        if a.get("requirement") == "required" and k not in obj:
            problems.append(f"{path}.{k}: required, missing")


def check_value(schema, name, a, v, path, problems):
    if a.get("is_array"):
        if not isinstance(v, list):
            problems.append(f"{path}: not an array")
            return
        for i, x in enumerate(v):
            check_value(schema, name, {**a, "is_array": False}, x, f"{path}[{i}]", problems)
        return
    t = a.get("type")
    if t is None:
        problems.append(f"{path}: no type in the dictionary")
        return
    if t == "object":  # free-form (unmapped)
        if not isinstance(v, dict):
            problems.append(f"{path}: not an object")
        return
    if t == "timestamp_t" and v == TIME_MARKER:
        return
    if t.endswith("_t"):
        tdef = schema.types.get(t, {})
        base = tdef.get("type", t)
        why = scalar_ok(base, v, tdef.get("range"))
        if why:
            problems.append(f"{path}: {t}: {why}")
        enum = a.get("enum")
        if enum and not why and name not in IDENTITY and str(v) not in enum:
            problems.append(f"{path}: {v!r} is not one of {sorted(enum)}")
        return
    if t not in schema.objects:
        problems.append(f"{path}: unknown object type {t}")
        return
    check(schema, schema.object_attrs(t), v, path, problems)


def events_of(path):
    text = open(path).read()
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    schema = Schema(sys.argv[1])
    total, bad, classes, providers = 0, 0, {}, {}
    for f in sys.argv[2:]:
        for i, ev in enumerate(events_of(f)):
            total += 1
            problems = []
            name = schema.by_uid.get(ev.get("class_uid"))
            if name is None:
                problems.append(f"class_uid {ev.get('class_uid')!r}: no such class")
            else:
                check(schema, schema.class_attrs(name), ev, "", problems)
                if ev.get("type_uid") != ev.get("class_uid", 0) * 100 + ev.get("activity_id", 0):
                    problems.append(".type_uid: not class_uid*100 + activity_id")
                cat = schema.category_of(name)
                want_cat = schema.categories[cat]["uid"] if cat else 0
                if ev.get("category_uid") != want_cat:
                    problems.append(f".category_uid: {ev.get('category_uid')!r}, the class's is {want_cat}")
                # Compact records have no captions: the id then.
                act = ev.get("activity_name") or f"activity_id {ev.get('activity_id')}"
                key = f"{name}/{act}"
                classes[key] = classes.get(key, 0) + 1
            prov = (ev.get("unmapped") or {}).get("provider", "?")
            providers[prov] = providers.get(prov, 0) + 1
            if problems:
                bad += 1
                if bad <= 20:
                    print(f"{f} event {i} ({ev.get('class_uid')}/{ev.get('activity_id')}):")
                    for p in problems:
                        print(f"    {p}")
    print(f"OCSF 1.5.0: {total - bad} valid, {bad} invalid; providers {providers}")
    for k in sorted(classes):
        print(f"  {k}: {classes[k]}")
    return 1 if bad or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
