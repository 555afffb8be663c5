//! The workloads, each run as its own process (`mdatp-bench workload NAME N`)
//! so the parent times exactly it.

use std::fs::File;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// (name, default size at scale 1.0, what it is)
pub const WORKLOADS: &[(&str, u64, &str)] = &[
    ("open-one", 200_000, "open+close of one file"),
    (
        "open-one-grown",
        200_000,
        "the same with a grown descriptor table (fd 200 open), as a shell's children have",
    ),
    ("open-many", 200_000, "open+close over 1,000 distinct files"),
    (
        "syscall",
        2_000_000,
        "getppid(2), a call no program of the sensor handles: what every system call of the host pays",
    ),
    ("exec", 1_000, "fork+exec of /bin/true"),
    ("connect", 3_000, "TCP connect+close to a loopback listener"),
    (
        "read-heavy",
        1,
        "grep -r over /usr/include (reads every file)",
    ),
    ("build", 1, "make -j2 of 24 generated C files"),
];

pub fn run(name: &str, n: u64, scratch: &Path) -> Result<()> {
    match name {
        "open-one-grown" => {
            // A table past the 64 descriptors embedded in files_struct:
            // the kernel side reads the file with the probe helper.
            // SAFETY: duplicates stderr onto an unused descriptor.
            if unsafe { libc::dup2(2, 200) } < 0 {
                bail!("dup2 to 200: {}", std::io::Error::last_os_error());
            }
            run("open-one", n, scratch)?;
        }
        "open-one" => {
            let p = scratch.join("one.txt");
            std::fs::write(&p, b"x")?;
            for _ in 0..n {
                drop(File::open(&p)?);
            }
        }
        "open-many" => {
            let dir = scratch.join("many");
            std::fs::create_dir_all(&dir)?;
            let files: Vec<_> = (0..1000).map(|i| dir.join(format!("f{i}"))).collect();
            for f in &files {
                std::fs::write(f, b"x")?;
            }
            for i in 0..n {
                drop(File::open(&files[(i % 1000) as usize])?);
            }
        }
        "syscall" => {
            for _ in 0..n {
                // SAFETY: getppid takes no arguments and cannot fail.
                unsafe { libc::syscall(libc::SYS_getppid) };
            }
        }
        "exec" => {
            for _ in 0..n {
                let st = Command::new("/bin/true").status()?;
                if !st.success() {
                    bail!("/bin/true failed");
                }
            }
        }
        "connect" => {
            // Lockstep (connect, accept, close) so the listen backlog never
            // overflows, and close with RST (linger 0) so no TIME_WAIT piles
            // up across runs: otherwise SYN retries, not the sensor, set the time.
            let l = TcpListener::bind("127.0.0.1:0")?;
            let addr = l.local_addr()?;
            let rst = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            for _ in 0..n {
                let c = TcpStream::connect(addr)?;
                nix::sys::socket::setsockopt(&c, nix::sys::socket::sockopt::Linger, &rst)?;
                let (srv, _) = l.accept()?;
                drop(c);
                drop(srv);
            }
        }
        "read-heavy" => {
            for _ in 0..n {
                // Exit 1 (no match) is the expected outcome.
                Command::new("grep")
                    .args(["-r", "-c", "mdatp-no-such-string-xyzzy", "/usr/include"])
                    .stdout(Stdio::null())
                    .status()
                    .context("grep")?;
            }
        }
        "build" => {
            let dir = scratch.join("build");
            std::fs::create_dir_all(&dir)?;
            let mut objs = Vec::new();
            for i in 0..24 {
                let mut f = File::create(dir.join(format!("u{i}.c")))?;
                for j in 0..40 {
                    writeln!(
                        f,
                        "int f{i}_{j}(int x) {{ int s = 0; for (int k = 0; k < x; k++) s += k * {j} ^ (s >> 3); return s; }}"
                    )?;
                }
                objs.push(format!("u{i}.o"));
            }
            std::fs::write(
                dir.join("Makefile"),
                format!("all: {}\n%.o: %.c\n\tgcc -O2 -c $< -o $@\n", objs.join(" ")),
            )?;
            for _ in 0..n {
                for o in &objs {
                    let _ = std::fs::remove_file(dir.join(o));
                }
                let st = Command::new("make")
                    .args(["-s", "-j2"])
                    .current_dir(&dir)
                    .status()?;
                if !st.success() {
                    bail!("make failed");
                }
            }
        }
        other => bail!("unknown workload {other}"),
    }
    Ok(())
}
