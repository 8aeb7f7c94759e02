//! Subcommands besides `serve`.

pub mod listen;
pub mod publish;
pub mod token;
