//! File and network operations through io_uring only, no system call of
//! their own: the way around syscall-based sensors the io_uring tests
//! check (tests/io_uring.rs).
//!
//! mdatp-io-uring-workload DIR PORT
//!   in DIR (absolute): OPENAT creates DIR/made-by-uring, RENAMEAT moves it
//!   to DIR/renamed-by-uring, UNLINKAT removes that, MKDIRAT makes
//!   `dir-by-uring` relative to the cwd (run it with its cwd in DIR), then
//!   CONNECT to 127.0.0.1:PORT (refused is fine: the attempt is watched).
//!   Each operation waits for its completion; prints "ok" when done.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::process::ExitCode;

use io_uring::{IoUring, opcode, types};

fn run(ring: &mut IoUring, entry: io_uring::squeue::Entry, what: &str) -> Result<i32, String> {
    // SAFETY: every buffer the entry points to outlives the submission,
    // which is waited for here before returning.
    unsafe { ring.submission().push(&entry) }.map_err(|e| format!("{what}: push: {e}"))?;
    ring.submit_and_wait(1)
        .map_err(|e| format!("{what}: submit: {e}"))?;
    let cqe = ring
        .completion()
        .next()
        .ok_or_else(|| format!("{what}: no completion"))?;
    Ok(cqe.result())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(port)) = (args.get(1), args.get(2).and_then(|p| p.parse::<u16>().ok()))
    else {
        eprintln!("usage: mdatp-io-uring-workload DIR PORT");
        return ExitCode::from(2);
    };
    match workload(dir, port) {
        Ok(()) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn workload(dir: &str, port: u16) -> Result<(), String> {
    let mut ring = IoUring::new(8).map_err(|e| format!("io_uring_setup: {e}"))?;
    // What this kernel's io_uring can do (5.10 has no mkdirat): an
    // operation it lacks is skipped and said, not failed.
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("io_uring probe: {e}"))?;
    let supported = |code: u8, what: &str| {
        let ok = probe.is_supported(code);
        if !ok {
            eprintln!("skipped {what}: this kernel's io_uring has no such operation");
        }
        ok
    };
    let c = |s: String| CString::new(s).map_err(|e| e.to_string());
    let made = c(format!("{dir}/made-by-uring"))?;
    let renamed = c(format!("{dir}/renamed-by-uring"))?;
    let relative = c("dir-by-uring".into())?;
    let cwd = types::Fd(libc::AT_FDCWD);
    let check = |what: &str, res: i32| {
        if res < 0 {
            Err(format!(
                "{what}: {}",
                std::io::Error::from_raw_os_error(-res)
            ))
        } else {
            Ok(res)
        }
    };
    let fd = run(
        &mut ring,
        opcode::OpenAt::new(cwd, made.as_ptr())
            .flags(libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC)
            .mode(0o644)
            .build(),
        "openat",
    )?;
    check("openat", fd)?;
    // SAFETY: fd was just opened by the ring for this process.
    unsafe { libc::close(fd) };
    if supported(opcode::RenameAt::CODE, "renameat") {
        let res = run(
            &mut ring,
            opcode::RenameAt::new(cwd, made.as_ptr(), cwd, renamed.as_ptr()).build(),
            "renameat",
        )?;
        check("renameat", res)?;
        if supported(opcode::UnlinkAt::CODE, "unlinkat") {
            let res = run(
                &mut ring,
                opcode::UnlinkAt::new(cwd, renamed.as_ptr()).build(),
                "unlinkat",
            )?;
            check("unlinkat", res)?;
        }
    }
    if supported(opcode::MkDirAt::CODE, "mkdirat") {
        let res = run(
            &mut ring,
            opcode::MkDirAt::new(cwd, relative.as_ptr())
                .mode(0o755)
                .build(),
            "mkdirat",
        )?;
        check("mkdirat", res)?;
    }
    // SAFETY: a plain socket(2); the fd is closed when `owned` drops.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    if raw < 0 {
        return Err(format!("socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: raw is a fresh descriptor owned by nothing else.
    let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
        },
        sin_zero: [0; 8],
    };
    if !supported(opcode::Connect::CODE, "connect") {
        return Ok(());
    }
    let res = run(
        &mut ring,
        opcode::Connect::new(
            types::Fd(owned.as_raw_fd()),
            (&raw const addr).cast::<libc::sockaddr>(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
        .build(),
        "connect",
    )?;
    if res < 0 && res != -libc::ECONNREFUSED {
        check("connect", res)?;
    }
    Ok(())
}
