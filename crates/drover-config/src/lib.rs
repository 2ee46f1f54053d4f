//! drover-config: one TOML file in, a validated [`Config`] out — or every problem at once.
//!
//! Where it sits: the binary calls [`load`] for `serve`, `check` and reload; the proxy and the
//! admin read only the validated model in [`model`]. Nothing here listens or connects; member
//! addresses given as host names are resolved once, at load.
//!
//! How: toml's spanned document (`toml::de::DeTable`) is walked by hand (`walk.rs`) instead of
//! deserialized with serde, because serde stops at the first error and loses positions. Each
//! table's keys are checked against the allowed list (unknown keys are errors, with a "did you
//! mean"), each value is type- and range-checked and defaulted, and the walk goes on after every
//! error. Then the cross-table checks run: farm references, one binding per address.
//!
//! Errors: parsing never stops at the first problem. Each [`ConfigError`] names file:line, the
//! dotted key, the bad value and what would be valid; `drover check` prints one per line.
//! Unknown keys are errors (a typo must not silently become a default).
//!
//! Key types: [`Config`] (the model), [`ConfigErrors`]. [`units`] holds the duration, size,
//! network and address syntaxes, public so the admin API accepts the same forms.
//!
//! Every key, its type and default is listed in `docs/configuration.md`.
#![forbid(unsafe_code)]

mod agent;
mod cluster;
mod error;
mod farm;
mod health;
mod listener;
pub mod model;
mod parse;
mod passive;
mod policy;
pub mod reports;
mod retry;
mod sticky;
pub mod units;
mod walk;

pub use error::{ConfigError, ConfigErrors};
pub use farm::{valid_member_name, valid_route_id};
pub use model::*;
pub use parse::{load, parse_str};
