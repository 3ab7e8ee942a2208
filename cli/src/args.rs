//! The command line, parsed by clap.

use clap::{Args, Parser, Subcommand};
use cornerstone_checkpoint_store::split_location_query;

const AFTER_HELP: &str = "\
LOCATIONS:
  Every <path> is a local path, a file:// URL, memory:// (an empty in-memory store, only
  useful for testing), s3://bucket/prefix, gs://bucket/prefix or azblob://container/prefix
  (features `s3`, `gcs`, `azblob`, all on by default). -o KEY=VALUE, or the location's query
  (s3://bucket/prefix?region=eu-west-1), sets any option of OpenDAL's configuration of the
  service (region, endpoint, profile, role_arn, credential_path, account_name, ...; aliases
  such as aws_region too); an unknown one is an error that lists the known ones.
  Credentials never need the command line: they come from the service's usual variables and
  files (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws/config;
  GOOGLE_APPLICATION_CREDENTIALS; AZBLOB_ACCOUNT_NAME, AZBLOB_ACCOUNT_KEY,
  AZURE_STORAGE_SAS_TOKEN). S3 needs a region (--region, AWS_REGION or AWS_DEFAULT_REGION);
  --anonymous sends unsigned requests (public buckets, servers without authentication).
  Every location takes retries (default 4, with backoff from retry_delay=200ms),
  timeout (one call, default 60s) and io_timeout (one read or write, default 30s).

APACHE FLINK:
  list, show, verify, gc and diff also read Apache Flink's own job directories
  (<job>/chk-N/_metadata, shared/, taskowned/, savepoint-*/), detected by the magic number of
  _metadata. verify of a Flink job directory checks every checkpoint and savepoint in it
  (each file exists, at least as large as recorded, and the problems name the checkpoints
  that reference it); gc of one never takes a lease (stop the job, or keep --min-age above
  its checkpoint timeout) and refuses while a _metadata is unreadable or a referenced file
  cannot be found. --path-prefix OLD=NEW maps the absolute paths Flink wrote for a moved or
  copied directory. JSON documents of Flink directories carry \"format\": \"flink\".

OUTPUT:
  Results go to stdout (with --json, one stable JSON document; `dump` always writes JSON
  lines). Every JSON document (each dump line, each error too) has \"schema_version\": 1,
  raised only when a field is removed or changes meaning. Progress bars (only on a
  terminal), logs and errors go to stderr.

LOGS:
  Warnings by default; -v adds the store's info events (checkpoints deleted, leases taken),
  -vv debug, -vvv trace; -q only errors. RUST_LOG (tracing's EnvFilter syntax, e.g.
  RUST_LOG=cornerstone_checkpoint_store=debug) overrides both.

EXIT CODES:
  0  success (verify: no problem found)
  1  verify found problems in the checkpoint or savepoint
  2  a bad command line
  3  not found: the checkpoint, savepoint, directory, operator or state
  4  storage unavailable, or the outcome of a change unknown: worth retrying
  5  unreadable: corrupt data, a newer format, a storage URL this build does not support
  6  any other error: a refused operation (denied credentials, a live writer's lease), a limit
  An error is one line on stderr (`error: ...`); with --json, one JSON object:
  {\"error\": {\"kind\", \"message\", \"context\", \"detail\", \"exit_code\"},
  \"schema_version\": 1}";

/// Inspect and maintain Cornerstone checkpoints and savepoints.
#[derive(Debug, Parser)]
#[command(name = "cornerstone", version, about, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// Print machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// More log output on stderr: -v info, -vv debug, -vvv trace (RUST_LOG overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub(crate) verbose: u8,

    /// Only errors on stderr, no warnings (RUST_LOG overrides).
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,

    /// Apache Flink's job directories: read the absolute paths Flink wrote into `_metadata`
    /// under OLD from NEW instead (a moved or copied checkpoint; repeatable, the longest
    /// matching prefix applies), e.g. --path-prefix /flink/checkpoints=/mnt/copy or
    /// --path-prefix s3a://bucket/ckpt=s3://bucket/ckpt.
    #[arg(long, global = true, value_name = "OLD=NEW", value_parser = parse_prefix)]
    pub(crate) path_prefix: Vec<(String, String)>,

    /// Options of the object store that holds the locations.
    #[command(flatten)]
    pub(crate) storage: StorageArgs,

    /// The command.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Object-storage options; unset options fall back to the service's environment variables.
#[derive(Debug, Args)]
pub(crate) struct StorageArgs {
    /// S3 endpoint URL (falls back to AWS_ENDPOINT_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) endpoint: Option<String>,
    /// S3 region (falls back to AWS_REGION, then AWS_DEFAULT_REGION).
    #[arg(long, global = true)]
    pub(crate) region: Option<String>,
    /// S3 access key id (falls back to AWS_ACCESS_KEY_ID).
    #[arg(long, global = true, value_name = "ID")]
    pub(crate) access_key_id: Option<String>,
    /// S3 secret access key (falls back to AWS_SECRET_ACCESS_KEY, which keeps it out of the
    /// process list: prefer it).
    #[arg(long, global = true, value_name = "KEY")]
    pub(crate) secret_access_key: Option<String>,
    /// The AWS profile of ~/.aws/config and ~/.aws/credentials (falls back to AWS_PROFILE).
    #[arg(long, global = true)]
    pub(crate) profile: Option<String>,
    /// Object storage without credentials: unsigned requests, for public buckets and
    /// servers without authentication.
    #[arg(long, global = true)]
    pub(crate) anonymous: bool,
    /// Any storage option as KEY=VALUE (repeatable), as the location's query also takes
    /// them (`s3://bucket/prefix?region=eu-west-1`): every option of OpenDAL's
    /// configuration of the service, anonymous, and retries, retry_delay, timeout,
    /// io_timeout.
    #[arg(short = 'o', long = "option", global = true, value_name = "KEY=VALUE", value_parser = parse_option)]
    pub(crate) option: Vec<(String, String)>,
}

/// A `--path-prefix OLD=NEW`.
fn parse_prefix(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((old, new)) if !old.is_empty() && !new.is_empty() => {
            Ok((old.to_owned(), new.to_owned()))
        }
        _ => Err(format!("expected OLD=NEW, got {s:?}")),
    }
}

/// A `-o KEY=VALUE`.
fn parse_option(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

impl StorageArgs {
    /// The options given on the command line, as `CheckpointStore::open_location` takes them.
    pub(crate) fn options(&self) -> Vec<(String, String)> {
        [
            ("endpoint", &self.endpoint),
            ("region", &self.region),
            ("access_key_id", &self.access_key_id),
            ("secret_access_key", &self.secret_access_key),
            ("profile", &self.profile),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v)))
        .chain(
            self.anonymous
                .then(|| ("anonymous".to_owned(), "true".to_owned())),
        )
        .chain(self.option.iter().cloned())
        .collect()
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List the checkpoints (chk-N) and savepoints of a job directory with id, time, size and
    /// status (complete, incomplete or corrupt).
    List {
        /// The job directory (or a directory of savepoints).
        job_dir: String,
        /// Only ids from this one on.
        #[arg(long, value_name = "ID")]
        from: Option<u64>,
        /// Only ids up to this one.
        #[arg(long, value_name = "ID")]
        to: Option<u64>,
        /// Only the last N entries (the newest checkpoints; savepoints are listed after them).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Show a checkpoint or savepoint: operators, parallelism, key-group ranges, handles,
    /// files and sizes.
    Show {
        /// A _metadata file, a chk-N or savepoint directory, or a job directory (its latest
        /// complete checkpoint).
        path: String,
        /// With a job directory: checkpoint N (`<path>/chk-N`) instead of the latest.
        #[arg(long, value_name = "N")]
        id: Option<u64>,
        /// With a job directory: its latest complete checkpoint (the default; for scripts
        /// that say so explicitly).
        #[arg(long, conflicts_with = "id")]
        latest: bool,
    },
    /// Read every file a checkpoint or savepoint references and check sizes, checksums and
    /// references. Exits with 1 when a problem is found.
    Verify {
        /// A _metadata file, a chk-N or savepoint directory, or a job directory.
        path: String,
        /// With a job directory: checkpoint N (`<path>/chk-N`) instead of the latest.
        #[arg(long, value_name = "N")]
        id: Option<u64>,
        /// With a job directory: its latest complete checkpoint (the default; for scripts
        /// that say so explicitly).
        #[arg(long, conflicts_with = "id")]
        latest: bool,
    },
    /// Print the state entries of one operator as JSON lines (values of types without a
    /// known identity as hex). RocksDB incremental snapshots are rewritten in the canonical
    /// format first, with the `rocksdb` feature.
    Dump {
        /// A _metadata file, a chk-N or savepoint directory, or a job directory.
        path: String,
        /// With a job directory: checkpoint N (`<path>/chk-N`) instead of the latest.
        #[arg(long, value_name = "N")]
        id: Option<u64>,
        /// With a job directory: its latest complete checkpoint (the default; for scripts
        /// that say so explicitly).
        #[arg(long, conflicts_with = "id")]
        latest: bool,
        /// The uid of the operator.
        #[arg(long, value_name = "UID")]
        operator: String,
        /// Only this state (keyed or operator state name).
        #[arg(long, value_name = "NAME")]
        state: Option<String>,
        /// Only the entries of this subtask.
        #[arg(long, value_name = "N")]
        subtask: Option<u32>,
        /// Only keyed entries of this key group (read with the snapshot's key-group index:
        /// nothing else of the stream is read). Operator state is left out.
        #[arg(long, value_name = "N")]
        key_group: Option<u32>,
        /// Only keyed entries whose decoded key equals this JSON value (`42`, `'"alice"'`,
        /// `'[1, "a"]'`). Operator state is left out.
        #[arg(long, value_name = "JSON", value_parser = parse_json)]
        key: Option<serde_json::Value>,
        /// Print at most this many entries.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
    },
    /// Find files under shared/ and chk-* that no complete checkpoint references and that
    /// are safe to delete beside a running job. Dry run unless --delete is given.
    Gc {
        /// The job directory.
        job_dir: String,
        /// Delete the files found: takes the job directory's lease (fencing its writer) and
        /// re-checks that nothing references them now. Refused while a live writer holds the
        /// lease, unless --force.
        #[arg(long)]
        delete: bool,
        /// Nothing modified more recently is collected, and a writer whose lease shows
        /// activity within it is live; keep it above the checkpoint timeout
        /// (e.g. 30m, 2h, 0s).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        min_age: std::time::Duration,
        /// With --delete: delete even while a live writer holds the lease (the writer is
        /// fenced: its next commit fails and the job must restart).
        #[arg(long, requires = "delete")]
        force: bool,
    },
    /// Compare two checkpoints or savepoints: operators, files and sizes.
    Diff {
        /// The first (older) checkpoint or savepoint.
        a: String,
        /// The second (newer) checkpoint or savepoint.
        b: String,
    },
    /// Dispose of a savepoint: delete its _metadata first, then its files, listing them.
    /// Only a directory whose _metadata decodes as a savepoint is disposed of.
    Dispose {
        /// The savepoint directory or its _metadata.
        savepoint: String,
        /// List what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also dispose of a directory without a readable savepoint _metadata (never of a
        /// checkpoint).
        #[arg(long)]
        force: bool,
    },
}

/// A `--key` value: JSON, or a bare word taken as a JSON string.
fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    match serde_json::from_str(s) {
        Ok(v) => Ok(v),
        Err(_)
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_alphanumeric() || "-_.:/".contains(c)) =>
        {
            Ok(serde_json::Value::String(s.to_owned()))
        }
        Err(e) => Err(format!("not a JSON value: {e}")),
    }
}

impl Command {
    /// The location the command works on (the first one for `diff`).
    pub(crate) fn location(&self) -> &str {
        match self {
            Command::List { job_dir, .. } | Command::Gc { job_dir, .. } => job_dir,
            Command::Show { path, .. }
            | Command::Verify { path, .. }
            | Command::Dump { path, .. } => path,
            Command::Diff { a, .. } => a,
            Command::Dispose { savepoint, .. } => savepoint,
        }
    }
}

/// `location` with checkpoint `id` selected: `<location>/chk-<id>` for a job directory
/// (before the URL's query, if any).
pub(crate) fn with_id(location: &str, id: Option<u64>) -> String {
    match id {
        Some(id) => {
            let (bare, query) = split_location_query(location);
            let query = query.map(|q| format!("?{q}")).unwrap_or_default();
            format!("{}/chk-{id}{query}", bare.trim_end_matches('/'))
        }
        None => location.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    #[test]
    fn latest_is_the_default_and_excludes_id() {
        let cli = Cli::try_parse_from(["cornerstone", "show", "job", "--latest"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Show {
                id: None,
                latest: true,
                ..
            }
        ));
        let e = Cli::try_parse_from(["cornerstone", "verify", "job", "--latest", "--id", "3"])
            .unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert_eq!(
            with_id_of(&[
                "cornerstone",
                "dump",
                "job",
                "--operator",
                "op",
                "--id",
                "3"
            ]),
            "job/chk-3"
        );
    }

    fn with_id_of(args: &[&str]) -> String {
        match Cli::try_parse_from(args).unwrap().command {
            Command::Dump { path, id, .. } => super::with_id(&path, id),
            other => panic!("{other:?}"),
        }
    }
}
