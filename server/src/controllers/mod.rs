//! Request handlers, one file per resource.

pub mod api;
pub mod api_extract;
pub mod crash;
pub mod health;
pub mod hooks;
pub mod result_body;
