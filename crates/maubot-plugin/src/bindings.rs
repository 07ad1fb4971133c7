//! What `wit-bindgen` generates from `wit/v0.1.0/plugin.wit` (the one copy, at the repository's
//! root). Plugins use the SDK's types instead; this is public only for `export_plugin!`.

#![allow(unsafe_code, missing_debug_implementations, clippy::all)]

wit_bindgen::generate!({
    path: "../../wit/v0.1.0",
    world: "plugin",
    pub_export_macro: true,
    export_macro_name: "__export_plugin_world",
    default_bindings_module: "::maubot_plugin::bindings",
    runtime_path: "::maubot_plugin::__wit_rt",
});
