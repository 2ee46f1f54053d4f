//! drover-config: one TOML file in, a validated [`Config`] out — or every problem at once.
//!
//! Where it sits: the binary calls [`load`] for `serve`, `check` and reload; the proxy and the
//! admin read only the validated model in [`model`]. Nothing here listens or connects; member
//! addresses given as host names are resolved once, at load.
//!
//! Errors: parsing never stops at the first problem. Each [`ConfigError`] names file:line, the
//! dotted key, the bad value and what would be valid; `drover check` prints one per line.
//! Unknown keys are errors (a typo must not silently become a default).
//!
//! Every key, its type and default is listed in `docs/configuration.md`.
#![forbid(unsafe_code)]

pub mod model;

pub use model::*;
