//! `cornerstone`: inspect and maintain Cornerstone checkpoints and savepoints.
//!
//! A thin layer over [`cornerstone_checkpoint_store::inspect`]: the library does the work,
//! this binary parses the command line and prints.
//!
//! - `cornerstone list <job-dir>`: checkpoints and savepoints with id, time, size and status
//!   (complete, incomplete, corrupt);
//! - `cornerstone show <path>`: operators (uid, name), parallelism, max parallelism,
//!   per-subtask key-group ranges, handles, files and sizes;
//! - `cornerstone verify <path>`: reads every referenced file and checks sizes, checksums and
//!   references; exits with 1 and a precise report on any problem;
//! - `cornerstone dump <path> --operator UID [--state NAME]`: state entries as JSON lines
//!   (full snapshots of the heap backends; values of unknown types as hex);
//! - `cornerstone gc <job-dir> [--delete] [--min-age 1h] [--force]`: files under `shared/`
//!   and `chk-*` that no complete checkpoint references and that are safe to delete beside
//!   a running job (nothing younger than the min age, nothing of a checkpoint in progress or
//!   with an unreadable `_metadata`), with sizes and what is kept and why (a dry run unless
//!   `--delete`, which takes the job directory's lease and is refused while a live writer
//!   holds it, unless `--force`);
//! - `cornerstone diff <a> <b>`: operators, files and sizes changed between two snapshots;
//! - on Apache Flink's own job directories (detected by the magic number of `_metadata`),
//!   `list`, `show`, `verify`, `gc` and `diff` work the same way (module `flink` prints
//!   their results), with `--path-prefix OLD=NEW` for the absolute paths of moved
//!   checkpoints;
//! - `cornerstone dispose <savepoint> [--dry-run] [--force]`: deletes a savepoint whose
//!   `_metadata` decodes as one (`_metadata` first) and lists what it deleted.
//!
//! Every location is a local path or a URL (`file://`, `memory://`, `s3://bucket/prefix`,
//! `gs://bucket/prefix`, `azblob://container/prefix`), with options from `-o KEY=VALUE`, the
//! URL's query, a few flags (`--region`, `--endpoint`, `--profile`, `--anonymous`) and the
//! service's usual environment variables and credential files; `retries`, `timeout` and
//! `io_timeout` bound every storage call. `--json` prints one stable JSON
//! document on stdout. Progress bars (on a terminal only) and errors go to stderr; an error
//! is one line, `error: ...`.
//!
//! Exit codes: 0 success; 1 problems found by `verify`; 2 a bad command line; 3 not found
//! (checkpoint, savepoint, directory, operator, state); 4 storage unavailable or an outcome
//! unknown (worth retrying); 5 unreadable: corrupt data, a newer format, a storage URL this
//! build does not support; 6 any
//! other error (a refused operation, a limit, an internal error). With `--json`, an error is
//! one JSON object on stderr: `{"error": {"kind", "message", "context", "detail",
//! "exit_code"}}`.

mod args;
mod dump;
mod dump_cmd;
mod flink;
mod flink_dump;
mod human;
mod output;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use cornerstone_checkpoint_store::inspect::MetadataFormat;
use cornerstone_checkpoint_store::{CheckpointStore, Location, inspect, split_location_query};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::{Cli, Command, StorageArgs, with_id};
use crate::dump_cmd::{DumpFilter, run_dump};
use crate::output::Output;

/// Exit code when `verify` found problems.
const EXIT_PROBLEMS: u8 = 1;
/// Exit code of a bad command line (clap's own).
const EXIT_USAGE: u8 = 2;
/// Exit code when the checkpoint, savepoint, directory, operator or state asked for does
/// not exist.
const EXIT_NOT_FOUND: u8 = 3;
/// Exit code when storage could not be reached or did not answer (worth retrying), or the
/// outcome of a change is unknown.
const EXIT_UNAVAILABLE: u8 = 4;
/// Exit code when stored data is corrupt, of a format this tool does not read, or behind a
/// storage URL this build does not support.
const EXIT_UNREADABLE: u8 = 5;
/// Exit code of every other error: a refused operation (invalid input, another writer
/// holding the lease), a limit, an internal error.
const EXIT_ERROR: u8 = 6;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and succeed; a bad command line is a usage error.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(&cli);
    match run(&cli) {
        Ok(code) => code,
        Err(mut e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            if let Ok(location) = Location::parse(cli.command.location()) {
                present_paths(&mut e, &Output::new(location));
            }
            let code = exit_code(&e);
            if cli.json {
                eprintln!("{}", error_json(&e, code));
            } else {
                eprintln!("error: {}", one_line(&e));
            }
            ExitCode::from(code)
        }
    }
}

/// Context keys whose values are paths inside the store.
const PATH_CONTEXTS: [&str; 5] = ["path", "dir", "file", "metadata", "metadata_path"];

/// Shows the store paths in `e`'s context as locations the user can pass back (`/tmp/x`,
/// not `tmp/x`; `s3://bucket/x`, not `x`).
fn present_paths(e: &mut anyhow::Error, out: &Output) {
    if let Some(lib) = e.downcast_mut::<cornerstone_backend_api::Error>() {
        lib.map_contexts(|key, value| {
            if PATH_CONTEXTS.contains(&key) {
                *value = out.present(value);
            }
        });
    }
}

/// The library error behind `e`, if any.
fn library_error(e: &anyhow::Error) -> Option<&cornerstone_backend_api::Error> {
    e.chain()
        .find_map(|c| c.downcast_ref::<cornerstone_backend_api::Error>())
}

/// The exit code of an error, by its kind.
fn exit_code(e: &anyhow::Error) -> u8 {
    use cornerstone_backend_api::ErrorKind;
    match library_error(e).map(cornerstone_backend_api::Error::kind) {
        Some(ErrorKind::NotFound) => EXIT_NOT_FOUND,
        Some(ErrorKind::Unavailable | ErrorKind::OutcomeUnknown) => EXIT_UNAVAILABLE,
        Some(ErrorKind::Corrupted | ErrorKind::Unsupported) => EXIT_UNREADABLE,
        _ => EXIT_ERROR,
    }
}

/// An error as one JSON object (`--json`): the kind, message and context of the library
/// error behind it, the whole story in `detail`, and the exit code.
fn error_json(e: &anyhow::Error, code: u8) -> serde_json::Value {
    let lib = library_error(e);
    let context: serde_json::Map<String, serde_json::Value> = lib
        .into_iter()
        .flat_map(|l| l.contexts())
        .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
        .collect();
    output::versioned(serde_json::json!({
        "error": {
            "kind": lib.map_or("error", |l| l.kind().as_str()),
            "message": lib.map_or_else(|| one_line(e), |l| l.message().to_owned()),
            "context": context,
            "detail": one_line(e),
            "exit_code": code,
        }
    }))
}

/// Logs to stderr at the level `-v`/`-q` ask for, unless `RUST_LOG` says otherwise.
fn init_logging(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The error and its causes on one line, each cause once.
///
/// Like anyhow's `{:#}` (the causes joined with `: `), except that a cause whose text is
/// already in the line is skipped: a Cornerstone error prints its source itself (and returns
/// it from `source()`), as OpenDAL's errors do, so walking the chain would repeat it.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace(['\n', '\r'], " ")
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// A progress bar on stderr, only when stderr is a terminal.
pub(crate) struct Progress(Option<ProgressBar>);

impl Progress {
    pub(crate) fn new(message: &'static str, len: Option<u64>) -> Self {
        if !io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = match len {
            Some(len) => ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
                .with_style(
                    ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                ),
            None => {
                let s = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                s.enable_steady_tick(std::time::Duration::from_millis(120));
                s
            }
        };
        bar.set_message(message);
        Progress(Some(bar))
    }

    fn update(&self, done: usize, total: usize) {
        if let Some(bar) = &self.0 {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    }

    pub(crate) fn inc(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }

    pub(crate) fn finish(self) {
        if let Some(bar) = self.0 {
            bar.finish_and_clear();
        }
    }
}

fn open(location: &str, storage: &StorageArgs) -> Result<(CheckpointStore, String, Output)> {
    let parsed = Location::parse(location)?;
    let store = parsed.open(storage.options())?;
    Ok((store, parsed.path().to_owned(), Output::new(parsed)))
}

/// For local locations, fails when the directory does not exist (listing a missing
/// directory in object storage is simply empty).
fn ensure_local_dir(location: &str) -> Result<()> {
    let Some(p) = Location::parse(location)?.local_path() else {
        return Ok(());
    };
    if !p.is_dir() {
        // The path as the user gave it.
        let (path, _) = split_location_query(location);
        let path = path.strip_prefix("file://").unwrap_or(path);
        let err = cornerstone_backend_api::Error::not_found("no such directory")
            .with_context("path", path);
        return Err(if p.exists() {
            err.with_context("found", "not a directory")
        } else {
            err
        }
        .into());
    }
    Ok(())
}

fn print_out(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn print_json(value: serde_json::Result<serde_json::Value>) -> Result<()> {
    let value = value?;
    let mut text = serde_json::to_string_pretty(&output::versioned(value))?;
    text.push('\n');
    print_out(&text)
}

fn run(cli: &Cli) -> Result<ExitCode> {
    let st = &cli.storage;
    match &cli.command {
        Command::List {
            job_dir,
            from,
            to,
            limit,
        } => {
            ensure_local_dir(job_dir)?;
            let (store, path, out) = open(job_dir, st)?;
            if is_flink(&store, &path)? {
                let paths = flink::paths(job_dir, &cli.path_prefix)?;
                let mut entries = inspect::flink_list(&store, &path, &paths)?;
                entries.retain(|e| in_range(e.id, *from, *to));
                if let Some(n) = limit {
                    let skip = entries.len().saturating_sub(*n);
                    entries.drain(..skip);
                }
                if cli.json {
                    print_json(out.flink_list_json(job_dir, &entries))?;
                } else {
                    print_out(&out.flink_list_human(job_dir, &entries))?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            let mut entries = inspect::list(&store, &path)?;
            entries.retain(|e| in_range(e.id.map(|id| id.0), *from, *to));
            if let Some(n) = limit {
                let skip = entries.len().saturating_sub(*n);
                entries.drain(..skip);
            }
            if cli.json {
                print_json(out.list_json(job_dir, &entries))?;
            } else {
                print_out(&out.list_human(job_dir, &entries))?;
            }
        }
        Command::Show { path, id, .. } => {
            let location = &with_id(path, *id);
            let (store, path, out) = open(location, st)?;
            if is_flink(&store, &path)? {
                let paths = flink::paths(location, &cli.path_prefix)?;
                let details = inspect::flink_show(&store, &path, &paths)?;
                if cli.json {
                    print_json(out.flink_json(&details))?;
                } else {
                    print_out(&out.flink_show_human(&details))?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            let details = inspect::show(&store, &path)?;
            if cli.json {
                print_json(out.show_json(&details))?;
            } else {
                print_out(&out.show_human(&details))?;
            }
        }
        Command::Verify { path, id, .. } => {
            let location = &with_id(path, *id);
            let (store, path, out) = open(location, st)?;
            if is_flink(&store, &path)? {
                let paths = flink::paths(location, &cli.path_prefix)?;
                let progress = Progress::new("verifying", Some(0));
                let report = inspect::flink_verify(&store, &path, &paths, |done, total| {
                    progress.update(done, total);
                });
                progress.finish();
                let report = report?;
                if cli.json {
                    print_json(out.flink_json(&report))?;
                } else {
                    print_out(&out.flink_verify_human(&report))?;
                }
                return Ok(ExitCode::from(if report.is_ok() {
                    0
                } else {
                    EXIT_PROBLEMS
                }));
            }
            let progress = Progress::new("verifying", Some(0));
            let report = inspect::verify(&store, &path, |done, total| {
                progress.update(done, total);
            });
            progress.finish();
            let report = report?;
            if cli.json {
                print_json(out.verify_json(&report))?;
            } else {
                print_out(&out.verify_human(&report))?;
            }
            if !report.is_ok() {
                return Ok(ExitCode::from(EXIT_PROBLEMS));
            }
        }
        Command::Dump {
            path,
            id,
            operator,
            state,
            subtask,
            key_group,
            key,
            limit,
            ..
        } => {
            let location = &with_id(path, *id);
            let (store, path, _) = open(location, st)?;
            let filter = DumpFilter {
                state: state.as_deref(),
                subtask: *subtask,
                key_group: *key_group,
                key: key.as_ref(),
                limit: *limit,
            };
            if is_flink(&store, &path)? {
                let target = flink_dump::FlinkDumpTarget {
                    store: &store,
                    path: &path,
                    location,
                    prefixes: &cli.path_prefix,
                };
                let count = flink_dump::run_flink_dump(&target, operator, &filter)?;
                if !cli.json && io::stderr().is_terminal() {
                    eprintln!("{count} keyed entries of operator {operator}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let count = run_dump(&store, &path, operator, &filter)?;
            if !cli.json && io::stderr().is_terminal() {
                eprintln!("{count} entries of operator {operator}");
            }
        }
        Command::Gc {
            job_dir,
            delete,
            min_age,
            force,
        } => {
            ensure_local_dir(job_dir)?;
            let (store, path, out) = open(job_dir, st)?;
            let options = inspect::GcOptions {
                min_age_ms: u64::try_from(min_age.as_millis()).unwrap_or(u64::MAX),
                now_ms: cornerstone_backend_api::clock::system_clock().now_millis(),
                force: *force,
            };
            if is_flink(&store, &path)? {
                let paths = flink::paths(job_dir, &cli.path_prefix)?;
                let progress = Progress::new("scanning for unreferenced files", None);
                let report = inspect::flink_gc_candidates(&store, &path, &paths, &options);
                progress.finish();
                let report = report?;
                let deleted = if *delete {
                    let progress = Progress::new("deleting unreferenced files", None);
                    let n = inspect::flink_gc_delete(&store, &report, &paths, &options);
                    progress.finish();
                    Some(n?)
                } else {
                    None
                };
                if cli.json {
                    print_json(out.flink_gc_json(&report, deleted))?;
                } else {
                    print_out(&out.flink_gc_human(&report, deleted))?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            let progress = Progress::new("scanning for unreferenced files", None);
            let report = inspect::gc_candidates(&store, &path, &options);
            progress.finish();
            let report = report?;
            let deleted = if *delete && !report.candidates.is_empty() {
                let progress = Progress::new("deleting unreferenced files", None);
                let n = inspect::gc_delete(&store, &report, &options);
                progress.finish();
                Some(n?)
            } else if *delete {
                Some(0)
            } else {
                None
            };
            if cli.json {
                print_json(out.gc_json(&report, deleted))?;
            } else {
                print_out(&out.gc_human(&report, deleted))?;
            }
        }
        Command::Diff { a, b } => {
            let (store, pa, out) = open(a, st)?;
            let (_, pb, _) = open(b, st)?;
            if store_key(a)? != store_key(b)? {
                return Err(cornerstone_backend_api::Error::invalid_input(
                    "diff needs both snapshots in the same store",
                )
                .with_context("a", a)
                .with_context("b", b)
                .into());
            }
            match (is_flink(&store, &pa)?, is_flink(&store, &pb)?) {
                (true, true) => {
                    let paths = flink::paths(a, &cli.path_prefix)?;
                    let d = inspect::flink_diff(&store, &pa, &pb, &paths)?;
                    if cli.json {
                        print_json(out.flink_json(&d))?;
                    } else {
                        print_out(&out.flink_diff_human(&d))?;
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                (false, false) => {}
                (fa, _) => {
                    return Err(cornerstone_backend_api::Error::invalid_input(
                        "diff compares two Flink snapshots or two Cornerstone ones, not one of each",
                    )
                    .with_context("flink", if fa { a } else { b })
                    .with_context("cornerstone", if fa { b } else { a })
                    .into());
                }
            }
            let d = inspect::diff(&store, &pa, &pb)?;
            if cli.json {
                print_json(out.diff_json(a, b, &d))?;
            } else {
                print_out(&out.diff_human(a, b, &d))?;
            }
        }
        Command::Dispose {
            savepoint,
            dry_run,
            force,
        } => {
            let (store, path, out) = open(savepoint, st)?;
            if is_flink(&store, &path)? {
                return Err(flink_unsupported(
                    "dispose deletes Cornerstone savepoints; dispose a Flink savepoint with \
                     Flink (`flink savepoint --dispose <path>`), which knows its file layout",
                    savepoint,
                ));
            }
            let files = store.dispose_savepoint(&path, *force, *dry_run)?;
            if cli.json {
                print_json(out.dispose_json(savepoint, &files, *dry_run))?;
            } else {
                print_out(&out.dispose_human(savepoint, &files, *dry_run))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The error of a command that does not apply to Apache Flink's own snapshots.
fn flink_unsupported(message: &'static str, location: &str) -> anyhow::Error {
    cornerstone_backend_api::Error::new(cornerstone_backend_api::ErrorKind::Unsupported, message)
        .with_context("path", location)
        .with_context("found", "Apache Flink _metadata")
        .into()
}

/// Whether `path` holds Apache Flink's own `_metadata` (by its magic number).
fn is_flink(store: &CheckpointStore, path: &str) -> Result<bool> {
    Ok(inspect::detect_format(store, path)? == MetadataFormat::Flink)
}

/// Whether a checkpoint id is within `--from` and `--to` (an unknown id never is, when
/// either is given).
fn in_range(id: Option<u64>, from: Option<u64>, to: Option<u64>) -> bool {
    from.is_none_or(|f| id.is_some_and(|id| id >= f))
        && to.is_none_or(|t| id.is_some_and(|id| id <= t))
}

/// Which store a location is in (see `Location::store_key`).
fn store_key(location: &str) -> Result<String> {
    Ok(Location::parse(location)?.store_key().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::anyhow;

    #[test]
    fn one_line_prints_each_cause_once() {
        let e = cornerstone_backend_api::Error::io(
            "read",
            io::Error::new(io::ErrorKind::InvalidData, "bad\nbyte"),
        );
        let e = anyhow::Error::new(e).context("reading job/chk-1/_metadata");
        assert_eq!(
            one_line(&e),
            "reading job/chk-1/_metadata: corrupted: i/o failed (op=read): bad byte"
        );
        // Causes that do not print their sources are joined as anyhow's `{:#}` does.
        let plain = anyhow!("inner").context("outer");
        assert_eq!(one_line(&plain), "outer: inner");
    }
}
