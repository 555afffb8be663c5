//! The one build path for the BPF side: compiles every `*.bpf.c` with
//! clang-19 (CO-RE, against the committed vmlinux.h), links them into one
//! object with the BPF static linker, and generates the Rust ABI types from
//! `include/events.h` with bindgen.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const CLANG_FLAGS: &[&str] = &[
    "-target",
    "bpf",
    "-mcpu=v3",
    "-D__TARGET_ARCH_x86",
    "-g",
    "-O2",
    "-Wall",
    "-Werror",
];

fn main() {
    if let Err(e) = run() {
        // A build script reports failure by exiting non-zero with a message.
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let include = manifest.join("include");
    let clang = env::var("MDATP_CLANG").unwrap_or_else(|_| "clang-19".into());
    let bpftool = env::var("MDATP_BPFTOOL").unwrap_or_else(|_| find_bpftool());
    // The layout test reads the object's BTF with the same bpftool (a
    // user's PATH has no /usr/sbin).
    println!("cargo:rustc-env=MDATP_BPFTOOL_PATH={bpftool}");

    println!("cargo:rerun-if-changed=include");
    println!("cargo:rerun-if-env-changed=MDATP_CLANG");
    println!("cargo:rerun-if-env-changed=MDATP_BPFTOOL");

    let mut sources: Vec<PathBuf> = std::fs::read_dir(&manifest)
        .map_err(|e| format!("read {}: {e}", manifest.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".bpf.c"))
        .collect();
    // The object that defines the shared maps goes first: bpftool's linker
    // (7.1) writes wrong .maps DATASEC offsets when an object that only
    // declares them extern comes before the one that defines them.
    sources.sort_by_key(|p| (!p.ends_with("maps.bpf.c"), p.clone()));
    // Two objects from the same sources: the typed build (5.15+) and the
    // compat build (MDATP_COMPAT, 5.8-5.14) of the syscall exit programs
    // (include/syscall.bpf.h). Separate objects, not one with renamed
    // programs: aya 0.14 hands the kernel wrong BTF func info for programs
    // of the second copy in one linked object.
    for (linked, define) in [
        ("mdatp.bpf.o", None),
        ("mdatp-compat.bpf.o", Some("-DMDATP_COMPAT")),
    ] {
        let mut objects = Vec::new();
        for src in &sources {
            println!("cargo:rerun-if-changed={}", src.display());
            let stem = src
                .file_name()
                .and_then(|n| n.to_str())
                .map(|n| n.trim_end_matches(".bpf.c").to_string())
                .ok_or_else(|| format!("bad source name {}", src.display()))?;
            let suffix = if define.is_some() { "-compat" } else { "" };
            let obj = out.join(format!("{stem}{suffix}.o"));
            run_tool(
                Command::new(&clang)
                    .args(CLANG_FLAGS)
                    .args(define)
                    .arg(format!("-I{}", include.display()))
                    .arg("-c")
                    .arg(src)
                    .arg("-o")
                    .arg(&obj),
                &clang,
                "install it with: apt-get install clang-19 llvm-19 libbpf-dev",
            )?;
            objects.push(obj);
        }
        run_tool(
            Command::new(&bpftool)
                .args(["gen", "object"])
                .arg(out.join(linked))
                .args(&objects),
            &bpftool,
            "install it with: apt-get install bpftool",
        )?;
    }

    let bindings = bindgen::Builder::default()
        .header(include.join("events.h").to_string_lossy())
        .allowlist_type("mdatp_.*")
        .allowlist_var("MDATP_.*")
        .rustified_enum("mdatp_(event_type|ia32_slot)")
        .constified_enum_module(
            "mdatp_(bounds|exec_flags|task_flags|access|file_flags|proc_flags|settings_flags|io_uring_flags|io_uring_ops)",
        )
        .derive_default(true)
        .layout_tests(true)
        .generate()
        .map_err(|e| format!("bindgen on events.h: {e}"))?;
    bindings
        .write_to_file(out.join("events.rs"))
        .map_err(|e| format!("write events.rs: {e}"))?;
    Ok(())
}

fn find_bpftool() -> String {
    for p in ["/usr/sbin/bpftool", "/usr/bin/bpftool"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    "bpftool".into()
}

fn run_tool(cmd: &mut Command, name: &str, hint: &str) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {name} ({e}); {hint}"))?;
    if !status.success() {
        return Err(format!("{name} failed ({status}): {cmd:?}"));
    }
    Ok(())
}
