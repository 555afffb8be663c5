//! Library half of the `mdatp` command: its clap definition.

pub mod args;
