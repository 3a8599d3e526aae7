//! Warns loudly when `nasm` is missing: openh264's build then silently falls
//! back to plain C and encodes about 3x slower (77 vs 220 fps at 720p here).
use std::path::PathBuf;
use std::process::Command;

/// `tool` on PATH, as the shell would find it.
fn on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let nasm = on_path("nasm");
    match &nasm {
        // Found: look again only if that binary changes. Not on every PATH
        // change: npm, napi and the test scripts run cargo with PATHs of their
        // own, and each rerun rebuilt onair and everything that depends on it.
        Some(p) => println!("cargo:rerun-if-changed={}", p.display()),
        // Missing: look again whenever PATH changes, so installing it counts.
        None => println!("cargo:rerun-if-env-changed=PATH"),
    }
    let has_nasm = nasm.is_some_and(|p| {
        Command::new(p)
            .arg("-v")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    if !has_nasm {
        println!(
            "cargo:warning=nasm NOT FOUND: openh264 is being built without assembly and will encode ~3x slower. \
             Install it (apt-get install nasm) and run `cargo clean -p openh264-sys2`."
        );
    }
    println!(
        "cargo:rustc-env=ONAIR_BUILT_WITH_NASM={}",
        if has_nasm { "1" } else { "0" }
    );
}
