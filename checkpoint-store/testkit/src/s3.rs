//! SeaweedFS on 127.0.0.1 for the S3 variants of the tests: the same server and arguments as
//! `scripts/seaweedfs.sh start`, started from the test process and SIGKILLed (and waited for)
//! when dropped, also when a test panics.
//!
//! `weed` is found through `CORNERSTONE_WEED`, the virtualenv that `scripts/seaweedfs.sh
//! install` creates (`~/.cache/cornerstone-seaweedfs/bin/weed`), or `PATH`. When it is absent the
//! S3 variants say so on stderr and return; with `CORNERSTONE_REQUIRE_S3=1` (set by `.ci/run`)
//! absence is a failure instead, so CI never skips them silently.
//!
//! The variants also need a checkpoint store that opens `s3://` URLs: the store's `s3`
//! feature, turned on by the crate under test (`--all-features`) or by this crate's `s3`
//! feature. Without it they skip (or fail, when required) in the same way.
//!
//! ```no_run
//! use cornerstone_testkit::s3::{SeaweedFs, unique_prefix};
//!
//! // `None` (after saying why on stderr) when there is no server here.
//! let Some(server) = SeaweedFs::shared("my_test") else { return };
//! let store = server.store(&unique_prefix("my_test"));
//! assert!(store.resolve("no-such-job").is_err());
//! ```
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use cornerstone_checkpoint_store::{CheckpointStore, opendal};

/// The access key of the fixed test credentials (the server only listens on 127.0.0.1).
pub const ACCESS_KEY: &str = "cornerstone-test";
/// The secret key of the fixed test credentials.
pub const SECRET_KEY: &str = "cornerstone-test-secret";
/// The region the clients name (SeaweedFS accepts any).
pub const REGION: &str = "us-east-1";
/// The bucket the server is started with; each test uses its own prefix of it.
pub const BUCKET: &str = "cornerstone";

/// How long a start (or restart) may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The `weed` binary, if installed.
pub fn weed_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CORNERSTONE_WEED") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = Path::new(&home).join(".cache/cornerstone-seaweedfs/bin/weed");
        if p.is_file() {
            return Some(p);
        }
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("weed"))
            .find(|p| p.is_file())
    })
}

/// Whether absence of the server (or of the `s3` feature) is a failure (`CORNERSTONE_REQUIRE_S3=1`).
pub fn required() -> bool {
    std::env::var("CORNERSTONE_REQUIRE_S3").is_ok_and(|v| v == "1")
}

/// Says on the real stderr (not captured by the test harness) that `test` is skipped, or
/// panics when S3 is required.
pub fn skip(test: &str, why: &str) {
    assert!(
        !required(),
        "{test} (s3): {why}, and CORNERSTONE_REQUIRE_S3=1 requires the S3 variants to run \
         (`scripts/test` installs `weed`; or `scripts/seaweedfs.sh install` and set CORNERSTONE_WEED)"
    );
    let msg = format!(
        "SKIPPED {test} (s3): {why}; run the tests with `scripts/test` (it installs `weed`), or set CORNERSTONE_WEED \
         to a `weed` binary; CORNERSTONE_REQUIRE_S3=1 makes this a failure\n"
    );
    let _ = std::io::stderr().write_all(msg.as_bytes());
}

/// `N` distinct free ports on 127.0.0.1 (all bound at once, then released).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1"))
        .collect();
    std::array::from_fn(|i| {
        listeners[i]
            .local_addr()
            .expect("the address of a bound listener")
            .port()
    })
}

/// One SeaweedFS server (master, volume, filer, S3 gateway) with its data in a temp dir.
#[derive(Debug)]
pub struct SeaweedFs {
    weed: PathBuf,
    dir: tempfile::TempDir,
    /// master, volume, filer, s3 and their gRPC ports.
    ports: [u16; 8],
    child: Mutex<Option<Child>>,
}

static SHARED: Mutex<Weak<SeaweedFs>> = Mutex::new(Weak::new());

impl SeaweedFs {
    /// A server shared by the tests of this process that run at the same time (each test
    /// uses its own prefix); stopped when the last of them drops it. `None` (after saying
    /// why) when `weed` or the `s3` feature is missing and S3 is not required.
    pub fn shared(test: &str) -> Option<Arc<Self>> {
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slot.upgrade() {
            return Some(s);
        }
        let s = Arc::new(Self::start(test)?);
        *slot = Arc::downgrade(&s);
        Some(s)
    }

    /// A server of its own (for tests that kill and restart it).
    pub fn start(test: &str) -> Option<Self> {
        if let Err(why) = s3_feature() {
            skip(test, &why);
            return None;
        }
        let Some(weed) = weed_binary() else {
            skip(test, "`weed` (SeaweedFS) not found");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("cornerstone-seaweedfs-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(
            dir.path().join("s3.json"),
            format!(
                r#"{{"identities":[{{"name":"cornerstone","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","List","Tagging","Write"]}}]}}"#
            ),
        )
        .unwrap();
        let server = SeaweedFs {
            weed,
            dir,
            ports: free_ports(),
            child: Mutex::new(None),
        };
        server.spawn();
        server.create_bucket();
        server.wait_writable();
        Some(server)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("weed.log")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn spawn(&self) {
        let [master, volume, filer, s3, g_master, g_volume, g_filer, g_s3] = self.ports;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        // `sh` runs `weed` and a watchdog that SIGKILLs it as soon as our end of the pipe on
        // its stdin closes: when the server is dropped, and also when this test process dies
        // without unwinding (killed by a timeout), so no server outlives its tests. `sh` waits
        // for `weed`, so its exit status is `weed`'s.
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec 3<&0; "$@" 3<&- & w=$!; (read -r _ <&3; kill -9 "$w" 2>/dev/null) & wait "$w""#)
            .arg("sh")
            .arg(&self.weed)
            .arg("server")
            .arg(format!("-dir={}", self.dir.path().join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={master}"))
            .arg(format!("-master.port.grpc={g_master}"))
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-volume.port.grpc={g_volume}"))
            .arg("-filer")
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-filer.port.grpc={g_filer}"))
            .arg("-s3")
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-s3.port.grpc={g_s3}"))
            .arg(format!(
                "-s3.config={}",
                self.dir.path().join("s3.json").display()
            ))
            .args([
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.volumeSizeLimitMB=128",
                "-volume.max=0",
            ])
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.weed.display()));
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
    }

    fn check_alive(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            panic!(
                "weed exited while starting ({status}); log {}:\n{}",
                self.log_path().display(),
                self.log_tail()
            );
        }
    }

    /// Retries `f` until it returns `Ok` or the start timeout passes.
    fn until<T, E: std::fmt::Debug>(&self, what: &str, mut f: impl FnMut() -> Result<T, E>) -> T {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.check_alive();
            match f() {
                Ok(v) => return v,
                Err(e) if Instant::now() > deadline => panic!(
                    "SeaweedFS: {what} did not succeed within {START_TIMEOUT:?}: {e:?}; log {}:\n{}",
                    self.log_path().display(),
                    self.log_tail()
                ),
                Err(_) => pause(),
            }
        }
    }

    /// Creates the bucket with a plain (unauthenticated) request to the filer, which listens
    /// on 127.0.0.1 only: a bucket is a directory under `/buckets/`.
    fn create_bucket(&self) {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let url = format!(
            "http://127.0.0.1:{}/buckets/{BUCKET}/?op=mkdir",
            self.ports[2]
        );
        self.until("creating the bucket", || {
            let r = client.post(&url).send().map_err(|e| e.to_string())?;
            if r.status().is_success() {
                Ok(())
            } else {
                Err(format!("{}: {}", r.status(), r.text().unwrap_or_default()))
            }
        });
    }

    /// Waits until an object can be written, read and deleted through the S3 API with the test
    /// credentials (after a restart the master first elects itself leader).
    fn wait_writable(&self) {
        let op = self.operator("_ready");
        let rt = runtime();
        self.until("a write through the S3 API", || {
            rt.block_on(async {
                op.write("probe", "ready").await?;
                let back = op.read("probe").await?;
                op.delete("probe").await?;
                if back.to_vec() == b"ready" {
                    Ok(())
                } else {
                    Err(opendal::Error::new(
                        opendal::ErrorKind::Unexpected,
                        "probe read back wrong bytes",
                    ))
                }
            })
        });
    }

    /// The S3 endpoint, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[3])
    }

    /// The options of `CheckpointStore::from_url` for this server.
    pub fn options(&self) -> Vec<(&'static str, String)> {
        vec![
            ("endpoint", self.endpoint()),
            ("region", REGION.to_owned()),
            ("access_key_id", ACCESS_KEY.to_owned()),
            ("secret_access_key", SECRET_KEY.to_owned()),
        ]
    }

    /// `s3://<bucket>/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// A checkpoint store rooted at `prefix` of the bucket.
    pub fn store(&self, prefix: &str) -> CheckpointStore {
        CheckpointStore::from_url(&self.url(prefix), self.options()).unwrap()
    }

    /// A raw OpenDAL S3 operator rooted at `prefix` of the bucket.
    pub fn operator(&self, prefix: &str) -> opendal::Operator {
        s3_operator(&self.endpoint(), prefix)
    }

    /// SIGKILLs the server and waits for it (`weed` ignores SIGTERM for a while): closing
    /// the watchdog's pipe makes it SIGKILL `weed`, and `sh` exits once `weed` is gone.
    pub fn kill(&self) {
        if let Some(mut c) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            drop(c.stdin.take());
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same data directory and ports, and waits until it
    /// takes writes.
    pub fn restart(&self) {
        self.kill();
        self.spawn();
        self.wait_writable();
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether the checkpoint store of this build opens `s3://` URLs (its `s3` feature, whichever
/// crate turned it on); why not, when it does not.
fn s3_feature() -> Result<(), String> {
    // Opening a store does no I/O: the port is never contacted.
    CheckpointStore::from_url(
        &format!("s3://{BUCKET}/probe"),
        [("region", REGION), ("endpoint", "http://127.0.0.1:9")],
    )
    .map(drop)
    .map_err(|e| format!("this build's checkpoint store has no `s3` feature ({e})"))
}

/// A raw OpenDAL S3 operator (no layers) on the server at `endpoint`, rooted at `prefix`.
/// Through OpenDAL's registry: the S3 service is there when the store's `s3` feature is.
fn s3_operator(endpoint: &str, prefix: &str) -> opendal::Operator {
    opendal::install_default();
    opendal::Operator::via_iter(
        "s3",
        [
            ("bucket", BUCKET.to_owned()),
            ("root", format!("/{prefix}")),
            ("endpoint", endpoint.to_owned()),
            ("region", REGION.to_owned()),
            ("access_key_id", ACCESS_KEY.to_owned()),
            ("secret_access_key", SECRET_KEY.to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    )
    .expect("an S3 operator (SeaweedFs::start checked that this build has S3)")
}

/// The pause between two polls of an external process (bounded by the caller's deadline).
#[expect(
    clippy::disallowed_methods,
    reason = "polls a server process, with a deadline; there is no clock to inject into it"
)]
fn pause() {
    std::thread::sleep(Duration::from_millis(250));
}

/// The runtime of the async OpenDAL calls of the tests: one per process, multi-threaded, never
/// dropped. OpenDAL's HTTP client is process-wide and pools its connections; a connection
/// opened on a runtime that is no longer driven (a dropped or idle current-thread runtime)
/// would stall the next request that reuses it.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    });
    &RUNTIME
}

/// A fresh, unique prefix for one test.
pub fn unique_prefix(test: &str) -> String {
    format!(
        "{}-{}",
        test.replace("::", "-"),
        uuid::Uuid::new_v4().simple()
    )
}
