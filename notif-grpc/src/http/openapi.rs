//! The OpenAPI 3.1 document of the HTTP surface, built from the routes as they are added: a
//! route can only be added with its operation, so the document lists exactly what the router
//! serves. The schemas live beside the JSON they describe ([`super::schemas`]); the suite
//! checks real answers against them.

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, on};
use serde_json::{Map, Value, json};

/// The Graph version prefixes Graph routes are also served under.
const GRAPH_PREFIXES: [&str; 2] = ["/beta", "/v1.0"];

/// Where a route is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mount {
    /// At the root only.
    Root,
    /// At the root and under each Graph version prefix ([`GRAPH_PREFIXES`]).
    Graph,
}

/// The HTTP methods the surface serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Get,
    Post,
    Patch,
    Delete,
}

impl Verb {
    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Patch => MethodFilter::PATCH,
            Verb::Delete => MethodFilter::DELETE,
        }
    }

    /// The name OpenAPI gives the operation in a path item.
    fn name(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }
}

/// A body: its media type and schema.
pub(crate) type Body = (&'static str, Value);

/// One documented operation.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    method: Verb,
    path: &'static str,
    summary: &'static str,
    request: Option<Body>,
    responses: Vec<(u16, &'static str, Option<Body>)>,
    parameters: Vec<Value>,
}

impl Operation {
    /// `method path`, summarised.
    pub(crate) fn new(method: Verb, path: &'static str, summary: &'static str) -> Self {
        Self {
            method,
            path,
            summary,
            request: None,
            responses: Vec::new(),
            parameters: Vec::new(),
        }
    }

    /// Its request body: a form of `body`'s media type and schema.
    pub(crate) fn form_body(mut self, body: Option<Body>) -> Self {
        self.request = body;
        self
    }

    /// Its request body: JSON of `schema` (a schema or a `$ref`).
    pub(crate) fn json_body(mut self, schema: Value) -> Self {
        self.request = Some(("application/json", schema));
        self
    }

    /// An answer with `status`, described, with a body of `media_type` and `schema`.
    pub(crate) fn answers(
        mut self,
        status: u16,
        description: &'static str,
        body: Option<Body>,
    ) -> Self {
        self.responses.push((status, description, body));
        self
    }

    /// A JSON answer of `schema`.
    pub(crate) fn json(self, status: u16, description: &'static str, schema: Value) -> Self {
        self.answers(status, description, Some(("application/json", schema)))
    }

    /// A query parameter.
    pub(crate) fn query(mut self, name: &'static str, description: &'static str) -> Self {
        self.parameters.push(json!({
            "name": name, "in": "query", "required": false,
            "description": description, "schema": {"type": "string"},
        }));
        self
    }

    /// A header parameter.
    pub(crate) fn header(mut self, name: &'static str, description: &'static str) -> Self {
        self.parameters.push(json!({
            "name": name, "in": "header", "required": false,
            "description": description, "schema": {"type": "string"},
        }));
        self
    }

    fn document(&self) -> Value {
        let mut operation = json!({"summary": self.summary});
        let mut parameters = self.parameters.clone();
        let mut rest = self.path;
        while let Some(start) = rest.find('{') {
            let Some(end) = rest[start..].find('}') else {
                break;
            };
            let name = &rest[start + 1..start + end];
            parameters.push(json!({
                "name": name, "in": "path", "required": true, "schema": {"type": "string"},
            }));
            rest = &rest[start + end..];
        }
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if let Some((media_type, schema)) = &self.request {
            operation["requestBody"] = json!({
                "required": true,
                "content": {*media_type: {"schema": schema}},
            });
        }
        let mut responses = Map::new();
        for (status, description, body) in &self.responses {
            // Several answers with one status are one response in several media types.
            let response = responses
                .entry(status.to_string())
                .or_insert_with(|| json!({"description": description}));
            if let Some((media_type, schema)) = body {
                response["content"][*media_type] = json!({"schema": schema});
            }
        }
        responses.insert(
            "default".into(),
            json!({
                "description": "A Graph error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }),
        );
        operation["responses"] = Value::Object(responses);
        operation
    }
}

/// A router that documents every route it is given.
pub(crate) struct ApiRoutes<S> {
    root: Router<S>,
    graph: Router<S>,
    operations: Vec<(Mount, Operation)>,
}

impl<S: Clone + Send + Sync + 'static> ApiRoutes<S> {
    /// No routes.
    pub(crate) fn new() -> Self {
        Self {
            root: Router::new(),
            graph: Router::new(),
            operations: Vec::new(),
        }
    }

    /// Serves `operation` with `handler`, mounted at `mount`.
    pub(crate) fn route<H, T>(mut self, mount: Mount, operation: Operation, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let routed = on(operation.method.filter(), handler);
        match mount {
            Mount::Root => self.root = self.root.route(operation.path, routed),
            Mount::Graph => self.graph = self.graph.route(operation.path, routed),
        }
        self.operations.push((mount, operation));
        self
    }

    /// Both sets of routes.
    pub(crate) fn merge(mut self, other: Self) -> Self {
        self.root = self.root.merge(other.root);
        self.graph = self.graph.merge(other.graph);
        self.operations.extend(other.operations);
        self
    }

    /// The router — Graph routes at the root and under each version prefix — and the
    /// document of its routes, with `schemas` as its components.
    pub(crate) fn finish(self, schemas: Value) -> (Router<S>, Value) {
        let document = document(&self.operations, schemas);
        let mut router = self.root.merge(self.graph.clone());
        for prefix in GRAPH_PREFIXES {
            router = router.nest(prefix, self.graph.clone());
        }
        (router, document)
    }
}

fn document(operations: &[(Mount, Operation)], schemas: Value) -> Value {
    let mut paths = Map::new();
    for (mount, operation) in operations {
        let item = paths.entry(operation.path).or_insert_with(|| match mount {
            Mount::Graph => {
                let prefixes = GRAPH_PREFIXES.iter().map(|prefix| json!({"url": prefix}));
                json!({"servers": std::iter::once(json!({"url": "/"})).chain(prefixes).collect::<Vec<_>>()})
            }
            Mount::Root => json!({}),
        });
        item[operation.method.name()] = operation.document();
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "notif",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "notif's HTTP surface: the Microsoft Graph notifications API, the embedded identity provider and operations. The same service is offered over gRPC (proto/notif/v1/notif.proto).",
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "paths": paths,
    })
}
