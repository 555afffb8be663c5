//! mdatpd: the sensor daemon as a library; `main.rs` only wires it up.

pub mod args;
pub mod audit;
pub mod bus;
pub mod clock;
pub mod config;
pub mod diagnostic;
pub mod ebpf;
pub mod enrich;
pub mod event;
pub mod filters;
pub mod hot;
pub mod json;
pub mod kind;
pub mod loss;
pub mod ocsf;
pub mod paths;
pub mod pipeline;
pub mod process_cache;
pub mod procfs;
pub mod provider;
pub mod run;
pub mod service;
pub mod sink;
pub mod source;
pub mod systemd;
pub mod users;
