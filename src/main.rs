//! The `rlhf-playground` command (src/cli.rs): pretrain, generate, evaluate, simulate, bench.
//!
//! The command line is native only; the browser reaches the engine through src/web.rs. On
//! wasm32 this binary is an empty stub, so that `cargo test --target wasm32-unknown-unknown`
//! (tests/web.rs) can build every target of the crate.

#[cfg(not(target_arch = "wasm32"))]
mod cli;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}
