//! Small workloads for the end-to-end tests, run as their own process so
//! that a test can attribute events to a pid and see process exit.
//!
//! mdatp-test-helper open-read-close PATH N   open, read 1 byte, close, N times
//! mdatp-test-helper open-storm PATH N        open and close N times

use std::fs::File;
use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(cmd), Some(path), Some(n)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: mdatp-test-helper open-read-close|open-storm PATH N");
        return ExitCode::from(2);
    };
    let Ok(n) = n.parse::<u64>() else {
        eprintln!("N must be a number");
        return ExitCode::from(2);
    };
    let read = match cmd.as_str() {
        "open-read-close" => true,
        "open-storm" => false,
        _ => {
            eprintln!("unknown command {cmd}");
            return ExitCode::from(2);
        }
    };
    let mut byte = [0u8; 1];
    for _ in 0..n {
        match File::open(path) {
            Ok(mut f) => {
                if read && f.read(&mut byte).is_err() {
                    eprintln!("read {path} failed");
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("open {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
