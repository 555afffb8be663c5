//! Small workloads for the end-to-end tests, run as their own process so
//! that a test can attribute events to a pid and see process exit.
//!
//! mdatp-test-helper open-read-close PATH N [FDS]   open, read 1 byte, close, N times
//! mdatp-test-helper open-storm PATH N [FDS]        open and close N times
//! mdatp-test-helper unlinkat DIR NAME               unlinkat(open(DIR), NAME): a
//!                                                   name relative to a directory fd
//!
//! mdatp-test-helper open-read-close PATH N inherit SHAPE
//!   SHAPE is how the process's threads end (its fold counts must
//!   survive the thread group leader going first):
//!   thread-exec   after the loop, a second thread execs /bin/true (the
//!                 kernel makes it the leader; the old leader's task goes)
//!   leader-exits  the main thread leaves first (exit(2)); a second
//!                 thread runs the loop, then the process ends
//!
//! FDS sets up the descriptor table the opens happen with, because the
//! kernel side reads a file differently from the table embedded in
//! files_struct and from a grown one:
//!   inherit   as started (default)
//!   embedded  close every inherited descriptor above 2, then run the
//!             loop in a child started from this clean table, whose table
//!             is the embedded one (the child's argv ends in "child")
//!   grown     occupy descriptor 200 first, so the table is reallocated

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::{Command, ExitCode};

/// unlinkat(2) of `name` relative to a descriptor of `dir`.
fn unlinkat(dir: &str, name: &str) -> ExitCode {
    let (Ok(d), Ok(n)) = (File::open(dir), std::ffi::CString::new(name)) else {
        eprintln!("cannot open {dir}");
        return ExitCode::FAILURE;
    };
    // SAFETY: a valid directory descriptor and a NUL-terminated name.
    if unsafe { libc::unlinkat(d.as_raw_fd(), n.as_ptr(), 0) } != 0 {
        eprintln!("unlinkat: {}", std::io::Error::last_os_error());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let (Some("unlinkat"), Some(dir), Some(name)) =
        (args.get(1).map(String::as_str), args.get(2), args.get(3))
    {
        return unlinkat(dir, name);
    }
    let (Some(cmd), Some(path), Some(n)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: mdatp-test-helper open-read-close|open-storm PATH N");
        return ExitCode::from(2);
    };
    let Ok(n) = n.parse::<u64>() else {
        eprintln!("N must be a number");
        return ExitCode::from(2);
    };
    match args.get(4).map(String::as_str).unwrap_or("inherit") {
        "inherit" | "child" => {}
        "embedded" => {
            // SAFETY: close_range only closes descriptors; nothing of
            // this process refers to the inherited ones above 2. The
            // system call itself: glibc's wrapper is 2.34+, and this
            // helper runs in guests with older glibc.
            unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
            return match Command::new(&args[0])
                .args([cmd, path, &n.to_string(), "child"])
                .status()
            {
                Ok(st) if st.success() => ExitCode::SUCCESS,
                Ok(st) => {
                    eprintln!("child: {st}");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("start child: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        "grown" => {
            // SAFETY: duplicates stderr onto a descriptor nothing uses;
            // it stays open until exit.
            if unsafe { libc::dup2(std::io::stderr().as_raw_fd(), 200) } < 0 {
                eprintln!("dup2 to 200: {}", std::io::Error::last_os_error());
                return ExitCode::FAILURE;
            }
        }
        other => {
            eprintln!("unknown FDS {other}");
            return ExitCode::from(2);
        }
    }
    let shape = args.get(5).map(String::as_str);
    match shape {
        None | Some("thread-exec") => {}
        Some("leader-exits") => {
            let (cmd, path) = (cmd.clone(), path.clone());
            std::thread::spawn(move || std::process::exit(open_loop(&cmd, &path, n) as i32));
            // exit(2), not exit_group(2) and not pthread_exit (which
            // unwinds, and Rust aborts on a forced unwind of main): ends
            // only this thread, the process lives on until the loop
            // thread exits it.
            // SAFETY: nothing of this thread is used after; the spawned
            // thread owns what it uses.
            unsafe { libc::syscall(libc::SYS_exit, 0) };
            unreachable!("exit(2) returned");
        }
        Some(other) => {
            eprintln!("unknown SHAPE {other}");
            return ExitCode::from(2);
        }
    }
    let code = open_loop(cmd, path, n);
    if code != 0 || shape != Some("thread-exec") {
        return ExitCode::from(code);
    }
    let exec = std::thread::spawn(|| {
        let e = std::os::unix::process::CommandExt::exec(&mut Command::new("/bin/true"));
        eprintln!("exec /bin/true from a thread: {e}");
    });
    let _ = exec.join();
    ExitCode::FAILURE
}

/// The open loop of `cmd`: 0, or the exit code of its failure.
fn open_loop(cmd: &str, path: &str, n: u64) -> u8 {
    let read = match cmd {
        "open-read-close" => true,
        "open-storm" => false,
        _ => {
            eprintln!("unknown command {cmd}");
            return 2;
        }
    };
    let mut byte = [0u8; 1];
    for _ in 0..n {
        match File::open(path) {
            Ok(mut f) => {
                if read && f.read(&mut byte).is_err() {
                    eprintln!("read {path} failed");
                    return 1;
                }
            }
            Err(e) => {
                eprintln!("open {path}: {e}");
                return 1;
            }
        }
    }
    0
}
