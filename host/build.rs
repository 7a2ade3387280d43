//! Builds the guest component (guest/, target wasm32-wasip2) so the host can
//! embed it. A separate target directory keeps the nested cargo from waiting
//! on the outer build's lock.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_dir = workspace.join("target").join("guest");
    for watched in ["guest/src", "guest/Cargo.toml", "wit"] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=PGHOOK_GUEST_WASM");
    let wasm = match std::env::var("PGHOOK_GUEST_WASM") {
        Ok(prebuilt) => PathBuf::from(prebuilt),
        Err(_) => {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .current_dir(workspace)
                .args(["build", "--release", "-p", "pghook-guest", "--target", "wasm32-wasip2", "--target-dir"])
                .arg(&target_dir);
            // The outer build's flags and wrappers are for the host, not the guest.
            for var in [
                "CARGO_ENCODED_RUSTFLAGS",
                "RUSTFLAGS",
                "RUSTC_WRAPPER",
                "RUSTC_WORKSPACE_WRAPPER",
                "CARGO_BUILD_TARGET",
                "CARGO_TARGET_DIR",
                "CARGO_MAKEFLAGS",
                "MAKEFLAGS",
                "MFLAGS",
            ] {
                build.env_remove(var);
            }
            let status = build.status().expect("running cargo to build the guest");
            assert!(
                status.success(),
                "building the guest failed; is the target installed? run: rustup target add wasm32-wasip2"
            );
            target_dir.join("wasm32-wasip2/release/pghook_guest.wasm")
        }
    };
    std::fs::copy(&wasm, out_dir.join("pghook_guest.wasm")).expect("copying the guest component");
}
