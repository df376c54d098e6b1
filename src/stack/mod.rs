//! Reads a stack file: YAML with spans, variables, references, Azure ML CLI YAML bases, and checks every
//! field against the resource specs. Synchronous and free of network I/O; it reads only the stack file,
//! `--var-file`s, `file:` bases and the environment. All independent problems are reported together.
mod model;

pub use model::*;
