//! `/openapi.json`: the document names exactly what the router serves, and real answers (and
//! the requests that asked for them) validate against its schemas.

use std::collections::BTreeSet;

use notif_tests::{DEMO_HOST, TestServer};
use serde_json::{Value, json};

/// A validator for the JSON Schema subset the document uses: `type` (one or several),
/// `enum`, `required`, `properties`, `items`, `oneOf`, `minimum`, `maximum` and `$ref` into
/// the components. Returns what does not match, by JSON path.
fn violations(document: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        let target = &document["components"]["schemas"][name];
        assert!(target.is_object(), "{reference} is not in the components");
        return violations(document, target, value, at);
    }
    if let Some(choices) = schema["oneOf"].as_array() {
        let matching = choices
            .iter()
            .filter(|choice| violations(document, choice, value, at).is_empty())
            .count();
        return if matching == 1 {
            Vec::new()
        } else {
            vec![format!("{at}: matches {matching} of oneOf")]
        };
    }
    let type_of = |value: &Value| match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let allowed: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(several) => several.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let actual = type_of(value);
    if !allowed.is_empty() && !allowed.contains(&actual) {
        return vec![format!("{at}: {actual}, expected {allowed:?}")];
    }
    let mut found = Vec::new();
    if let Some(choices) = schema["enum"].as_array()
        && !choices.contains(value)
    {
        found.push(format!("{at}: {value} is not one of {choices:?}"));
    }
    if let (Some(minimum), Some(number)) = (schema["minimum"].as_f64(), value.as_f64())
        && number < minimum
    {
        found.push(format!("{at}: {number} < {minimum}"));
    }
    if let (Some(maximum), Some(number)) = (schema["maximum"].as_f64(), value.as_f64())
        && number > maximum
    {
        found.push(format!("{at}: {number} > {maximum}"));
    }
    if let Value::Object(map) = value {
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !map.contains_key(name) {
                found.push(format!("{at}.{name}: required"));
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, property) in properties {
                if let Some(field) = map.get(name) {
                    found.extend(violations(
                        document,
                        property,
                        field,
                        &format!("{at}.{name}"),
                    ));
                }
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (index, item) in items.iter().enumerate() {
            found.extend(violations(
                document,
                item_schema,
                item,
                &format!("{at}[{index}]"),
            ));
        }
    }
    found
}

/// Checks `body`, answered with `status` to `method path`, against the document's schema
/// for that answer (JSON bodies).
fn check_answer(document: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let operation = &document["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not documented");
    let response = match &operation["responses"][status.to_string()] {
        Value::Null => &operation["responses"]["default"],
        response => response,
    };
    if response.get("content").is_none() {
        assert!(
            body.is_null(),
            "{method} {path} {status} documents no body: {body}"
        );
        return;
    }
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {status} has no JSON schema"
    );
    let found = violations(document, schema, body, "$");
    assert!(
        found.is_empty(),
        "{method} {path} {status}: {found:?}\n{body:#}"
    );
}

/// Checks a JSON request body against the documented request schema.
fn check_request(document: &Value, method: &str, path: &str, body: &Value) {
    let schema =
        &document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} documents no JSON body");
    let found = violations(document, schema, body, "$");
    assert!(found.is_empty(), "{method} {path} request: {found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_names_every_route_and_answers_match_it() {
    let server = TestServer::start().await;
    let response = server
        .http
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    check_answer(&document, "get", "/openapi.json", 200, &document);

    // Every documented operation is served, at every server it names; on each path, the
    // router allows exactly the documented methods.
    let paths = document["paths"].as_object().unwrap();
    for expected in [
        "/me/notifications",
        "/me/notifications/{id}/acknowledge",
        "/oauth2/v2.0/token",
        "/openapi.json",
        "/notif-inbox.js",
        "/metrics",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not documented");
    }
    for (path, item) in paths {
        let documented: BTreeSet<String> = ["get", "post", "patch", "delete", "put"]
            .into_iter()
            .filter(|method| item.get(*method).is_some())
            .map(|method| method.to_ascii_uppercase())
            .collect();
        let concrete = path.replace("{id}", "0190b5a0-0000-7000-8000-000000000000");
        let prefixes: Vec<String> = match item["servers"].as_array() {
            Some(servers) => servers
                .iter()
                .map(|server| {
                    server["url"]
                        .as_str()
                        .unwrap()
                        .trim_end_matches('/')
                        .to_owned()
                })
                .collect(),
            None => vec![String::new()],
        };
        for prefix in prefixes {
            let url = server.url(&format!("{prefix}{concrete}"));
            for method in &documented {
                let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                let answer = server
                    .http
                    .request(method.clone(), &url)
                    .send()
                    .await
                    .unwrap();
                let status = answer.status().as_u16();
                let text = answer.text().await.unwrap();
                assert_ne!(
                    status, 405,
                    "{method} {prefix}{path} is documented but not served"
                );
                assert!(
                    !text.contains("no resource matches this path"),
                    "{method} {prefix}{path} is documented but not routed"
                );
            }
            let probe = server.http.put(&url).send().await.unwrap();
            if documented.contains("PUT") {
                continue;
            }
            assert_eq!(probe.status(), 405, "PUT {prefix}{path}");
            let allowed: BTreeSet<String> = probe.headers()["allow"]
                .to_str()
                .unwrap()
                .split(',')
                .map(|method| method.trim().to_owned())
                .filter(|method| method != "HEAD")
                .collect();
            assert_eq!(allowed, documented, "{prefix}{path}: served ≠ documented");
        }
    }

    // Real answers — and the requests that asked for them — match the schemas.
    let sign_in = server
        .http
        .post(server.url("/dev/sign-in"))
        .form(&[("client_id", "demo-client"), ("user", "alice")])
        .send()
        .await
        .unwrap();
    let status = sign_in.status().as_u16();
    let token: Value = sign_in.json().await.unwrap();
    check_answer(&document, "post", "/dev/sign-in", status, &token);
    let alice = token["access_token"].as_str().unwrap().to_owned();
    let refused = server
        .http
        .post(server.url("/oauth2/v2.0/token"))
        .form(&[("grant_type", "password"), ("client_id", "demo-client")])
        .send()
        .await
        .unwrap();
    let status = refused.status().as_u16();
    check_answer(
        &document,
        "post",
        "/oauth2/v2.0/token",
        status,
        &refused.json().await.unwrap(),
    );
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
    ] {
        let (status, body) = server.call(reqwest::Method::GET, path, &alice, None).await;
        check_answer(&document, "get", path, status, &body);
    }

    let channel = server.channel_body("ios", "phone");
    check_request(
        &document,
        "post",
        "/me/notifications/subscriptions",
        &channel,
    );
    let (status, subscription) = server
        .call(
            reqwest::Method::POST,
            "/me/notifications/subscriptions",
            &alice,
            Some(&channel),
        )
        .await;
    assert_eq!(status, 201);
    check_answer(
        &document,
        "post",
        "/me/notifications/subscriptions",
        status,
        &subscription,
    );
    let (status, body) = server
        .call(
            reqwest::Method::GET,
            "/me/notifications/subscriptions",
            &alice,
            None,
        )
        .await;
    check_answer(
        &document,
        "get",
        "/me/notifications/subscriptions",
        status,
        &body,
    );

    let create = json!({
        "targetHostName": DEMO_HOST,
        "appNotificationId": "order-42",
        "groupName": "orders",
        "payload": {"visualContent": {"title": "Shipped", "body": "Tuesday"}, "rawContent": "42"},
        "targetPolicy": {"platformTypes": ["iOS", "android"]},
        "fallbackPolicy": {"platformTypes": ["iOS"], "fallbackDelayInSeconds": 60},
        "priority": "High",
        "displayTimeToLive": "23",
    });
    check_request(&document, "post", "/me/notifications", &create);
    let mut id = String::new();
    for expected in [201, 200] {
        let (status, body) = server
            .call(
                reqwest::Method::POST,
                "/beta/me/notifications",
                &alice,
                Some(&create),
            )
            .await;
        assert_eq!(status, expected, "{body}");
        check_answer(&document, "post", "/me/notifications", status, &body);
        id = body["id"].as_str().unwrap().to_owned();
    }
    let patch = json!({"readState": "read"});
    check_request(&document, "patch", "/me/notifications/{id}", &patch);
    let (status, body) = server
        .call(
            reqwest::Method::PATCH,
            &format!("/me/notifications/{id}"),
            &alice,
            Some(&patch),
        )
        .await;
    check_answer(&document, "patch", "/me/notifications/{id}", status, &body);
    for (method, path, concrete) in [
        (
            "get",
            "/me/notifications",
            "/v1.0/me/notifications?$top=1".to_owned(),
        ),
        (
            "get",
            "/me/notifications/{id}",
            format!("/me/notifications/{id}"),
        ),
        (
            "get",
            "/me/notifications/changes",
            "/me/notifications/changes?cursor=0".to_owned(),
        ),
        (
            "get",
            "/me/notifications/{id}/deliveryStatus",
            format!("/me/notifications/{id}/deliveryStatus"),
        ),
        (
            "get",
            "/me/notifications/{id}",
            "/me/notifications/not-an-id".to_owned(),
        ),
        (
            "get",
            "/dev/sandbox/pushes",
            "/dev/sandbox/pushes".to_owned(),
        ),
        (
            "delete",
            "/me/notifications",
            "/me/notifications?groupName=orders".to_owned(),
        ),
        (
            "post",
            "/me/notifications/{id}/acknowledge",
            format!("/me/notifications/{id}/acknowledge"),
        ),
    ] {
        let method_name =
            reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let (status, body) = server.call(method_name, &concrete, &alice, None).await;
        check_answer(&document, method, path, status, &body);
    }
    server.stop().await;
}
