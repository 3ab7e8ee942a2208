//! The `cornerstone` binary on `s3://bucket/prefix` locations of a real S3-compatible server
//! (SeaweedFS on 127.0.0.1, started by the test; see `scripts/seaweedfs.sh`), with the
//! endpoint and credentials from options or from the `AWS_*` variables; and the fault test:
//! the server killed in the middle of a checkpoint's uploads.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Write;
use std::process::{Command, Output};

use cornerstone_backend_api::spi::keyed_format::Compression;
use cornerstone_backend_api::stream::read_stream;
use cornerstone_backend_api::{CheckpointId, CheckpointStreamFactory, ErrorKind, StateScope};
use cornerstone_checkpoint_store::OperatorSpec;
use cornerstone_checkpoint_store::{
    CheckpointConfig, ClaimMode, CompletedCheckpointStore, PendingCheckpoint,
};
use cornerstone_testkit::checkpoints::{HeapFactory, KeyedOperator, put_values};
use cornerstone_testkit::s3::{ACCESS_KEY, BUCKET, REGION, SECRET_KEY, SeaweedFs, unique_prefix};
use cornerstone_testkit::store::{all_files, put, state_of, write_stream};
use serde_json::Value;

const KEYS: u64 = 200;

/// How the binary gets the server: command-line options or the `AWS_*` variables.
#[derive(Clone, Copy, Debug)]
enum Creds {
    Options,
    Env,
}

fn run(server: &SeaweedFs, creds: Creds, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cornerstone"));
    for var in [
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ] {
        cmd.env_remove(var);
    }
    match creds {
        Creds::Options => {
            cmd.args(["--endpoint", &server.endpoint(), "--region", REGION])
                .args(["--access-key-id", ACCESS_KEY])
                .args(["--secret-access-key", SECRET_KEY]);
        }
        Creds::Env => {
            cmd.env("AWS_ENDPOINT_URL", server.endpoint())
                .env("AWS_REGION", REGION)
                .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
                .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
        }
    }
    cmd.args(args).output().unwrap()
}

#[track_caller]
fn ok(server: &SeaweedFs, creds: Creds, args: &[&str]) -> String {
    let out = run(server, creds, args);
    assert!(
        out.status.success(),
        "{args:?}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[track_caller]
fn ok_json(server: &SeaweedFs, creds: Creds, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&ok(server, creds, &args)).unwrap()
}

/// The keyed operator (2 subtasks of the heap backend in streams mode, value state `count`).
fn write_keyed(pending: &mut PendingCheckpoint, id: u64) {
    let keyed = KeyedOperator::new("keyed-uid", "Keyed", 2, 128);
    let heap = HeapFactory::streams("heap", Compression::None);
    keyed.write(pending, CheckpointId(id), &heap, |range, backend| {
        put_values(backend, "count", keyed.keys_in(range, 0..KEYS), |k| {
            format!("value-{k}-{id}")
        });
    });
}

#[test]
fn every_command_works_on_s3_urls_with_options_or_environment() {
    let test = "cli::s3::every_command";
    let Some(server) = SeaweedFs::shared(test) else {
        return;
    };
    let prefix = unique_prefix(test);
    let store = server.store(&prefix);
    let job = CompletedCheckpointStore::open(
        &store,
        "job",
        CheckpointConfig::default()
            .inline_threshold(0)
            .num_retained(5),
    )
    .unwrap();
    for id in [2, 10] {
        let mut p = job.begin_checkpoint(CheckpointId(id)).unwrap();
        write_keyed(&mut p, id);
        p.commit().unwrap();
    }
    let mut sp = job.begin_savepoint(CheckpointId(10), "savepoints").unwrap();
    write_keyed(&mut sp, 10);
    let savepoint = sp.commit().unwrap().dir();
    put(&store, "job/shared/orphan.sst", vec![1u8; 1234]);

    let url = |rel: &str| format!("s3://{BUCKET}/{prefix}/{rel}");
    for creds in [Creds::Options, Creds::Env] {
        let json = ok_json(&server, creds, &["list", &url("job")]);
        let ids: Vec<(u64, &str)> = json["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].as_u64().unwrap(), s["status"].as_str().unwrap()))
            .collect();
        assert_eq!(ids, vec![(2, "complete"), (10, "complete")], "{creds:?}");
    }
    let creds = Creds::Options;
    let shown = ok_json(&server, creds, &["show", &url("job/chk-10")]);
    assert_eq!(shown["id"], 10, "{shown}");
    assert_eq!(
        shown["operators"][0]["subtasks"].as_array().unwrap().len(),
        2
    );
    assert!(ok(&server, creds, &["verify", &url("job")]).starts_with("OK"));
    assert!(ok(&server, creds, &["verify", &url(&savepoint)]).starts_with("OK"));

    let dumped: Vec<Value> = ok(
        &server,
        creds,
        &[
            "dump",
            &url("job/chk-2/_metadata"),
            "--operator",
            "keyed-uid",
        ],
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    assert_eq!(dumped.len() as u64, KEYS, "{dumped:?}");
    assert!(
        dumped
            .iter()
            .any(|v| v["key"] == 7 && v["value"] == "value-7-2"),
        "{dumped:?}"
    );

    let diff = ok_json(
        &server,
        creds,
        &["diff", &url("job/chk-2"), &url("job/chk-10")],
    );
    assert_eq!(
        diff["operators_changed"].as_array().unwrap().len(),
        1,
        "{diff}"
    );

    let gc = ok_json(&server, creds, &["gc", &url("job"), "--min-age", "0s"]);
    let cands = gc["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), 1, "{gc}");
    assert!(
        cands[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("job/shared/orphan.sst")
    );
    assert_eq!(cands[0]["size_bytes"], 1234);
    let deleted = ok_json(
        &server,
        creds,
        &["gc", &url("job"), "--delete", "--min-age", "0s"],
    );
    assert_eq!(deleted["deleted"], 1, "{deleted}");
    assert!(
        !all_files(&store, "job/shared/")
            .iter()
            .any(|f| f.ends_with("orphan.sst"))
    );

    ok(&server, creds, &["dispose", &url(&savepoint)]);
    assert!(all_files(&store, &savepoint).is_empty());
    assert!(ok(&server, creds, &["verify", &url("job")]).starts_with("OK"));

    // Wrong credentials: the server refuses them, and the tool says so in one line (exit 6:
    // a refused operation, not worth retrying as it is).
    let out = Command::new(env!("CARGO_BIN_EXE_cornerstone"))
        .args(["--endpoint", &server.endpoint(), "--region", REGION])
        .args([
            "--access-key-id",
            ACCESS_KEY,
            "--secret-access-key",
            "wrong",
        ])
        .args(["list", &url("job")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: ") && err.trim_end().lines().count() == 1,
        "{err}"
    );
}

/// The server is SIGKILLed while checkpoint 2 uploads its state: checkpoint 2 fails with an
/// error naming the file, checkpoint 1 restores once the server is back, and `cornerstone gc`
/// removes what checkpoint 2 left behind.
#[test]
fn server_killed_during_uploads_fails_the_checkpoint_and_gc_cleans_up() {
    let test = "cli::s3::server_killed";
    // A server of its own: the test kills it.
    let Some(server) = SeaweedFs::start(test) else {
        return;
    };
    let prefix = unique_prefix(test);
    let config = CheckpointConfig::default()
        .inline_threshold(0)
        .write_chunk_size(1 << 20);
    let store = server.store(&prefix);
    let job = CompletedCheckpointStore::open(&store, "job", config.clone()).unwrap();
    let payload: Vec<u8> = (0..(7u32 << 20)).map(|i| (i % 251) as u8).collect();

    let mut p = job.begin_checkpoint(CheckpointId(1)).unwrap();
    let f = p.stream_factory();
    let good = vec![
        write_stream(&*f, StateScope::Exclusive, &payload),
        write_stream(&*f, StateScope::Exclusive, b"small but a file"),
    ];
    p.add_subtask_state(
        &OperatorSpec::new("op", "Op", 1, 128),
        0,
        state_of(good.clone()),
    )
    .unwrap();
    p.commit().unwrap();

    // Checkpoint 2: one state file is up, the next (21 MiB, a multipart upload) has had
    // 16 MiB written to its stream when the server dies.
    let mut p = job.begin_checkpoint(CheckpointId(2)).unwrap();
    let f = p.stream_factory();
    let uploaded = write_stream(&*f, StateScope::Exclusive, &payload);
    let big: Vec<u8> = payload.iter().cycle().take(21 << 20).copied().collect();
    let mut out = f.create(StateScope::Exclusive).unwrap();
    out.write_all(&big[..16 << 20]).unwrap();
    server.kill();
    let failed = out
        .write_all(&big[16 << 20..])
        .map_err(|e| e.to_string())
        .and_then(|()| out.close().map(|_| ()).map_err(|e| e.to_string()));
    let err = failed.expect_err("uploading to a dead server fails");
    eprintln!("checkpoint 2 failed as expected: {err}");
    assert!(
        err.contains("checkpoint storage operation failed") && err.contains("job/chk-2/"),
        "a clear error naming the file: {err}"
    );
    // The checkpoint is given up; its abort cannot reach the server either.
    p.add_subtask_state(
        &OperatorSpec::new("op", "Op", 1, 128),
        0,
        state_of(vec![uploaded]),
    )
    .unwrap();
    let commit = p.commit();
    assert!(commit.is_err(), "no commit while the server is down");
    drop(job);

    server.restart();
    let store = server.store(&prefix);
    let job = CompletedCheckpointStore::open(&store, "job", config.clone()).unwrap();
    assert_eq!(job.checkpoint_ids(), vec![CheckpointId(1)]);
    let point = store.resolve("job").unwrap();
    assert_eq!(point.id(), CheckpointId(1));
    let restorer =
        CompletedCheckpointStore::open(&store, "job-restored", CheckpointConfig::default())
            .unwrap();
    let reader = restorer.restore(&point, ClaimMode::NoClaim).unwrap();
    assert!(read_stream(&good[0], Some(&reader)).unwrap() == payload);
    assert_eq!(
        read_stream(&good[1], Some(&reader)).unwrap(),
        b"small but a file"
    );

    // What checkpoint 2 left behind is garbage for `cornerstone gc`.
    let left = all_files(&store, "job/chk-2/");
    assert!(!left.is_empty(), "the failed attempt left files: {left:?}");
    let url = format!("s3://{BUCKET}/{prefix}/job");
    let gc = ok_json(&server, Creds::Env, &["gc", &url, "--min-age", "0s"]);
    let cands = gc["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), left.len(), "{gc} vs {left:?}");
    assert!(
        cands.iter().all(|c| c["reason"] == "incomplete-checkpoint"),
        "{gc}"
    );
    let deleted = ok_json(
        &server,
        Creds::Env,
        &["gc", &url, "--delete", "--min-age", "0s"],
    );
    assert_eq!(deleted["deleted"].as_u64().unwrap() as usize, left.len());
    assert!(all_files(&store, "job/chk-2/").is_empty());
    assert!(ok(&server, Creds::Env, &["verify", &url]).starts_with("OK"));
    // gc took the job directory's lease: the job restarts (taking it back) and goes on.
    assert_eq!(job.check_lease().unwrap_err().kind(), ErrorKind::Fenced);
    let job = CompletedCheckpointStore::open(&store, "job", config.clone()).unwrap();
    let mut p = job.begin_checkpoint(CheckpointId(3)).unwrap();
    let f = p.stream_factory();
    let s = vec![write_stream(
        &*f,
        StateScope::Exclusive,
        b"after the restart",
    )];
    p.add_subtask_state(&OperatorSpec::new("op", "Op", 1, 128), 0, state_of(s))
        .unwrap();
    p.commit().unwrap();
    assert_eq!(store.resolve("job").unwrap().id(), CheckpointId(3));
}

/// Without a region, the error names the option to set; `--anonymous` sends unsigned
/// requests, which this server (it has identities) refuses as denied, not as missing
/// credentials.
#[test]
fn missing_region_is_named_and_anonymous_requests_are_unsigned() {
    let test = "cli::s3::anonymous";
    let Some(server) = SeaweedFs::shared(test) else {
        return;
    };
    let url = format!("s3://{BUCKET}/{}/job", unique_prefix(test));
    let bare = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cornerstone"));
        for var in [
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ] {
            cmd.env_remove(var);
        }
        cmd.args(args).output().unwrap()
    };
    let endpoint = server.endpoint();
    let out = bare(&["list", &url, "--endpoint", &endpoint]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains("s3 needs a region") && err.contains("--region"),
        "{err}"
    );
    assert!(!err.contains("detect_region"), "{err}");

    let out = bare(&[
        "list",
        &url,
        "--endpoint",
        &endpoint,
        "--region",
        REGION,
        "--anonymous",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("denied permission"), "{err}");
    assert!(!err.contains("signing credential"), "{err}");

    // The same options in the URL's query (percent-encoded) or as -o KEY=VALUE.
    let encoded: String = form_urlencoded::byte_serialize(endpoint.as_bytes()).collect();
    let in_query = format!("{url}?region={REGION}&anonymous=true&endpoint={encoded}");
    let region = format!("region={REGION}");
    for args in [
        vec!["list", in_query.as_str()],
        vec![
            "list",
            &url,
            "-o",
            &region,
            "-o",
            "anonymous=true",
            "--endpoint",
            &endpoint,
        ],
    ] {
        let out = bare(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {err}");
        assert!(err.contains("denied permission"), "{args:?}: {err}");
    }
    // A query option that contradicts a flag is refused.
    let out = bare(&["list", &in_query, "--region", "eu-west-1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("given twice with different values"), "{err}");
}

/// Credentials need not be on the command line nor in `AWS_*` variables: an AWS profile in a
/// credentials file works (`--profile`), and so does any other option of OpenDAL's S3
/// configuration; a misspelt option is named with the known ones.
#[test]
fn credentials_come_from_an_aws_profile() {
    let test = "cli::s3::profile";
    let Some(server) = SeaweedFs::shared(test) else {
        return;
    };
    let url = format!("s3://{BUCKET}/{}/job", unique_prefix(test));
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        format!(
            "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n\
             [cornerstone]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        ),
    )
    .unwrap();
    let config = dir.path().join("config");
    std::fs::write(&config, "[profile cornerstone]\n").unwrap();
    let endpoint = server.endpoint();
    let run = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cornerstone"));
        for var in [
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
            .env("AWS_CONFIG_FILE", &config)
            .env("HOME", dir.path())
            .args(["--endpoint", &endpoint, "--region", REGION])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["list", &url, "--profile", "cornerstone", "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["schema_version"], 1, "{json}");
    // The same profile through the URL's query, by OpenDAL's alias.
    let out = run(&["list", &format!("{url}?aws_profile=cornerstone")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The default profile's keys are wrong: the server refuses them.
    let out = run(&["list", &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    // A misspelt option is named, with the known ones.
    let out = run(&["list", &url, "-o", "profil=cornerstone"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains("unknown storage option")
            && err.contains("profil")
            && err.contains("role_arn"),
        "{err}"
    );
}
