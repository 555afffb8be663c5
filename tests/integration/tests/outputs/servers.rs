//! The real receivers the delivery tests send to: Debian's rsyslogd and
//! nats-server, each a private instance in the test's directory on a
//! free loopback port, killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use mdatp_integration_tests::wait_until;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn wait_port(port: u16) {
    assert!(
        wait_until(Duration::from_secs(15), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        }),
        "nothing listens on 127.0.0.1:{port}"
    );
}

pub struct Rsyslog {
    child: Child,
    pub out: PathBuf,
}

impl Rsyslog {
    /// rsyslogd in the foreground with `inputs` (RainerScript) and every
    /// record written to `out.log` as `PRI|VERSION|APP|PROCID|MSGID|MSG`.
    pub fn start(dir: &Path, inputs: &str) -> Self {
        let out = dir.join("out.log");
        let conf = dir.join("rsyslog.conf");
        std::fs::create_dir_all(dir.join("work")).expect("mkdir");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{work}" maxMessageSize="256k")
{inputs}
template(name="fields" type="string" string="%PRI%|%PROTOCOL-VERSION%|%APP-NAME%|%PROCID%|%MSGID%|%msg%\n")
*.* action(type="omfile" file="{out}" template="fields")
"#,
                work = dir.join("work").display(),
                out = out.display()
            ),
        )
        .expect("write rsyslog.conf");
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .spawn()
            .expect("start rsyslogd (Debian package rsyslog)");
        Self { child, out }
    }

    /// (MSGID, APP-NAME, PRI, the JSON) of each record received so far.
    pub fn records(&self) -> Vec<(String, String, u32, serde_json::Value)> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.splitn(6, '|').collect();
                let json = serde_json::from_str(f.get(5)?.trim_start()).ok()?;
                Some((f[4].to_string(), f[2].to_string(), f[0].parse().ok()?, json))
            })
            .collect()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    store: PathBuf,
}

impl NatsServer {
    /// nats-server with JetStream, its store under `dir` (kept across a
    /// kill and restart).
    pub fn start(dir: &Path) -> Self {
        let mut s = Self {
            child: None,
            port: free_port(),
            store: dir.join("jetstream"),
        };
        s.restart();
        s
    }

    pub fn restart(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nats-server (Debian package nats-server)");
        self.child = Some(child);
        wait_port(self.port);
    }

    /// kill -9: nothing flushed, no goodbye to clients.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Every event of `stream` on `subject`, in stream order.
    pub fn messages(&self, stream: &str, subject: &str) -> Vec<serde_json::Value> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            use async_nats::jetstream::consumer::{self, pull};
            use futures_util::StreamExt;
            let client = async_nats::connect(self.url()).await.expect("connect");
            let js = async_nats::jetstream::new(client);
            let stream = js.get_stream(stream).await.expect("the stream exists");
            let consumer = stream
                .create_consumer(pull::Config {
                    filter_subject: subject.to_string(),
                    deliver_policy: consumer::DeliverPolicy::All,
                    ack_policy: consumer::AckPolicy::None,
                    ..Default::default()
                })
                .await
                .expect("consumer");
            let mut out = Vec::new();
            loop {
                let mut batch = consumer
                    .fetch()
                    .max_messages(1000)
                    .expires(Duration::from_secs(1))
                    .messages()
                    .await
                    .expect("fetch");
                let mut got = 0;
                while let Some(m) = batch.next().await {
                    let m = m.expect("message");
                    // One event, or several as JSON Lines.
                    for line in m.payload.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                        out.push(serde_json::from_slice(line).expect("JSON payload"));
                    }
                    got += 1;
                }
                if got == 0 {
                    break;
                }
            }
            out
        })
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A CA and a server certificate for 127.0.0.1 made with openssl.
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make_certs(dir: &Path) -> Certs {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=mdatp test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("ext");
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
    Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}
