//! The host side of the WIT world in `wit/tether.wit`. This is the crate's only `bindgen!`.
//!
//! Every import is async (host calls may wait on the socket, the body or a timer) and trappable
//! (a host call is where a killed guest is stopped).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "handler",
    imports: { default: async | trappable },
    exports: { default: async },
});
