//! The API's OpenAPI document, served at `GET /_matrix/maubot/v1/openapi.json`. Each handler
//! carries its description (`#[utoipa::path]`) and is mounted through `utoipa_axum`'s
//! `routes!`, which registers the route and its description together, so the document cannot
//! miss a route the router serves. The few routes axum mounts otherwise (the log websocket and
//! the proxy's catch-all path) are described in `manual`.

use serde::Serialize;
use utoipa::openapi::OpenApi;
use utoipa::{OpenApi as _, ToSchema};

/// maubot's error body, on every 4xx and 5xx of the API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A message for people.
    pub error: String,
    /// maubot's machine-readable code, e.g. `plugin_not_found`.
    pub errcode: String,
}

/// A plugin archive (`.mbp`), as the upload routes take it.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct PluginArchive(#[allow(dead_code)] Vec<u8>);

/// The routes described here rather than through `routes!`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(super::logs::logs, super::proxy::proxy))]
struct Manual;

/// The document's frame: what every route shares.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "maubot management API",
        description = "maubot 0.6's management API as maubot-rs serves it (docs/compatibility.md).",
    ),
    servers((url = "/_matrix/maubot/v1")),
    components(schemas(ErrorBody)),
    modifiers(&BearerToken),
    security(("token" = [])),
)]
pub(super) struct Frame;

struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole document, from what the routers collected.
pub(super) fn document(collected: OpenApi) -> OpenApi {
    let mut document = Frame::openapi();
    document.merge(collected);
    document.merge(Manual::openapi());
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    name_operations(&mut document);
    document
}

/// Operation IDs must be unique; handlers' names are not (`list`, `read`, `put` in each area).
/// Each gets `<method>_<path>`, e.g. `get_plugin_id`.
fn name_operations(document: &mut OpenApi) {
    for (path, item) in document.paths.paths.iter_mut() {
        let name: String = path
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let name = name.trim_matches('_').replace("__", "_");
        for (method, operation) in [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
        ] {
            if let Some(operation) = operation {
                operation.operation_id = Some(format!("{method}_{name}"));
            }
        }
    }
}
