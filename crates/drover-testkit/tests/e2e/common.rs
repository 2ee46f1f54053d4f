pub use drover_testkit::client::*;
