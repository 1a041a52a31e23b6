//! The OpenAPI document types every body: the web UI's types are generated from it
//! (`ui/src/api.gen.ts`), so a body documented as "any JSON" would be `unknown` there and the
//! UI's view of the API would drift from the server without a compiler noticing.

use std::collections::BTreeSet;

use serde_json::Value;

/// Where `schema` (reached as `at`) or anything inside it says nothing about its shape: no
/// type, or an object without properties. Each `$ref` is followed once.
fn untyped(doc: &Value, schema: &Value, at: &str, seen: &mut BTreeSet<String>, found: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/components/schemas/");
        match doc["components"]["schemas"].get(name) {
            None => found.push(format!("{at}: {reference} is not in the document")),
            Some(target) => {
                if seen.insert(name.to_owned()) {
                    untyped(doc, target, &format!("{at} ({name})"), seen, found);
                }
            }
        }
        return;
    }
    let mut typed = false;
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(parts) = schema.get(combinator).and_then(Value::as_array) {
            typed = true;
            for (i, part) in parts.iter().enumerate() {
                untyped(doc, part, &format!("{at}.{combinator}[{i}]"), seen, found);
            }
        }
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.is_empty() && !typed {
        found.push(format!("{at}: no type ({schema})"));
    }
    if types.contains(&"object") {
        let properties = schema.get("properties").and_then(Value::as_object);
        let map_of = schema.get("additionalProperties").filter(|a| a.is_object());
        match (properties, map_of) {
            (Some(p), _) if !p.is_empty() => {
                for (name, property) in p {
                    untyped(doc, property, &format!("{at}.{name}"), seen, found);
                }
            }
            (_, Some(values)) => untyped(doc, values, &format!("{at}[*]"), seen, found),
            _ => found.push(format!("{at}: an object without properties ({schema})")),
        }
    }
    if types.contains(&"array") {
        match schema.get("items") {
            Some(items) => untyped(doc, items, &format!("{at}[]"), seen, found),
            None => found.push(format!("{at}: an array of anything")),
        }
    }
}

#[test]
fn every_request_and_success_body_in_the_document_is_typed() {
    let doc = serde_json::to_value(super::openapi()).unwrap();
    let mut found = Vec::new();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            let name = format!("{} {path}", method.to_uppercase());
            let mut bodies = Vec::new();
            if let Some(request) = operation.get("requestBody") {
                match request["content"].as_object() {
                    Some(content) if !content.is_empty() => {
                        bodies.extend(content.iter().map(|(t, c)| (format!("{name} request {t}"), c)));
                    }
                    _ => found.push(format!("{name}: a request body without content")),
                }
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                if !status.starts_with('2') {
                    continue;
                }
                match response.get("content").and_then(Value::as_object) {
                    Some(content) if !content.is_empty() => {
                        bodies.extend(content.iter().map(|(t, c)| (format!("{name} {status} {t}"), c)));
                    }
                    // No content is the answer's meaning only for 204.
                    _ if status == "204" => {}
                    _ => found.push(format!("{name} {status}: no body documented")),
                }
            }
            for (at, content) in bodies {
                match content.get("schema") {
                    Some(schema) => untyped(&doc, schema, &at, &mut BTreeSet::new(), &mut found),
                    None => found.push(format!("{at}: no schema")),
                }
            }
        }
    }
    // The events stream's items, listed on their own (see `routes_and_document`).
    let event = serde_json::json!({"$ref": "#/components/schemas/Event"});
    untyped(&doc, &event, "GET /api/events item", &mut BTreeSet::new(), &mut found);
    assert!(operations >= 35, "only {operations} operations in the document");
    assert!(found.is_empty(), "untyped bodies in the OpenAPI document:\n{}", found.join("\n"));
}
